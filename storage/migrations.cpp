#include "storage/migrations.hpp"

#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace iblsync::storage {

int LatestKnownVersion() {
    auto all = KnownMigrations();
    return all.empty() ? 0 : all.back().version;
}

std::string MigrationChecksum(std::string_view sql) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : sql) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return fmt::format("{:016x}", h);
}

}  // namespace iblsync::storage
