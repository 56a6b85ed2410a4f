#pragma once
// The one path by which records and copies enter the catalogue, shared by
// the bulk load (iblctl import) and the incremental writes (push API,
// harvesters): rows are staged into session-local scratch tables, then
// Merge() applies them in a few set-based statements inside the caller's
// transaction. Private to storage/.

#include <memory>
#include <string>

#include <pqxx/pqxx>

#include "protocols/catalogue_record.hpp"

namespace iblsync::storage::detail {

// Writes rows into the scratch table import_stage with COPY. Created by
// BeginStage(); at most one open per transaction (COPY holds the session).
class Stager {
public:
    explicit Stager(pqxx::work& tx);
    ~Stager();
    void Upsert(long long ord, const protocols::CatalogueRecord& record);
    void Delete(long long ord, const std::string& local_id);
    void Complete();  // ends the COPY; required before Merge()

private:
    std::unique_ptr<pqxx::stream_to> stream_;
};

// Creates the scratch tables once per session (temporary, emptied at every
// commit) and returns a stager for this transaction.
std::unique_ptr<Stager> BeginStage(pqxx::work& tx);

struct MergeCounts {
    long long duplicates = 0;  // staged rows superseded by a later one with the same local id
    long long inserted = 0, updated = 0, unchanged = 0, deleted = 0, absent = 0;
    long long holdings_inserted = 0, holdings_updated = 0, holdings_deleted = 0;
    long long works_created = 0, works_merged = 0, records_moved = 0;
    long long first_seq = 0, last_seq = 0;  // change_log range written; 0 if none
};

// Applies what was staged to `library`. With `full`, the library's live
// records that were not staged are deleted. Afterwards the scratch table
// import_rec(ord, local_id, id, change, version, holdings_changes) says what
// happened to each staged row, until the commit empties it.
MergeCounts Merge(pqxx::work& tx, const std::string& library, bool full);

struct WorkChanges {
    long long created = 0;
    long long merged = 0;  // works merged into another
    long long moved = 0;   // records that left one work for another
};

// Part of Merge(): fills dd_label(record_id, label) with the work of every
// record being inserted or updated, creating and merging works as needed,
// and maintains record_key. Records sharing an ISBN, ISSN, OCLC number or
// PPN, or title key + author key + year + material type, end up in one work.
WorkChanges AssignWorks(pqxx::work& tx);

}  // namespace iblsync::storage::detail
