#include "storage/database.hpp"

#include <fmt/format.h>

#include "storage/detail/connection_pool.hpp"
#include "storage/migrations.hpp"

namespace iblsync::storage {

SchemaTooNew::SchemaTooNew(int found, int known)
    : DatabaseError(fmt::format("database schema is at version {}, but this iblsyncd knows "
                                "migrations up to {}; run the newer iblsyncd or restore a backup",
                                found, known)),
      found_(found),
      known_(known) {}

std::string WithDefaults(const std::string& conninfo) {
    std::string out = conninfo;
    // URIs (postgresql://) take parameters after '?'; key=value strings take more pairs.
    bool uri = conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0;
    auto add = [&](const char* key, const char* value) {
        if (out.find(key) != std::string::npos) return;
        if (uri)
            out += fmt::format("{}{}={}", out.find('?') == std::string::npos ? '?' : '&', key, value);
        else
            out += fmt::format("{}{}={}", out.empty() ? "" : " ", key, value);
    };
    add("connect_timeout", "5");
    add("application_name", "iblsyncd");
    return out;
}

Database::Database(std::string conninfo, int pool_size)
    : pool_(std::make_unique<detail::ConnectionPool>(WithDefaults(conninfo), pool_size)) {}

Database::~Database() = default;

namespace {

// The advisory lock is scoped to the schema, so that test schemas in one
// database do not wait for each other.
constexpr const char* kLockSql =
    "SELECT pg_advisory_xact_lock(hashtext('iblsync.migrations:' || "
    "coalesce(current_schema(), '')))";

int AppliedVersion(pqxx::transaction_base& tx) {
    auto exists = tx.exec1("SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (!exists[0].as<bool>()) return 0;
    return tx.exec1("SELECT coalesce(max(version), 0) FROM schema_migrations")[0].as<int>();
}

}  // namespace

MigrationReport Database::Migrate() {
    return pool_->With([](pqxx::connection& c) {
        MigrationReport report;
        pqxx::work tx(c, "migrate");
        tx.exec(kLockSql);
        tx.exec0(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())");
        report.from_version = AppliedVersion(tx);
        int known = LatestKnownVersion();
        if (report.from_version > known) throw SchemaTooNew(report.from_version, known);

        auto rows = tx.exec("SELECT version, checksum FROM schema_migrations");
        for (const auto& m : KnownMigrations()) {
            bool applied = false;
            for (const auto& r : rows) {
                if (r[0].as<int>() != m.version) continue;
                applied = true;
                if (r[1].as<std::string>() != MigrationChecksum(m.sql))
                    report.warnings.push_back(fmt::format(
                        "migration {} ({}) was edited after it was applied", m.version, m.name));
            }
            if (applied) continue;
            tx.exec0(std::string(m.sql));
            tx.exec_params0("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                            m.version, std::string(m.name), MigrationChecksum(m.sql));
            report.applied.push_back(m.version);
        }
        report.to_version = AppliedVersion(tx);
        tx.commit();
        return report;
    });
}

int Database::SchemaVersion() {
    return pool_->With([](pqxx::connection& c) {
        pqxx::read_transaction tx(c);
        return AppliedVersion(tx);
    });
}

void Database::ClaimIdentity(const std::string& role, const std::string& isil) {
    pool_->With([&](pqxx::connection& c) {
        pqxx::work tx(c, "claim_identity");
        tx.exec_params0(
            "INSERT INTO node_identity (role, isil) VALUES ($1, $2) ON CONFLICT DO NOTHING", role,
            isil);
        auto row = tx.exec1("SELECT role, isil FROM node_identity");
        auto have_role = row[0].as<std::string>();
        auto have_isil = row[1].as<std::string>();
        if (have_role != role || have_isil != isil)
            throw IdentityMismatch(fmt::format(
                "this database belongs to node {} (role {}), but the config says {} (role {}); "
                "point database.conninfo at this node's own database",
                have_isil, have_role, isil, role));
        tx.commit();
    });
}

void Database::CancelAll() { pool_->CancelAll(); }

DatabaseStats Database::Stats() const {
    auto s = pool_->Stats();
    return DatabaseStats{s.size, s.in_use, s.open, s.up, s.reconnects, s.failures, s.last_error};
}

}  // namespace iblsync::storage
