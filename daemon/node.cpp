#include "daemon/node.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include "daemon/admin_commands.hpp"
#include "daemon/control_server.hpp"
#include "daemon/db_executor.hpp"
#include "daemon/file_drop.hpp"
#include "daemon/harvester.hpp"
#include "daemon/peer_sync.hpp"
#include "daemon/http_server.hpp"
#include "daemon/log.hpp"
#include "daemon/metrics.hpp"
#include "daemon/notify.hpp"
#include "daemon/push_api.hpp"
#include "daemon/routes.hpp"
#include "daemon/ibl_commands.hpp"
#include "daemon/ibl_courier.hpp"
#include "daemon/ibl_service.hpp"
#include "daemon/oai_check.hpp"
#include "daemon/oai_service.hpp"
#include "daemon/sru_service.hpp"
#include "daemon/spawn.hpp"
#include "daemon/version.hpp"
#include "storage/access.hpp"
#include "storage/database.hpp"
#include "storage/ibl.hpp"
#include "protocols/isil.hpp"
#include "storage/harvest.hpp"
#include "storage/file_drop.hpp"
#include "storage/peer_sync.hpp"
#include "storage/push.hpp"
#include "storage/migrations.hpp"

namespace iblsync::daemon {

using Clock = std::chrono::steady_clock;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;
namespace {
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

// `iblctl sync status --json`: one object per source and per peer.
std::string SyncStatusJson(const std::vector<storage::HarvestStatus>& list,
                           const std::vector<storage::PeerStatus>& peers,
                           const std::vector<storage::FileDropStatus>& drops) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    auto str = [&](const char* k, const std::string& v) {
        w.Key(k);
        if (v.empty()) w.Null();
        else w.String(v);
    };
    auto num = [&](const char* k, long long v) {
        w.Key(k);
        w.Int64(v);
    };
    auto since = [&](long long seconds) {  // -1: never succeeded
        w.Key("seconds_since_success");
        if (seconds < 0) w.Null();
        else w.Int64(seconds);
    };
    // The same failure columns for sources, peers and drops.
    auto errors = [&](long long total, int in_row, const std::string& last, const std::string& at) {
        num("errors_total", total);
        num("errors_in_row", in_row);
        str("last_error", last);
        str("last_error_at", at);
    };
    w.StartObject();
    w.Key("sources");
    w.StartArray();
    for (const auto& s : list) {
        w.StartObject();
        str("name", s.name);
        str("library", s.library);
        str("url", s.url);
        str("type", s.protocol);
        if (s.protocol == "oai") str("next_from", s.oai_latest);  // the next incremental run's `from`
        str("state", s.state);
        w.Key("configured");
        w.Bool(s.configured);
        str("run", s.run_kind);
        num("position", s.next_position);
        num("source_records", s.run_total);
        num("run_records", s.run_records);
        str("last_success_at", s.last_success_at);
        since(s.seconds_since_success);
        num("records_total", s.records_total);
        errors(s.errors_total, s.errors_in_row, s.last_error, s.last_error_at);
        w.EndObject();
    }
    w.EndArray();
    w.Key("peers");
    w.StartArray();
    for (const auto& p : peers) {
        w.StartObject();
        str("name", p.name);
        str("isil", p.isil);
        str("url", p.url);
        str("direction", p.direction);
        str("state", !p.configured ? "removed" : p.paused ? "paused" : p.errors_in_row > 0 ? "failing" : "following");
        w.Key("configured");
        w.Bool(p.configured);
        num("cursor", p.cursor);
        num("peer_head", p.peer_head);
        num("lag_changes", std::max(0LL, p.peer_head - p.cursor));
        str("last_success_at", p.last_success_at);
        since(p.seconds_since_success);
        str("last_change_at", p.last_change_at);
        num("changes_total", p.changes_total);
        num("records_total", p.records_total);
        num("refused_total", p.refused_total);
        errors(p.errors_total, p.errors_in_row, p.last_error, p.last_error_at);
        w.EndObject();
    }
    w.EndArray();
    w.Key("drops");
    w.StartArray();
    for (const auto& d : drops) {
        w.StartObject();
        str("name", d.name);
        str("library", d.library);
        str("directory", d.directory);
        str("state", !d.configured ? "removed" : d.paused ? "paused" : d.errors_in_row > 0 ? "failing" : "watching");
        w.Key("configured");
        w.Bool(d.configured);
        str("last_success_at", d.last_success_at);
        since(d.seconds_since_success);
        str("last_file", d.last_file);
        num("files_loaded", d.files_loaded);
        num("files_failed", d.files_failed);
        num("records_total", d.records_total);
        errors(d.errors_total, d.errors_in_row, d.last_error, d.last_error_at);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

// `iblctl sync verify --json`.
std::string VerifiedJson(const std::string& peer, const PeerSync::Verified& v) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("peer");
    w.String(peer);
    w.Key("compared");
    w.String(v.brief ? "records and copies (records kept brief here: follow = availability)"
                     : "records and copies with checksums");
    w.Key("libraries");
    w.Int64(static_cast<long long>(std::max(v.here.size(), v.peer.size())));
    auto totals = [&](const char* key, const std::vector<protocols::feed::LibraryDigest>& list) {
        long long records = 0, holdings = 0;
        for (const auto& l : list) records += l.records, holdings += l.holdings;
        w.Key(key);
        w.StartObject();
        w.Key("records");
        w.Int64(records);
        w.Key("holdings");
        w.Int64(holdings);
        w.EndObject();
    };
    totals("here", v.here);
    totals("at_peer", v.peer);
    w.Key("identical");
    w.Bool(v.differences.empty());
    w.Key("differences");
    w.StartArray();
    for (const auto& d : v.differences) {
        w.StartObject();
        w.Key("library");
        w.String(d.library);
        w.Key("what");
        w.String(d.what);
        if (auto it = v.records.find(d.library); it != v.records.end()) {
            w.Key("records_differing");
            w.Int64(static_cast<long long>(v.records_total.at(d.library)));
            w.Key("first_ids");
            w.StartArray();
            for (const auto& id : it->second) w.String(id);
            w.EndArray();
        }
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

struct Node::Impl {
    std::shared_ptr<const Config> config;
    net::io_context ioc{1};
    Metrics metrics;
    storage::Database db;
    DbExecutor exec;
    IblCourier courier;
    PushApi api;
    SruService sru;
    OaiService oai;
    IblService ibl;
    Routes routes;
    HttpServer http;
    ControlServer control;
    Harvester harvester;
    PeerSync peers;
    FileDrops drops;
    net::signal_set signals{ioc, SIGTERM, SIGINT, SIGHUP};
    net::steady_timer monitor_timer{ioc};
    net::steady_timer watchdog_timer{ioc};
    net::steady_timer housekeeping_timer{ioc};

    std::vector<std::string> http_bound;
    std::vector<std::string> https_bound;
    Clock::time_point started = Clock::now();
    std::time_t started_wall = std::time(nullptr);
    bool schema_ready = false;  // migrations applied and identity claimed
    std::string db_state = "starting";
    std::string db_detail;
    bool stopping = false;
    int exit_code = kExitOk;
    unsigned long long reloads = 0;

    explicit Impl(Config c)
        : config(std::make_shared<const Config>(std::move(c))),
          db(config->db_conninfo, config->db_pool_size),
          exec(config->db_pool_size),
          courier(ioc, db, exec, [this] { return config; }),
          api(db, exec, [this] { return config; }, courier),
          sru(db, exec, [this] { return config; }),
          oai(db, exec, [this] { return config; }),
          ibl(db, exec, courier),
          routes(RouteContext{[this] { return CheckReadiness(); }, [this] { return MetricsText(); },
                              [this](const HttpRequest& r) { return api.Handle(r); },
                              [this](const HttpRequest& r) { return sru.Handle(r); },
                              [this] { return config->sru_path; },
                              [this](const HttpRequest& r) { return oai.Handle(r); },
                              [this] { return config->oai_path; },
                              [this](const HttpRequest& r) { return ibl.Handle(r); }}),
          http(ioc, [this](const HttpRequest& r) { return routes.Handle(r); }, metrics,
               LimitsFrom(*config)),
          control(ioc, [this](const protocols::ControlRequest& r) { return HandleControl(r); }),
          harvester(ioc, db, exec, [this] { notify::Status(StatusLine()); }),
          peers(ioc, db, exec, [this] { notify::Status(StatusLine()); }, [this] { api.ChangesCommitted(); }),
          drops(db, config->db_conninfo, [this] { net::post(ioc, [this] { notify::Status(StatusLine()); }); }) {
        courier.OnChange([this] { api.ChangesCommitted(); });
    }

    std::string StatusLine() const {
        return fmt::format("{} {} role={} http={}{} db={}{}{}{}", config->isil, config->name, RoleName(config->role),
                           fmt::join(http_bound, ","),
                           https_bound.empty() ? "" : fmt::format(" https={}", fmt::join(https_bound, ",")), db_state,
                           harvester.Count() == 0
                               ? ""
                               : fmt::format(" harvest={} failing={}", harvester.Count(), harvester.Failing()),
                           peers.Count() == 0 ? ""
                                              : fmt::format(" peers={} peers_failing={}", peers.Count(), peers.Failing()),
                           drops.Count() == 0 ? ""
                                              : fmt::format(" drops={} drops_failing={}", drops.Count(), drops.Failing()));
    }

    void SetDbState(const std::string& state, const std::string& detail) {
        if (state == db_state && detail == db_detail) return;
        bool was_up = db_state == "ready";
        db_state = state;
        db_detail = detail;
        if (state == "ready")
            spdlog::info("database ready schema_version={}", storage::LatestKnownVersion());
        else if (was_up || state != "starting")
            spdlog::warn("database not ready state={} error={}", state, Quote(detail));
        notify::Status(StatusLine());
    }

    // Brings the schema up to date and claims the database for this node.
    // Blocking; runs on a DB thread (or on the main thread before the loop starts).
    storage::MigrationReport PrepareDatabase() {
        auto report = db.Migrate();
        db.ClaimIdentity(RoleName(config->role), config->isil);
        return report;
    }

    void LogMigrations(const storage::MigrationReport& r) {
        for (const auto& w : r.warnings) spdlog::warn("migration check warning={}", Quote(w));
        if (!r.applied.empty())
            spdlog::info("migrations applied from={} to={} versions={}", r.from_version, r.to_version,
                         fmt::join(r.applied, ","));
    }

    // Fatal database conditions stop the daemon with EX_CONFIG: retrying cannot help.
    void FatalDatabase(const std::exception& e) {
        spdlog::error("database refused error={}", Quote(e.what()));
        exit_code = kExitConfig;
        BeginShutdown("database refused");
    }

    net::awaitable<void> CheckDatabase() {
        try {
            if (!schema_ready) {
                auto report = co_await exec.Run([this] { return PrepareDatabase(); });
                LogMigrations(report);
                schema_ready = true;
            } else {
                int v = co_await exec.Run([this] { return db.SchemaVersion(); });
                if (v > storage::LatestKnownVersion())
                    throw storage::SchemaTooNew(v, storage::LatestKnownVersion());
                if (v < storage::LatestKnownVersion()) {
                    // The database went back in time: restored from a backup, or
                    // a crash lost commits that were never synced.
                    spdlog::warn("database schema went back version={} expected={} action=\"applying migrations again\"",
                                 v, storage::LatestKnownVersion());
                    schema_ready = false;
                    auto report = co_await exec.Run([this] { return PrepareDatabase(); });
                    LogMigrations(report);
                    schema_ready = true;
                }
            }
            SetDbState("ready", "");
        } catch (const storage::SchemaTooNew& e) {
            FatalDatabase(e);
        } catch (const storage::IdentityMismatch& e) {
            FatalDatabase(e);
        } catch (const storage::DatabaseUnavailable& e) {
            SetDbState("unreachable", e.what());
        } catch (const storage::DatabaseError& e) {
            SetDbState("error", e.what());
        }
    }

    // Watches the database so that losing it is logged and reported at once,
    // and retries the migrations if the server was down at start-up.
    net::awaitable<void> MonitorDatabase() {
        while (!stopping) {
            co_await CheckDatabase();
            if (stopping) break;
            monitor_timer.expires_after(db_state == "ready" ? std::chrono::seconds(2)
                                                             : std::chrono::seconds(1));
            co_await monitor_timer.async_wait(kTuple);
        }
    }

    net::awaitable<Readiness> CheckReadiness() {
        Readiness r;
        r.expected_version = storage::LatestKnownVersion();
        try {
            r.schema_version = co_await exec.Run([this] { return db.SchemaVersion(); });
            r.database = "reachable";
            if (r.schema_version != r.expected_version)
                r.reason = fmt::format("schema at version {}, expected {}", r.schema_version,
                                       r.expected_version);
            else if (!schema_ready)
                r.reason = "start-up checks of the database have not completed";
            else
                r.ready = true;
        } catch (const storage::DatabaseUnavailable& e) {
            r.database = "unreachable";
            r.reason = e.what();
            SetDbState("unreachable", e.what());
        } catch (const storage::DatabaseError& e) {
            r.database = "error";
            r.reason = e.what();
        }
        co_return r;
    }

    std::string MetricsText() {
        protocols::PrometheusText out;
        out.Family("iblsync_build_info", "gauge", "Build and node identity; always 1.");
        out.Sample("iblsync_build_info",
                   {{"version", kVersion}, {"revision", kRevision}, {"role", RoleName(config->role)},
                    {"isil", config->isil}},
                   1);
        out.Family("iblsync_start_time_seconds", "gauge", "Unix time the daemon started.");
        out.Sample("iblsync_start_time_seconds", {}, static_cast<double>(started_wall));
        metrics.Render(out);
        auto s = db.Stats();
        out.Family("iblsync_db_up", "gauge", "1 if the last use of the database succeeded.");
        out.Sample("iblsync_db_up", {}, s.up ? 1 : 0);
        out.Family("iblsync_db_pool_connections", "gauge", "Database pool connections by state.");
        out.Sample("iblsync_db_pool_connections", {{"state", "size"}}, s.pool_size);
        out.Sample("iblsync_db_pool_connections", {{"state", "open"}}, s.open);
        out.Sample("iblsync_db_pool_connections", {{"state", "in_use"}}, s.in_use);
        out.Family("iblsync_db_reconnects_total", "counter", "Connections re-established after a loss.");
        out.Sample("iblsync_db_reconnects_total", {}, static_cast<double>(s.reconnects));
        out.Family("iblsync_db_failures_total", "counter", "Failed connects and lost connections.");
        out.Sample("iblsync_db_failures_total", {}, static_cast<double>(s.failures));
        out.Family("iblsync_schema_version", "gauge", "Migration version this binary expects.");
        out.Sample("iblsync_schema_version", {}, storage::LatestKnownVersion());
        harvester.Render(out);
        peers.Render(out);
        drops.Render(out);
        courier.Render(out);
        return out.str();
    }

    struct ReloadOutcome {
        bool ok;
        std::string error;
        ConfigDiff diff;
    };

    ReloadOutcome Reload(const char* origin) {
        notify::Reloading();
        auto loaded = LoadConfig(config->path);
        if (!loaded) {
            metrics.CountReload(false);
            spdlog::error("config reload rejected origin={} error={} action=\"previous configuration stays in force\"",
                          origin, Quote(loaded.error()));
            notify::Ready(StatusLine());
            return {false, loaded.error(), {}};
        }
        ConfigDiff diff = Diff(*config, loaded.value());
        auto next = std::make_shared<const Config>(MergeReloadable(*config, loaded.value()));
        if (!next->tls_listen.empty()) {
            // Read again even when the paths are the same: a renewed
            // certificate is usually written over the old one.
            try {
                http.SetTls(next->tls_certificate, next->tls_private_key);
            } catch (const std::exception& e) {
                metrics.CountReload(false);
                spdlog::error("config reload rejected origin={} error={} action=\"previous configuration and "
                              "certificate stay in force\"",
                              origin, Quote(e.what()));
                notify::Ready(StatusLine());
                return {false, e.what(), {}};
            }
        }
        SetLogLevel(next->log_level);
        http.SetLimits(LimitsFrom(*next));
        auto added = AddedHarvestSources(*config, *next);
        config = next;
        for (const auto& h : added)
            spdlog::info("harvest source added source={} library={} type={} url={}", h.name, h.library, h.protocol,
                         Quote(h.url));
        harvester.Add(std::move(added));
        ++reloads;
        metrics.CountReload(true);
        spdlog::info("config reloaded origin={} changed={}", origin,
                     diff.applied.empty() ? "none" : fmt::format("{}", fmt::join(diff.applied, ",")));
        if (!diff.need_restart.empty())
            spdlog::warn("config changes need a restart keys={}", fmt::join(diff.need_restart, ","));
        housekeeping_timer.cancel();  // a new retention applies now, not in 10 minutes
        notify::Ready(StatusLine());
        return {true, {}, diff};
    }

    net::awaitable<std::string> StatusJson() {
        Readiness ready = co_await CheckReadiness();
        auto s = db.Stats();
        rapidjson::StringBuffer buf;
        JsonWriter w(buf);
        auto str = [&](const char* k, const std::string& v) { w.Key(k); w.String(v); };
        w.StartObject();
        w.Key("node");
        w.StartObject();
        str("role", RoleName(config->role));
        str("isil", config->isil);
        str("name", config->name);
        w.Key("provinces");
        w.StartArray();
        for (const auto& p : config->provinces) w.String(p);
        w.EndArray();
        w.EndObject();
        str("version", kVersion);
        str("revision", kRevision);
        w.Key("pid");
        w.Int(static_cast<int>(getpid()));
        w.Key("started_at");
        w.Int64(started_wall);
        w.Key("uptime_seconds");
        w.Int64(std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started).count());
        w.Key("database");
        w.StartObject();
        str("state", ready.ready ? "ready" : (ready.database == "reachable" ? "not ready" : ready.database));
        w.Key("schema_version");
        w.Int(ready.schema_version);
        w.Key("expected_schema_version");
        w.Int(ready.expected_version);
        w.Key("pool_size");
        w.Int(s.pool_size);
        w.Key("pool_open");
        w.Int(s.open);
        w.Key("pool_in_use");
        w.Int(s.in_use);
        w.Key("reconnects");
        w.Int64(s.reconnects);
        str("last_error", ready.ready ? "" : ready.reason);
        w.EndObject();
        w.Key("listeners");
        w.StartObject();
        w.Key("http");
        w.StartArray();
        for (const auto& a : http_bound) w.String(a);
        w.EndArray();
        str("control", config->control_socket);
        w.EndObject();
        w.Key("feed");
        w.StartObject();
        {
            long long head = -1;
            std::vector<storage::Library> libs;
            try {
                head = co_await exec.Run([&] { return storage::ChangeHead(db); });
                libs = co_await exec.Run([&] { return storage::ListPushes(db); });
            } catch (const storage::DatabaseError&) {
            }
            w.Key("head");
            w.Int64(head);
            w.Key("libraries");
            w.StartArray();
            for (const auto& l : libs) {
                w.StartObject();
                str("isil", l.isil);
                w.Key("pushes");
                w.Int64(l.pushes);
                str("last_push_at", l.last_push_at);
                w.EndObject();
            }
            w.EndArray();
        }
        w.EndObject();
        w.Key("counters");
        w.StartObject();
        w.Key("http_requests");
        w.Uint64(metrics.HttpRequestsTotal());
        w.Key("http_connections");
        w.Int(http.OpenConnections());
        w.Key("config_reloads");
        w.Uint64(reloads);
        w.EndObject();
        w.Key("config");
        w.StartObject();
        str("path", config->path);
        str("log_level", config->log_level);
        w.EndObject();
        w.EndObject();
        co_return std::string(buf.GetString(), buf.GetSize());
    }

    net::awaitable<void> HandleSync(const protocols::ControlRequest& req, protocols::ControlResponse& r) {
        if (req.command == "sync.status") {
            std::vector<storage::HarvestStatus> list;
            std::vector<storage::PeerStatus> peer_list;
            std::vector<storage::FileDropStatus> drop_list;
            co_await exec.Run([&] {
                list = storage::HarvestStatuses(db);
                peer_list = storage::PeerStatuses(db);
                drop_list = storage::FileDropStatuses(db);
                return 0;
            });
            r.ok = true;
            r.result_json = SyncStatusJson(list, peer_list, drop_list);
        } else if (req.command == "sync.verify") {
            const std::string name = req.Arg("source");
            if (!peers.Has(name)) {
                r.error = fmt::format("no peer '{}' in {}", name.substr(0, 64), config->path);
                r.hint = "'iblctl sync status' lists the peers; add one as a [[peer]] table and restart";
                co_return;
            }
            std::string origin, library;
            for (auto [key, out] : {std::pair{"origin", &origin}, std::pair{"library", &library}}) {
                const std::string v = req.Arg(key);
                if (v.empty()) continue;
                auto isil = protocols::NormalizeIsil(v);
                if (!isil) {
                    r.error = fmt::format("--{} {}: {}", key, v.substr(0, 64), isil.error());
                    r.hint = "give an ISIL such as NL-0600670000";
                    co_return;
                }
                *out = *isil;
            }
            auto v = co_await peers.Verify(name, origin, library);
            if (!v.error.empty()) {
                r.error = v.error;
                r.hint = "check the peer's url and token in the config and that the peer is up ('iblctl sync status')";
                co_return;
            }
            spdlog::info("sync verify peer={} libraries={} differences={} peer_uid={}", name,
                         std::max(v.here.size(), v.peer.size()), v.differences.size(), req.Arg("_peer_uid"));
            r.ok = true;
            r.result_json = VerifiedJson(name, v);
        } else if (drops.Has(req.Arg("source"))) {
            const std::string name = req.Arg("source");
            if (req.command != "sync.run") {
                const bool pause = req.command == "sync.pause";
                co_await exec.Run([&] { return storage::PauseFileDrop(db, name, pause); });
                drops.SetPaused(name, pause);
            }
            drops.Wake(name);
            spdlog::info("drop {} drop={} peer_uid={}", req.command.substr(5), name, req.Arg("_peer_uid"));
            r.ok = true;
            r.result_json = fmt::format(R"({{"source":"{}","kind":"drop","done":"{}"}})", name, req.command.substr(5));
        } else if (peers.Has(req.Arg("source"))) {
            const std::string name = req.Arg("source");
            if (req.command == "sync.run") {
                peers.Wake(name);  // a peer is followed all the time; this only ends a backoff wait
            } else {
                const bool pause = req.command == "sync.pause";
                co_await exec.Run([&] { return storage::PausePeer(db, name, pause); });
                peers.SetPaused(name, pause);
            }
            spdlog::info("peer {} peer={} peer_uid={}", req.command.substr(5), name, req.Arg("_peer_uid"));
            r.ok = true;
            r.result_json = fmt::format(R"({{"source":"{}","kind":"peer","done":"{}"}})", name, req.command.substr(5));
        } else {
            const std::string name = req.Arg("source");
            if (!harvester.Has(name)) {
                r.error = fmt::format("no harvest source, peer or drop '{}' in {}", name.substr(0, 64), config->path);
                r.hint = "'iblctl sync status' lists them; add a source with 'iblctl source add' (a [[peer]] or "
                         "[[drop]] table in the config file takes a restart)";
            } else {
                const bool full = req.Arg("full") == "true", allow = req.Arg("allow_deletions") == "true";
                co_await exec.Run([&] {
                    if (req.command == "sync.run") return storage::RequestHarvest(db, name, full, allow);
                    return storage::PauseHarvest(db, name, req.command == "sync.pause");
                });
                if (req.command != "sync.run") harvester.SetPaused(name, req.command == "sync.pause");
                harvester.Wake(name);
                spdlog::info("harvest {} source={} full={} peer_uid={}", req.command.substr(5), name, full,
                             req.Arg("_peer_uid"));
                r.ok = true;
                r.result_json = fmt::format(R"({{"source":"{}","done":"{}"}})", name, req.command.substr(5));
            }
        }
    }

    net::awaitable<protocols::ControlResponse> HandleControl(const protocols::ControlRequest& req) {
        protocols::ControlResponse r;
        if (auto admin = co_await HandleAdminCommand(req, db, exec)) {
            r = std::move(*admin);
            metrics.CountControl(req.command, r.ok);
            co_return r;
        }
        if (auto check = co_await HandleOaiCheck(req)) {
            r = std::move(*check);
            metrics.CountControl(req.command, r.ok);
            co_return r;
        }
        if (auto ibl_answer = co_await HandleIblCommand(req, db, exec, courier)) {
            r = std::move(*ibl_answer);
            metrics.CountControl(req.command, r.ok);
            co_return r;
        }
        if (req.command == "status") {
            r.ok = true;
            r.result_json = co_await StatusJson();
        } else if (req.command == "reload") {
            auto outcome = Reload("control");
            if (outcome.ok) {
                rapidjson::StringBuffer buf;
                JsonWriter w(buf);
                w.StartObject();
                for (auto [key, list] : {std::pair{"applied", &outcome.diff.applied},
                                         std::pair{"need_restart", &outcome.diff.need_restart}}) {
                    w.Key(key);
                    w.StartArray();
                    for (const auto& k : *list) w.String(k);
                    w.EndArray();
                }
                w.EndObject();
                r.ok = true;
                r.result_json.assign(buf.GetString(), buf.GetSize());
            } else {
                r.error = "config rejected: " + outcome.error;
                r.hint = "fix the file and run 'iblctl reload' again; the previous configuration stays in force";
            }
        } else if (req.command == "sync.status" || req.command == "sync.run" || req.command == "sync.pause" ||
                   req.command == "sync.resume" || req.command == "sync.verify") {
            bool failed = false;
            std::string why;
            try {
                co_await HandleSync(req, r);
            } catch (const storage::DatabaseError& e) {
                failed = true;
                why = e.what();
            }
            if (failed) {
                r.ok = false;
                r.error = "database: " + why;
                r.hint = "harvest state is in the database; 'iblctl status' shows whether it is reachable";
            }
        } else if (req.command == "help") {
            r.ok = true;
            r.result_json =
                R"j({"commands":{"status":"node identity, database, listeners, counters",)j"
                R"j("reload":"re-read the config file (same as SIGHUP)","help":"this list",)j"
                R"j("library.add":"register a library (isil, name, province, poi)","library.list":"libraries, records, copies, pushes",)j"
                R"j("library.enable":"accept the library's tokens again","library.disable":"refuse the library's tokens",)j"
                R"j("token.issue":"a new API token for a library (shown once)",)j"
                R"j("token.rotate":"a new token; the old ones end after grace_seconds",)j"
                R"j("token.revoke":"end one token (token_id) or all of a library's",)j"
                R"j("changes":"the change feed after since (limit)",)j"
                R"j("sync.status":"harvest sources, peers and file drops: state, cursor, lag, last success, errors",)j"
                R"j("sync.run":"harvest a source now (source, full, allow_deletions)",)j"
                R"j("sync.pause":"stop harvesting a source, following a peer or loading a drop (source)",)j"
                R"j("sync.resume":"harvest or follow it again (source)",)j"
                R"j("sync.verify":"compare record and copy counts and checksums with a peer (source, origin, library)",)j"
                R"j("oai.check":"ask an OAI-PMH repository what it offers and read one page (url, metadata_prefix, set)",)j"
                R"j("ibl.list":"IBL requests (state: open, all or one state; library; limit)",)j"
                R"j("ibl.show":"one IBL request: its transactions and every message, with delivery (id)",)j"
                R"j("ibl.reroute":"send a request not yet shipped to its next lender now (id)",)j"
                R"j("ibl.cancel":"cancel a request for its library (id)",)j"
                R"j("ibl.manifest":"what travels on the POI's routes on a day, with the slip codes (date)",)j"
                R"j("ibl.invoice":"the month's finished IBL transactions per library, with their tariffs (month)",)j"
                R"j("ibl.close":"a lending library is not asked from a day through a day (library, from, until, reason)",)j"
                R"j("ibl.reopen":"end a library's closures now (library)","ibl.closures":"closures not yet over (library)",)j"
                R"j("ibl.lends":"material types a library does not lend (library; set=true with not=a,b to change)",)j"
                R"j("ibl.stats":"IBL per library in a month: requested, supplied, unfilled, lent (month)"}})j";
        } else {
            r.error = fmt::format("unknown command '{}'", req.command.substr(0, 64));
            r.hint = "'iblctl commands' lists the commands";
        }
        metrics.CountControl(r.ok || req.command == "reload" ? req.command : "unknown", r.ok);
        spdlog::debug("control command={} ok={}", req.command.substr(0, 64), r.ok);
        co_return r;
    }

    // Retention: old changes leave the front of the feed, old idempotency
    // keys are forgotten, finished IBL requests lose the patron's
    // reference (ibl.anonymise_after_days). At start-up (once the schema is ready), after each
    // reload and every 10 minutes; logged only when something went.
    net::awaitable<void> Housekeeping() {
        while (!stopping) {
            if (schema_ready) {
                const auto cfg = config;
                try {
                    auto pruned = co_await exec.Run([&] {
                        return storage::PruneRetained(db, cfg->api_keep_changes_days, cfg->api_keep_idempotency_hours);
                    });
                    if (pruned.changes > 0 || pruned.idempotency_keys > 0)
                        spdlog::info("retention pruned changes={} idempotency_keys={} keep_changes_days={}",
                                     pruned.changes, pruned.idempotency_keys, cfg->api_keep_changes_days);
                } catch (const storage::DatabaseError& e) {
                    spdlog::warn("retention failed error={} action=\"trying again in 10 minutes\"", Quote(e.what()));
                }
                try {
                    auto anonymised = co_await exec.Run(
                        [&] { return storage::AnonymiseIblRequests(db, cfg->ibl_anonymise_after_days); });
                    if (anonymised > 0)
                        spdlog::info("ibl requests anonymised requests={} anonymise_after_days={}", anonymised,
                                     cfg->ibl_anonymise_after_days);
                } catch (const storage::DatabaseError& e) {
                    spdlog::warn("ibl anonymising failed error={} action=\"trying again in 10 minutes\"",
                                 Quote(e.what()));
                }
            }
            if (stopping) break;  // the shutdown's cancel may have come while we pruned
            housekeeping_timer.expires_after(schema_ready ? std::chrono::seconds(600) : std::chrono::seconds(1));
            co_await housekeeping_timer.async_wait(kTuple);
        }
    }

    net::awaitable<void> Watchdog(std::chrono::microseconds interval) {
        // Runs on the event loop: if the loop stalls, the pings stop and systemd restarts us.
        while (!stopping) {
            notify::Watchdog();
            watchdog_timer.expires_after(interval);
            co_await watchdog_timer.async_wait(kTuple);
        }
    }

    net::awaitable<void> HandleSignals() {
        while (!stopping) {
            auto [ec, signo] = co_await signals.async_wait(kTuple);
            if (ec) co_return;
            if (signo == SIGHUP) {
                Reload("SIGHUP");
                continue;
            }
            spdlog::info("shutdown requested signal={}", signo == SIGTERM ? "SIGTERM" : "SIGINT");
            BeginShutdown("signal");
        }
    }

    void BeginShutdown(const char* why) {
        if (stopping) return;
        stopping = true;
        auto deadline = Clock::now() + std::chrono::seconds(config->shutdown_timeout_seconds);
        notify::Stopping(fmt::format("stopping ({}): finishing {} requests", why, http.BusyConnections()));
        // Last resort if something still blocks after the deadline (a statement
        // that ignores cancellation): leave rather than hang until SIGKILL.
        std::thread([deadline, this] {
            std::this_thread::sleep_until(deadline + std::chrono::seconds(5));
            spdlog::error("shutdown did not complete in time; exiting now");
            spdlog::default_logger()->flush();
            _exit(exit_code);
        }).detach();
        net::co_spawn(ioc, Shutdown(deadline), LogFailure{"shutdown"});
    }

    net::awaitable<void> Shutdown(Clock::time_point deadline) {
        control.Stop();
        api.Stop();
        harvester.Stop();
        peers.Stop();
        drops.Stop();
        courier.Stop();
        monitor_timer.cancel();
        watchdog_timer.cancel();
        housekeeping_timer.cancel();
        boost::system::error_code ignored;
        signals.cancel(ignored);
        int cut = co_await http.Shutdown(deadline);
        if (cut > 0) {
            spdlog::warn("shutdown deadline reached requests_cut={}", cut);
            db.CancelAll();
        }
        // Everything else winds down by itself; run() returns when no work is left.
    }

    int Run() {
        // A database that belongs to another node or is newer than us is fatal
        // before we announce readiness. An unreachable one is not: we start,
        // report "not ready", and keep retrying.
        try {
            LogMigrations(PrepareDatabase());
            schema_ready = true;
            db_state = "ready";
        } catch (const storage::SchemaTooNew& e) {
            spdlog::error("database refused error={}", Quote(e.what()));
            return kExitConfig;
        } catch (const storage::IdentityMismatch& e) {
            spdlog::error("database refused error={}", Quote(e.what()));
            return kExitConfig;
        } catch (const storage::DatabaseError& e) {
            db_state = "unreachable";
            db_detail = e.what();
            spdlog::warn("database not ready at start-up error={} action=\"retrying every second\"",
                         Quote(e.what()));
        }
        if (!config->tls_listen.empty()) {
            try {
                http.SetTls(config->tls_certificate, config->tls_private_key);
            } catch (const std::exception& e) {
                spdlog::error("config invalid file={} error={}", config->path, Quote(e.what()));
                return kExitConfig;
            }
        }
        try {
            http_bound = http.Listen(config->http_listen);
            if (!config->tls_listen.empty()) https_bound = http.Listen(config->tls_listen, true);
            control.Listen(config->control_socket, config->control_group);
        } catch (const std::exception& e) {
            spdlog::error("start-up failed error={}", Quote(e.what()));
            return kExitFailure;
        }
        http.Start();
        control.Start();
        harvester.Start(config->harvest);
        peers.Start(*config);
        drops.Start(config->drops);
        courier.Start();
        net::co_spawn(ioc, HandleSignals(), LogFailure{"signals"});
        net::co_spawn(ioc, MonitorDatabase(), LogFailure{"database monitor"});
        net::co_spawn(ioc, Housekeeping(), LogFailure{"housekeeping"});
        if (auto interval = notify::WatchdogInterval())
            net::co_spawn(ioc, Watchdog(*interval), LogFailure{"watchdog"});
        spdlog::info("iblsyncd started version={} role={} isil={} http={} https={} control={} db={}", kVersion,
                     RoleName(config->role), config->isil, fmt::join(http_bound, ","),
                     https_bound.empty() ? "none" : fmt::format("{}", fmt::join(https_bound, ",")),
                     config->control_socket, db_state);
        notify::Ready(StatusLine());
        ioc.run();
        drops.Join();
        exec.Stop();
        spdlog::info("iblsyncd stopped exit_code={}", exit_code);
        return exit_code;
    }
};

Node::Node(Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Node::~Node() = default;
int Node::Run() { return impl_->Run(); }

}  // namespace iblsync::daemon
