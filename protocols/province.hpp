#pragma once
// The twelve Dutch provinces, named by their ISO 3166-2:NL codes. A POI
// serves one or more provinces (ProBiblio, for example, serves two).

#include <string>
#include <string_view>

#include "protocols/result.hpp"

namespace iblsync::protocols {

// Accepts "NL-GE" or "GE" in any case; returns the canonical "NL-GE".
Result<std::string> NormalizeProvince(std::string_view raw);

// Dutch name of a canonical province code ("NL-GE" -> "Gelderland"); empty if unknown.
std::string_view ProvinceName(std::string_view code);

}  // namespace iblsync::protocols
