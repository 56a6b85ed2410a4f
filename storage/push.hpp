#pragma once
// Writes that library systems push over the API, and what the API reads
// back. Every write runs in one transaction that also holds its audit row,
// the library's push counter and, when the client sent an Idempotency-Key,
// the answer it is given: a retry of a committed write gets that answer and
// writes nothing. Nothing is acknowledged that is not committed.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "protocols/holdings.hpp"
#include "storage/catalogue_writer.hpp"

namespace iblsync::storage {

class Database;

// The answer the API gives to a write, as stored with its idempotency key.
struct StoredAnswer {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
};

struct WriteContext {
    long long token_id = 0;
    std::string action;           // audit: "PUT /v1/libraries/NL-…/records/…"
    std::string idempotency_key;  // "" if the client sent none
    std::string request_hash;     // what the key was first used for (method, path, body)
    bool all_or_nothing = false;  // one failed item fails the whole write
};

// How a write ended.
enum class WriteStatus {
    kDone,                 // committed; `answer` is what to send
    kReplayed,             // the key was used before for this request; `answer` is the first answer
    kKeyReused,            // the key was used before for a different request: nothing written
    kPreconditionFailed,   // If-Match / If-None-Match did not hold: nothing written
    kRolledBack,           // all_or_nothing and an item failed: nothing written; `answer` explains
};

template <class T>
struct Written {
    WriteStatus status = WriteStatus::kDone;
    StoredAnswer answer;
    T result{};
    int current_version = 0;  // kPreconditionFailed: the record's version now (0: none)
};

// A precondition on the single record a write names (ETag / If-Match).
struct RecordPrecondition {
    std::optional<int> if_match;  // the version the client last saw; 0 means "*" (any live version)
    bool if_none_match = false;   // If-None-Match: * (create only)
};

// Answer renderers run inside the transaction, before the commit, so that
// the stored answer is exactly the one sent. `failed` says whether the
// write should be rolled back (all_or_nothing with a failed item).
template <class T>
using Render = std::function<StoredAnswer(const T& result, bool& failed)>;

Written<BatchResult> PushRecords(Database& db, const std::string& library, const std::vector<RecordChange>& changes,
                                 const WriteContext& context, const RecordPrecondition& precondition,
                                 const Render<BatchResult>& render);

struct AvailabilityUpdate {
    std::string barcode;   // either this
    long long item_id = 0;  // or this (holding id)
    protocols::ItemStatus status = protocols::ItemStatus::kAvailable;
    std::string due_date;    // YYYY-MM-DD, "" for none
    std::string changed_at;  // canonical RFC 3339 UTC, "" if the library system sent none
};

enum class AvailabilityOutcome {
    kUpdated,
    kUnchanged,   // the copy was like this already
    kStale,       // older than what is stored (by the library system's changed_at): ignored
    kNotFound,    // the library has no such copy
    kSuperseded,  // a later entry of the same batch for the same copy counts
};
const char* ToString(AvailabilityOutcome outcome);

struct AvailabilityResult {
    AvailabilityOutcome outcome = AvailabilityOutcome::kNotFound;
    long long item_id = 0;
    std::string barcode;
    int version = 0;                // the copy's version after the write
    std::string stored_changed_at;  // kStale: the newer time that is stored
};

struct AvailabilityBatch {
    std::vector<AvailabilityResult> items;  // one per update, in the order given
    long long updated = 0, unchanged = 0, stale = 0, not_found = 0, superseded = 0;
    long long first_seq = 0, last_seq = 0;  // change_log rows written (0 if none)
};

Written<AvailabilityBatch> PushAvailability(Database& db, const std::string& library,
                                            const std::vector<AvailabilityUpdate>& updates,
                                            const WriteContext& context, const Render<AvailabilityBatch>& render);

// --- reads ---------------------------------------------------------------

struct StoredHolding {
    long long id = 0;
    std::string library, barcode, branch, shelfmark, status, due_date, changed_at, updated_at;
    int version = 0;
    std::string record_local_id;
};

struct StoredRecord {
    long long id = 0;
    std::string library, local_id, format, raw, checksum, title, material_type, updated_at;
    int pub_year = 0;
    int version = 0;
    bool deleted = false;
    long long work_id = 0;
    std::vector<std::string> isbns, issns, oclc, ppn;
    std::vector<StoredHolding> holdings;
};

std::optional<StoredRecord> ReadRecord(Database& db, const std::string& library, const std::string& local_id);
// The live records of a work, with their copies; empty if there is no such work.
std::vector<StoredRecord> ReadWork(Database& db, long long work_id);

struct Change {
    long long seq = 0;
    std::string changed_at, entity, op, library, local_id, record_local_id;
    long long entity_id = 0;
    int version = 0;
    std::optional<StoredHolding> holding;  // a holding change: the copy as it is now (none once deleted)
    long long holding_record_id = 0;       // and the record it is on now
};

// Which changes a reader wants, and whether it wants the records they touch.
struct ChangeFilter {
    std::string origin;          // only libraries served by this POI ("" all); a library without a
                                 // POI counts as served by this node
    std::string exclude_origin;  // not those served by this POI
    bool embed = false;          // fill ChangePage::states and ::libraries
};

// A library as a feed names it, with the POI serving it.
struct FeedLibrary {
    std::string isil, name, province, poi;
};

struct ChangePage {
    std::vector<Change> changes;
    long long head = 0;        // the last sequence number committed
    long long oldest = 0;      // the first still kept (head + 1 when the log is empty)
    long long next_since = 0;  // where the reader goes on: the last change, or the head when the page
                               // is not full (a filter may have passed over changes)
    // embed: the current state of every record the changes touch (for a
    // copy: its record), and the libraries of those records.
    std::vector<StoredRecord> states;
    std::vector<FeedLibrary> libraries;
};

// The changes after `since`, in order, at most `limit`.
ChangePage ReadChanges(Database& db, long long since, int limit, const ChangeFilter& filter = {});
// The last sequence number committed.
long long ChangeHead(Database& db);

// --- retention -----------------------------------------------------------

struct Pruned {
    long long changes = 0;           // change_log rows removed from the front of the feed
    long long idempotency_keys = 0;  // stored answers past their time
};

// Removes change_log rows older than `keep_changes_days` (0: keep all) and
// idempotency keys older than `keep_idempotency_hours`. Only a prefix of the
// feed is ever removed, in batches, so that the feed stays gap-free from
// its new oldest change and a reader behind it is told so (410).
Pruned PruneRetained(Database& db, int keep_changes_days, int keep_idempotency_hours);

}  // namespace iblsync::storage
