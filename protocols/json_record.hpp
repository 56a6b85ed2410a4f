#pragma once
// iblsync's JSON record format, for library systems that do not speak MARC:
// one JSON object per record (NDJSON for many), with the bibliographic
// description and, optionally, the copies and their availability. The
// format is documented in docs/formats.md; parsing is strict (unknown keys,
// wrong types and duplicate keys are errors that name the JSON pointer), so
// that a typo never silently loses data.
//
// Inside the catalogue a JSON record becomes a MARC 21 record by a fixed
// crosswalk (JsonRecord::marc), so search, deduplication and the MARCXML and
// Dublin Core outputs treat both kinds alike; the JSON text is kept as sent
// (canonicalised) as the record of origin.

#include <string>
#include <string_view>
#include <vector>

#include "protocols/holdings.hpp"
#include "protocols/marc_record.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols {

struct JsonRecordLimits {
    std::size_t max_bytes = 1 << 20;  // one record
    std::size_t max_string_bytes = 8000;
    std::size_t max_array_items = 1000;
    std::size_t max_holdings = 10000;
};

struct JsonRecord {
    std::string id;
    std::string material_type;    // as given in "type", else "book"
    marc::Record marc;            // the crosswalk's MARC 21 record
    std::vector<Holding> holdings;
    bool holdings_given = false;  // "holdings" present (even empty): the copies are exactly these
    std::string canonical;        // compact JSON, keys in documented order, holdings excluded
};

// Parses one JSON record. Errors carry the JSON pointer of the value at
// fault (error_pointer()), "" for the document as a whole.
Result<JsonRecord> ParseJsonRecord(std::string_view text, const JsonRecordLimits& limits = {});

// The "holdings" entries have this shape (also used by the push API's
// availability updates):
//   {"barcode": "…", "status": "on_loan", "due_date": "2026-12-01",
//    "branch": "…", "shelfmark": "…", "changed_at": "2026-11-24T09:30:00Z"}

// RFC 3339 date-time to a canonical UTC form (YYYY-MM-DDTHH:MM:SS[.ffffff]Z).
Result<std::string> NormalizeTimestamp(std::string_view text);

}  // namespace iblsync::protocols
