#pragma once
// UTF-8 validation (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.

#include <cstddef>
#include <string_view>

namespace iblsync::protocols {

inline constexpr std::size_t kUtf8Valid = static_cast<std::size_t>(-1);

// Offset of the first byte that is not part of valid UTF-8, or kUtf8Valid.
std::size_t FindInvalidUtf8(std::string_view s);

inline bool IsValidUtf8(std::string_view s) { return FindInvalidUtf8(s) == kUtf8Valid; }

}  // namespace iblsync::protocols
