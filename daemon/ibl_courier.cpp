#include "daemon/ibl_courier.hpp"

#include <algorithm>
#include <cctype>
#include <array>
#include <chrono>
#include <map>
#include <random>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <spdlog/spdlog.h>

#include "daemon/http_client.hpp"
#include "daemon/log.hpp"
#include "daemon/spawn.hpp"
#include "protocols/iso18626.hpp"
#include "protocols/sru_client.hpp"
#include "storage/errors.hpp"
#include "storage/ibl_admin.hpp"

namespace iblsync::daemon {

namespace iso = protocols::iso18626;

namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
constexpr int kBatch = 50;
constexpr auto kPoll = std::chrono::seconds(2);
constexpr auto kDeadlineSweep = std::chrono::seconds(5);
constexpr auto kCount = std::chrono::seconds(5);

// Where and how to reach another node: an [[ibl_peer]], or else the
// [[peer]] with that ISIL (the national node).
struct Route {
    std::string url, token, name;
    int timeout_seconds = 10, retry_max_seconds = 300;
    std::optional<protocols::sru::HttpUrl> parsed;  // empty if `url` cannot be used
    std::string base;                               // its path without a trailing slash
};
std::optional<Route> RouteTo(const Config& cfg, const std::string& node) {
    std::optional<Route> r;
    for (const auto& p : cfg.ibl_peers)
        if (!r && p.isil == node) r = Route{p.url, p.token, p.name, p.timeout_seconds, p.retry_max_seconds, {}, {}};
    for (const auto& p : cfg.peers)
        if (!r && p.isil == node) r = Route{p.url, p.token, p.name, 10, p.retry_max_seconds, {}, {}};
    if (!r) return r;
    if (auto url = protocols::sru::ParseHttpUrl(r->url)) {
        r->parsed = url.value();
        r->base = url->path;
        while (!r->base.empty() && r->base.back() == '/') r->base.pop_back();
    }
    return r;
}

// What the peer's confirmation said: nullopt for OK, else its error.
std::variant<std::optional<std::string>, std::string> ReadConfirmation(const std::string& body) {
    auto parsed = iso::Parse(body);
    if (auto* failure = std::get_if<iso::ParseError>(&parsed))
        return std::string("the answer is not an ISO 18626 confirmation: " + failure->error.value.substr(0, 200));
    const auto& m = std::get<iso::Parsed>(parsed).message;
    auto read = [](const auto& c) -> std::optional<std::string> {
        if (c.header.ok) return std::nullopt;
        return c.error ? fmt::format("{}: {}", iso::ToString(c.error->type), c.error->value)
                       : std::string("ERROR without errorData");
    };
    if (const auto* c = std::get_if<iso::RequestConfirmation>(&m)) return read(*c);
    if (const auto* c = std::get_if<iso::SupplyingAgencyMessageConfirmation>(&m)) return read(*c);
    if (const auto* c = std::get_if<iso::RequestingAgencyMessageConfirmation>(&m)) return read(*c);
    return std::string("the answer is an ISO 18626 message, not a confirmation");
}

storage::IblSettings SettingsFrom(const Config& cfg) {
    storage::IblSettings s;
    s.answer_within_minutes = cfg.ibl_answer_within_minutes;
    for (const auto& p : cfg.ibl_peers) s.peer_nodes.push_back(p.isil);
    s.max_open_per_library = cfg.ibl_max_open_per_library;
    s.max_open_per_patron = cfg.ibl_max_open_per_patron;
    s.max_open_per_lender = cfg.ibl_max_open_per_lender;
    s.excluded_lenders = cfg.ibl_excluded_lenders;
    s.last_resort = cfg.ibl_last_resort;
    s.confirm_after_minutes = cfg.ibl_confirm_after_minutes;
    for (const auto& t : cfg.ibl_tariffs)
        s.tariffs.push_back({t.from, t.to, t.kind, t.cents,
                             t.name.empty() ? fmt::format("{} to {} {}", t.from, t.to, t.kind) : t.name});
    return s;
}

}  // namespace

