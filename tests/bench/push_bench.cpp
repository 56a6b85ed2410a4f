// push-bench: durable availability updates through a running iblsyncd, next
// to raw libpqxx writes of the same rows to the same PostgreSQL in the same
// run. Driven by `tools/bench push`, which starts the node and the database.
// Prints a Markdown table; nothing here fails on a number.
//
//   push-bench PORT TOKEN ISIL COPIES CONNINFO
//
// The library must have copies with barcodes P0 … P<COPIES-1>.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "tests/support/raw_http.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using iblsync::test::RawConnection;

int port = 0, copies = 0;
std::string token, isil;
// Every update, through the API or raw, moves its copy to the next status,
// so that each one is a real change (an unchanged copy costs less).
constexpr const char* kStatuses[] = {"on_loan", "available", "reserved", "in_transit", "missing", "not_lendable"};
std::vector<int> turn;  // per copy
const char* NextStatus(int copy) { return kStatuses[++turn[static_cast<std::size_t>(copy)] % 6]; }

std::string Batch(int first, int n) {
    std::string body = "[";
    for (int i = 0; i < n; ++i) {
        const int c = (first + i) % copies;
        body += fmt::format(R"({}{{"barcode":"P{}","status":"{}","changed_at":"2027-01-01T00:00:00Z"}})", i ? "," : "",
                            c, NextStatus(c));
    }
    return body + "]";
}

bool Post(RawConnection& c, const std::string& body) {
    const std::string req = fmt::format(
        "POST /v1/libraries/{}/availability HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {}\r\n"
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        isil, token, body.size(), body);
    if (!c.Send(req)) return false;
    auto r = c.Read(std::chrono::seconds(60));
    if (!r || r->status != 200) {
        std::fprintf(stderr, "push-bench: answer %d: %s\n", r ? r->status : 0, r ? r->body.substr(0, 300).c_str() : "");
        return false;
    }
    return true;
}

double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

// Seconds for `updates` updates through the API, batches of `size`, one
// connection; starting at copy `first`.
double ApiSeconds(int size, int updates, int first) {
    RawConnection c(port);
    const int requests = std::max(1, updates / size);
    const auto t0 = Clock::now();
    for (int r = 0; r < requests; ++r)
        if (!Post(c, Batch(first + r * size, size))) return 1e9;
    return Seconds(t0);
}

// Each batch as one durable transaction of raw libpqxx statements: the
// copies' UPDATE and their change_log rows, as the node writes them.
double RawSeconds(pqxx::connection& db, int size, int updates, int first) {
    const int txs = std::max(1, updates / size);
    const auto t0 = Clock::now();
    for (int t = 0; t < txs; ++t) {
        pqxx::work tx(db);
        std::string barcodes = "{", statuses = "{";
        for (int i = 0; i < size; ++i) {
            const int c = (first + t * size + i) % copies;
            barcodes += fmt::format("{}P{}", i ? "," : "", c);
            statuses += fmt::format("{}{}", i ? "," : "", NextStatus(c));
        }
        barcodes += "}";
        statuses += "}";
        const long long last = tx.exec1("SELECT last_seq FROM change_counter FOR UPDATE")[0].as<long long>();
        auto n = tx.exec_params0(
                       "WITH up AS (UPDATE holding h SET status = u.s, version = h.version + 1, updated_at = now()"
                       " FROM unnest($3::text[], $2::text[]) u(b, s)"
                       " WHERE h.library = $1 AND h.barcode = u.b RETURNING h.id, h.barcode, h.version)"
                       " INSERT INTO change_log (seq, entity, op, library, local_id, entity_id, version)"
                       " SELECT $4 + row_number() OVER (), 'holding', 'update', $1, barcode, id, version FROM up",
                       isil, statuses, barcodes, last)
                     .affected_rows();
        tx.exec_params0("UPDATE change_counter SET last_seq = $1", last + static_cast<long long>(n));
        tx.commit();
    }
    return Seconds(t0);
}

struct Latency {
    double p50 = 0, p99 = 0, rate = 0;
};

// p50, p99 and rate of the times the threads measured (ms), over `wall` seconds.
Latency Summarise(const std::vector<std::vector<double>>& took, double wall) {
    std::vector<double> all;
    for (const auto& v : took) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    Latency l;
    if (all.empty()) return l;
    l.p50 = all[all.size() / 2];
    l.p99 = all[std::min(all.size() - 1, all.size() * 99 / 100)];
    l.rate = static_cast<double>(all.size()) / wall;
    return l;
}

