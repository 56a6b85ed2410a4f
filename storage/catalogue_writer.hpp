#pragma once
// Incremental writes to one library's part of the catalogue: upsert or
// delete one record or a batch, in one transaction, through the same merge
// as the bulk load (so both paths agree on checksums, works, copies and the
// change log). Used by the push API and the harvesters. Idempotent: sending
// the same batch twice changes nothing the second time and logs nothing.

#include <string>
#include <vector>

#include "protocols/catalogue_record.hpp"
#include "storage/catalogue_import.hpp"

namespace iblsync::storage {

class Database;

struct RecordChange {
    enum class Kind { kUpsert, kDelete } kind = Kind::kUpsert;
    protocols::CatalogueRecord record;  // for kDelete only local_id is read

    static RecordChange Upsert(protocols::CatalogueRecord r) { return {Kind::kUpsert, std::move(r)}; }
    static RecordChange Delete(std::string local_id) {
        RecordChange c{Kind::kDelete, {}};
        c.record.local_id = std::move(local_id);
        return c;
    }
};

enum class RecordOutcome {
    kInserted,
    kUpdated,
    kUnchanged,   // same checksum: the record was not touched (its copies may have been)
    kDeleted,
    kNotFound,    // delete of a record that does not exist or is already deleted
    kSuperseded,  // a later entry in the same batch has the same local id; that one counts
};
const char* ToString(RecordOutcome outcome);

struct RecordResult {
    std::string local_id;
    RecordOutcome outcome = RecordOutcome::kUnchanged;
    long long record_id = 0;  // 0 if the record does not exist
    int version = 0;          // the record's version after the write (0 if none)
    long long work_id = 0;
    int holdings_changed = 0;  // copies inserted, updated or deleted
};

struct BatchResult {
    std::vector<RecordResult> records;  // one per change, in the order given
    ImportSummary summary;
};

// Applies `changes` to `library` in one transaction and commits. Throws
// DatabaseError (nothing written) if the library is not registered (sqlstate
// IBL01) or the database fails; DatabaseUnavailable if the outcome of the
// commit is unknown (retrying the same batch is safe: it is idempotent).
BatchResult ApplyRecordChanges(Database& db, const std::string& library, const std::vector<RecordChange>& changes);
BatchResult ApplyRecordChanges(const std::string& conninfo, const std::string& library,
                               const std::vector<RecordChange>& changes);

}  // namespace iblsync::storage
