// sync-bench: the client side of `tools/bench sync`. Nothing here fails on
// a number; it prints what it measured.
//
//   sync-bench export PORT PATH PAGE [CONCURRENCY]
//       pages through an SRU server's whole result set (cql.allRecords=1) the
//       way a harvester does, CONCURRENCY requests at a time (default 1), each
//       on its own connection, and only counts: the rate the source itself
//       can deliver.
//   sync-bench lag POI_PORT POI_TOKEN ISIL COPIES NAT_PORT NAT_TOKEN RATE SECONDS FIRST
//       pushes RATE availability changes a second for SECONDS to the POI node
//       (batches every 100 ms, copies P0 … P<COPIES-1> of library ISIL), and
//       watches the change feeds of the POI node itself (the reference: one
//       node's own feed) and of the national node that follows it. Each
//       change carries a due date of its own, so it can be recognised when it
//       arrives; its lag is from the push's 200 to the moment a feed shows it.
//       A copy changed again before the first change arrived counts as
//       arriving with the later one. FIRST is the first change's number:
//       give each run its own range, or a repeated due date is no change.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <rapidjson/document.h>

#include "tests/support/raw_http.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using iblsync::test::RawConnection;

double Seconds(Clock::time_point a, Clock::time_point b = Clock::now()) {
    return std::chrono::duration<double>(b - a).count();
}

std::optional<iblsync::test::HttpReply> Get(RawConnection& c, const std::string& path, const std::string& token,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    std::string req = fmt::format("GET {} HTTP/1.1\r\nHost: b\r\n", path);
    if (!token.empty()) req += fmt::format("Authorization: Bearer {}\r\n", token);
    if (!c.Send(req + "\r\n")) return std::nullopt;
    return c.Read(timeout);
}

int Export(int port, const std::string& path, int page, int concurrency) {
    std::atomic<long long> next{1}, total{-1}, records{0}, bytes{0};
    std::atomic<bool> failed{false};
    // One connection's share: the next page not yet taken, until the end.
    auto worker = [&](bool first) {
        RawConnection c(port);
        while (!failed) {
            if (!first && total < 0) return;  // only the first page tells the total
            const long long start = next.fetch_add(page);
            if (total >= 0 && start > total) return;
            auto r = Get(c, fmt::format("{}?version=1.1&operation=searchRetrieve&query=cql.allRecords%3D1&startRecord="
                                        "{}&maximumRecords={}&recordSchema=marcxml",
                                        path, start, page),
                         "");
            if (!r || r->status != 200) {
                std::fprintf(stderr, "sync-bench: page at %lld: answer %d\n", start, r ? r->status : 0);
                failed = true;
                return;
            }
            if (first) {
                auto p = r->body.find("numberOfRecords>");
                if (p == std::string::npos) {
                    failed = true;
                    return;
                }
                total = std::stoll(r->body.substr(p + 16));
                return;  // the others start now
            }
            bytes += static_cast<long long>(r->body.size());
            long long n = 0;
            // Opening and closing tags, whatever the prefix (Zebra writes zs:).
            for (auto p = r->body.find("recordData>"); p != std::string::npos; p = r->body.find("recordData>", p + 1))
                ++n;
            records += n / 2;
        }
    };
    const auto t0 = Clock::now();
    // The first page, once, for numberOfRecords; then every page (the first
    // again, counted this time) over CONCURRENCY connections.
    worker(true);
    next = 1;
    std::vector<std::thread> threads;
    for (int i = 0; i < std::max(1, concurrency); ++i) threads.emplace_back(worker, false);
    for (auto& t : threads) t.join();
    if (failed) return 1;
    const double s = Seconds(t0);
    std::printf("export %lld records %lld bytes %.2f s %.0f records/s\n", records.load(), bytes.load(), s,
                static_cast<double>(records) / s);
    return 0;
}

struct Sent {
    int copy;
    int marker;  // days after 2030-01-01: the change's due date
    Clock::time_point acked;
};

std::string DueDate(int marker) {
    // Days after 2030-01-01 as a calendar date (civil-from-days, Howard Hinnant's algorithm).
    long z = 21915 + marker + 719468;  // 2030-01-01 is day 21915 of the Unix epoch
    const long era = z / 146097, doe = z - era * 146097;
    const long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    const long d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    return fmt::format("{:04}-{:02}-{:02}", era * 400 + yoe + (m <= 2), m, d);
}

// Follows a node's change feed from its head and notes when each copy's
// due date is first seen.
class Watcher {
public:
    Watcher(int port, std::string token) : port_(port), token_(std::move(token)) {}
    void Start() {
        thread_ = std::thread([this] { Run(); });
    }
    void Stop() {
        stop_ = true;
        thread_.join();
    }
    bool Ready() const { return ready_; }
    // When (copy, due date) was first seen; false if never.
    bool Seen(int copy, const std::string& due, Clock::time_point& at) {
        std::lock_guard lock(mu_);
        auto it = seen_.find({copy, due});
        if (it == seen_.end()) return false;
        at = it->second;
        return true;
    }

private:
    void Run() {
        RawConnection c(port_);
        long long since = -1;
        while (!stop_) {
            auto r = Get(c, since < 0 ? "/v1/changes?since=0&limit=1"
                                      : fmt::format("/v1/changes?since={}&limit=1000&wait=2", since),
                         token_);
            const auto now = Clock::now();
            if (!r || r->status != 200) {
                std::fprintf(stderr, "sync-bench: feed on port %d: answer %d\n", port_, r ? r->status : 0);
                return;
            }
            rapidjson::Document d;
            d.Parse(r->body.c_str());
            if (d.HasParseError() || !d.IsObject()) return;
            if (since < 0) {
                since = d["head"].GetInt64();
                ready_ = true;
                continue;
            }
            since = d["next_since"].GetInt64();
            std::lock_guard lock(mu_);
            for (const auto& ch : d["changes"].GetArray()) {
                if (!ch.HasMember("holding") || !ch["holding"].IsObject()) continue;
                const auto& h = ch["holding"];
                if (!h.HasMember("due_date") || !h["due_date"].IsString()) continue;
                const std::string barcode = h["barcode"].GetString();
                if (barcode.size() < 2 || barcode[0] != 'P') continue;
                seen_.emplace(std::pair{std::stoi(barcode.substr(1)), std::string(h["due_date"].GetString())}, now);
            }
        }
    }

