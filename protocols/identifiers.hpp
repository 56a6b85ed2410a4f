#pragma once
// Standard numbers found in MARC records: ISBN (020), ISSN (022), and the
// catalogue numbers in 035 (OCLC numbers, PICA PPNs as used by the GGC).

#include <string>
#include <string_view>
#include <vector>

#include "protocols/marc_record.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols {

// Reads an ISBN-10 or ISBN-13 from the start of a 020 $a style value such as
// "90-274-3964-0 (geb.)" or "978-90-274-3964-4 : € 19,95", checks its check
// digit and returns it as ISBN-13 digits ("9789027439644").
Result<std::string> NormalizeIsbn(std::string_view text);

// Reads an ISSN ("0028-0836", "0028-0836 (print)"), checks its check digit
// and returns it as "0028-0836" (X upper case).
Result<std::string> NormalizeIssn(std::string_view text);

struct RecordIdentifiers {
    std::vector<std::string> isbns;    // ISBN-13, unique, in record order
    std::vector<std::string> issns;    // NNNN-NNNC
    std::vector<std::string> oclc;     // digits only, from 035 "(OCoLC)..."
    std::vector<std::string> ppn;      // PICA production numbers, from 035 "(NL-LeOCL)..." / "(PPN)..."
    std::vector<std::string> rejected; // values that looked like identifiers but failed their check
};

// Collects the identifiers of a bibliographic record (020 $a, 022 $a, 035 $a).
RecordIdentifiers ExtractIdentifiers(const marc::Record& record);

}  // namespace iblsync::protocols