// Single-update pushes from `threads` connections at once; adds each one's
// time (ms) to `took`, returns the wall time (s).
double ApiLatency(int threads, int per_thread, std::vector<std::vector<double>>& took) {
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            RawConnection c(port);
            const int span = copies / threads;
            for (int i = 0; i < per_thread; ++i) {
                const int copy = t * span + i % span;
                const std::string body = fmt::format(R"([{{"barcode":"P{}","status":"{}"}}])", copy, NextStatus(copy));
                const auto s = Clock::now();
                if (!Post(c, body)) return;
                took[static_cast<std::size_t>(t)].push_back(Seconds(s) * 1000);
            }
        });
    for (auto& th : pool) th.join();
    return Seconds(t0);
}

double RawLatency(const std::string& conninfo, int threads, int per_thread, std::vector<std::vector<double>>& took) {
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            pqxx::connection db(conninfo);
            const int span = copies / threads;
            for (int i = 0; i < per_thread; ++i) {
                const auto s = Clock::now();
                pqxx::work tx(db);
                const long long last = tx.exec1("SELECT last_seq FROM change_counter FOR UPDATE")[0].as<long long>();
                const int copy = t * span + i % span;
                auto r = tx.exec_params("UPDATE holding SET status = $2, version = version + 1 WHERE library = $1"
                                        " AND barcode = $3 RETURNING id, version",
                                        isil, NextStatus(copy), fmt::format("P{}", copy));
                tx.exec_params0("INSERT INTO change_log (seq, entity, op, library, local_id, entity_id, version)"
                                " VALUES ($1, 'holding', 'update', $2, $3, $4, $5)",
                                last + 1, isil, fmt::format("P{}", t * span + i % span), r[0][0].as<long long>(),
                                r[0][1].as<int>());
                tx.exec_params0("UPDATE change_counter SET last_seq = $1", last + 1);
                tx.commit();
                took[static_cast<std::size_t>(t)].push_back(Seconds(s) * 1000);
            }
        });
    for (auto& th : pool) th.join();
    return Seconds(t0);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: push-bench PORT TOKEN ISIL COPIES CONNINFO\n");
        return 2;
    }
    port = std::stoi(argv[1]);
    token = argv[2];
    isil = argv[3];
    copies = std::stoi(argv[4]);
    const std::string conninfo = argv[5];
    turn.assign(static_cast<std::size_t>(copies), 1);  // the copies start available (kStatuses[1])
    pqxx::connection db(conninfo);
    // Fresh statistics for both sides, as a node in service has them.
    pqxx::nontransaction(db).exec0("ANALYZE holding, change_log, bib_record");

    std::printf("| batch size | updates | iblsyncd updates/s | raw libpqxx updates/s (same rows, one transaction per batch) | ratio |\n");
    std::printf("|---|---|---|---|---|\n");
    // The two sides take turns, a fifth of the updates at a time, so that
    // the server's own rhythm (WAL segments made in a new cluster,
    // checkpoints) falls on both alike.
    constexpr int kTurns = 5;
    for (auto [size, updates] : {std::pair{1, 2000}, std::pair{100, 50000}, std::pair{1000, 200000}}) {
        double api = 0, raw = 0;
        const int part = updates / kTurns;
        for (int turn_no = 0; turn_no < kTurns; ++turn_no) {
            api += ApiSeconds(size, part, turn_no * part);
            raw += RawSeconds(db, size, part, turn_no * part);
        }
        std::printf("| %d | %d | %.0f | %.0f | %.2f |\n", size, updates, updates / api, updates / raw, raw / api);
        std::fflush(stdout);
    }
    std::printf("\n| single pushes | requests | p50 ms | p99 ms | requests/s | raw libpqxx p50 ms | p99 ms | tx/s |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    for (auto [threads, per] : {std::pair{1, 2000}, std::pair{16, 250}}) {
        std::vector<std::vector<double>> api_took(static_cast<std::size_t>(threads)), raw_took(api_took);
        double api_wall = 0, raw_wall = 0;
        for (int turn_no = 0; turn_no < kTurns; ++turn_no) {
            api_wall += ApiLatency(threads, per / kTurns, api_took);
            raw_wall += RawLatency(conninfo, threads, per / kTurns, raw_took);
        }
        const auto api = Summarise(api_took, api_wall), raw = Summarise(raw_took, raw_wall);
        std::printf("| concurrency %d | %d | %.2f | %.2f | %.0f | %.2f | %.2f | %.0f |\n", threads, threads * per, api.p50,
                    api.p99, api.rate, raw.p50, raw.p99, raw.rate);
        std::fflush(stdout);
    }
    return 0;
}
