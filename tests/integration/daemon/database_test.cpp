// The daemon and its database going away, coming back, or not being its own.
// These tests run a PostgreSQL cluster of their own (tools/pgcluster), since
// they stop it under the daemon.

#include <csignal>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "storage/migrations.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

int ReadyzStatus(int port) {
    auto r = HttpGet(port, "/readyz");
    return r ? r->status : 0;
}

TEST(DatabaseOutage, PostgresRestartFlipsReadyzWithoutRestartingTheDaemon) {
    TempDir dir;
    PrivateCluster pg(dir);
    pg.Start();
    NodeConfig cfg;
    cfg.conninfo = pg.Conninfo();
    DaemonProcess d(dir, cfg);
    ASSERT_TRUE(d.Start()) << d.Log();
    EXPECT_EQ(ReadyzStatus(d.port()), 200);

    pg.Stop();
    ASSERT_TRUE(WaitFor([&] { return ReadyzStatus(d.port()) == 503; }, 15s)) << d.Log();
    auto down = HttpGet(d.port(), "/readyz");
    EXPECT_NE(down->body.find("\"database\":\"unreachable\""), std::string::npos) << down->body;
    EXPECT_EQ(down->headers.at("retry-after"), "5");
    EXPECT_EQ(HttpGet(d.port(), "/healthz")->status, 200);  // alive, just not ready
    EXPECT_TRUE(d.WaitForLog("level=warning database not ready state=unreachable", 10s)) << d.Log();
    auto status = d.Iblctl({"--json", "status"});
    EXPECT_NE(status.out.find("\"state\":\"unreachable\""), std::string::npos) << status.out;

    pg.Start();
    ASSERT_TRUE(WaitFor([&] { return ReadyzStatus(d.port()) == 200; }, 30s))
        << d.Log();
    EXPECT_TRUE(d.Running());
    EXPECT_TRUE(d.WaitForLog("level=info database ready", 10s)) << d.Log();
    auto metrics = HttpGet(d.port(), "/metrics");
    EXPECT_NE(metrics->body.find("iblsync_db_up 1"), std::string::npos);
    EXPECT_EQ(metrics->body.find("iblsync_db_reconnects_total 0"), std::string::npos) << metrics->body;
    d.Signal(SIGTERM);
    EXPECT_EQ(d.WaitExit(15s), 0);
}

TEST(DatabaseOutage, DatabaseDownAtStartupIsRetriedAndMigratedLater) {
    TempDir dir;
    PrivateCluster pg(dir);  // not started yet
    NodeConfig cfg;
    cfg.conninfo = pg.Conninfo();
    DaemonProcess d(dir, cfg);
    ASSERT_TRUE(d.Start()) << d.Log();  // READY: it serves health and waits for the database
    EXPECT_NE(d.Notifications().front().find("db=unreachable"), std::string::npos);
    EXPECT_EQ(ReadyzStatus(d.port()), 503);
    EXPECT_NE(d.Log().find("database not ready at start-up"), std::string::npos);
    pg.Start();
    ASSERT_TRUE(WaitFor([&] { return ReadyzStatus(d.port()) == 200; }, 30s)) << d.Log();
    EXPECT_TRUE(d.WaitForLog(fmt::format("migrations applied from=0 to={}", storage::LatestKnownVersion()), 5s)) << d.Log();
}

TEST(DatabaseOutage, ASchemaThatWentBackIsMigratedAgain) {
    TestSchema schema;
    TempDir dir;
    NodeConfig cfg;
    cfg.conninfo = schema.conninfo();
    DaemonProcess d(dir, cfg);
    ASSERT_TRUE(d.Start()) << d.Log();
    // What a restore from an old backup looks like to the daemon.
    schema.Exec(fmt::format("DROP SCHEMA {0} CASCADE; CREATE SCHEMA {0}", schema.name()));
    ASSERT_TRUE(d.WaitForLog(fmt::format("database schema went back version=0 expected={}", storage::LatestKnownVersion()), 15s))
        << d.Log();
    ASSERT_TRUE(WaitFor([&] { return ReadyzStatus(d.port()) == 200; }, 15s)) << d.Log();
    EXPECT_EQ(schema.Query1("SELECT isil FROM node_identity"), "NL-0000000001");
}

TEST(DatabaseRefusal, SchemaNewerThanTheBinaryStopsStartup) {
    TestSchema schema;
    TempDir dir;
    NodeConfig cfg;
    cfg.conninfo = schema.conninfo();
    {
        DaemonProcess first(dir, cfg);
        ASSERT_TRUE(first.Start()) << first.Log();
        first.Signal(SIGTERM);
        ASSERT_EQ(first.WaitExit(15s), 0);
    }
    schema.Exec("INSERT INTO schema_migrations (version, name, checksum) VALUES (2000, 'from_the_future', 'x')");
    TempDir dir2;
    DaemonProcess d(dir2, cfg);
    EXPECT_FALSE(d.Start(10s));
    EXPECT_EQ(d.exit_code(), 78);
    EXPECT_NE(d.Log().find(fmt::format("database schema is at version 2000, but this iblsyncd knows migrations up to {}", storage::LatestKnownVersion())),
              std::string::npos)
        << d.Log();
    EXPECT_EQ(schema.Query1("SELECT count(*) FROM schema_migrations"), std::to_string(storage::KnownMigrations().size() + 1));  // untouched
}

TEST(DatabaseRefusal, AnotherNodesDatabaseIsRefused) {
    TestSchema schema;
    TempDir dir;
    NodeConfig cfg;
    cfg.conninfo = schema.conninfo();
    cfg.isil = "NL-0000000001";
    {
        DaemonProcess first(dir, cfg);
        ASSERT_TRUE(first.Start()) << first.Log();
    }
    cfg.isil = "NL-0000000002";
    TempDir dir2;
    DaemonProcess d(dir2, cfg);
    EXPECT_FALSE(d.Start(10s));
    EXPECT_EQ(d.exit_code(), 78);
    EXPECT_NE(d.Log().find("this database belongs to node NL-0000000001 (role poi), but the config says "
                           "NL-0000000002 (role poi)"),
              std::string::npos)
        << d.Log();
}

}  // namespace
}  // namespace iblsync::test
