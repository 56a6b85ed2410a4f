// iblctl: the operator's command line for a running iblsyncd.
//
// Exit codes: 0 ok, 1 the daemon refused the command, 2 usage error,
// 3 daemon not reachable, 4 permission denied, 5 protocol error or timeout.

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <thread>
#include <iostream>

#include <CLI/CLI.hpp>

#include "tools/iblctl/control_client.hpp"
#include "tools/iblctl/export.hpp"
#include "tools/iblctl/import.hpp"
#include "tools/iblctl/render.hpp"
#include "tools/iblctl/source_add.hpp"

namespace {

using iblsync::protocols::ControlRequest;
using iblsync::protocols::ControlResponse;

std::string DefaultSocket() {
    if (const char* env = std::getenv("IBLSYNC_CONTROL_SOCKET")) return env;
    return "/run/iblsync/control.sock";
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"iblctl: administer a running iblsync node (iblsyncd) over its control socket"};
    app.require_subcommand(1);
    std::string socket = DefaultSocket();
    bool json = false;
    int timeout_ms = 10000;
    app.add_option("-s,--socket", socket, "control socket (env IBLSYNC_CONTROL_SOCKET)")
        ->capture_default_str();
    app.add_flag("--json", json, "print the daemon's answer as JSON, for scripts");
    app.add_option("--timeout-ms", timeout_ms, "how long to wait for an answer")
        ->capture_default_str()
        ->check(CLI::Range(1, 600000));

    auto* status = app.add_subcommand("status", "node identity, database state, listeners, counters");
    auto* reload = app.add_subcommand("reload", "re-read the config file (like SIGHUP); reports what changed");
    auto* help = app.add_subcommand("commands", "list the commands the running daemon understands");

    auto* library = app.add_subcommand("library", "libraries that may push to this node");
    library->require_subcommand(1);
    std::string lib_isil, lib_name, lib_province, lib_poi, token_label;
    auto* lib_add = library->add_subcommand("add", "register a library");
    lib_add->add_option("isil", lib_isil, "the library's ISIL, e.g. NL-0600670000")->required();
    lib_add->add_option("--name", lib_name, "its name")->required();
    lib_add->add_option("--province", lib_province, "its province, e.g. NL-GE");
    lib_add->add_option("--poi", lib_poi, "ISIL of the POI serving it");
    std::string lib_holdings;
    lib_add->add_option("--holdings", lib_holdings,
                        "how its MARC records carry copies: marc21, iblsync, koha, sirsi, none (default) or a spec");
    auto* lib_list = library->add_subcommand("list", "registered libraries with records, copies, tokens and pushes");
    auto* lib_disable = library->add_subcommand("disable", "refuse the library's tokens (its records stay)");
    lib_disable->add_option("isil", lib_isil, "the library's ISIL")->required();
    auto* lib_enable = library->add_subcommand("enable", "accept the library's tokens again");
    lib_enable->add_option("isil", lib_isil, "the library's ISIL")->required();

    auto* token = app.add_subcommand("token", "API tokens of a library (each shown once, stored hashed)");
    token->require_subcommand(1);
    int grace = 0;
    std::string token_id;
    bool all_tokens = false;
    auto* tok_issue = token->add_subcommand("issue", "a new token, next to the library's other tokens");
    tok_issue->add_option("isil", lib_isil, "the library's ISIL")->required();
    tok_issue->add_option("--label", token_label, "what the token is for, e.g. the library system's name");
    auto* tok_rotate = token->add_subcommand("rotate", "a new token; the library's other tokens end");
    tok_rotate->add_option("isil", lib_isil, "the library's ISIL")->required();
    tok_rotate->add_option("--grace", grace, "seconds the old tokens keep working, so the switch has no gap")
        ->capture_default_str()
        ->check(CLI::Range(0, 30 * 86400));
    auto* tok_revoke = token->add_subcommand("revoke", "end one token, or all of a library's tokens");
    tok_revoke->add_option("isil", lib_isil, "the library's ISIL")->required();
    auto* id_opt = tok_revoke->add_option("--token-id", token_id, "the token's id (the number in iblt_<id>_…)");
    auto* all_opt = tok_revoke->add_flag("--all", all_tokens, "all of the library's tokens");
    id_opt->excludes(all_opt);
    tok_revoke->callback([&] {
        if (token_id.empty() && !all_tokens) throw CLI::RequiredError("--token-id or --all");
    });

