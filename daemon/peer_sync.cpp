#include "daemon/peer_sync.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <random>

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
#include "protocols/catalogue_record.hpp"
#include "protocols/change_feed.hpp"
#include "protocols/sru_client.hpp"
#include "storage/database.hpp"

namespace iblsync::daemon {

namespace feed = protocols::feed;
namespace {
constexpr auto kTuple = net::as_tuple(net::use_awaitable);
using Clock = std::chrono::steady_clock;

// What a peer's error answer says: its problem detail, or the start of the body.
std::string Why(const HttpAnswer& a) {
    rapidjson::Document d;
    d.Parse(a.body.data(), a.body.size());
    if (!d.HasParseError() && d.IsObject() && d.HasMember("detail") && d["detail"].IsString())
        return fmt::format("HTTP {}: {}", a.status, d["detail"].GetString());
    return fmt::format("HTTP {}: {}", a.status, a.body.substr(0, 200));
}

// Seconds since the Unix epoch of "2026-12-05T14:03:00.123456Z"; 0 if unreadable.
double UnixTime(const std::string& at) {
    std::tm tm{};
    if (at.size() < 20 || !strptime(at.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
    double frac = 0;
    if (at.size() > 20 && at[19] == '.') frac = std::atof(("0" + at.substr(19, at.size() - 20)).c_str());
    return static_cast<double>(timegm(&tm)) + frac;
}

double Now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

struct PeerSync::Peer {
    daemon::Peer config;
    protocols::sru::HttpUrl url;
    net::steady_timer timer;
    HttpAbort abort;
    HttpSession session;  // the long-polls share one connection
    bool paused = false;
    int failures_in_row = 0;
    long long changes = 0, records = 0, refused = 0, failures = 0;  // since start
    long long cursor = 0, head = 0;
    double lag_seconds = 0;        // of the last page applied: now - its first change's commit at the peer
    double last_success_unix = 0;  // 0: never
    std::string last_error;
    Peer(net::io_context& ioc, daemon::Peer c, protocols::sru::HttpUrl u)
        : config(std::move(c)), url(std::move(u)), timer(ioc), headers{"application/json", "Bearer " + config.token} {}

    std::string Target(const std::string& path_and_query) const {
        std::string base = url.path;
        while (!base.empty() && base.back() == '/') base.pop_back();
        return base + path_and_query;
    }
    HttpHeaders headers;
};

PeerSync::PeerSync(net::io_context& ioc, storage::Database& db, DbExecutor& exec, std::function<void()> changed,
                   std::function<void()> committed)
    : ioc_(ioc), db_(db), exec_(exec), changed_(std::move(changed)), committed_(std::move(committed)) {}
PeerSync::~PeerSync() = default;

void PeerSync::Start(const Config& config) {
    self_ = config.isil;
    aggregate_ = config.role == Role::kNational;
    for (const auto& c : config.peers) {
        auto url = protocols::sru::ParseHttpUrl(c.url);  // checked when the config was read
        if (!url) continue;
        peers_.emplace(c.name, std::make_unique<Peer>(ioc_, c, std::move(url).value()));
    }
    if (!peers_.empty()) net::co_spawn(ioc_, Register(), LogFailure{"peer sync"});
}

void PeerSync::Stop() {
    stopping_ = true;
    for (auto& [name, p] : peers_) {
        p->timer.cancel();
        p->abort.Abort();
    }
}

bool PeerSync::Has(const std::string& name) const { return peers_.count(name) > 0; }

bool PeerSync::Wake(const std::string& name) {
    auto it = peers_.find(name);
    if (it == peers_.end()) return false;
    it->second->timer.cancel();
    return true;
}

void PeerSync::SetPaused(const std::string& name, bool paused) {
    auto it = peers_.find(name);
    if (it == peers_.end()) return;
    it->second->paused = paused;
    it->second->timer.cancel();
    if (paused) it->second->abort.Abort();  // a long-poll in flight ends now
}

int PeerSync::Failing() const {
    return static_cast<int>(
        std::count_if(peers_.begin(), peers_.end(), [](const auto& kv) { return kv.second->failures_in_row > 0; }));
}

void PeerSync::Render(protocols::PrometheusText& out) const {
    if (peers_.empty()) return;
    auto family = [&](const char* name, const char* type, const char* help, auto value) {
        out.Family(name, type, help);
        for (const auto& [n, p] : peers_) out.Sample(name, {{"peer", n}}, static_cast<double>(value(*p)));
    };
    family("iblsync_peer_failing", "gauge", "1 while requests to a peer's change feed fail.",
           [](const Peer& p) { return p.failures_in_row > 0 ? 1 : 0; });
    family("iblsync_peer_lag_changes", "gauge", "Changes at the peer not yet applied here (its head - our cursor).",
           [](const Peer& p) { return std::max(0LL, p.head - p.cursor); });
    family("iblsync_peer_lag_seconds", "gauge",
           "Age of the oldest change of the last page applied, when it was applied; 0 once caught up.",
           [](const Peer& p) { return p.lag_seconds; });
    family("iblsync_peer_changes_total", "counter", "Change rows read from the peer since start.",
           [](const Peer& p) { return p.changes; });
    family("iblsync_peer_records_total", "counter", "Record states applied from the peer since start.",
           [](const Peer& p) { return p.records; });
    family("iblsync_peer_refused_total", "counter",
           "Record states refused since start: libraries the peer does not serve.",
           [](const Peer& p) { return p.refused; });
    family("iblsync_peer_failures_total", "counter", "Failed requests or pages since start.",
           [](const Peer& p) { return p.failures; });
    family("iblsync_peer_last_success_timestamp_seconds", "gauge",
           "Unix time of the last page applied or empty long-poll; 0 if never.",
           [](const Peer& p) { return p.last_success_unix; });
}

net::awaitable<void> PeerSync::Sleep(Peer& p, std::chrono::milliseconds d) {
    if (stopping_) co_return;
    p.timer.expires_after(d);
    co_await p.timer.async_wait(kTuple);
}

net::awaitable<void> PeerSync::Register() {
    std::vector<storage::PeerSpec> specs;
    for (const auto& [name, p] : peers_)
        specs.push_back({name, p->config.url, p->config.isil,
                         aggregate_ ? storage::PeerDirection::kAggregate : storage::PeerDirection::kFollow});
    net::steady_timer wait(ioc_);
    for (int attempt = 0; !stopping_; ++attempt) {
        try {
            co_await exec_.Run([&] {
                storage::SyncPeers(db_, specs);
                return 0;
            });
            break;
        } catch (const storage::DatabaseError& e) {
            if (attempt == 0)
                spdlog::warn("peers not registered yet error={} action=\"retrying\"", Quote(e.what()));
        }
        wait.expires_after(std::chrono::seconds(2));
        co_await wait.async_wait(kTuple);
    }
    for (auto& [name, p] : peers_) net::co_spawn(ioc_, Loop(*p), LogFailure{"peer"});
}

void PeerSync::Failed(Peer& p, const std::string& error) {
    const bool news = p.failures_in_row == 0;
    ++p.failures_in_row;
    ++p.failures;
    if (news || error != p.last_error)
        spdlog::warn("peer failing peer={} isil={} error={} action=\"retrying with backoff\"", p.config.name,
                     p.config.isil, Quote(error));
    p.last_error = error;
    if (news && changed_) changed_();
}

void PeerSync::Healthy(Peer& p) {
    p.last_success_unix = Now();
    if (p.failures_in_row == 0) return;
    spdlog::info("peer recovered peer={} isil={} after_failures={}", p.config.name, p.config.isil,
                 p.failures_in_row);
    p.failures_in_row = 0;
    p.last_error.clear();
    if (changed_) changed_();
}

net::awaitable<void> PeerSync::Loop(Peer& p) {
    std::mt19937_64 random{std::random_device{}()};
    // The national node wants from a POI only the libraries that POI
    // serves; a POI wants from the national node all but its own. Neither
    // reads back what it sent, so nothing goes round in circles.
    const std::string filter = aggregate_ ? "&origin=" + p.config.isil : "&exclude_origin=" + self_;
    bool announced = false;
    while (!stopping_) {
        std::string error;
        bool db_down = false;
        try {
            auto state = co_await exec_.Run([&] { return storage::ReadPeerCursor(db_, p.config.name); });
            if (!state) throw storage::DatabaseError("the peer is not registered yet");
            p.cursor = state->cursor;
            p.paused = state->paused;
            if (p.paused) {
                co_await Sleep(p, std::chrono::seconds(60));
                continue;
            }
            if (!announced) {
                spdlog::info("peer following peer={} isil={} url={} cursor={}", p.config.name, p.config.isil,
                             p.config.url, p.cursor);
                announced = true;
            }
            const std::string target =
                p.Target(fmt::format("/v1/changes?since={}&limit={}&wait={}&embed=records{}", p.cursor,
                                     p.config.page_size, p.config.wait_seconds, filter));
            auto answer = co_await HttpGet(p.url, target,
                                           std::chrono::seconds(p.config.wait_seconds + p.config.timeout_seconds),
                                           p.config.max_page_bytes, &p.abort, &p.headers, &p.session);
            if (answer.status != 200) {
                std::string why = Why(answer);
                if (answer.status == 401 || answer.status == 403)
                    why += fmt::format(" (issue a token on the peer and set it as peer.token for {})", p.config.name);
                if (answer.status == 409 || answer.status == 410)
                    why += " (the peer's feed does not continue from our cursor; see docs/harvesting.md, "
                           "\"Following another node\")";
                throw HttpFailure(why);
            }
            auto page = feed::ParsePage(answer.body, {static_cast<std::size_t>(p.config.page_size) + 10000, 64 << 20});
            if (!page) throw HttpFailure(fmt::format("not a change feed page from {}: {}", p.config.url, page.error()));
            if (page->next_since < p.cursor)
                throw HttpFailure(fmt::format("the peer's next_since {} is behind our cursor {}", page->next_since,
                                              p.cursor));
            p.head = page->head;
            if (page->changes.empty() && page->next_since == p.cursor) {
                co_await exec_.Run([&] {
                    storage::RecordPeerHead(db_, p.config.name, page->head);
                    return 0;
                });
                p.lag_seconds = 0;
                Healthy(p);
                continue;
            }
            storage::PeerPage in;
            in.expected_cursor = p.cursor;
            in.next_cursor = page->next_since;
            in.peer_head = page->head;
            in.changes = static_cast<long long>(page->changes.size());
            if (!page->changes.empty()) in.last_change_at = page->changes.back().at;
            in.libraries = page->libraries;
            long long undescribed = 0;
            std::string first_reason;
            for (auto& r : page->records) {
                storage::PeerRecord pr{r.library, {}};
                if (r.deleted) {
                    pr.change = storage::RecordChange::Delete(r.local_id);
                } else {
                    auto described = p.config.brief ? protocols::DescribeStoredBrief(r.format, r.raw)
                                                    : protocols::DescribeStored(r.format, r.raw);
                    if (!described) {
                        // The peer stored it, so this should not happen; one
                        // record must not stop the feed. Logged and counted.
                        ++undescribed;
                        if (first_reason.empty())
                            first_reason = fmt::format("{} {}: {}", r.library, r.local_id, described.error());
                        continue;
                    }
                    pr.change = storage::RecordChange::Upsert(std::move(described).value());
                    pr.change.record.local_id = r.local_id;
                    pr.change.record.holdings_given = true;
                    pr.change.record.holdings = std::move(r.holdings);
                }
                in.records.push_back(std::move(pr));
            }
            if (undescribed > 0)
                spdlog::warn("peer records not applied peer={} count={} first={}", p.config.name, undescribed,
                             Quote(first_reason));
            auto applied = co_await exec_.Run([&] { return storage::ApplyPeerPage(db_, p.config.name, in); });
            const double now = Now();
            p.lag_seconds = page->changes.empty() ? 0 : std::max(0.0, now - UnixTime(page->changes.front().at));
            p.cursor = in.next_cursor;
            p.changes += in.changes;
            p.records += static_cast<long long>(in.records.size()) - applied.refused;
            p.refused += applied.refused;
            for (const auto& lib : applied.registered)
                spdlog::info("peer registered library peer={} library={}", p.config.name, lib);
            if (!applied.refused_libraries.empty())
                spdlog::warn("peer wrote libraries it does not serve peer={} isil={} libraries={} refused={}",
                             p.config.name, p.config.isil, fmt::join(applied.refused_libraries, ","), applied.refused);
            spdlog::debug("peer page applied peer={} cursor={} head={} changes={} records={} inserted={} updated={} "
                          "deleted={}",
                          p.config.name, p.cursor, p.head, in.changes, in.records.size(), applied.summary.inserted,
                          applied.summary.updated, applied.summary.deleted);
            Healthy(p);
            if (applied.summary.last_seq > 0 && committed_) committed_();
            continue;
        } catch (const HttpFailure& e) {
            error = e.what();
        } catch (const storage::PeerConflict& e) {
            spdlog::warn("peer cursor moved peer={} error={} action=\"reading the cursor again\"", p.config.name,
                         Quote(e.what()));
            continue;
        } catch (const storage::DatabaseError& e) {
            error = fmt::format("database: {}", e.what());
            db_down = true;
        }
        if (stopping_) co_return;
        if (p.paused) continue;
        p.session.Close();
        Failed(p, error);
        if (!db_down) {
            try {
                co_await exec_.Run([&] {
                    storage::RecordPeerFailure(db_, p.config.name, error);
                    return 0;
                });
            } catch (const storage::DatabaseError&) {
                // Counted again at the next failure; the retry below tries again.
            }
        }
        const double cap = p.config.retry_max_seconds;
        const double delay = std::min(cap, 0.25 * std::pow(2.0, std::min(p.failures_in_row - 1, 20)));
        std::uniform_real_distribution<double> jitter(0.5, 1.0);
        co_await Sleep(p, std::chrono::milliseconds(static_cast<long long>(delay * jitter(random) * 1000)));
    }
}

net::awaitable<PeerSync::Verified> PeerSync::Verify(const std::string& name, const std::string& origin,
                                                    const std::string& library) {
    Verified v;
    auto it = peers_.find(name);
    if (it == peers_.end()) {
        v.error = "no such peer";
        co_return v;
    }
    Peer& p = *it->second;
    auto ask = [&](const std::string& query) -> net::awaitable<feed::Digest> {
        auto answer = co_await HttpGet(p.url, p.Target("/v1/digest" + query),
                                       std::chrono::seconds(p.config.timeout_seconds + 300), 1ULL << 30, nullptr,
                                       &p.headers);
        if (answer.status != 200) throw HttpFailure(Why(answer));
        auto d = feed::ParseDigest(answer.body);
        if (!d) throw HttpFailure(fmt::format("not a digest from {}: {}", p.config.url, d.error()));
        co_return std::move(d).value();
    };
    try {
        const std::string query = !library.empty() ? "?library=" + library : !origin.empty() ? "?origin=" + origin : "";
        auto theirs = co_await ask(query);
        v.here = co_await exec_.Run([&] { return storage::LibraryDigests(db_, origin); });
        v.peer = std::move(theirs.libraries);
        if (!library.empty()) {
            auto keep = [&](std::vector<feed::LibraryDigest>& list) {
                std::erase_if(list, [&](const auto& l) { return l.isil != library; });
            };
            keep(v.here);
            keep(v.peer);
        }
        v.brief = p.config.brief;
        if (v.brief)
            for (auto* list : {&v.here, &v.peer})
                for (auto& l : *list) l.records_sum.clear();
        v.differences = feed::Compare(v.here, v.peer);
        // Record by record for the first few libraries that differ.
        int detailed = 0;
        for (const auto& d : v.differences) {
            if (detailed++ == 5) break;
            auto mine = co_await exec_.Run([&] { return storage::RecordDigests(db_, d.library); });
            feed::Digest other;
            if (library == d.library) other = theirs;
            else other = co_await ask("?library=" + d.library);
            std::size_t total = 0;
            if (v.brief)
                for (auto* list : {&mine, &other.records})
                    for (auto& r : *list) r.checksum.clear();
            v.records[d.library] = feed::CompareRecords(mine, other.records, 20, &total);
            v.records_total[d.library] = total;
        }
    } catch (const HttpFailure& e) {
        v.error = fmt::format("asking {} ({}): {}", name, p.config.url, e.what());
    } catch (const storage::DatabaseError& e) {
        v.error = fmt::format("database: {}", e.what());
    }
    co_return v;
}

}  // namespace iblsync::daemon
