#pragma once
// MARC-8 (the pre-Unicode MARC character set, with ANSEL diacritics and
// escape sequences for Greek, Cyrillic, Hebrew, Arabic and CJK/EACC) to UTF-8.
// The tables are YAZ's (yaz_iconv); we do not keep our own.

#include <string>
#include <string_view>

#include "protocols/result.hpp"

namespace iblsync::protocols::marc {

// Converts one field value. MARC-8 puts combining diacritics before their base
// letter; the output has them after it, as Unicode requires, and by default
// composed where a precomposed character exists (NFC-like), e.g. "e" + acute
// -> "é". kDecomposed gives what yaz-marcdump writes (base + combining mark).
enum class Composition { kComposed, kDecomposed };

Result<std::string> Marc8ToUtf8(std::string_view marc8, Composition composition = Composition::kComposed);

}  // namespace iblsync::protocols::marc
