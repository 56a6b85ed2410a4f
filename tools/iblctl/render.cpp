#include "tools/iblctl/render.hpp"

#include <rapidjson/document.h>

#include <fmt/format.h>

namespace iblsync::iblctl {
namespace {

using Value = rapidjson::Value;

std::string Str(const Value& v, const char* key) {
    if (!v.IsObject()) return {};
    auto m = v.FindMember(key);
    if (m == v.MemberEnd()) return {};
    if (m->value.IsString()) return m->value.GetString();
    if (m->value.IsInt64()) return std::to_string(m->value.GetInt64());
    if (m->value.IsUint64()) return std::to_string(m->value.GetUint64());
    if (m->value.IsBool()) return m->value.GetBool() ? "yes" : "no";
    return {};
}

std::string List(const Value& v, const char* key, const char* sep = ", ") {
    if (!v.IsObject()) return {};
    auto m = v.FindMember(key);
    if (m == v.MemberEnd() || !m->value.IsArray()) return {};
    std::string out;
    for (const auto& e : m->value.GetArray())
        if (e.IsString()) out += (out.empty() ? "" : sep) + std::string(e.GetString());
    return out;
}

const Value& Obj(const Value& v, const char* key) {
    static const Value kNull;
    if (!v.IsObject()) return kNull;
    auto m = v.FindMember(key);
    return m == v.MemberEnd() ? kNull : m->value;
}

void Row(std::string& out, const std::string& key, const std::string& value) {
    out += fmt::format("  {:<18}{}\n", key, value.empty() ? "-" : value);
}

}  // namespace

std::string FormatDuration(long long s) {
    if (s >= 86400) return fmt::format("{}d {:02}h {:02}m", s / 86400, s % 86400 / 3600, s % 3600 / 60);
    if (s >= 3600) return fmt::format("{}h {:02}m {:02}s", s / 3600, s % 3600 / 60, s % 60);
    if (s >= 60) return fmt::format("{}m {:02}s", s / 60, s % 60);
    return fmt::format("{}s", s);
}

std::string RenderStatus(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    if (d.HasParseError() || !d.IsObject()) return json + "\n";
    std::string out = "Node\n";
    const auto& node = Obj(d, "node");
    Row(out, "role", Str(node, "role"));
    Row(out, "isil", Str(node, "isil"));
    Row(out, "name", Str(node, "name"));
    Row(out, "provinces", List(node, "provinces"));
    Row(out, "version", fmt::format("{} ({})", Str(d, "version"), Str(d, "revision")));
    long long up = 0;
    if (auto m = d.FindMember("uptime_seconds"); m != d.MemberEnd() && m->value.IsInt64())
        up = m->value.GetInt64();
    Row(out, "uptime", fmt::format("{} (pid {})", FormatDuration(up), Str(d, "pid")));
    const auto& db = Obj(d, "database");
    out += "Database\n";
    Row(out, "state", Str(db, "state"));
    Row(out, "schema", fmt::format("version {} (this build expects {})", Str(db, "schema_version"),
                                   Str(db, "expected_schema_version")));
    Row(out, "pool", fmt::format("{} connections, {} open, {} in use, {} reconnects",
                                 Str(db, "pool_size"), Str(db, "pool_open"), Str(db, "pool_in_use"),
                                 Str(db, "reconnects")));
    if (!Str(db, "last_error").empty()) Row(out, "problem", Str(db, "last_error"));
    const auto& l = Obj(d, "listeners");
    out += "Listeners\n";
    Row(out, "http", List(l, "http"));
    Row(out, "control", Str(l, "control"));
    const auto& feed = Obj(d, "feed");
    out += "Change feed\n";
    Row(out, "head", Str(feed, "head") == "-1" ? "" : Str(feed, "head"));
    const auto& pushes = Obj(feed, "libraries");
    if (pushes.IsArray())
        for (const auto& l : pushes.GetArray())
            Row(out, Str(l, "isil"), fmt::format("{} pushes, last {}", Str(l, "pushes"),
                                                 Str(l, "last_push_at").empty() ? "never" : Str(l, "last_push_at")));
    const auto& c = Obj(d, "counters");
    out += "Counters\n";
    Row(out, "http requests", Str(c, "http_requests"));
    Row(out, "http connections", Str(c, "http_connections"));
    Row(out, "config reloads", Str(c, "config_reloads"));
    const auto& cfg = Obj(d, "config");
    out += "Config\n";
    Row(out, "file", Str(cfg, "path"));
    Row(out, "log level", Str(cfg, "log_level"));
    return out;
}

std::string RenderReload(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    if (d.HasParseError() || !d.IsObject()) return json + "\n";
    std::string applied = List(d, "applied"), restart = List(d, "need_restart");
    std::string out = fmt::format("configuration reloaded; changed: {}\n", applied.empty() ? "nothing" : applied);
    if (!restart.empty())
        out += fmt::format("these changes take effect only after a restart: {}\n", restart);
    return out;
}

std::string RenderHelp(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& cmds = Obj(d, "commands");
    if (!cmds.IsObject()) return json + "\n";
    std::string out = "commands the daemon understands:\n";
    for (const auto& m : cmds.GetObject())
        out += fmt::format("  {:<16}{}\n", m.name.GetString(), m.value.IsString() ? m.value.GetString() : "");
    return out;
}

std::string RenderLibraries(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& libs = Obj(d, "libraries");
    if (!libs.IsArray()) return json + "\n";
    if (libs.Empty()) return "no libraries registered; 'iblctl library add ISIL --name NAME' registers one\n";
    std::string out = fmt::format("{:<17}{:<8}{:<8}{:>10}{:>10}{:>7}{:>9}  {:<21}{}\n", "ISIL", "PROV", "STATE",
                                  "RECORDS", "COPIES", "TOKENS", "PUSHES", "LAST PUSH", "NAME");
    for (const auto& l : libs.GetArray()) {
        out += fmt::format("{:<17}{:<8}{:<8}{:>10}{:>10}{:>7}{:>9}  {:<21}{}\n", Str(l, "isil"),
                           Str(l, "province").empty() ? "-" : Str(l, "province"),
                           Str(l, "enabled") == "yes" ? "enabled" : "DISABLED", Str(l, "records"), Str(l, "copies"),
                           Str(l, "live_tokens"), Str(l, "pushes"),
                           Str(l, "last_push_at").empty() ? "never" : Str(l, "last_push_at"), Str(l, "name"));
    }
    return out;
}

std::string RenderLibrary(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    if (d.HasParseError() || !d.IsObject()) return json + "\n";
    if (d.HasMember("enabled") && !d.HasMember("name"))
        return fmt::format("library {} is now {}\n", Str(d, "isil"), Str(d, "enabled") == "yes" ? "enabled" : "disabled");
    return fmt::format("library {} registered: {}{}\nnext: 'iblctl token issue {}' gives its library system a token\n",
                       Str(d, "isil"), Str(d, "name"),
                       Str(d, "province").empty() ? "" : fmt::format(" ({})", Str(d, "province")), Str(d, "isil"));
}

std::string RenderSyncStatus(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& sources = Obj(d, "sources");
    const auto& peers = Obj(d, "peers");
    const auto& drops = Obj(d, "drops");
    if (!sources.IsArray() || !peers.IsArray() || !drops.IsArray()) return json + "\n";
    if (sources.Empty() && peers.Empty() && drops.Empty())
        return "no harvest sources, peers or drops; add [[harvest]], [[peer]] or [[drop]] tables to the config and "
               "restart\n";
    auto ago = [](const std::string& seconds) {
        return seconds.empty() ? std::string("never") : FormatDuration(std::stoll(seconds)) + " ago";
    };
    std::string out;
    if (!sources.Empty()) {
        constexpr const char* kRow = "{:<20}{:<5}{:<17}{:<9}{:<13}{:>10}{:>10}  {:<14}{:>7}  {}\n";
        out += fmt::format(fmt::runtime(kRow), "SOURCE", "TYPE", "LIBRARY", "STATE", "RUN", "POSITION", "RECORDS",
                           "LAST SUCCESS", "ERRORS", "LAST ERROR");
        for (const auto& s : sources.GetArray()) {
            const std::string run = Str(s, "run");
            const bool oai = Str(s, "type") == "oai";
            // An OAI-PMH list is paged by tokens: its position is the page.
            const std::string position = run.empty() ? "-"
                                         : oai       ? fmt::format("page {}", Str(s, "position"))
                                                     : fmt::format("{}/{}", Str(s, "position"), Str(s, "source_records"));
            out += fmt::format(fmt::runtime(kRow), Str(s, "name"), oai ? "oai" : "sru", Str(s, "library"),
                               Str(s, "configured") == "no" ? "removed" : Str(s, "state"), run.empty() ? "-" : run,
                               position, Str(s, "records_total"), ago(Str(s, "seconds_since_success")),
                               Str(s, "errors_in_row"), Str(s, "last_error").substr(0, 60));
        }
    }
    if (!peers.Empty()) {
        if (!out.empty()) out += "\n";
        constexpr const char* kRow = "{:<20}{:<17}{:<10}{:<10}{:>10}{:>8}{:>10}  {:<14}{:>7}  {}\n";
        out += fmt::format(fmt::runtime(kRow), "PEER", "ISIL", "DIRECTION", "STATE", "CURSOR", "LAG", "RECORDS",
                           "LAST SUCCESS", "ERRORS", "LAST ERROR");
        for (const auto& p : peers.GetArray())
            out += fmt::format(fmt::runtime(kRow), Str(p, "name"), Str(p, "isil"), Str(p, "direction"),
                               Str(p, "state"), Str(p, "cursor"), Str(p, "lag_changes"), Str(p, "records_total"),
                               ago(Str(p, "seconds_since_success")), Str(p, "errors_in_row"),
                               Str(p, "errors_in_row") == "0" ? "" : Str(p, "last_error").substr(0, 60));
    }
    if (!drops.Empty()) {
        if (!out.empty()) out += "\n";
        constexpr const char* kRow = "{:<20}{:<17}{:<10}{:>7}{:>7}{:>10}  {:<14}{:>7}  {}\n";
        out += fmt::format(fmt::runtime(kRow), "DROP", "LIBRARY", "STATE", "FILES", "FAILED", "RECORDS",
                           "LAST SUCCESS", "ERRORS", "LAST ERROR / DIRECTORY");
        for (const auto& x : drops.GetArray())
            out += fmt::format(fmt::runtime(kRow), Str(x, "name"), Str(x, "library"), Str(x, "state"),
                               Str(x, "files_loaded"), Str(x, "files_failed"), Str(x, "records_total"),
                               ago(Str(x, "seconds_since_success")), Str(x, "errors_in_row"),
                               Str(x, "errors_in_row") == "0" ? Str(x, "directory")
                                                              : Str(x, "last_error").substr(0, 80));
    }
    return out;
}

// What `iblctl oai check URL` and `iblctl source add` found.
std::string RenderOaiFindings(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    if (d.HasParseError() || !d.IsObject()) return json + "\n";
    std::string out = fmt::format("OAI-PMH repository at {}\n", Str(d, "url"));
    const auto& id = Obj(d, "identify");
    if (id.IsObject()) {
        out += fmt::format("  name          {}\n  baseURL       {}\n  protocol      {}\n  granularity   {}\n"
                           "  earliest      {}\n  deletions     {}\n",
                           Str(id, "repository_name"), Str(id, "base_url"), Str(id, "protocol_version"),
                           Str(id, "granularity"), Str(id, "earliest_datestamp"), Str(id, "deleted_record"));
        if (!Str(id, "repository_identifier").empty())
            out += fmt::format("  identifier    oai:{}:...\n", Str(id, "repository_identifier"));
    }
    const auto& formats = Obj(d, "formats");
    if (formats.IsArray()) {
        std::string list;
        for (const auto& f : formats.GetArray()) list += (list.empty() ? "" : ", ") + Str(f, "prefix");
        out += fmt::format("  formats       {}\n", list.empty() ? "-" : list);
    }
    const auto& sets = Obj(d, "sets");
    if (sets.IsArray()) {
        std::string list;
        int shown = 0;
        for (const auto& s : sets.GetArray())
            if (shown++ < 8) list += (list.empty() ? "" : ", ") + Str(s, "spec");
        out += fmt::format("  sets          {}{}\n", Str(d, "sets_listed"),
                           list.empty() ? "" : fmt::format(" ({}{})", list, shown > 8 ? ", ..." : ""));
    }
    const auto& page = Obj(d, "first_page");
    if (page.IsObject())
        out += fmt::format("  first page    {} records in {} ({} deleted, {} readable as MARC 21), {}\n",
                           Str(page, "records"), Str(d, "metadata_prefix"), Str(page, "deleted"), Str(page, "readable"),
                           Str(page, "resumption_token") == "yes"
                               ? (Str(page, "complete_list_size") == "-1"
                                      ? std::string("more pages follow")
                                      : fmt::format("{} in the whole list", Str(page, "complete_list_size")))
                               : std::string("the whole list"));
    const auto& requests = Obj(d, "requests");
    if (requests.IsArray()) {
        out += "\n";
        constexpr const char* kRow = "  {:<21}{:>7}{:>10}{:>12}\n";
        out += fmt::format(fmt::runtime(kRow), "REQUEST", "HTTP", "MS", "BYTES");
        for (const auto& r : requests.GetArray())
            out += fmt::format(fmt::runtime(kRow), Str(r, "verb"), Str(r, "status") == "0" ? "-" : Str(r, "status"),
                               Str(r, "ms"), Str(r, "bytes"));
    }
    const auto& problems = Obj(d, "problems");
    if (problems.IsArray() && !problems.Empty()) {
        out += "\nproblems:\n";
        for (const auto& p : problems.GetArray()) out += fmt::format("  - {}\n", p.GetString());
    }
    return out;
}

// `iblctl oai check URL`: the findings, and with no problems how to add it.
std::string RenderOaiCheck(const std::string& json) {
    std::string out = RenderOaiFindings(json);
    rapidjson::Document d;
    d.Parse(json.c_str());
    if (d.HasParseError() || !d.IsObject()) return out;
    const auto& problems = Obj(d, "problems");
    if (problems.IsArray() && problems.Empty()) {
        out += "\nno problems found: register the library, then add the source (the node starts it at once):\n\n";
        out += "  iblctl library add ISIL --name ... --holdings ...\n";
        out += fmt::format("  iblctl source add NAME --type oai --library ISIL --url '{}' --metadata-prefix {}{}\n",
                           Str(d, "url"), Str(d, "metadata_prefix"),
                           Str(d, "set").empty() ? "" : fmt::format(" --set '{}'", Str(d, "set")));
        out += "\nor add this table to the config file and run iblctl reload:\n\n";
        out += fmt::format("[[harvest]]\nname = \"...\"              # a-z 0-9 - _\nlibrary = \"NL-...\"\ntype = \"oai\"\n"
                           "url = \"{}\"\nmetadata_prefix = \"{}\"\n",
                           Str(d, "url"), Str(d, "metadata_prefix"));
        if (!Str(d, "set").empty()) out += fmt::format("set = \"{}\"\n", Str(d, "set"));
    }
    return out;
}

// `iblctl sync verify PEER`.
std::string RenderVerify(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    if (d.HasParseError() || !d.IsObject()) return json + "\n";
    const auto& here = Obj(d, "here");
    const auto& there = Obj(d, "at_peer");
    std::string out = fmt::format("{} libraries compared with {}: here {} records, {} copies; at the peer {} records, "
                                  "{} copies\n",
                                  Str(d, "libraries"), Str(d, "peer"), Str(here, "records"), Str(here, "holdings"),
                                  Str(there, "records"), Str(there, "holdings"));
    const auto& diffs = Obj(d, "differences");
    const bool brief = Str(d, "compared").find("brief") != std::string::npos;
    if (!diffs.IsArray() || diffs.Empty())
        return out + (brief ? "identical: same records and copies (records are kept brief here: follow = "
                              "availability)\n"
                            : "identical: same records and copies, same checksums\n");
    out += fmt::format("{} libraries differ:\n", diffs.Size());
    for (const auto& x : diffs.GetArray()) {
        out += fmt::format("  {:<17}{}\n", Str(x, "library"), Str(x, "what"));
        const auto& ids = Obj(x, "first_ids");
        if (ids.IsArray() && !ids.Empty()) {
            std::string list;
            for (const auto& id : ids.GetArray())
                if (id.IsString()) list += (list.empty() ? "" : ", ") + std::string(id.GetString());
            out += fmt::format("  {:<17}{} records differ: {}{}\n", "", Str(x, "records_differing"), list,
                               std::to_string(ids.Size()) == Str(x, "records_differing") ? "" : ", ...");
        }
    }
    return out;
}

std::string RenderSyncAction(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    if (d.HasParseError() || !d.IsObject()) return json + "\n";
    const std::string done = Str(d, "done");
    if (Str(d, "kind") == "peer")
        return fmt::format("peer {} {}\n", Str(d, "source"),
                           done == "run"     ? "is asked again now"
                           : done == "pause" ? "is paused; 'iblctl sync resume' follows it again"
                                             : "is followed again");
    const std::string what = done == "run" ? "will run now (or right after the run in progress)"
                             : done == "pause" ? "is paused; 'iblctl sync resume' harvests it again"
                                               : "harvests again";
    return fmt::format("source {} {}\n", Str(d, "source"), what);
}

std::string RenderChanges(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& changes = Obj(d, "changes");
    if (!changes.IsArray()) return json + "\n";
    std::string out;
    for (const auto& c : changes.GetArray()) {
        // The feed's own JSON (GET /v1/changes): a copy's state is in "holding", null once deleted.
        const bool holding = Str(c, "entity") == "holding";
        const std::string status = Str(Obj(c, "holding"), "status");
        out += fmt::format("{:>8}  {}  {:<7} {:<7} {:<15} {}{}\n", Str(c, "seq"), Str(c, "at").substr(0, 19),
                           Str(c, "entity"), Str(c, "op"), Str(c, "library"),
                           holding ? fmt::format("copy {} of {}", Str(c, "barcode"), Str(c, "record")) : Str(c, "id"),
                           holding && !status.empty() ? " -> " + status : std::string());
    }
    return out;
}

std::string RenderToken(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    if (d.HasParseError() || !d.IsObject()) return json + "\n";
    if (d.HasMember("revoked") && !d.HasMember("token"))
        return fmt::format("{} token(s) of {} revoked\n", Str(d, "revoked"), Str(d, "library"));
    std::string out = fmt::format("token {} for {}:\n\n  {}\n\n", Str(d, "token_id"), Str(d, "library"), Str(d, "token"));
    out += "This is the only time it is shown; only its hash is stored. The library system sends it as\n"
           "  Authorization: Bearer <token>\n";
    const auto& replaced = Obj(d, "replaced");
    if (replaced.IsArray() && !replaced.Empty()) {
        std::string ids;
        for (const auto& id : replaced.GetArray())
            if (id.IsInt64()) ids += (ids.empty() ? "" : ", ") + std::to_string(id.GetInt64());
        out += Str(d, "grace_seconds") == "0"
                   ? fmt::format("Replaced token(s) {} stopped working now.\n", ids)
                   : fmt::format("Replaced token(s) {} keep working for {} more.\n", ids,
                                 FormatDuration(std::stoll(Str(d, "grace_seconds"))));
    }
    return out;
}

}  // namespace iblsync::iblctl
