#pragma once
// `iblctl import`: bulk-loads record files (MARCXML, ISO 2709, NDJSON in
// iblsync's JSON record format) into a node's catalogue. It talks
// to PostgreSQL directly (conninfo from the daemon's config file), since
// streaming gigabytes through the daemon would gain nothing.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace iblsync::iblctl {

struct ImportArgs {
    std::string library;   // ISIL
    std::string name;      // register the library under this name if it is new
    std::string province;  // with --name
    bool full = false;
    std::string holdings;  // holdings mapping to store for the library (preset or spec); empty: keep
    std::string conninfo;  // --db, else read from `config`
    std::string config;    // daemon config file
    std::string rejects;   // reject file; default iblsync-import-<ISIL>.rejects
    bool json = false;
    std::size_t index_memory = 192u << 20;  // bytes; see storage::ImportOptions::index_memory
    std::vector<std::string> files;
};

// database.conninfo of a daemon config file; "" with `error` set if it
// cannot be read (the message names the file and line).
std::string ConninfoFromConfig(const std::string& path, std::string& error);

// "192M", "64K", "2G" (also "192MiB", "192 mb"; powers of 1024) in bytes;
// nullopt without a unit or outside 64 KiB .. 1 TiB.
std::optional<std::size_t> ParseSize(const std::string& text);

// Returns the process exit code: 0 done (rejected records do not count as
// failure), 1 the load failed and nothing was changed, 2 usage, 6 unreadable file.
int RunImport(const ImportArgs& args);

}  // namespace iblsync::iblctl
