#include "tools/iblctl/source_add.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "tools/iblctl/control_client.hpp"
#include "tools/iblctl/render.hpp"

namespace iblsync::iblctl {
namespace {

using protocols::ControlRequest;
using protocols::ControlResponse;

// One request; on failure prints why and sets the exit code.
bool Ask(const std::string& socket, const ControlRequest& request, int timeout_ms, ControlResponse& response,
         int& exit_code) {
    CallError failed;
    if (!Call(socket, request, timeout_ms, response, failed)) {
        std::cerr << "iblctl: " << failed.message << "\n";
        exit_code = failed.exit_code;
        return false;
    }
    return true;
}

bool ReadWhole(const std::string& path, std::string& text, std::string& error, int* error_number = nullptr) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        const int e = errno;
        if (error_number) *error_number = e;
        error = fmt::format("cannot read {} ({})", path, std::strerror(e));
        return false;
    }
    std::ostringstream all;
    all << in.rdbuf();
    text = all.str();
    return true;
}

// Writes `text` over `path` through a temporary file beside it with the
// same mode (and owner, as root), synced, then renamed over it: the node
// never reads half a file, and a crash leaves the old one or the new one.
bool Replace(const std::string& path, const std::string& text, std::string& error) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        error = fmt::format("cannot read {} ({})", path, std::strerror(errno));
        return false;
    }
    const std::filesystem::path target(path);
    const std::string dir = target.parent_path().empty() ? "." : target.parent_path().string();
    std::string temp = (std::filesystem::path(dir) / ("." + target.filename().string() + ".iblctl-XXXXXX")).string();
    const int fd = mkstemp(temp.data());
    if (fd < 0) {
        error = fmt::format("cannot write in {} ({})", dir, std::strerror(errno));
        return false;
    }
    bool ok = fchmod(fd, st.st_mode & 07777) == 0 && (geteuid() != 0 || fchown(fd, st.st_uid, st.st_gid) == 0);
    for (std::size_t done = 0; ok && done < text.size();) {
        const ssize_t n = write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) done += static_cast<std::size_t>(n);
    }
    ok = ok && fsync(fd) == 0;
    const int saved = errno;
    close(fd);
    if (!ok || rename(temp.c_str(), path.c_str()) != 0) {
        error = fmt::format("cannot write {} ({})", path, std::strerror(ok ? errno : saved));
        unlink(temp.c_str());
        return false;
    }
    if (const int d = open(dir.c_str(), O_RDONLY | O_DIRECTORY); d >= 0) {
        fsync(d);
        close(d);
    }
    return true;
}

std::string JsonString(const std::string& v) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    return buf.GetString();
}

// The "problems" of an oai.check result (none if it has no such array).
std::vector<std::string> Problems(const std::string& check_json) {
    std::vector<std::string> out;
    rapidjson::Document d;
    d.Parse(check_json.c_str());
    if (d.IsObject() && d.HasMember("problems") && d["problems"].IsArray())
        for (const auto& p : d["problems"].GetArray())
            if (p.IsString()) out.push_back(p.GetString());
    return out;
}

bool Lists(const std::string& reload_json, const char* key, const std::string& value) {
    rapidjson::Document d;
    d.Parse(reload_json.c_str());
    if (!d.IsObject() || !d.HasMember(key) || !d[key].IsArray()) return false;
    const auto& list = d[key].GetArray();
    return std::any_of(list.begin(), list.end(), [&](const auto& v) { return v.IsString() && v.GetString() == value; });
}

}  // namespace

