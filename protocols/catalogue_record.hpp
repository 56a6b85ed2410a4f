#pragma once
// A bibliographic record as the catalogue stores it: the canonical MARCXML
// text plus the normalised fields that search and deduplication use.

#include <string>
#include <vector>

#include "protocols/marc_record.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols {

struct CatalogueRecord {
    std::string local_id;  // the source library's own id (001)
    std::string marcxml;   // canonical <record> element, UTF-8
    std::string title;     // 245 $a $b $n $p, for display
    std::string title_key;
    std::string author_key;
    int year = 0;
    std::string language;
    std::string material_type;
    std::vector<std::string> isbns, issns, oclc, ppn;
    std::vector<std::string> warnings;  // e.g. an ISBN with a wrong check digit
};

// Describes a MARC 21 bibliographic record. Rejected: no 001, a 001 longer
// than 200 bytes, no 245, a holdings or authority record (leader/06), and
// UNIMARC (title in 200, no 245).
Result<CatalogueRecord> DescribeRecord(const marc::Record& record);

}  // namespace iblsync::protocols
