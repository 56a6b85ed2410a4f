#pragma once
// Versioned schema migrations, embedded from storage/migrations/NNNN_name.sql.

#include <span>
#include <string>
#include <string_view>

namespace iblsync::storage {

struct Migration {
    int version;
    std::string_view name;
    std::string_view sql;
};

// All migrations this binary knows, in ascending version order.
std::span<const Migration> KnownMigrations();

// The highest version in KnownMigrations(), 0 if there are none.
int LatestKnownVersion();

// A stable checksum of a migration's SQL text (FNV-1a 64, hex), recorded when
// it is applied so that a later edit of an applied file is noticed.
std::string MigrationChecksum(std::string_view sql);

}  // namespace iblsync::storage
