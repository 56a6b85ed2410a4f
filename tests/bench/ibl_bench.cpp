// ibl-bench: IBL requests through their whole life across two POI nodes,
// driven over the JSON API as library systems would: a library of POI A asks
// for a work that two libraries of POI B have; B's lenders wait on their
// inboxes (long-poll), say they will supply and ship; A's library receives
// and sends the item back; the lender takes it in. Every message between
// the nodes goes as ISO 18626 through the outboxes. Driven by
// `tools/bench ibl`, which starts the nodes and the database. Prints
// Markdown; nothing here fails on a number.
//
//   ibl-bench A_PORT B_PORT ASKER TOKEN ISBN LENDER1 TOKEN1 LENDER2 TOKEN2 N CONCURRENCY A_PID B_PID CONNINFO
//
// References in the same run: GET /healthz on node A at the same
// concurrency (the HTTP floor), and durable one-row transactions on the
// same PostgreSQL (the commit floor: a lifecycle commits about 14 times
// across the two nodes).

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <pqxx/pqxx>
#include <rapidjson/document.h>

#include "tests/support/raw_http.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using iblsync::test::HttpReply;
using iblsync::test::RawConnection;

int a_port = 0, b_port = 0;
std::string asker, asker_token, isbn;

double Seconds(Clock::time_point a, Clock::time_point b = Clock::now()) {
    return std::chrono::duration<double>(b - a).count();
}

// One request on a kept connection, opened again when the server closed it.
std::optional<HttpReply> Call(std::unique_ptr<RawConnection>& c, int port, const std::string& method,
                              const std::string& path, const std::string& token, const std::string& body = {}) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (!c || !c->ok()) c = std::make_unique<RawConnection>(port);
        std::string req = fmt::format("{} {} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {}\r\n", method, path, token);
        if (!body.empty())
            req += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", body.size());
        req += "\r\n" + body;
        if (c->Send(req)) {
            if (auto r = c->Read(std::chrono::seconds(60))) return r;
        }
        c.reset();
    }
    return std::nullopt;
}

std::string Str(const rapidjson::Value& v, const char* k) {
    return v.IsObject() && v.HasMember(k) && v[k].IsString() ? v[k].GetString() : std::string();
}

struct ProcUsage {
    double cpu_seconds = 0;
    long rss_kb = 0, hwm_kb = 0;
};
ProcUsage Usage(int pid) {
    ProcUsage u;
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string line;
    std::getline(stat, line);
    // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::vector<std::string> f;
    for (std::string x; rest >> x;) f.push_back(x);
    if (f.size() > 13) u.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
    std::ifstream status(fmt::format("/proc/{}/status", pid));
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) u.rss_kb = std::stol(line.substr(6));
        if (line.rfind("VmHWM:", 0) == 0) u.hwm_kb = std::stol(line.substr(6));
    }
    return u;
}

double Percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

std::mutex mu;
std::map<std::string, Clock::time_point> asked_at;  // request id -> POST answered
std::vector<double> to_inbox;                       // seconds, request to the lender's inbox
std::atomic<int> failures{0};
std::atomic<bool> done{false};

