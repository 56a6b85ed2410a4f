#pragma once
// International Standard Identifier for Libraries (ISO 15511). In this
// network every identifier is Dutch: "NL-" followed by the local part.

#include <string>
#include <string_view>

#include "protocols/result.hpp"

namespace iblsync::protocols {

// Validates an ISIL as used in the Dutch network: prefix "NL-", at most 16
// characters in total, drawn from A-Z 0-9 and "/-:". ISILs compare
// case-insensitively, so the canonical form returned is upper case.
Result<std::string> NormalizeIsil(std::string_view raw);

}  // namespace iblsync::protocols