    auto* sync = app.add_subcommand("sync", "harvest sources, peer nodes and file drops: their state, runs on request, verify");
    sync->require_subcommand(1);
    auto* sync_status =
        sync->add_subcommand("status", "every harvest source, peer and drop: state, cursor, lag, last success, errors");
    std::string sync_source;
    bool sync_full = false, sync_allow_deletions = false;
    auto* sync_run = sync->add_subcommand("run", "harvest a source (or look into a drop directory) now instead of at its next interval");
    sync_run->add_option("source", sync_source, "the source's name (harvest.name, peer.name or drop.name)")->required();
    sync_run->add_flag("--full", sync_full, "a full run: also deletes the records the source no longer has");
    sync_run->add_flag("--allow-deletions", sync_allow_deletions,
                       "with --full: apply the deletions even beyond the source's max_delete_percent");
    auto* sync_pause = sync->add_subcommand("pause", "stop harvesting a source, following a peer or loading a drop until resumed (survives restarts)");
    sync_pause->add_option("source", sync_source, "the source's name")->required();
    auto* sync_resume = sync->add_subcommand("resume", "harvest a paused source (follow a paused peer, load a paused drop) again");
    sync_resume->add_option("source", sync_source, "the source's name")->required();
    std::string verify_origin, verify_library;
    auto* sync_verify = sync->add_subcommand(
        "verify", "compare records and copies with a peer node: counts and checksums per library, then the ids that differ");
    sync_verify->add_option("peer", sync_source, "the peer's name (peer.name)")->required();
    sync_verify->add_option("--origin", verify_origin, "only the libraries served by this POI (its ISIL)");
    sync_verify->add_option("--library", verify_library, "only this library, record by record");

    auto* oai = app.add_subcommand("oai", "OAI-PMH repositories to harvest");
    oai->require_subcommand(1);
    std::string oai_url, oai_prefix, oai_set;
    auto* oai_check = oai->add_subcommand(
        "check", "ask a repository, from this node, what it offers and read one page: the first step to connect a library");
    oai_check->add_option("url", oai_url, "the repository's base URL, http://...")->required();
    oai_check->add_option("--metadata-prefix", oai_prefix, "the format to read a page in (default: its MARC 21 format)");
    oai_check->add_option("--set", oai_set, "a set to read the page from");

    auto* source = app.add_subcommand("source", "harvest sources: a library system's SRU or OAI-PMH server");
    source->require_subcommand(1);
    iblsync::iblctl::SourceAddArgs add_source;
    bool source_no_check = false;
    auto* source_add = source->add_subcommand(
        "add", "check a repository, add it to the config file as a [[harvest]] table and start harvesting it");
    source_add->add_option("name", add_source.source.name, "the source's name, a-z 0-9 - _ (iblctl sync names it)")
        ->required();
    source_add->add_option("--type", add_source.source.protocol, "sru or oai (OAI-PMH)")
        ->capture_default_str()
        ->check(CLI::IsMember({"sru", "oai"}));
    source_add->add_option("--library", add_source.source.library, "the ISIL of the library whose records it has")
        ->required();
    source_add->add_option("--url", add_source.source.url, "the server's base URL, http://...")->required();
    source_add->add_option("--metadata-prefix", add_source.source.metadata_prefix, "OAI-PMH: the format to harvest")
        ->capture_default_str();
    source_add->add_option("--set", add_source.source.set, "OAI-PMH: only this set (setSpec)");
    source_add->add_option("--page-size", add_source.source.page_size, "records per page asked for (SRU)")
        ->capture_default_str();
    source_add->add_option("--interval-minutes", add_source.source.interval_minutes, "between the starts of runs")
        ->capture_default_str();
    source_add->add_option("--config", add_source.config, "the config file (default: the one the node reads)");
    source_add->add_flag("--no-check", source_no_check, "add an OAI-PMH repository without asking it first");

