// Migrations against the run's private PostgreSQL, each test in its own schema.

#include "storage/migrations.hpp"

#include <thread>

#include <gtest/gtest.h>

#include "storage/database.hpp"
#include "tests/support/test_env.hpp"

namespace iblsync::storage {
namespace {

using test::TestSchema;

TEST(Migrations, FreshDatabaseGetsEveryVersionOnce) {
    TestSchema schema;
    Database db(schema.conninfo(), 1);
    EXPECT_EQ(db.SchemaVersion(), 0);
    auto report = db.Migrate();
    EXPECT_EQ(report.from_version, 0);
    EXPECT_EQ(report.to_version, LatestKnownVersion());
    EXPECT_EQ(report.applied.size(), KnownMigrations().size());
    EXPECT_EQ(db.SchemaVersion(), LatestKnownVersion());
    EXPECT_EQ(schema.Query1("SELECT count(*) FROM schema_migrations"), std::to_string(KnownMigrations().size()));
    EXPECT_EQ(schema.Query1("SELECT to_regclass('node_identity') IS NOT NULL"), "t");
}

TEST(Migrations, SecondRunAppliesNothing) {
    TestSchema schema;
    Database db(schema.conninfo(), 1);
    db.Migrate();
    auto again = db.Migrate();
    EXPECT_TRUE(again.applied.empty());
    EXPECT_TRUE(again.warnings.empty());
    EXPECT_EQ(again.from_version, LatestKnownVersion());
}

TEST(Migrations, ConcurrentStartsApplyEachVersionExactlyOnce) {
    TestSchema schema;
    constexpr int kDaemons = 6;
    std::vector<std::thread> threads;
    std::atomic<int> applied_total{0}, failures{0};
    for (int i = 0; i < kDaemons; ++i) {
        threads.emplace_back([&] {
            try {
                Database db(schema.conninfo(), 1);
                applied_total += static_cast<int>(db.Migrate().applied.size());
            } catch (const std::exception& e) {
                ++failures;
                ADD_FAILURE() << e.what();
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(applied_total.load(), static_cast<int>(KnownMigrations().size()));
    EXPECT_EQ(schema.Query1("SELECT count(*) FROM schema_migrations"), std::to_string(KnownMigrations().size()));
}

TEST(Migrations, RefusesASchemaNewerThanThisBinary) {
    TestSchema schema;
    Database db(schema.conninfo(), 1);
    db.Migrate();
    schema.Exec("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')");
    try {
        db.Migrate();
        FAIL() << "Migrate accepted a newer schema";
    } catch (const SchemaTooNew& e) {
        EXPECT_EQ(e.found(), 9999);
        EXPECT_EQ(e.known(), LatestKnownVersion());
        EXPECT_NE(std::string(e.what()).find("run the newer iblsyncd"), std::string::npos);
    }
    // Nothing was changed by the refused run.
    EXPECT_EQ(schema.Query1("SELECT count(*) FROM schema_migrations"),
              std::to_string(KnownMigrations().size() + 1));
}

TEST(Migrations, WarnsWhenAnAppliedFileWasEdited) {
    TestSchema schema;
    Database db(schema.conninfo(), 1);
    db.Migrate();
    schema.Exec("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1");
    auto report = db.Migrate();
    ASSERT_EQ(report.warnings.size(), 1u);
    EXPECT_NE(report.warnings[0].find("migration 1 (node_identity) was edited"), std::string::npos);
}

TEST(Migrations, IdentityIsClaimedOnceAndGuarded) {
    TestSchema schema;
    Database db(schema.conninfo(), 1);
    db.Migrate();
    db.ClaimIdentity("poi", "NL-0001");
    db.ClaimIdentity("poi", "NL-0001");  // the same node again: fine
    EXPECT_THROW(db.ClaimIdentity("poi", "NL-0002"), IdentityMismatch);
    EXPECT_THROW(db.ClaimIdentity("national", "NL-0001"), IdentityMismatch);
    EXPECT_EQ(schema.Query1("SELECT isil FROM node_identity"), "NL-0001");
}

TEST(Database, UnreachableServerFailsFastWithDatabaseUnavailable) {
    Database db("host=/nonexistent-dir port=1 user=postgres dbname=postgres", 1);
    EXPECT_THROW(db.SchemaVersion(), DatabaseUnavailable);
    // Within the backoff window the next call does not try to connect again:
    // the failure count stays at one.
    EXPECT_THROW(db.SchemaVersion(), DatabaseUnavailable);
    auto stats = db.Stats();
    EXPECT_FALSE(stats.up);
    EXPECT_EQ(stats.failures, 1);
    EXPECT_NE(stats.last_error.find("/nonexistent-dir"), std::string::npos);
}

TEST(Database, ConninfoDefaultsAreAddedOnlyWhenAbsent) {
    EXPECT_EQ(WithDefaults("host=/tmp"), "host=/tmp connect_timeout=5 application_name=iblsyncd");
    EXPECT_EQ(WithDefaults("host=/tmp connect_timeout=1"), "host=/tmp connect_timeout=1 application_name=iblsyncd");
    EXPECT_EQ(WithDefaults("postgresql://u@h/db"), "postgresql://u@h/db?connect_timeout=5&application_name=iblsyncd");
}

}  // namespace
}  // namespace iblsync::storage
