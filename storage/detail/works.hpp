#pragma once
// Deduplication of bibliographic records into works, run inside the
// transaction that changed the records. Private to storage/.

#include <pqxx/pqxx>

namespace iblsync::storage::detail {

struct WorkChanges {
    long long created = 0;
    long long merged = 0;  // works merged into another
    long long moved = 0;   // records that left one work for another
};

// Assigns a work to every record listed (not deleted) in the temporary table
// import_changed(id, op). Records sharing an ISBN, ISSN, OCLC number or PPN,
// or the same title key + author key + year + material type, end up in one work; works that a
// change connects are merged; records whose identifiers changed move.
WorkChanges AssignWorks(pqxx::work& tx);

}  // namespace iblsync::storage::detail
