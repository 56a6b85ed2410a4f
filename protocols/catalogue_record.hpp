#pragma once
// A bibliographic record as the catalogue stores it: the record as sent, in
// canonical form (ISO 2709 in UTF-8, MARCXML for a record too long for
// ISO 2709, or iblsync JSON), the normalised fields that search and
// deduplication use, and the copies it carries, if any.

#include <string>
#include <vector>

#include "protocols/holdings.hpp"
#include "protocols/json_record.hpp"
#include "protocols/marc_record.hpp"
#include "protocols/normalize.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols {

struct CatalogueRecord {
    std::string local_id;  // the source library's own id (001)
    std::string format = "iso2709";  // what `raw` is: "iso2709", "marcxml" or "json"
    std::string raw;                 // canonical ISO 2709 or <record> element, or canonical JSON; UTF-8
    std::string title;     // 245 $a $b $n $p, for display
    std::string title_key;
    std::string author_key;
    int year = 0;
    std::string language;
    std::string material_type;
    std::vector<std::string> isbns, issns, oclc, ppn;
    SearchText search;  // the words search finds it by
    // The keys deduplication matches on (MatchKeys below).
    std::vector<std::string> match_keys;
    std::vector<std::string> warnings;  // e.g. an ISBN with a wrong check digit
    // The record's copies. Only when holdings_given are they the complete
    // list (copies not listed are removed); otherwise holdings are left alone.
    bool holdings_given = false;
    std::vector<Holding> holdings;
};

// Describes a MARC 21 bibliographic record. Rejected: no 001, a 001 longer
// than 200 bytes, no 245, a holdings or authority record (leader/06), and
// UNIMARC (title in 200, no 245).
Result<CatalogueRecord> DescribeRecord(const marc::Record& record);

// "isbn:<ISBN-13>", "issn:…", "oclc:…", "ppn:…" and, when title key, author
// key, year and material type are all known, "tay:<title>|<author>|<year>|
// <material type>" (material type is in it because a book and its
// audiobook or DVD of the same year are different things to lend). Sorted,
// without repeats. Records sharing any key belong to one work.
std::vector<std::string> MatchKeys(const CatalogueRecord& record);

// The same, plus the copies of `library` found by `mapping` (a disabled
// mapping leaves holdings_given false). Warnings about copies are added.
Result<CatalogueRecord> DescribeRecord(const marc::Record& record, const HoldingsMapping& mapping,
                                       std::string_view library);

// The MARC record stored as `raw` in `format` ("iso2709" or "marcxml"), to
// be served as MARCXML, Dublin Core or anything else.
Result<marc::Record> StoredMarc(std::string_view format, std::string_view raw);

// A JSON record: described through its MARC crosswalk, stored as its
// canonical JSON, with the material type it states.
Result<CatalogueRecord> DescribeRecord(JsonRecord record);

// A record as another node stores it (`format` and `raw` as its change feed
// gives them), described again here. `raw` is kept byte for byte, so both
// nodes hold the same checksum; copies are left to the caller
// (holdings_given false).
Result<CatalogueRecord> DescribeStored(std::string_view format, std::string_view raw);

// The fields of a MARC record that identify its work and name it: leader,
// control fields, standard numbers (020, 022, 024, 028, 035), main and added
// entries (1XX, 7XX), titles (130, 240, 245, 246, 730, 740), edition,
// imprint and extent (250, 260, 264, 300), content/media/carrier types and
// series. Notes, subjects, links and local fields are left out: match keys
// and material type come out the same as for the whole record.
marc::Record BriefRecord(const marc::Record& record);

// As DescribeStored, but a MARC record is kept as its BriefRecord (stored
// anew as ISO 2709): what a POI node following only availability and works
// keeps of the rest of the country. A JSON record is kept whole.
Result<CatalogueRecord> DescribeStoredBrief(std::string_view format, std::string_view raw);

}  // namespace iblsync::protocols
