// sru-bench: the same CQL queries against SRU servers, one after the other,
// at a given concurrency for a given time: queries per second and latency
// percentiles, plus each query's hit count on each server. Driven by
// `tools/bench sru`, which starts iblsyncd and Zebra on loopback. Nothing
// here fails on a number.
//
//   sru-bench QUERIES SECONDS CONCURRENCY NAME=PORT/PATH [NAME=PORT/PATH…]
//
// QUERIES is a file of CQL queries, one a line. Every request is SRU 1.2
// searchRetrieve with maximumRecords=10 and recordSchema=marcxml over one
// keep-alive connection per client thread.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "protocols/url.hpp"
#include "tests/support/raw_http.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using iblsync::test::RawConnection;

struct Target {
    std::string name;
    int port = 0;
    std::string path;
};

std::string Request(const Target& t, const std::string& cql) {
    return fmt::format("GET {}?version=1.2&operation=searchRetrieve&maximumRecords=10&recordSchema=marcxml&query={} "
                       "HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
                       t.path, iblsync::protocols::PercentEncode(cql), t.port);
}

// The hit count of a response, -1 for a diagnostic, -2 for no answer.
long long Hits(const std::optional<iblsync::test::HttpReply>& r) {
    if (!r || r->status != 200) return -2;
    static const std::regex kDiag("diagnostic/1/[0-9]+");
    if (std::regex_search(r->body, kDiag)) return -1;
    static const std::regex kCount("numberOfRecords>([0-9]+)<");
    std::smatch m;
    if (std::regex_search(r->body, m, kCount)) return std::stoll(m[1]);
    return -2;
}

struct Run {
    double qps = 0, p50 = 0, p99 = 0;
    long long requests = 0, failures = 0;
};

Run Measure(const Target& t, const std::vector<std::string>& queries, int threads, double seconds) {
    std::vector<std::vector<double>> took(static_cast<std::size_t>(threads));
    std::atomic<long long> failures{0};
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i)
        pool.emplace_back([&, i] {
            auto c = std::make_unique<RawConnection>(t.port);
            std::size_t q = static_cast<std::size_t>(i) * 7;  // threads start at different queries
            while (Clock::now() < end) {
                const auto s = Clock::now();
                auto r = c->Send(Request(t, queries[q % queries.size()])) ? c->Read(std::chrono::seconds(60))
                                                                         : std::nullopt;
                if (!r || r->status != 200) {
                    ++failures;
                    c = std::make_unique<RawConnection>(t.port);  // the server may have closed it
                } else {
                    took[static_cast<std::size_t>(i)].push_back(std::chrono::duration<double>(Clock::now() - s).count() *
                                                                1000);
                }
                ++q;
            }
        });
    for (auto& th : pool) th.join();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<double> all;
    for (const auto& v : took) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    Run out;
    out.requests = static_cast<long long>(all.size());
    out.failures = failures;
    if (all.empty()) return out;
    out.qps = static_cast<double>(all.size()) / wall;
    out.p50 = all[all.size() / 2];
    out.p99 = all[std::min(all.size() - 1, all.size() * 99 / 100)];
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: sru-bench QUERIES SECONDS CONCURRENCY NAME=PORT/PATH...\n");
        return 2;
    }
    std::vector<std::string> queries;
    {
        std::ifstream in(argv[1]);
        std::string line;
        while (std::getline(in, line))
            if (!line.empty() && line[0] != '#') queries.push_back(line);
    }
    const double seconds = std::stod(argv[2]);
    const int concurrency = std::stoi(argv[3]);
    std::vector<Target> targets;
    for (int i = 4; i < argc; ++i) {
        const std::string a = argv[i];
        const auto eq = a.find('='), slash = a.find('/');
        targets.push_back({a.substr(0, eq), std::stoi(a.substr(eq + 1, slash - eq - 1)), a.substr(slash)});
    }

    // Each query once on each server: what it finds there, and how long it takes alone.
    std::printf("| query |");
    for (const auto& t : targets) std::printf(" %s hits | %s ms |", t.name.c_str(), t.name.c_str());
    std::printf("\n|---|");
    for (std::size_t i = 0; i < targets.size(); ++i) std::printf("---|---|");
    std::printf("\n");
    for (const auto& q : queries) {
        std::printf("| `%s` |", q.c_str());
        for (const auto& t : targets) {
            RawConnection c(t.port);
            c.Send(Request(t, q));  // warm: the first answer of a query is not timed
            Hits(c.Read(std::chrono::seconds(60)));
            const auto s = Clock::now();
            c.Send(Request(t, q));
            const long long hits = Hits(c.Read(std::chrono::seconds(60)));
            const double ms = std::chrono::duration<double>(Clock::now() - s).count() * 1000;
            std::printf(" %s | %.1f |", hits == -1 ? "diagnostic" : hits == -2 ? "no answer" : std::to_string(hits).c_str(),
                        ms);
        }
        std::printf("\n");
        std::fflush(stdout);
    }

    std::printf("\n| server | concurrency | seconds | requests | queries/s | p50 ms | p99 ms | failed |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    for (int c : {1, concurrency}) {
        for (const auto& t : targets) {
            const auto r = Measure(t, queries, c, seconds);
            std::printf("| %s | %d | %.0f | %lld | %.0f | %.2f | %.2f | %lld |\n", t.name.c_str(), c, seconds,
                        r.requests, r.qps, r.p50, r.p99, r.failures);
            std::fflush(stdout);
        }
    }
    return 0;
}