    auto* ibl = app.add_subcommand("ibl", "interlibrary loan: requests, their messages, rerouting, statistics");
    ibl->require_subcommand(1);
    std::string ibl_id, ibl_state = "open", ibl_library, ibl_month;
    int ibl_limit = 100;
    auto* ibl_list = ibl->add_subcommand("list", "IBL requests, newest change first, with what is still unsent");
    ibl_list->add_option("--state", ibl_state, "open, all, or one state such as Loaned")->capture_default_str();
    ibl_list->add_option("--library", ibl_library, "only requests this library makes or is asked for (ISIL)");
    ibl_list->add_option("--limit", ibl_limit, "at most this many")->capture_default_str()->check(CLI::Range(1, 10000));
    auto* ibl_show = ibl->add_subcommand("show", "one request: each lender's transaction and every message in and out");
    ibl_show->add_option("id", ibl_id, "the request id (IBL-…) or a lender's task number")->required();
    auto* ibl_reroute =
        ibl->add_subcommand("reroute", "send a request not yet shipped to its next lender now (the current one gets a Cancel)");
    ibl_reroute->add_option("id", ibl_id, "the request id (IBL-…)")->required();
    auto* ibl_cancel = ibl->add_subcommand("cancel", "cancel a request for its library (a Cancel to the lender)");
    ibl_cancel->add_option("id", ibl_id, "the request id (IBL-…)")->required();
    bool ibl_csv = false;
    std::string ibl_date;
    auto* ibl_manifest = ibl->add_subcommand(
        "manifest", "what travels on the POI's routes on a day: from, to, request, item and slip barcodes");
    ibl_manifest->add_option("--date", ibl_date, "YYYY-MM-DD (Dutch time); default today");
    ibl_manifest->add_flag("--csv", ibl_csv, "as CSV (RFC 4180), for the route planner");
    auto* ibl_invoice = ibl->add_subcommand(
        "invoice", "the month's statement per library: finished transactions with their tariffs, to pay and receive");
    ibl_invoice->add_option("--month", ibl_month, "YYYY-MM (Dutch time); default this month");
    ibl_invoice->add_flag("--csv", ibl_csv, "as CSV (RFC 4180), for the bookkeeping");
    std::string ibl_from, ibl_until, ibl_reason;
    auto* ibl_close = ibl->add_subcommand("close", "a lending library is not asked from a day through a day (holidays, a pause)");
    ibl_close->add_option("library", ibl_library, "the library's ISIL")->required();
    ibl_close->add_option("--from", ibl_from, "first day, YYYY-MM-DD")->required();
    ibl_close->add_option("--until", ibl_until, "last day, YYYY-MM-DD")->required();
    ibl_close->add_option("--reason", ibl_reason, "why, for the other admins");
    auto* ibl_reopen = ibl->add_subcommand("reopen", "end a library's closures now: it is asked again");
    ibl_reopen->add_option("library", ibl_library, "the library's ISIL")->required();
    auto* ibl_closures = ibl->add_subcommand("closures", "closures not yet over, of one library or all");
    ibl_closures->add_option("library", ibl_library, "only this library (ISIL)");
    std::vector<std::string> ibl_not_lent;
    bool ibl_lends_all = false;
    auto* ibl_lends = ibl->add_subcommand("lends", "the material types a library does not lend through IBL: show or set");
    ibl_lends->add_option("library", ibl_library, "the library's ISIL")->required();
    auto* not_lent_opt =
        ibl_lends->add_option("--not", ibl_not_lent, "a material type it does not lend (repeat; replaces the list)");
    auto* lends_all_opt = ibl_lends->add_flag("--all", ibl_lends_all, "it lends every type again");
    not_lent_opt->excludes(lends_all_opt);
    auto* ibl_stats = ibl->add_subcommand("stats", "per library in a month: requested, supplied, unfilled, lent");
    ibl_stats->add_option("--month", ibl_month, "YYYY-MM (Dutch time); default this month");