struct IblCourier::Impl {
    net::io_context& ioc;
    storage::Database& db;
    DbExecutor& exec;
    std::function<std::shared_ptr<const Config>()> config;
    Impl(net::io_context& i, storage::Database& d, DbExecutor& e, std::function<std::shared_ptr<const Config>()> c)
        : ioc(i), db(d), exec(e), config(std::move(c)) {}
    net::steady_timer wake{ioc};
    bool stopping = false;
    bool woken = false;
    std::function<void()> changed;
    // Messages about different requests go at once, up to kLanes; each lane
    // has its own keep-alive connection to each node and its own abort.
    std::array<HttpAbort, 8> aborts;
    std::map<std::pair<std::string, int>, HttpSession> sessions;  // by node and lane
    std::set<std::string> failing;                // nodes whose last message failed
    std::mt19937 random{std::random_device{}()};
    // Counters for /metrics, and the requests by state as last counted.
    unsigned long long delivered = 0, refused = 0, failures = 0, moved_on = 0;
    std::optional<storage::IblGauges> gauges;

    // Seconds until the next try: doubling from 1 s up to the node's
    // retry_max_seconds, with up to 25% jitter.
    int Backoff(int attempts, int max_seconds) {
        const int base = std::min(max_seconds, 1 << std::min(attempts, 20));
        return base + static_cast<int>(std::uniform_int_distribution<int>(0, std::max(0, base / 4))(random));
    }

    net::awaitable<void> Run();
    net::awaitable<bool> Deliver(const storage::IblOutgoingMessage& m, const Config& cfg, int lane);
    net::awaitable<void> Lane(const std::vector<storage::IblOutgoingMessage>* due, const Config* cfg, int lane,
                              std::set<std::string>* skip);
};

IblCourier::IblCourier(net::io_context& ioc, storage::Database& db, DbExecutor& exec,
                       std::function<std::shared_ptr<const Config>()> config)
    : impl_(std::make_unique<Impl>(ioc, db, exec, std::move(config))) {}
IblCourier::~IblCourier() = default;

void IblCourier::Start() { net::co_spawn(impl_->ioc, impl_->Run(), LogFailure{"ibl courier"}); }

void IblCourier::Stop() {
    impl_->stopping = true;
    impl_->wake.cancel();
    for (auto& a : impl_->aborts) a.Abort();
}

void IblCourier::Wake() {
    // Called from the event loop's thread (HTTP handlers run there).
    impl_->woken = true;
    impl_->wake.cancel();
    if (impl_->changed) impl_->changed();
}

void IblCourier::OnChange(std::function<void()> f) { impl_->changed = std::move(f); }

storage::IblSettings IblCourier::Settings() const { return SettingsFrom(*impl_->config()); }

void IblCourier::Render(protocols::PrometheusText& out) const {
    out.Family("iblsync_ibl_messages_sent_total", "counter",
               "ISO 18626 messages to other nodes by outcome: confirmed, refused (ERROR confirmation) or failed "
               "(no confirmation; tried again).");
    out.Sample("iblsync_ibl_messages_sent_total", {{"outcome", "confirmed"}}, static_cast<double>(impl_->delivered));
    out.Sample("iblsync_ibl_messages_sent_total", {{"outcome", "refused"}}, static_cast<double>(impl_->refused));
    out.Sample("iblsync_ibl_messages_sent_total", {{"outcome", "failed"}}, static_cast<double>(impl_->failures));
    out.Family("iblsync_ibl_passed_over_total", "counter",
               "Requests sent on to the next lender because the lender did not answer in time.");
    out.Sample("iblsync_ibl_passed_over_total", {}, static_cast<double>(impl_->moved_on));
    out.Family("iblsync_ibl_peers_failing", "gauge", "Nodes whose last ISO 18626 message got no confirmation.");
    out.Sample("iblsync_ibl_peers_failing", {}, static_cast<double>(impl_->failing.size()));
    if (!impl_->gauges) return;
    out.Family("iblsync_ibl_requests", "gauge",
               "IBL transactions by role (requester, supplier) and state, counted every 5 s; moved-on ones left out.");
    for (const auto& g : impl_->gauges->by_state)
        out.Sample("iblsync_ibl_requests", {{"role", g.role}, {"state", g.state}}, static_cast<double>(g.requests));
    out.Family("iblsync_ibl_outbox_messages", "gauge",
               "Messages for other nodes in the outbox not yet confirmed (unsent) or refused by them.");
    out.Sample("iblsync_ibl_outbox_messages", {{"state", "unsent"}}, static_cast<double>(impl_->gauges->unsent));
    out.Sample("iblsync_ibl_outbox_messages", {{"state", "refused"}}, static_cast<double>(impl_->gauges->refused));
}

