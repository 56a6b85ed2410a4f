#pragma once
// The catalogue as an OAI-PMH repository sees it: each record at its last
// change (to the record or to one of its copies), in change order, with a
// datestamp; deleted records stay as deleted. The list is read in pages
// after a position, so a harvest goes on where its resumption token says,
// whatever happened in between.

#include <optional>
#include <string>
#include <vector>

#include "protocols/oai_pmh.hpp"
#include "storage/push.hpp"

namespace iblsync::storage {

class Database;

struct OaiListRequest {
    protocols::oai::SetFilter set;
    long long from = -1, until = -1;  // inclusive, in seconds since 1970 (UTC); -1: open
    long long after = 0;              // the position of the last item already given
    int limit = 100;
    bool content = true;              // records with their copies (ListRecords), or headers only
    bool count = false;               // count the whole list (first page)
    std::vector<std::string> excluded;  // libraries kept out of the repository
};

struct OaiEntry {
    long long position = 0;  // change_log seq: the next page starts after it
    long long datestamp = 0; // seconds since 1970 (UTC)
    std::string library, local_id, province, poi;
    bool deleted = false;
    std::string format, raw;  // with content, unless deleted
    std::vector<StoredHolding> holdings;
};

struct OaiList {
    std::vector<OaiEntry> entries;
    bool more = false;     // items follow the last entry
    long long count = -1;  // the whole list's size when asked
};

OaiList ListOaiEntries(Database& db, const OaiListRequest& request);

// One record with its copies; nullopt if the repository does not have it.
std::optional<OaiEntry> ReadOaiEntry(Database& db, const std::string& library, const std::string& local_id,
                                     const std::vector<std::string>& excluded);

struct OaiRepositoryFacts {
    long long earliest = 0;  // the earliest datestamp; the current time when empty
    std::string sample_library, sample_local_id;
    struct Library {
        std::string isil, name, province, poi;
    };
    std::vector<Library> libraries;  // those with records in the repository
};
OaiRepositoryFacts ReadOaiRepositoryFacts(Database& db, const std::vector<std::string>& excluded);

}  // namespace iblsync::storage