// A lender's system: waits on its inbox, says it will supply and ships
// each new request, and takes back what the requester sent back.
void Lender(const std::string& library, const std::string& token) {
    std::unique_ptr<RawConnection> c;
    std::set<long long> shipped, returned;
    long long cursor = 0;
    while (!done) {
        auto r = Call(c, b_port, "GET", fmt::format("/v1/ibl/inbox?wait=2&cursor={}", cursor), token);
        if (!r || r->status != 200) {
            ++failures;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        const auto seen = Clock::now();
        rapidjson::Document d;
        d.Parse(r->body.c_str());
        if (!d.IsObject()) continue;
        cursor = d["cursor"].GetInt64();
        for (const auto& t : d["requests"].GetArray()) {
            const long long task = t["task"].GetInt64();
            const std::string state = Str(t, "state");
            if (!shipped.count(task)) {
                {
                    std::lock_guard lock(mu);
                    auto it = asked_at.find(Str(t, "id"));
                    if (it != asked_at.end()) to_inbox.push_back(Seconds(it->second, seen));
                }
                shipped.insert(task);
                for (const char* answer : {R"({"answer":"will_supply"})",
                                           R"({"answer":"shipped","due_date":"2027-06-30","item_barcode":"X"})"}) {
                    auto a = Call(c, b_port, "POST", fmt::format("/v1/ibl/inbox/{}", task), token, answer);
                    if (!a || a->status != 200) ++failures;
                }
            } else if (t["shipped_return"].GetBool() && !returned.count(task)) {
                returned.insert(task);
                auto a = Call(c, b_port, "POST", fmt::format("/v1/ibl/inbox/{}", task), token,
                              R"({"answer":"returned"})");
                if (!a || a->status != 200) ++failures;
            }
        }
        (void)library;
    }
}

// Polls the request at A until its state is `want`.
bool WaitFor(std::unique_ptr<RawConnection>& c, const std::string& id, const std::string& want) {
    for (int i = 0; i < 6000; ++i) {
        auto r = Call(c, a_port, "GET", "/v1/ibl/requests/" + id, asker_token);
        if (r && r->status == 200 && r->body.find("\"state\":\"" + want + "\"") != std::string::npos) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(i < 5 ? 10 : 25));
    }
    return false;
}