// g++ 12 warns falsely about the coroutine frame's operator delete.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
net::awaitable<std::optional<bool>> IblCourier::StillOnShelf(const storage::LenderToConfirm* lender) {
    const auto cfg = impl_->config();
    const auto route = RouteTo(*cfg, lender->node);
    if (!route || !route->parsed) co_return std::nullopt;
    HttpHeaders headers;
    headers.accept = "application/json";
    headers.authorization = "Bearer " + route->token;
    std::string target = route->base;
    // Local ids are percent-encoded in the path.
    std::string id;
    for (unsigned char c : lender->record_id) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') id += static_cast<char>(c);
        else id += fmt::format("%{:02X}", c);
    }
    target += fmt::format("/v1/libraries/{}/records/{}/holdings", lender->library, id);
    std::optional<bool> out;
    try {
        auto answer = co_await HttpGet(*route->parsed, target, std::chrono::seconds(3), 1 << 20, nullptr, &headers);
        if (answer.status == 404 || answer.status == 410) {
            out = false;
        } else if (answer.status == 200) {
            rapidjson::Document d;
            d.Parse(answer.body.c_str());
            if (d.IsObject() && d.HasMember("holdings") && d["holdings"].IsArray()) {
                out = false;
                for (const auto& h : d["holdings"].GetArray())
                    if (h.IsObject() && h.HasMember("status") && h["status"].IsString() &&
                        std::string_view(h["status"].GetString()) == "available")
                        out = true;
            }
        }
    } catch (const HttpFailure& e) {
        spdlog::debug("ibl availability check failed node={} library={} error={}", lender->node, lender->library,
                      Quote(e.what()));
    }
    spdlog::debug("ibl availability checked node={} library={} record={} on_shelf={}", lender->node, lender->library,
                  Quote(lender->record_id), out ? (*out ? "yes" : "no") : "unknown");
    co_return out;
}

net::awaitable<void> IblCourier::Impl::Run() {
    auto last_sweep = std::chrono::steady_clock::now() - kDeadlineSweep;
    auto last_count = std::chrono::steady_clock::now() - kCount;
    bool db_failing = false;
    while (!stopping) {
        const auto cfg = config();
        const storage::IblSettings settings = SettingsFrom(*cfg);
        std::vector<storage::IblOutgoingMessage> due;
        std::string db_error;
        woken = false;
        try {
            if (std::chrono::steady_clock::now() - last_sweep >= kDeadlineSweep) {
                last_sweep = std::chrono::steady_clock::now();
                const long long moved = co_await exec.Run([&] { return storage::PassOverSilentLenders(db, settings); });
                if (moved > 0) {
                    if (changed) changed();
                    moved_on += static_cast<unsigned long long>(moved);
                    spdlog::info("ibl requests passed over requests={} reason=\"no answer in time\"", moved);
                }
            }
            due = co_await exec.Run([&] { return storage::DueIblMessages(db, kBatch); });
            if (std::chrono::steady_clock::now() - last_count >= kCount) {
                last_count = std::chrono::steady_clock::now();
                gauges = co_await exec.Run([&] { return storage::CountIblRequests(db); });
            }
        } catch (const std::exception& e) {
            db_error = e.what();
        }
        if (!db_error.empty()) {
            // Before the migrations ran, or the database is away: the
            // daemon's monitor reports it; try again shortly.
            if (!db_failing) spdlog::debug("ibl courier waiting error={}", Quote(db_error));
            db_failing = true;
        } else {
            db_failing = false;
        }
        // The batch holds at most one message per request (the oldest not
        // yet confirmed), so its messages may go at once: lane i takes
        // every kLanes-th. A node that failed once in this batch is not
        // tried again in it.
        std::set<std::string> skip;
        if (!due.empty()) {
            const int lanes = static_cast<int>(std::min<std::size_t>(aborts.size(), due.size()));
            int running = lanes;
            net::steady_timer all_done(ioc);
            all_done.expires_at(net::steady_timer::time_point::max());
            for (int lane = 0; lane < lanes; ++lane)
                net::co_spawn(ioc, Lane(&due, cfg.get(), lane, &skip), [&](std::exception_ptr e) {
                    if (e) LogFailure{"ibl courier lane"}(e);
                    if (--running == 0) all_done.cancel();
                });
            co_await all_done.async_wait(kTuple);
        }
        if (stopping) break;
        if (due.size() == static_cast<std::size_t>(kBatch) && skip.empty()) continue;
        if (woken) continue;
        wake.expires_after(db_failing ? std::chrono::seconds(5) : kPoll);
        co_await wake.async_wait(kTuple);
    }
}