    int port_;
    std::string token_;
    std::thread thread_;
    std::atomic<bool> stop_{false}, ready_{false};
    std::mutex mu_;
    std::map<std::pair<int, std::string>, Clock::time_point> seen_;
};

struct Figures {
    std::size_t arrived = 0, superseded = 0, missing = 0;
    double p50 = 0, p99 = 0, max = 0;
};

// Lags (ms) of the changes as `w` saw them.
Figures Measure(Watcher& w, const std::vector<Sent>& sent) {
    Figures f;
    std::vector<double> lags;
    // Later changes of the same copy, for changes the feed passed over.
    std::map<int, std::vector<const Sent*>> by_copy;
    for (const auto& s : sent) by_copy[s.copy].push_back(&s);
    for (const auto& s : sent) {
        Clock::time_point at;
        bool found = w.Seen(s.copy, DueDate(s.marker), at);
        if (!found) {
            for (const Sent* later : by_copy[s.copy])
                if (later->marker > s.marker && w.Seen(s.copy, DueDate(later->marker), at)) {
                    found = true;
                    ++f.superseded;
                    break;
                }
        }
        if (!found) {
            ++f.missing;
            continue;
        }
        ++f.arrived;
        lags.push_back(std::max(0.0, Seconds(s.acked, at)) * 1000);
    }
    std::sort(lags.begin(), lags.end());
    if (!lags.empty()) {
        f.p50 = lags[lags.size() / 2];
        f.p99 = lags[std::min(lags.size() - 1, lags.size() * 99 / 100)];
        f.max = lags.back();
    }
    return f;
}

int Lag(int poi_port, const std::string& poi_token, const std::string& isil, int copies, int nat_port,
        const std::string& nat_token, int rate, int seconds, int first) {
    Watcher local(poi_port, poi_token), national(nat_port, nat_token);
    local.Start();
    national.Start();
    while (!local.Ready() || !national.Ready()) std::this_thread::sleep_for(std::chrono::milliseconds(10));

    // Every 100 ms a batch of rate/10 changes, each to the next copy.
    const int per_batch = std::max(1, rate / 10);
    const int batches = seconds * 10;
    std::vector<Sent> sent;
    sent.reserve(static_cast<std::size_t>(per_batch * batches));
    RawConnection c(poi_port);
    int marker = first;
    long long failed = 0;
    const auto t0 = Clock::now();
    for (int b = 0; b < batches; ++b) {
        std::this_thread::sleep_until(t0 + std::chrono::milliseconds(100 * b));
        std::string body = "[";
        std::vector<Sent> batch;
        for (int i = 0; i < per_batch; ++i) {
            const int copy = (b * per_batch + i) % copies;
            ++marker;
            body += fmt::format(R"({}{{"barcode":"P{}","status":"on_loan","due_date":"{}"}})", i ? "," : "", copy,
                                DueDate(marker));
            batch.push_back({copy, marker, {}});
        }
        body += "]";
        const std::string req = fmt::format(
            "POST /v1/libraries/{}/availability HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {}\r\n"
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            isil, poi_token, body.size(), body);
        if (!c.Send(req)) return 1;
        auto r = c.Read(std::chrono::seconds(60));
        if (!r || r->status != 200) {
            ++failed;
            continue;
        }
        const auto acked = Clock::now();
        for (auto& s : batch) {
            s.acked = acked;
            sent.push_back(s);
        }
    }
    const double push_seconds = Seconds(t0);
    // Time for the last changes to travel.
    std::this_thread::sleep_for(std::chrono::seconds(5));
    local.Stop();
    national.Stop();
    const Figures here = Measure(local, sent), there = Measure(national, sent);
    std::printf("lag rate %d sent %zu failed_batches %lld push_seconds %.2f achieved %.0f/s\n", rate, sent.size(),
                failed, push_seconds, sent.size() / push_seconds);
    for (auto [name, f] : {std::pair{"poi-feed", here}, std::pair{"national", there}})
        std::printf("lag %s arrived %zu superseded %zu missing %zu p50_ms %.1f p99_ms %.1f max_ms %.1f\n", name,
                    f.arrived, f.superseded, f.missing, f.p50, f.p99, f.max);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "export" && (argc == 5 || argc == 6))
        return Export(std::stoi(argv[2]), argv[3], std::stoi(argv[4]), argc == 6 ? std::stoi(argv[5]) : 1);
    if (mode == "lag" && argc == 11)
        return Lag(std::stoi(argv[2]), argv[3], argv[4], std::stoi(argv[5]), std::stoi(argv[6]), argv[7],
                   std::stoi(argv[8]), std::stoi(argv[9]), std::stoi(argv[10]));
    std::fprintf(stderr,
                 "usage: sync-bench export PORT PATH PAGE [CONCURRENCY]\n"
                 "       sync-bench lag POI_PORT POI_TOKEN ISIL COPIES NAT_PORT NAT_TOKEN RATE SECONDS FIRST\n");
    return 2;
}
