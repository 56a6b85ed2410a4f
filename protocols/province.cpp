#include "protocols/province.hpp"

#include <array>
#include <utility>

#include <fmt/format.h>

namespace iblsync::protocols {
namespace {

constexpr std::array<std::pair<std::string_view, std::string_view>, 12> kProvinces{{
    {"NL-DR", "Drenthe"},
    {"NL-FL", "Flevoland"},
    {"NL-FR", "Fryslân"},
    {"NL-GE", "Gelderland"},
    {"NL-GR", "Groningen"},
    {"NL-LI", "Limburg"},
    {"NL-NB", "Noord-Brabant"},
    {"NL-NH", "Noord-Holland"},
    {"NL-OV", "Overijssel"},
    {"NL-UT", "Utrecht"},
    {"NL-ZE", "Zeeland"},
    {"NL-ZH", "Zuid-Holland"},
}};

}  // namespace

Result<std::string> NormalizeProvince(std::string_view raw) {
    std::string code;
    for (char c : raw) code.push_back((c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c);
    if (code.size() == 2) code = "NL-" + code;
    for (const auto& [known, name] : kProvinces)
        if (known == code) return code;
    return Fail(fmt::format(
        "'{}' is not a Dutch province code; use an ISO 3166-2:NL code such as NL-GE or NL-ZH",
        raw));
}

std::string_view ProvinceName(std::string_view code) {
    for (const auto& [known, name] : kProvinces)
        if (known == code) return name;
    return {};
}

}  // namespace iblsync::protocols
