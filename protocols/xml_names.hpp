#pragma once
// Element names without their namespace prefix: the readers of MARCXML,
// SRW/SOAP requests and SRU responses match elements by local name, since
// the prefixes (zs:, sru:, marc:, SOAP-ENV:) differ between senders.

#include <string_view>

namespace iblsync::protocols {

inline std::string_view LocalName(std::string_view qualified) {
    const auto colon = qualified.find(':');
    return colon == std::string_view::npos ? qualified : qualified.substr(colon + 1);
}

}  // namespace iblsync::protocols