net::awaitable<void> IblCourier::Impl::Lane(const std::vector<storage::IblOutgoingMessage>* due, const Config* cfg,
                                            int lane, std::set<std::string>* skip) {
    for (std::size_t i = static_cast<std::size_t>(lane); i < due->size(); i += aborts.size()) {
        const auto& m = (*due)[i];
        if (stopping) break;
        if (skip->count(m.node)) continue;
        if (!co_await Deliver(m, *cfg, lane)) skip->insert(m.node);
    }
}

// Sends one message; true if the node answered (confirmed or refused).
net::awaitable<bool> IblCourier::Impl::Deliver(const storage::IblOutgoingMessage& m, const Config& cfg, int lane) {
    const auto route = RouteTo(cfg, m.node);
    std::string error;
    std::optional<std::string> refusal;
    int retry_max = 300;
    if (!route) {
        error = fmt::format("no [[ibl_peer]] for node {} in {}; add one (isil, url, token) and restart", m.node,
                            cfg.path);
    } else {
        retry_max = route->retry_max_seconds;
        if (!route->parsed) {
            error = fmt::format("[[ibl_peer]] {}: url {} cannot be used", route->name, route->url);
        } else {
            HttpHeaders headers;
            headers.accept = "application/xml";
            headers.authorization = "Bearer " + route->token;
            const std::string type = "application/xml";
            const std::string target = route->base + "/iso18626";
            try {
                auto answer = co_await HttpPost(*route->parsed, target, &type, &m.body,
                                                std::chrono::seconds(route->timeout_seconds), 1 << 20,
                                                &aborts[static_cast<std::size_t>(lane)], &headers,
                                                &sessions[{m.node, lane}]);
                if (answer.status == 200) {
                    auto read = ReadConfirmation(answer.body);
                    if (auto* bad = std::get_if<std::string>(&read)) error = *bad;
                    else refusal = std::get<std::optional<std::string>>(read);
                } else {
                    error = fmt::format("HTTP {} from {}: {}", answer.status, route->url,
                                        answer.body.substr(0, 300));
                }
            } catch (const HttpFailure& e) {
                error = e.what();
            }
        }
    }
    if (stopping) co_return false;
    std::string outcome_failed;
    try {
        if (!error.empty()) {
            sessions.erase({m.node, lane});
            const int wait = Backoff(m.attempts, retry_max);
            co_await exec.Run([&] {
                storage::IblMessageFailed(db, m.event, error, wait);
                return 0;
            });
            ++failures;
            if (failing.insert(m.node).second || m.attempts % 10 == 0)
                spdlog::warn("ibl message not confirmed node={} kind={} event={} attempts={} error={} "
                             "action=\"trying again in {} s\"",
                             m.node, m.kind, m.event, m.attempts + 1, Quote(error), wait);
            co_return false;
        }
        if (failing.erase(m.node)) spdlog::info("ibl peer recovered node={}", m.node);
        if (refusal) {
            const auto settings = SettingsFrom(cfg);
            const std::string next = co_await exec.Run(
                [&] { return storage::IblMessageRefused(db, m.event, *refusal, settings); });
            ++refused;
            spdlog::warn("ibl message refused node={} kind={} event={} agency={} error={}{}", m.node, m.kind,
                         m.event, m.agency, Quote(*refusal),
                         next.empty() ? "" : " next_lender=" + next);
        } else {
            co_await exec.Run([&] {
                storage::IblMessageDelivered(db, m.event);
                return 0;
            });
            ++delivered;
            spdlog::debug("ibl message confirmed node={} kind={} event={}", m.node, m.kind, m.event);
        }
    } catch (const std::exception& e) {
        outcome_failed = e.what();
    }
    if (outcome_failed.empty()) co_return true;
    // The outcome could not be recorded: the message stays due and goes
    // again (the node recognises a second delivery by its identity), after
    // a wait like any failure, so that a refusal that cannot be recorded is
    // not sent again at once.
    spdlog::warn("ibl outbox update failed event={} error={}", m.event, Quote(outcome_failed));
    try {
        const int wait = Backoff(m.attempts, retry_max);
        co_await exec.Run([&] {
            storage::IblMessageFailed(db, m.event, "recording the outcome failed: " + outcome_failed, wait);
            return 0;
        });
    } catch (const std::exception&) {
        // The database is away; the loop waits before it asks for due messages again.
    }
    co_return false;
}
#pragma GCC diagnostic pop

}  // namespace iblsync::daemon
