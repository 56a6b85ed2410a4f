// Start-up, systemd notifications, graceful shutdown and reload of the real binary.

#include <pqxx/pqxx>

#include <csignal>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

class LifecycleTest : public ::testing::Test {
protected:
    DaemonProcess& Make(NodeConfig config = {}) {
        config.conninfo = schema_.conninfo();
        daemon_ = std::make_unique<DaemonProcess>(dir_, config);
        return *daemon_;
    }
    TempDir dir_;
    TestSchema schema_;
    std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(LifecycleTest, NotifiesReadyThenStoppingAndExitsZeroOnSigterm) {
    auto& d = Make();
    ASSERT_TRUE(d.Start()) << d.Log();
    const auto& first = d.Notifications().front();
    EXPECT_EQ(first.rfind("READY=1\nSTATUS=NL-0000000001 ", 0), 0u) << first;
    EXPECT_NE(first.find("db=ready"), std::string::npos) << first;
    d.Signal(SIGTERM);
    EXPECT_EQ(d.WaitExit(15s), 0) << d.Log();
    EXPECT_TRUE(d.WaitForNotification("STOPPING=1", 1s));
    EXPECT_NE(d.Log().find("shutdown requested signal=SIGTERM"), std::string::npos);
    EXPECT_NE(d.Log().find("iblsyncd stopped exit_code=0"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(d.control_socket())) << "control socket left behind";
}

TEST_F(LifecycleTest, SigintStopsToo) {
    auto& d = Make();
    ASSERT_TRUE(d.Start()) << d.Log();
    d.Signal(SIGINT);
    EXPECT_EQ(d.WaitExit(15s), 0) << d.Log();
}

TEST_F(LifecycleTest, WatchdogPingsWhileTheLoopRuns) {
    auto& d = Make();
    ASSERT_TRUE(d.Start(20s, std::chrono::microseconds(200000))) << d.Log();
    ASSERT_TRUE(WaitFor(
        [&] {
            int pings = 0;
            for (const auto& n : d.Notifications()) pings += n == "WATCHDOG=1";
            return pings >= 3;
        },
        10s));
}

TEST_F(LifecycleTest, SigtermDuringASlowRequestLetsItFinish) {
    auto& d = Make();
    ASSERT_TRUE(d.Start()) << d.Log();
    // Hold a lock that /readyz's query must wait for: a genuinely slow request.
    pqxx::connection locker(schema_.conninfo());
    pqxx::work tx(locker);
    tx.exec("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE");
    RawConnection slow(d.port());
    ASSERT_TRUE(slow.Send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::this_thread::sleep_for(300ms);  // let the request reach the database and block
    d.Signal(SIGTERM);
    ASSERT_TRUE(d.WaitForNotification("STOPPING=1", 5s));
    // New connections are refused while the old request is still running.
    EXPECT_TRUE(WaitFor([&] { return !RawConnection(d.port()).ok(); }, 5s));
    std::this_thread::sleep_for(500ms);
    EXPECT_TRUE(d.Running()) << "daemon exited with a request still in progress";
    tx.commit();  // release the lock: the request completes
    auto reply = slow.Read(10s);
    ASSERT_TRUE(reply) << d.Log();
    EXPECT_EQ(reply->status, 200) << reply->body;
    EXPECT_EQ(reply->headers.at("connection"), "close");
    EXPECT_EQ(d.WaitExit(15s), 0) << d.Log();
    EXPECT_EQ(d.Log().find("requests_cut"), std::string::npos);
}

TEST_F(LifecycleTest, ShutdownDeadlineCutsARequestThatNeverFinishes) {
    NodeConfig cfg;
    cfg.shutdown_timeout_seconds = 1;
    auto& d = Make(cfg);
    ASSERT_TRUE(d.Start()) << d.Log();
    pqxx::connection locker(schema_.conninfo());
    pqxx::work tx(locker);
    tx.exec("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE");
    RawConnection slow(d.port());
    slow.Send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    std::this_thread::sleep_for(300ms);
    d.Signal(SIGTERM);
    // The lock is never released; the daemon cancels the statement at the deadline.
    EXPECT_EQ(d.WaitExit(20s), 0) << d.Log();
    EXPECT_NE(d.Log().find("shutdown deadline reached requests_cut=1"), std::string::npos) << d.Log();
}

TEST_F(LifecycleTest, SighupWithABrokenConfigKeepsTheOldOneAndSaysWhy) {
    auto& d = Make();
    ASSERT_TRUE(d.Start()) << d.Log();
    auto good = d.config().ToToml();
    d.RewriteConfig(good + "\n[http]\nmax_body_bytes = \"lots\"\n");  // also a duplicate table
    d.Signal(SIGHUP);
    ASSERT_TRUE(d.WaitForLog("config reload rejected origin=SIGHUP", 10s)) << d.Log();
    auto log = d.Log();
    EXPECT_NE(log.find(d.config_path() + ":"), std::string::npos) << log;
    EXPECT_NE(log.find("previous configuration stays in force"), std::string::npos);
    EXPECT_TRUE(d.WaitForNotification("RELOADING=1", 2s));
    EXPECT_TRUE(WaitFor(
        [&] {
            int r = 0;
            for (const auto& n : d.Notifications()) r += n.rfind("READY=1", 0) == 0;
            return r >= 2;
        },
        2s));

    // A bad value in an otherwise valid file: rejected with file, line and key.
    auto bad_value = good;
    bad_value.replace(bad_value.find("level = \"info\""), 14, "level = \"shout\"");
    d.RewriteConfig(bad_value);
    d.Signal(SIGHUP);
    ASSERT_TRUE(d.WaitForLog("log.level: 'shout' is not one of", 10s)) << d.Log();

    // Still serving, with the old settings.
    EXPECT_EQ(HttpGet(d.port(), "/healthz")->status, 200);
    auto status = d.Iblctl({"--json", "status"});
    EXPECT_EQ(status.exit_code, 0) << status.err;
    EXPECT_NE(status.out.find("\"log_level\":\"info\""), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("\"config_reloads\":0"), std::string::npos) << status.out;
}

TEST_F(LifecycleTest, SighupAppliesReloadableSettingsAndNamesRestartOnlyOnes) {
    auto& d = Make();
    ASSERT_TRUE(d.Start()) << d.Log();
    d.config().max_body_bytes = 2048;
    d.config().log_level = "debug";
    d.config().pool_size = 7;  // needs a restart
    d.RewriteConfig(d.config().ToToml());
    d.Signal(SIGHUP);
    ASSERT_TRUE(d.WaitForLog("config reloaded origin=SIGHUP changed=http.max_body_bytes,log.level", 10s))
        << d.Log();
    EXPECT_TRUE(d.WaitForLog("config changes need a restart keys=database.pool_size", 2s)) << d.Log();
    // The new body limit is in force on new requests...
    RawConnection c(d.port());
    c.Send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n" + std::string(3000, 'x'));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    // ...and debug logging is on.
    EXPECT_EQ(HttpGet(d.port(), "/healthz")->status, 200);
    EXPECT_TRUE(d.WaitForLog("level=debug http request method=GET path=/healthz status=200", 5s)) << d.Log();
    auto status = d.Iblctl({"--json", "status"});
    EXPECT_NE(status.out.find("\"pool_size\":4"), std::string::npos) << status.out;
}

TEST_F(LifecycleTest, BadConfigAtStartExitsWithExConfigNamingTheLine) {
    auto& d = Make();
    d.RewriteConfig(d.config().ToToml() + "[surprise]\nx = 1\n");
    EXPECT_FALSE(d.Start(10s));
    EXPECT_EQ(d.exit_code(), 78);
    EXPECT_NE(d.Log().find(d.config_path() + ":22: surprise: unknown section"), std::string::npos) << d.Log();
}

TEST_F(LifecycleTest, CheckConfigValidatesAndExits) {
    auto& d = Make();
    auto ok = RunCommand({IblsyncdPath(), "--check-config", d.config_path()});
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_EQ(ok.out, d.config_path() + ": OK (role=poi isil=NL-0000000001 listen=127.0.0.1:0)\n");
    d.config().isil = "XX-1";
    d.RewriteConfig(d.config().ToToml());
    auto bad = RunCommand({IblsyncdPath(), "--check-config", d.config_path()});
    EXPECT_EQ(bad.exit_code, 78);
    EXPECT_EQ(bad.err, d.config_path() + ":3: node.isil: ISIL 'XX-1' does not start with the Dutch prefix NL-\n");
    auto usage = RunCommand({IblsyncdPath(), "--frobnicate"});
    EXPECT_EQ(usage.exit_code, 64);
    EXPECT_NE(usage.err.find("unknown or incomplete argument '--frobnicate'"), std::string::npos);
}

TEST_F(LifecycleTest, PortInUseIsAClearStartupError) {
    auto& first = Make();
    ASSERT_TRUE(first.Start()) << first.Log();
    TempDir other_dir;
    NodeConfig cfg;
    cfg.conninfo = schema_.conninfo();
    cfg.listen = "127.0.0.1:" + std::to_string(first.port());
    DaemonProcess second(other_dir, cfg);
    EXPECT_FALSE(second.Start(10s));
    EXPECT_EQ(second.exit_code(), 1);
    EXPECT_NE(second.Log().find("cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                                ": Address already in use (another process uses this port; change http.listen)"),
              std::string::npos)
        << second.Log();
}

}  // namespace
}  // namespace iblsync::test