// A's library system: one request at a time through its whole life.
void Requester(std::atomic<int>& next, int n, std::vector<double>& lifetimes) {
    std::unique_ptr<RawConnection> c;
    for (int i; (i = next++) < n;) {
        const auto start = Clock::now();
        auto r = Call(c, a_port, "POST", "/v1/ibl/requests", asker_token,
                      fmt::format(R"({{"isbn":"{}","patron_ref":"bench-{}"}})", isbn, i));
        if (!r || r->status != 201) {
            ++failures;
            if (failures < 5)
                std::fprintf(stderr, "ibl-bench: request: %d %s\n", r ? r->status : 0, r ? r->body.c_str() : "");
            continue;
        }
        rapidjson::Document d;
        d.Parse(r->body.c_str());
        const std::string id = Str(d, "id");
        {
            std::lock_guard lock(mu);
            asked_at[id] = Clock::now();
        }
        bool ok = WaitFor(c, id, "Loaned");
        for (const char* action : {R"({"action":"received"})", R"({"action":"shipped_return"})"}) {
            auto a = Call(c, a_port, "POST", "/v1/ibl/requests/" + id + "/actions", asker_token, action);
            ok = ok && a && a->status == 200;
        }
        ok = ok && WaitFor(c, id, "LoanCompleted");
        if (!ok) {
            ++failures;
            continue;
        }
        std::lock_guard lock(mu);
        lifetimes.push_back(Seconds(start));
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 15) {
        std::fprintf(stderr,
                     "usage: ibl-bench A_PORT B_PORT ASKER TOKEN ISBN LENDER1 TOKEN1 LENDER2 TOKEN2 N CONCURRENCY "
                     "A_PID B_PID CONNINFO\n");
        return 2;
    }
    a_port = std::stoi(argv[1]);
    b_port = std::stoi(argv[2]);
    asker = argv[3];
    asker_token = argv[4];
    isbn = argv[5];
    const std::string lender1 = argv[6], token1 = argv[7], lender2 = argv[8], token2 = argv[9];
    const int n = std::stoi(argv[10]), concurrency = std::stoi(argv[11]);
    const int a_pid = std::stoi(argv[12]), b_pid = std::stoi(argv[13]);
    const std::string conninfo = argv[14];

    // Reference 1: the HTTP floor, GET /healthz at the same concurrency.
    double healthz_rate = 0;
    {
        std::atomic<int> left{20000};
        const auto t0 = Clock::now();
        std::vector<std::thread> ts;
        for (int t = 0; t < concurrency; ++t)
            ts.emplace_back([&] {
                std::unique_ptr<RawConnection> c;
                while (left-- > 0) Call(c, a_port, "GET", "/healthz", "x");
            });
        for (auto& t : ts) t.join();
        healthz_rate = 20000 / Seconds(t0);
    }
    // Reference 2: the commit floor, durable one-row transactions.
    double commit_rate = 0;
    {
        pqxx::connection setup(conninfo);
        pqxx::nontransaction(setup).exec("CREATE TABLE IF NOT EXISTS ibl_bench_ref (id bigserial, v text)");
        std::atomic<int> left{5000};
        const auto t0 = Clock::now();
        std::vector<std::thread> ts;
        for (int t = 0; t < concurrency; ++t)
            ts.emplace_back([&] {
                pqxx::connection c(conninfo);
                while (left-- > 0) {
                    pqxx::work w(c);
                    w.exec("INSERT INTO ibl_bench_ref (v) VALUES ('x')");
                    w.commit();
                }
            });
        for (auto& t : ts) t.join();
        commit_rate = 5000 / Seconds(t0);
        pqxx::nontransaction(setup).exec("DROP TABLE ibl_bench_ref");
    }

    const auto a0 = Usage(a_pid), b0 = Usage(b_pid);
    std::thread l1(Lender, lender1, token1), l2(Lender, lender2, token2);
    std::atomic<int> next{0};
    std::vector<double> lifetimes;
    const auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < concurrency; ++t) ts.emplace_back(Requester, std::ref(next), n, std::ref(lifetimes));
    for (auto& t : ts) t.join();
    const double wall = Seconds(t0);
    done = true;
    l1.join();
    l2.join();
    const auto a1 = Usage(a_pid), b1 = Usage(b_pid);

    std::printf("| what | figure |\n|---|---:|\n");
    std::printf("| requests through their whole life (request, will supply, shipped, received, sent back, returned) "
                "| %zu of %d in %.1f s |\n",
                lifetimes.size(), n, wall);
    std::printf("| whole lifecycles per second (%d at a time) | %.0f/s |\n", concurrency,
                static_cast<double>(lifetimes.size()) / wall);
    std::printf("| request to the lender's inbox (POST answered to the lender's long-poll returning), p50 / p99 | "
                "%.1f / %.1f ms |\n",
                Percentile(to_inbox, 0.5) * 1000, Percentile(to_inbox, 0.99) * 1000);
    std::printf("| one whole lifecycle, p50 / p99 | %.0f / %.0f ms |\n", Percentile(lifetimes, 0.5) * 1000,
                Percentile(lifetimes, 0.99) * 1000);
    std::printf("| failures (HTTP errors, lifecycles not finished) | %d |\n", failures.load());
    std::printf("| node A (requester's POI): CPU, RSS now / peak | %.1f s (%.2f ms a lifecycle), %ld / %ld MiB |\n",
                a1.cpu_seconds - a0.cpu_seconds,
                lifetimes.empty() ? 0 : (a1.cpu_seconds - a0.cpu_seconds) * 1000 / static_cast<double>(lifetimes.size()),
                a1.rss_kb / 1024, a1.hwm_kb / 1024);
    std::printf("| node B (lenders' POI): CPU, RSS now / peak | %.1f s (%.2f ms a lifecycle), %ld / %ld MiB |\n",
                b1.cpu_seconds - b0.cpu_seconds,
                lifetimes.empty() ? 0 : (b1.cpu_seconds - b0.cpu_seconds) * 1000 / static_cast<double>(lifetimes.size()),
                b1.rss_kb / 1024, b1.hwm_kb / 1024);
    std::printf("| reference: GET /healthz on node A, %d at a time | %.0f/s |\n", concurrency, healthz_rate);
    std::printf("| reference: durable one-row transactions on the same PostgreSQL, %d at a time | %.0f/s |\n",
                concurrency, commit_rate);
    return failures.load() == 0 ? 0 : 1;
}
