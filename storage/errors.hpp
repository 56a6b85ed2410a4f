#pragma once
// The few database failures the rest of the daemon needs to tell apart.
// pqxx exceptions are mapped to these inside storage/.

#include <stdexcept>
#include <string>

namespace iblsync::storage {

// Any database failure that is not one of the kinds below.
class DatabaseError : public std::runtime_error {
public:
    DatabaseError(const std::string& what, std::string sqlstate = {})
        : std::runtime_error(what), sqlstate_(std::move(sqlstate)) {}
    const std::string& sqlstate() const { return sqlstate_; }

private:
    std::string sqlstate_;
};

// The server cannot be reached or went away. Retry later; nothing was committed
// unless the caller saw a commit succeed.
class DatabaseUnavailable : public DatabaseError {
public:
    using DatabaseError::DatabaseError;
};

// The database was migrated by a newer iblsyncd than this one.
class SchemaTooNew : public DatabaseError {
public:
    SchemaTooNew(int found, int known);
    int found() const { return found_; }
    int known() const { return known_; }

private:
    int found_, known_;
};

// The database belongs to another node (different ISIL or role).
class IdentityMismatch : public DatabaseError {
public:
    using DatabaseError::DatabaseError;
};

// A load's scratch file on local disk ($TMPDIR) could not be made, written or
// read back (no such directory, disk full). The load's transaction was not
// committed.
class SpoolError : public DatabaseError {
public:
    using DatabaseError::DatabaseError;
};

// A harvest page was for a run or a cursor position that is no longer the
// source's (another harvester moved it, or the run was restarted). Nothing
// was written; ask for the run again.
class HarvestConflict : public DatabaseError {
public:
    using DatabaseError::DatabaseError;
};

// A peer page was read from a cursor that is no longer the peer's (another
// consumer of the same database moved it). Nothing was written.
class PeerConflict : public DatabaseError {
public:
    using DatabaseError::DatabaseError;
};

// A full load would have deleted more of the library than it may
// (ImportOptions::max_delete_percent). Nothing was written.
class DeletionsRefused : public DatabaseError {
public:
    DeletionsRefused(long long would_delete, long long live_before, int max_percent);
    long long would_delete() const { return would_delete_; }
    long long live_before() const { return live_before_; }

private:
    long long would_delete_, live_before_;
};

}  // namespace iblsync::storage
