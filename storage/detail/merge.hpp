#pragma once
// The one path by which records and copies enter the catalogue, shared by
// the bulk load (iblctl import) and the incremental writes (push API,
// harvesters): rows are staged into session-local scratch tables, then
// Merge() applies them in a few set-based statements inside the caller's
// transaction. Private to storage/.
//
// A bulk load knows more than an incremental write: it has read the
// library's checksums first (catalogue_import.cpp), so it can send a record
// it knows to be new straight into bib_record (AddNew) and an unchanged one
// without its content (AddUnchanged). The content of a record is then written
// once, which is what makes a load run close to the speed of COPY.

#include <memory>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "protocols/catalogue_record.hpp"
#include "storage/detail/copy_writer.hpp"

namespace iblsync::storage::detail {

// The checksum stored with a record: md5 of its canonical form, as hex.
std::string RecordChecksum(const std::string& raw);

// Where a bulk load's Stagers put everything but the new records while the
// load is parsed; Replay() sends it before the merge (see CopySpool).
// Copies of new records that a bulk load wrote straight into holding,
// with the range of their ids; Merge() writes their change_log rows.
// `log` holds their change_log lines without the seq column, in id order,
// for the merge to number and send when no later record of the load
// touched them (then they are exactly as the load wrote them).
struct DirectCopies {
    long long count = 0, first_id = 0, last_id = 0;
    CopySpool* log = nullptr;
};

struct LoadSpools {
    LoadSpools();
    CopySpool holding, stage, hold_stage, direct_log;
    DirectCopies direct;
    void Replay(pqxx::work& tx);
};

// Collects rows in memory and writes them with COPY on Flush(): records
// known to be new into bib_record, everything into the scratch tables
// import_stage and import_hold_stage. Not thread-safe; one per transaction.
class Stager {
public:
    // With `spools`, only bib_record is written at Flush(); the rest is
    // spooled and written by spools->Replay().
    Stager(pqxx::work& tx, std::string library, LoadSpools* spools = nullptr);
    ~Stager();

    // A record the library does not have: written to bib_record as it is;
    // Merge() only adds its work, copies and change_log row. The caller must
    // be sure (under the library's lock); otherwise the unique key fails.
    // `direct_copies` marks the copies whose barcodes the library does not
    // have and no earlier record of the load had: they go straight into
    // holding. The others are merged.
    void AddNew(long long ord, protocols::CatalogueRecord record, std::string checksum,
                std::vector<bool> direct_copies = {}, long long group = -1);
    // A record that may or may not exist: merged by checksum.
    // `group`: see MergeOptions::grouped; -1 when not grouped.
    void AddUpsert(long long ord, protocols::CatalogueRecord record, std::string checksum, long long group = -1);
    // A live record whose stored checksum equals `checksum`: staged without
    // its content, for its copies and for `full`. Merge() checks the claim.
    void AddUnchanged(long long ord, const protocols::CatalogueRecord& record, std::string checksum);
    void AddDelete(long long ord, const std::string& local_id);

    std::size_t PendingRecords() const;
    std::size_t PendingBytes() const { return pending_bytes_; }
    void Flush();  // required before Merge()

private:
    struct Row;
    std::unique_ptr<CopyWriter> Open(CopySpool LoadSpools::*which, const char* table,
                                     const std::vector<std::string>& columns);
    pqxx::work& tx_;
    std::string library_;
    LoadSpools* spools_;
    std::vector<Row> rows_;
    std::size_t new_rows_ = 0;
    std::size_t direct_copies_ = 0;
    std::size_t pending_bytes_ = 0;
};

// Creates the scratch tables once per session (temporary, emptied at every
// commit).
void PrepareStage(pqxx::work& tx);
// Empties the scratch tables, for a transaction that merges more than once
// (one peer page touches several libraries).
void ClearStage(pqxx::work& tx);

struct MergeCounts {
    long long duplicates = 0;  // staged rows superseded by a later one with the same local id
    long long inserted = 0, updated = 0, unchanged = 0, deleted = 0, absent = 0;
    long long holdings_inserted = 0, holdings_updated = 0, holdings_deleted = 0;
    long long works_created = 0, works_merged = 0, records_moved = 0;
    long long first_seq = 0, last_seq = 0;  // change_log range written; 0 if none
};

struct MergeOptions {
    bool full = false;        // the library's live records that were not staged are deleted
    bool may_repeat = true;   // false: the caller knows no local id was staged twice
    // The caller grouped the records it staged with content by shared match
    // keys (import_stage.grp, with import_grp_remap for groups it joined
    // after staging them), so works need no label spreading within the load.
    bool grouped = false;
    DirectCopies direct_copies;
};

// Applies what was staged to `library`. Takes the catalogue-wide write lock
// (the change_counter row) until the commit: works are shared between
// libraries, so two merges must not assign them from the same snapshot.
// Afterwards the scratch table import_rec(ord, local_id, id, change, version,
// holdings, old_work, ...) says what happened to each staged row, until the
// commit empties it.
MergeCounts Merge(pqxx::work& tx, const std::string& library, const MergeOptions& options);

struct WorkChanges {
    long long created = 0;
    long long merged = 0;  // works merged into another
    long long moved = 0;   // records that left one work for another
};

// Part of Merge(): fills dd_label(record_id, label) (and dd_new for new works)
// with the work of every record being inserted or updated, creating and
// merging works as needed, and maintains record_key. Records sharing an ISBN,
// ISSN, OCLC number or PPN, or title key + author key + year + material type,
// end up in one work.
// `grouped`: see MergeOptions.
WorkChanges AssignWorks(pqxx::work& tx, bool grouped);

}  // namespace iblsync::storage::detail