int SourceAdd(const SourceAddArgs& args, const std::string& socket, int timeout_ms) {
    const auto& source = args.source;
    int exit_code = 0;
    ControlResponse response;
    // The file the node reads, unless told otherwise.
    std::string path = args.config;
    if (path.empty()) {
        if (!Ask(socket, {"status", {}}, timeout_ms, response, exit_code)) return exit_code;
        rapidjson::Document d;
        d.Parse(response.result_json.c_str());
        if (response.ok && d.IsObject() && d.HasMember("config") && d["config"].IsObject() &&
            d["config"].HasMember("path") && d["config"]["path"].IsString())
            path = d["config"]["path"].GetString();
        if (path.empty()) {
            std::cerr << "iblctl: source add: the node did not say which config file it reads; name it with "
                         "--config\n";
            return 5;
        }
    }
    std::string before, error;
    if (int e = 0; !ReadWhole(path, before, error, &e)) {
        std::cerr << "iblctl: source add: " << error << "; run iblctl as a user who may read the node's config "
                  << "(e.g. with sudo)\n";
        return e == EACCES ? 4 : 1;
    }
    auto next = daemon::WithHarvestSource(before, path, source);
    if (!next) {
        std::cerr << "iblctl: source add: not added: " << next.error() << "\n";
        return 2;
    }
    const std::string& after = next.value();
    const auto table_at = after.rfind("\n[[harvest]]\n");
    const long long line = std::count(after.begin(), after.begin() + static_cast<long>(table_at), '\n') + 2;
    const std::string table = after.substr(table_at + 1);

    // An OAI-PMH repository is asked first, from the node, as oai check does.
    std::string check_json = "null";
    if (args.check && source.protocol == "oai") {
        const std::string prefix = source.metadata_prefix;
        if (!Ask(socket, {"oai.check", {{"url", source.url}, {"metadata_prefix", prefix}, {"set", source.set}}},
                 std::max(timeout_ms, 150000), response, exit_code))
            return exit_code;
        if (!response.ok) {
            std::cerr << "iblctl: source add: not added: the check failed: " << response.error << "\n";
            if (!response.hint.empty()) std::cerr << "hint: " << response.hint << "\n";
            return 1;
        }
        check_json = response.result_json;
        const auto problems = Problems(check_json);
        if (!problems.empty()) {
            if (args.json)
                std::cout << fmt::format("{{\"added\":false,\"source\":{},\"config\":{},\"check\":{}}}\n",
                                         JsonString(source.name), JsonString(path), check_json);
            else
                std::cout << RenderOaiFindings(check_json);
            std::cerr << fmt::format("iblctl: source add: not added: the repository check found {} problem{}; fix "
                                     "the arguments or the repository, or add it anyway with --no-check\n",
                                     problems.size(), problems.size() == 1 ? "" : "s");
            return 1;
        }
        if (!args.json) std::cout << RenderOaiFindings(check_json) << "\n";
    }

    // Written only if nobody changed the file since it was read.
    std::string now;
    if (!ReadWhole(path, now, error) || now != before) {
        std::cerr << "iblctl: source add: not added: " << path << " changed while the source was checked; run it "
                  << "again\n";
        return 1;
    }
    if (!Replace(path, after, error)) {
        std::cerr << fmt::format("iblctl: source add: not added: {}; run iblctl as a user who may change the node's "
                                 "config (e.g. with sudo), or add this table to it yourself and run iblctl reload:\n\n"
                                 "{}",
                                 error, table);
        return 4;
    }
    if (!Ask(socket, {"reload", {}}, timeout_ms, response, exit_code) || !response.ok) {
        std::string restore_error;
        const bool restored = Replace(path, before, restore_error);
        if (exit_code == 0) {
            std::cerr << "iblctl: source add: not added: the node refused the config: " << response.error << "\n";
            exit_code = 1;
        }
        if (restored)
            std::cerr << "iblctl: source add: " << path << " is as it was\n";
        else
            std::cerr << "iblctl: source add: " << path << " still has the new table (" << restore_error
                      << "); take it out by hand\n";
        return exit_code;
    }
    const bool started = Lists(response.result_json, "applied", "harvest." + source.name);
    if (args.json) {
        std::cout << fmt::format("{{\"added\":true,\"source\":{},\"config\":{},\"line\":{},\"started\":{},"
                                 "\"check\":{},\"reload\":{}}}\n",
                                 JsonString(source.name), JsonString(path), line, started ? "true" : "false",
                                 check_json, response.result_json);
        return 0;
    }
    std::cout << fmt::format("added [[harvest]] '{}' to {} at line {}:\n\n{}\n", source.name, path, line, table);
    if (started)
        std::cout << fmt::format("the node harvests it now; follow it with: iblctl sync status\n");
    else
        std::cout << "the node did not start it (see its log); it starts at the next restart\n";
    if (Lists(response.result_json, "need_restart", "harvest"))
        std::cout << "note: other [[harvest]] changes in the file wait for a restart\n";
    return 0;
}

}  // namespace iblsync::iblctl
