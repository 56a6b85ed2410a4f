// kill -9 of the daemon while library systems push availability: every
// acknowledged update is in the database exactly once, the change feed has
// each once and in commit order, and a client that retries with the same
// Idempotency-Key never applies an update twice.

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kLib = "NL-0000000201";
constexpr int kCopies = 20;

TEST(PushCrash, AcknowledgedUpdatesSurviveKillNineExactlyOnce) {
    TempDir dir;
    TestSchema schema;
    NodeConfig cfg;
    cfg.conninfo = schema.conninfo();
    cfg.api_toml = "rate_per_second = 0\n";
    auto daemon = std::make_unique<DaemonProcess>(dir, cfg);
    ASSERT_TRUE(daemon->Start()) << daemon->Log();
    ASSERT_EQ(daemon->Iblctl({"library", "add", kLib, "--name", "Crash"}).exit_code, 0);
    auto issued = daemon->Iblctl({"--json", "token", "issue", kLib});
    rapidjson::Document t;
    t.Parse(issued.out.c_str());
    ASSERT_TRUE(t.IsObject() && t.HasMember("token")) << issued.out << issued.err;
    const std::string auth = std::string("Bearer ") + t["token"].GetString();

    std::string copies = "[";
    for (int i = 0; i < kCopies; ++i) copies += fmt::format("{}{{\"barcode\":\"C{}\"}}", i ? "," : "", i);
    copies += "]";
    auto put = HttpCall(daemon->port(), "PUT", fmt::format("/v1/libraries/{}/records/r1", kLib),
                        {{"Authorization", auth}, {"Content-Type", "application/json"}},
                        fmt::format(R"({{"id":"r1","title":"Crash","holdings":{}}})", copies));
    ASSERT_TRUE(put && put->status == 201) << (put ? put->body : "no answer");

    std::atomic<int> port{daemon->port()};
    std::atomic<bool> stop{false};
    // What the clients were told: (barcode, version) of each acknowledged update.
    std::mutex mu;
    std::multiset<std::pair<std::string, int>> acked;
    std::atomic<long long> failures{0};
    auto client = [&](int first) {
        for (int n = 0; !stop; ++n) {
            const int copy = first + 2 * (n % (kCopies / 2));
            const std::string barcode = fmt::format("C{}", copy);
            const std::string key = fmt::format("client{}-{}", first, n);
            const std::string body = fmt::format(R"([{{"barcode":"{}","status":"{}"}}])", barcode,
                                                 (n / (kCopies / 2)) % 2 == 0 ? "on_loan" : "available");
            // A real client: the same request, with the same key, until it is answered.
            for (int attempt = 0;; ++attempt) {
                auto r = HttpCall(port, "POST", fmt::format("/v1/libraries/{}/availability", kLib),
                                  {{"Authorization", auth}, {"Content-Type", "application/json"},
                                   {"Idempotency-Key", key}},
                                  body);
                if (r && r->status == 200) {
                    rapidjson::Document d;
                    d.Parse(r->body.c_str());
                    const auto& item = d["results"][0];
                    const std::string outcome = item["outcome"].GetString();
                    if (outcome == "updated") {
                        std::lock_guard lock(mu);
                        acked.insert({barcode, item["version"].GetInt()});
                    }
                    break;
                }
                ++failures;
                if (attempt > 400) {
                    ADD_FAILURE() << "no answer for " << key;
                    return;
                }
                std::this_thread::sleep_for(50ms);
            }
        }
    };
    std::thread a(client, 0), b(client, 1);
    for (int kill_round = 0; kill_round < 4; ++kill_round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(400 + 150 * kill_round));
        daemon->Signal(SIGKILL);
        EXPECT_EQ(daemon->WaitExit(10s), 128 + SIGKILL);
        daemon = std::make_unique<DaemonProcess>(dir, cfg);
        ASSERT_TRUE(daemon->Start()) << daemon->Log();
        port = daemon->port();
    }
    std::this_thread::sleep_for(300ms);
    stop = true;
    a.join();
    b.join();

    // Each acknowledged update is in change_log exactly once, with the version it was acknowledged with.
    std::multiset<std::pair<std::string, int>> logged;
    std::map<std::string, std::vector<int>> versions;  // per copy, in seq order
    for (std::size_t row = 0;; ++row) {
        auto line = schema.Query1(fmt::format(
            "SELECT local_id || ' ' || version || ' ' || seq FROM change_log"
            " WHERE entity = 'holding' AND op = 'update' ORDER BY seq OFFSET {} LIMIT 1",
            row));
        if (line.empty()) break;
        char barcode[32];
        int version = 0;
        long long seq = 0;
        ASSERT_EQ(std::sscanf(line.c_str(), "%31s %d %lld", barcode, &version, &seq), 3) << line;
        logged.insert({barcode, version});
        versions[barcode].push_back(version);
    }
    EXPECT_GT(acked.size(), 20u) << "too few updates got through to test anything";
    EXPECT_GT(failures.load(), 0) << "no request met a dead daemon: the kills came at the wrong time";
    EXPECT_EQ(logged, acked);
    // The versions of a copy are 2, 3, ... without holes, logged in commit order.
    for (int i = 0; i < kCopies; ++i) {
        const std::string barcode = fmt::format("C{}", i);
        const int version = std::stoi(schema.Query1(fmt::format("SELECT version FROM holding WHERE barcode = '{}'", barcode)));
        std::vector<int> expected;
        for (int v = 2; v <= version; ++v) expected.push_back(v);
        EXPECT_EQ(versions[barcode], expected) << barcode;
    }
    EXPECT_EQ(schema.Query1("SELECT count(*) = max(seq) AND max(seq) = (SELECT last_seq FROM change_counter)"
                            " FROM change_log"),
              "t");
}

}  // namespace
}  // namespace iblsync::test
