#include "daemon/oai_check.hpp"

#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include "daemon/http_client.hpp"
#include "protocols/catalogue_record.hpp"
#include "protocols/holdings.hpp"
#include "protocols/marcxml.hpp"
#include "protocols/oai_client.hpp"
#include "protocols/sru_client.hpp"

namespace iblsync::daemon {
namespace {

namespace oai = protocols::oai;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr std::uint64_t kMaxBytes = 64ULL << 20;
constexpr auto kTimeout = std::chrono::seconds(30);

struct Asked {
    Asked(std::string w, std::string t) : what(std::move(w)), target(std::move(t)) {}
    std::string what, target, error;
    int status = 0;
    double ms = 0;
    std::string body;
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
net::awaitable<void> Ask(const protocols::sru::HttpUrl* url, Asked* a, HttpSession* session) {
    const auto start = std::chrono::steady_clock::now();
    try {
        auto answer = co_await HttpGet(*url, a->target, kTimeout, kMaxBytes, nullptr, nullptr, session);
        a->status = answer.status;
        a->body = std::move(answer.body);
        if (a->status != 200) a->error = fmt::format("HTTP {}", a->status);
    } catch (const std::exception& e) {
        a->error = e.what();
    }
    a->ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}
#pragma GCC diagnostic pop

}  // namespace

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
net::awaitable<std::optional<protocols::ControlResponse>> HandleOaiCheck(const protocols::ControlRequest& req) {
    if (req.command != "oai.check") co_return std::nullopt;
    protocols::ControlResponse r;
    const std::string url_text = req.Arg("url");
    auto url = protocols::sru::ParseHttpUrl(url_text);
    if (!url) {
        r.error = fmt::format("{}: {}", url_text.substr(0, 200), url.error());
        r.hint = "give the repository's base URL, e.g. http://koha.example.nl/cgi-bin/koha/oai.pl";
        co_return r;
    }
    std::string prefix = req.Arg("metadata_prefix");
    const std::string set = req.Arg("set");
    HttpSession session;
    std::vector<std::string> problems;
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    auto str = [&](const char* k, const std::string& v) {
        w.Key(k);
        w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    };
    w.StartObject();
    str("url", url_text);
    std::vector<Asked> asked;

    // Identify: is it OAI-PMH at all, and how does it keep time and deletions?
    asked.emplace_back("Identify", oai::VerbTarget(url->path, "Identify"));
    co_await Ask(&url.value(), &asked.back(), &session);
    std::string granularity;
    if (asked.back().error.empty()) {
        auto id = oai::ParseIdentify(asked.back().body);
        if (!id) {
            asked.back().error = id.error();
        } else {
            w.Key("identify");
            w.StartObject();
            str("repository_name", id->repository_name);
            str("base_url", id->base_url);
            str("protocol_version", id->protocol_version);
            str("earliest_datestamp", id->earliest_datestamp);
            str("deleted_record", id->deleted_record);
            str("granularity", id->granularity);
            str("repository_identifier", id->repository_identifier);
            w.Key("admin_emails");
            w.StartArray();
            for (const auto& e : id->admin_emails) w.String(e.c_str());
            w.EndArray();
            w.EndObject();
            granularity = id->granularity;
            if (id->protocol_version != "2.0")
                problems.push_back(fmt::format("protocolVersion is '{}', not 2.0", id->protocol_version));
            if (!id->base_url.empty() && id->base_url != url_text)
                problems.push_back(fmt::format("Identify gives the baseURL {}; harvest the URL it gives, unless a "
                                               "proxy is in between",
                                               id->base_url));
            if (id->deleted_record == "no")
                problems.push_back("deletedRecord is 'no': deletions are only found by full runs "
                                   "(harvest.full_interval_hours)");
            if (id->deleted_record == "transient")
                problems.push_back("deletedRecord is 'transient': a deletion may be missed if a run comes late; "
                                   "keep full runs (harvest.full_interval_hours)");
            if (granularity == "YYYY-MM-DD")
                problems.push_back("day granularity: every incremental run asks for the whole last day again");
        }
    }
    if (!asked.back().error.empty())
        problems.push_back(fmt::format("Identify failed: {}; is this an OAI-PMH base URL?", asked.back().error));

    // Formats: a MARC format is needed.
    asked.emplace_back("ListMetadataFormats", oai::VerbTarget(url->path, "ListMetadataFormats"));
    co_await Ask(&url.value(), &asked.back(), &session);
    w.Key("formats");
    w.StartArray();
    std::string marc_prefix;
    if (asked.back().error.empty()) {
        auto formats = oai::ParseListMetadataFormats(asked.back().body);
        if (!formats) {
            asked.back().error = formats.error();
        } else {
            for (const auto& f : *formats) {
                w.StartObject();
                str("prefix", f.prefix);
                str("namespace", f.ns);
                w.EndObject();
                if (f.ns == "http://www.loc.gov/MARC21/slim" && marc_prefix.empty()) marc_prefix = f.prefix;
            }
        }
    }
    w.EndArray();
    if (!asked.back().error.empty())
        problems.push_back(fmt::format("ListMetadataFormats failed: {}", asked.back().error));
    else if (marc_prefix.empty())
        problems.push_back("no format in the MARC 21 slim namespace: iblsync needs MARCXML records");
    if (prefix.empty()) prefix = marc_prefix.empty() ? "marc21" : marc_prefix;
    str("metadata_prefix", prefix);
    str("set", set);

    // Sets: the first page is enough to see what there is.
    asked.emplace_back("ListSets", oai::VerbTarget(url->path, "ListSets"));
    co_await Ask(&url.value(), &asked.back(), &session);
    w.Key("sets");
    w.StartArray();
    bool set_found = set.empty();
    std::size_t sets_total = 0;
    if (asked.back().error.empty()) {
        auto sets = oai::ParseListSets(asked.back().body);
        if (!sets) {
            asked.back().error = sets.error();
        } else {
            sets_total = sets->sets.size();
            for (std::size_t i = 0; i < sets->sets.size(); ++i) {
                if (sets->sets[i].spec == set) set_found = true;
                if (i >= 50) continue;  // enough to show
                w.StartObject();
                str("spec", sets->sets[i].spec);
                str("name", sets->sets[i].name);
                w.EndObject();
            }
            if (!set.empty() && !set_found && !sets->resumption_token.empty()) set_found = true;  // maybe further on
        }
    }
    w.EndArray();
    w.Key("sets_listed");
    w.Uint64(sets_total);
    if (!asked.back().error.empty()) problems.push_back(fmt::format("ListSets failed: {}", asked.back().error));
    else if (!set_found) problems.push_back(fmt::format("the set '{}' is not among the repository's sets", set));

    // One page of records, read the way the harvester reads them.
    oai::ListRecordsRequest list;
    list.metadata_prefix = prefix;
    list.set = set;
    asked.emplace_back("ListRecords", oai::ListRecordsTarget(url->path, list));
    co_await Ask(&url.value(), &asked.back(), &session);
    if (asked.back().error.empty()) {
        auto page = oai::ParseListRecords(asked.back().body);
        if (!page) {
            asked.back().error = page.error();
        } else if (!page->errors.empty()) {
            asked.back().error = fmt::format("{}: {}", page->errors.front().code, page->errors.front().message);
        } else {
            long long deleted = 0, readable = 0;
            std::string first_problem;
            const auto mapping = protocols::ParseHoldingsMapping("none");
            for (const auto& item : page->items) {
                if (item.deleted) {
                    ++deleted;
                    continue;
                }
                auto d = oai::DescribeHarvested(item, mapping.value(), "NL-0000000000");
                if (d) {
                    ++readable;
                    continue;
                }
                if (first_problem.empty()) first_problem = fmt::format("{}: {}", item.identifier, d.error());
            }
            w.Key("first_page");
            w.StartObject();
            w.Key("records");
            w.Uint64(page->items.size());
            w.Key("deleted");
            w.Int64(deleted);
            w.Key("readable");
            w.Int64(readable);
            w.Key("resumption_token");
            w.Bool(!page->resumption_token.empty());
            w.Key("complete_list_size");
            w.Int64(page->complete_list_size);
            if (!page->items.empty()) str("first_identifier", page->items.front().identifier);
            if (!page->items.empty()) str("first_datestamp", page->items.front().datestamp);
            w.EndObject();
            const long long live = static_cast<long long>(page->items.size()) - deleted;
            if (readable < live)
                problems.push_back(fmt::format("{} of the first page's {} records cannot be read (first: {})",
                                               live - readable, live, first_problem));
        }
    }
    if (!asked.back().error.empty()) problems.push_back(fmt::format("ListRecords failed: {}", asked.back().error));

    w.Key("requests");
    w.StartArray();
    for (const auto& a : asked) {
        w.StartObject();
        str("verb", a.what);
        str("target", a.target);
        w.Key("status");
        w.Int(a.status);
        w.Key("ms");
        w.Int64(std::llround(a.ms));
        w.Key("bytes");
        w.Uint64(a.body.size());
        w.EndObject();
    }
    w.EndArray();
    w.Key("problems");
    w.StartArray();
    for (const auto& p : problems) w.String(p.c_str(), static_cast<rapidjson::SizeType>(p.size()));
    w.EndArray();
    w.EndObject();
    spdlog::info("oai check url={} problems={} peer_uid={}", url_text.substr(0, 200), problems.size(),
                 req.Arg("_peer_uid"));
    r.ok = true;
    r.result_json.assign(buf.GetString(), buf.GetSize());
    co_return r;
}
#pragma GCC diagnostic pop

}  // namespace iblsync::daemon
