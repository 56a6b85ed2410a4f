#pragma once
// Reading the MARC test files in tests/data/marc (see PROVENANCE.md there).

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "protocols/iso2709.hpp"
#include "protocols/marcxml.hpp"

namespace iblsync::protocols::marc::testing {

inline std::string DataDir() { return std::string(IBLSYNC_TEST_DATA_DIR) + "/marc"; }

struct Item {
    RawRecord raw;
    Result<Record> record = Fail("not parsed");
};

inline bool IsXml(const std::string& path) { return path.size() > 4 && path.substr(path.size() - 4) == ".xml"; }

inline std::vector<Item> ReadFile(const std::string& path, Composition composition = Composition::kComposed) {
    std::ifstream in(path, std::ios::binary);
    std::vector<Item> items;
    RawRecord raw;
    if (IsXml(path)) {
        MarcXmlSplitter s(in);
        while (s.Next(raw)) {
            Item it{raw};
            it.record = raw.error.empty() ? ParseMarcXmlRecord(raw.bytes) : Result<Record>(Fail(raw.error));
            items.push_back(std::move(it));
        }
    } else {
        Iso2709Splitter s(in);
        while (s.Next(raw)) {
            Item it{raw};
            it.record = raw.error.empty() ? ParseIso2709(raw.bytes, composition) : Result<Record>(Fail(raw.error));
            items.push_back(std::move(it));
        }
    }
    return items;
}

}  // namespace iblsync::protocols::marc::testing
