#include "protocols/isil.hpp"

#include <fmt/format.h>

namespace iblsync::protocols {

Result<std::string> NormalizeIsil(std::string_view raw) {
    constexpr std::size_t kMaxLength = 16;  // ISO 15511 section 3.2
    if (raw.empty()) return Fail("ISIL is empty");
    if (raw.size() > kMaxLength)
        return Fail(fmt::format("ISIL '{}' is longer than {} characters", raw, kMaxLength));
    std::string out;
    out.reserve(raw.size());
    for (char c : raw) {
        char u = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
        bool allowed = (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' || u == '/' ||
                       u == ':';
        if (!allowed) {
            unsigned byte = static_cast<unsigned char>(c);
            return Fail(fmt::format("ISIL contains a character outside A-Z 0-9 / - : (byte 0x{:02x})",
                                    byte));
        }
        out.push_back(u);
    }
    if (out.rfind("NL-", 0) != 0)
        return Fail(fmt::format("ISIL '{}' does not start with the Dutch prefix NL-", out));
    if (out.size() == 3) return Fail("ISIL has no identifier after the NL- prefix");
    return out;
}

}  // namespace iblsync::protocols
