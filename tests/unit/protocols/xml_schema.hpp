#pragma once
// Schema validation for unit tests: xmllint (libxml2-utils) against the
// schemas in tests/data/schemas (their sources are in SOURCES.md there).

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <fmt/format.h>

namespace iblsync::testing {

inline std::string SchemaDir() { return std::string(IBLSYNC_TEST_DATA_DIR) + "/schemas"; }

// Runs xmllint --schema on `xml`; returns its exit code and fills `output`.
inline int Xmllint(const std::string& schema, const std::string& xml, std::string& output) {
    char path[] = "/tmp/iblsync-xml-XXXXXX";
    int fd = mkstemp(path);
    [[maybe_unused]] auto n = write(fd, xml.data(), xml.size());
    close(fd);
    std::string out_path = std::string(path) + ".out";
    int rc = std::system(
        fmt::format("xmllint --noout --nonet --schema '{}' '{}' > '{}' 2>&1", schema, path, out_path).c_str());
    std::ifstream in(out_path);
    output.assign(std::istreambuf_iterator<char>(in), {});
    std::filesystem::remove(path);
    std::filesystem::remove(out_path);
    return WEXITSTATUS(rc);
}

}  // namespace iblsync::testing
