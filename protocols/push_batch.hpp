#pragma once
// The request bodies of the push API that carry many items: record batches
// (NDJSON, or a JSON array of records) and availability updates (a JSON
// array). A body that is not valid as a whole fails as a whole; inside a
// valid body each item is parsed on its own, so one bad item is reported
// by its position and does not spoil the others.

#include <string>
#include <string_view>
#include <vector>

#include "protocols/holdings.hpp"
#include "protocols/json_record.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols {

struct BatchLimits {
    std::size_t max_items = 1000;
    std::size_t max_depth = 32;  // nesting of arrays and objects
    JsonRecordLimits record;
};

// Deepest nesting of arrays/objects in a JSON text (strings skipped), or
// an error once it passes `max_depth`: checked before parsing, so that a
// hostile body costs a scan and nothing more.
Result<std::size_t> CheckJsonDepth(std::string_view text, std::size_t max_depth);

struct RecordItem {
    Result<JsonRecord> record = Fail("not parsed");
};

// NDJSON (one record per non-blank line) when `ndjson`, else a JSON array
// of records. Item errors carry JSON pointers relative to the whole body
// ("/3/title": the fourth record; in NDJSON blank lines do not count).
Result<std::vector<RecordItem>> ParseRecordBatch(std::string_view body, bool ndjson, const BatchLimits& limits);

struct AvailabilityItem {
    std::string barcode;    // either this
    long long item_id = 0;  // or this
    ItemStatus status = ItemStatus::kAvailable;
    std::string due_date;    // YYYY-MM-DD
    std::string changed_at;  // canonical UTC (NormalizeTimestamp)
};

// A JSON array of {"barcode"|"item_id", "status", "due_date"?, "changed_at"?}.
Result<std::vector<Result<AvailabilityItem>>> ParseAvailabilityBatch(std::string_view body, const BatchLimits& limits);

}  // namespace iblsync::protocols