    auto* changes = app.add_subcommand("changes", "the change feed: what changed in the catalogue, in order");
    long long since = 0;
    int limit = 100;
    bool follow = false;
    changes->add_option("--since", since, "show the changes after this sequence number")->capture_default_str();
    changes->add_option("--limit", limit, "at most this many (per page with --follow)")
        ->capture_default_str()
        ->check(CLI::Range(1, 10000));
    changes->add_flag("--follow,-f", follow, "keep printing new changes as they come (Ctrl-C ends)");

    iblsync::iblctl::ImportArgs import_args;
    import_args.config = std::getenv("IBLSYNC_CONFIG") ? std::getenv("IBLSYNC_CONFIG") : "/etc/iblsync/iblsyncd.toml";
    auto* import = app.add_subcommand(
        "import", "load MARCXML, ISO 2709 or NDJSON files (gzip or plain) into the catalogue for one library");
    import->add_option("--library", import_args.library, "ISIL of the library the records belong to")->required();
    import->add_flag("--full", import_args.full,
                     "the files are the library's whole catalogue: records missing from them are deleted");
    import->add_option("--name", import_args.name, "register the library under this name if it is new");
    import->add_option("--province", import_args.province, "with --name: its province, e.g. NL-GE");
    import->add_option("--holdings", import_args.holdings,
                       "where copies are in this library's MARC records, kept for later loads: marc21 (852), koha "
                       "(952), sirsi (999), none, or a spec (docs/formats.md)");
    import->add_option("--config", import_args.config, "daemon config file to take database.conninfo from (env IBLSYNC_CONFIG)")
        ->capture_default_str();
    import->add_option("--db", import_args.conninfo, "PostgreSQL conninfo, instead of --config");
    import->add_option("--rejects", import_args.rejects, "where to list rejected records (default iblsync-import-ISIL.rejects)");
    import->add_option("--index-memory", import_args.index_memory,
                       "memory the loader may use to recognise new records and group them into works, with a unit "
                       "(K, M, G); beyond it, the rest of the load is merged by the database (slower, no memory per record)")
        ->default_str("192M")
        ->transform(CLI::Validator(
            [](std::string& value) {
                auto bytes = iblsync::iblctl::ParseSize(value);
                if (!bytes) return std::string("give a size with a unit, 64K to 1T, e.g. 192M");
                value = std::to_string(*bytes);
                return std::string();
            },
            "SIZE"));
    import->add_option("files", import_args.files, "record files")->required()->check(CLI::ExistingFile);
    iblsync::iblctl::ExportArgs export_args;
    export_args.config = import_args.config;
    auto* export_cmd = app.add_subcommand(
        "export", "the catalogue with copies and availability (852 per copy) as MARCXML or NDJSON, for the KB's "
                  "delivery: everything, or what changed after --since");
    export_cmd->add_option("--library", export_args.library, "only this library (ISIL)");
    export_cmd->add_option("--since", export_args.since,
                           "only the records changes after this sequence number touched, deleted ones included (an "
                           "export ends by saying the number to continue from)")
        ->check(CLI::Range(0LL, 9223372036854775807LL));
    export_cmd->add_option("--format", export_args.format, "marcxml (a collection) or json (NDJSON, MARC-in-JSON)")
        ->capture_default_str()
        ->check(CLI::IsMember({"marcxml", "json"}));
    export_cmd->add_option("--out,-o", export_args.out, "write to this file (complete or not at all); default stdout");
    export_cmd->add_option("--config", export_args.config, "daemon config file to take database.conninfo from")
        ->capture_default_str();
    export_cmd->add_option("--db", export_args.conninfo, "PostgreSQL conninfo, instead of --config");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }

    if (export_cmd->parsed()) {
        export_args.json = json;
        return iblsync::iblctl::RunExport(export_args);
    }

    if (import->parsed()) {
        import_args.json = json;
        return iblsync::iblctl::RunImport(import_args);
    }

    if (changes->parsed()) {
        // Pages until the feed is read; with --follow, then once a second.
        for (bool first = true;; first = false) {
            ControlRequest page{"changes", {{"since", std::to_string(since)}, {"limit", std::to_string(limit)}}};
            ControlResponse answer;
            iblsync::iblctl::CallError failed;
            if (!iblsync::iblctl::Call(socket, page, timeout_ms, answer, failed)) {
                std::cerr << "iblctl: " << failed.message << "\n";
                return failed.exit_code;
            }
            if (!answer.ok) {
                std::cerr << "iblctl: changes failed: " << answer.error << "\n";
                if (!answer.hint.empty()) std::cerr << "hint: " << answer.hint << "\n";
                return 1;
            }
            // An empty page only when there is nothing at all (--json: one line per page).
            if (first || answer.result_json.find("\"changes\":[]") == std::string::npos)
                std::cout << (json ? answer.result_json + "\n" : iblsync::iblctl::RenderChanges(answer.result_json))
                          << std::flush;
            const auto next = answer.result_json.find("\"next_since\":");
            const long long next_since =
                next == std::string::npos ? since : std::stoll(answer.result_json.substr(next + 13));
            const bool more = next_since != since;
            since = next_since;
            if (!more) {
                if (!follow) return 0;
                std::this_thread::sleep_for(std::chrono::seconds(1));
            }
        }
    }

    if (source_add->parsed()) {
        add_source.check = !source_no_check;
        add_source.json = json;
        return iblsync::iblctl::SourceAdd(add_source, socket, timeout_ms);
    }

    ControlRequest request;
    std::string (*render)(const std::string&) = nullptr;
    if (status->parsed()) {
        request.command = "status";
        render = iblsync::iblctl::RenderStatus;
    } else if (reload->parsed()) {
        request.command = "reload";
        render = iblsync::iblctl::RenderReload;
    } else if (help->parsed()) {
        request.command = "help";
        render = iblsync::iblctl::RenderHelp;
    } else if (lib_add->parsed()) {
        request = {"library.add", {{"isil", lib_isil}, {"name", lib_name}, {"province", lib_province}, {"poi", lib_poi}, {"holdings", lib_holdings}}};
        render = iblsync::iblctl::RenderLibrary;
    } else if (lib_list->parsed()) {
        request.command = "library.list";
        render = iblsync::iblctl::RenderLibraries;
    } else if (lib_disable->parsed() || lib_enable->parsed()) {
        request = {lib_enable->parsed() ? "library.enable" : "library.disable", {{"isil", lib_isil}}};
        render = iblsync::iblctl::RenderLibrary;
    } else if (sync_status->parsed()) {
        request.command = "sync.status";
        render = iblsync::iblctl::RenderSyncStatus;
    } else if (sync_run->parsed()) {
        request = {"sync.run", {{"source", sync_source}, {"full", sync_full ? "true" : "false"},
                                {"allow_deletions", sync_allow_deletions ? "true" : "false"}}};
        render = iblsync::iblctl::RenderSyncAction;
    } else if (sync_verify->parsed()) {
        request = {"sync.verify", {{"source", sync_source}, {"origin", verify_origin}, {"library", verify_library}}};
        render = iblsync::iblctl::RenderVerify;
    } else if (oai_check->parsed()) {
        request = {"oai.check", {{"url", oai_url}, {"metadata_prefix", oai_prefix}, {"set", oai_set}}};
        render = iblsync::iblctl::RenderOaiCheck;
    } else if (sync_pause->parsed() || sync_resume->parsed()) {
        request = {sync_pause->parsed() ? "sync.pause" : "sync.resume", {{"source", sync_source}}};
        render = iblsync::iblctl::RenderSyncAction;
    } else if (ibl_list->parsed()) {
        request = {"ibl.list", {{"state", ibl_state}, {"library", ibl_library}, {"limit", std::to_string(ibl_limit)}}};
        render = iblsync::iblctl::RenderIblList;
    } else if (ibl_show->parsed()) {
        request = {"ibl.show", {{"id", ibl_id}}};
        render = iblsync::iblctl::RenderIblShow;
    } else if (ibl_reroute->parsed() || ibl_cancel->parsed()) {
        request = {ibl_reroute->parsed() ? "ibl.reroute" : "ibl.cancel", {{"id", ibl_id}}};
        render = iblsync::iblctl::RenderIblAction;
    } else if (ibl_close->parsed()) {
        request = {"ibl.close", {{"library", ibl_library}, {"from", ibl_from}, {"until", ibl_until}, {"reason", ibl_reason}}};
        render = iblsync::iblctl::RenderIblClosures;
    } else if (ibl_reopen->parsed() || ibl_closures->parsed()) {
        request = {ibl_reopen->parsed() ? "ibl.reopen" : "ibl.closures", {{"library", ibl_library}}};
        render = iblsync::iblctl::RenderIblClosures;
    } else if (ibl_lends->parsed()) {
        std::string list;
        for (const auto& t : ibl_not_lent) list += (list.empty() ? "" : ",") + t;
        const bool set = !ibl_not_lent.empty() || ibl_lends_all;
        request = {"ibl.lends", {{"library", ibl_library}, {"set", set ? "true" : "false"}, {"not", list}}};
        render = iblsync::iblctl::RenderIblLends;
    } else if (ibl_manifest->parsed()) {
        if (ibl_date.empty()) {
            const std::time_t now = std::time(nullptr);
            char buf[12];
            std::strftime(buf, sizeof buf, "%Y-%m-%d", std::localtime(&now));
            ibl_date = buf;
        }
        request = {"ibl.manifest", {{"date", ibl_date}}};
        render = ibl_csv ? iblsync::iblctl::RenderIblManifestCsv : iblsync::iblctl::RenderIblManifest;
    } else if (ibl_stats->parsed() || ibl_invoice->parsed()) {
        if (ibl_month.empty()) {
            const std::time_t now = std::time(nullptr);
            char buf[8];
            std::strftime(buf, sizeof buf, "%Y-%m", std::localtime(&now));
            ibl_month = buf;
        }
        request = {ibl_stats->parsed() ? "ibl.stats" : "ibl.invoice", {{"month", ibl_month}}};
        render = ibl_stats->parsed() ? iblsync::iblctl::RenderIblStats
                 : ibl_csv           ? iblsync::iblctl::RenderIblInvoiceCsv
                                     : iblsync::iblctl::RenderIblInvoice;
    } else if (tok_issue->parsed()) {
        request = {"token.issue", {{"isil", lib_isil}, {"label", token_label}}};
        render = iblsync::iblctl::RenderToken;
    } else if (tok_rotate->parsed()) {
        request = {"token.rotate", {{"isil", lib_isil}, {"grace_seconds", std::to_string(grace)}}};
        render = iblsync::iblctl::RenderToken;
    } else if (tok_revoke->parsed()) {
        request = {"token.revoke", {{"isil", lib_isil}, {"token_id", all_tokens ? "all" : token_id}}};
        render = iblsync::iblctl::RenderToken;
    }

    // Verifying reads both catalogues through: minutes on a large one.
    if (sync_verify->parsed() && app.count("--timeout-ms") == 0) timeout_ms = 600000;
    if (oai_check->parsed() && app.count("--timeout-ms") == 0) timeout_ms = 150000;  // four requests of up to 30 s
    ControlResponse response;
    iblsync::iblctl::CallError error;
    if (!iblsync::iblctl::Call(socket, request, timeout_ms, response, error)) {
        std::cerr << "iblctl: " << error.message << "\n";
        return error.exit_code;
    }
    if (!response.ok) {
        if (json) {
            std::cout << iblsync::protocols::FormatControlResponse(response) << "\n";
        } else {
            std::cerr << "iblctl: " << request.command << " failed: " << response.error << "\n";
            if (!response.hint.empty()) std::cerr << "hint: " << response.hint << "\n";
        }
        // A refused peer is told so by the daemon; report it as a permission problem.
        return response.error.rfind("permission denied", 0) == 0 ? 4 : 1;
    }
    std::cout << (json ? response.result_json + "\n" : render(response.result_json));
    return 0;
}
