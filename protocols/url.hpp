#pragma once
// Percent-encoding (RFC 3986) and application/x-www-form-urlencoded
// parameters, as query strings and form bodies carry them.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace iblsync::protocols {

// %XX decoding; with plus_is_space also '+' to ' ' (form encoding).
// nullopt if a '%' is not followed by two hex digits.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space);

// Encodes everything but A-Z a-z 0-9 - . _ ~
std::string PercentEncode(std::string_view s);

// "a=1&b=x%20y" as name/value pairs in order, repeats kept; empty pairs
// ("a=1&&b=2") skipped, "a" alone is a=''. nullopt if any part is
// malformed; `bad` then holds that part.
std::optional<std::vector<std::pair<std::string, std::string>>> ParseFormParameters(std::string_view text,
                                                                                    std::string* bad = nullptr);

}  // namespace iblsync::protocols
