#pragma once
// The catalogue as delivered to the KB (Wsob art. 11: the KB sets form and
// timing) and to anyone else who wants a copy: each record as MARC 21 with
// its copies and their availability in 852 fields, as a MARCXML collection
// or as NDJSON. `iblctl export` writes it; this is the pure part.
//
// 852 per copy:  $a owner (ISIL)  $b branch  $h shelfmark  $p barcode
//                $9 status (available, on_loan, ...)  $d due date (YYYY-MM-DD)
// The library's own 852 fields are replaced: they describe its copies in
// its own system's way, the new ones in one way for all libraries. 003 is
// set to the library's ISIL, whose control number 001 is.

#include <string>
#include <string_view>
#include <vector>

#include "protocols/marc_record.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols {

struct DeliveryCopy {
    std::string barcode, branch, shelfmark, status, due_date;
};

// A stored record ("iso2709", "marcxml" or "json", the latter through its
// MARC crosswalk) as MARC.
Result<marc::Record> StoredAsMarc(std::string_view format, std::string_view raw);

// The record with 003 = library and one 852 per copy.
marc::Record WithCopies(marc::Record record, std::string_view library, const std::vector<DeliveryCopy>& copies);

// A deleted record for an incremental delivery: leader/05 'd', 001 and 003.
marc::Record DeletedRecord(std::string_view library, std::string_view local_id);

// One NDJSON line (with its newline): library, id, deleted, the record as
// MARC-in-JSON (null if deleted) and the copies.
std::string DeliveryJsonLine(std::string_view library, std::string_view local_id, const marc::Record* record,
                             const std::vector<DeliveryCopy>& copies);

}  // namespace iblsync::protocols
