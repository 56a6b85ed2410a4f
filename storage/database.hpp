#pragma once
// The daemon's handle on its PostgreSQL database. Calls block: the daemon
// runs them on its DB thread pool, never on the event loop.

#include <memory>
#include <string>
#include <vector>

#include "storage/errors.hpp"

namespace iblsync::storage {

namespace detail {
class ConnectionPool;
}

struct DatabaseStats {
    int pool_size = 0;
    int in_use = 0;
    int open = 0;
    bool up = false;  // the last attempt to use the server succeeded
    long long reconnects = 0;
    long long failures = 0;
    std::string last_error;
};

struct MigrationReport {
    int from_version = 0;
    int to_version = 0;
    std::vector<int> applied;           // versions applied by this call
    std::vector<std::string> warnings;  // e.g. an applied file that was edited later
};

class Database {
public:
    // `conninfo` is a libpq connection string; `pool_size` connections at most.
    Database(std::string conninfo, int pool_size);
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    // Brings the schema up to LatestKnownVersion() in one transaction, under an
    // advisory lock so that two daemons starting at once apply each version
    // exactly once. Throws SchemaTooNew if the database is ahead of this binary.
    MigrationReport Migrate();

    // Highest applied migration version; 0 on an empty database.
    int SchemaVersion();

    // Records which node owns this database on first use; throws
    // IdentityMismatch if it already belongs to another node.
    void ClaimIdentity(const std::string& role, const std::string& isil);

    // Cancels running statements (used when the shutdown deadline passes).
    void CancelAll();

    DatabaseStats Stats() const;

    // For storage's own modules (catalogue_writer.cpp, ...): the pool is an
    // incomplete type everywhere else.
    detail::ConnectionPool& Pool() { return *pool_; }

private:
    std::unique_ptr<detail::ConnectionPool> pool_;
};

// Adds connect_timeout and application_name to a conninfo string unless it sets
// them already, so that an unreachable server cannot stall a DB thread for long.
std::string WithDefaults(const std::string& conninfo);

}  // namespace iblsync::storage
