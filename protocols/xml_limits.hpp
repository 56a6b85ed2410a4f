#pragma once
// What readers of XML from outside check before walking a document, and
// how they cut pieces out of it.

#include <algorithm>
#include <cstddef>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pugixml.hpp>

namespace iblsync::protocols {

// How deep elements nest from `root` (which counts as 1). Counting stops
// once past `limit`, so a hostile document costs no more than that.
inline std::size_t ElementDepth(const pugi::xml_node& root, std::size_t limit) {
    std::size_t deepest = 0;
    std::vector<std::pair<pugi::xml_node, std::size_t>> todo{{root, 1}};
    while (!todo.empty()) {
        auto [n, d] = todo.back();
        todo.pop_back();
        deepest = std::max(deepest, d);
        if (deepest > limit) break;
        for (auto c : n.children())
            if (c.type() == pugi::node_element) todo.emplace_back(c, d + 1);
    }
    return deepest;
}

// The first child element of `parent` with the local name `local`, whatever
// its prefix; empty if none.
inline pugi::xml_node ChildByLocalName(const pugi::xml_node& parent, std::string_view local) {
    for (auto c : parent.children()) {
        if (c.type() != pugi::node_element) continue;
        std::string_view name = c.name();
        const auto colon = name.find(':');
        if ((colon == std::string_view::npos ? name : name.substr(colon + 1)) == local) return c;
    }
    return {};
}

// The element as a document of its own: namespace declarations of its
// ancestors that it relies on are copied onto it, so that a reader of the
// piece (a record cut out of an SRU or OAI-PMH response) sees what it would
// see in a file.
inline std::string StandaloneElement(const pugi::xml_node& element) {
    pugi::xml_document doc;
    auto copy = doc.append_copy(element);
    for (auto a = element.parent(); a && a.type() == pugi::node_element; a = a.parent())
        for (auto attr : a.attributes()) {
            std::string_view name = attr.name();
            if (name != "xmlns" && name.rfind("xmlns:", 0) != 0) continue;
            if (!copy.attribute(attr.name())) copy.append_attribute(attr.name()) = attr.value();
        }
    std::ostringstream out;
    doc.save(out, "", pugi::format_raw | pugi::format_no_declaration, pugi::encoding_utf8);
    return out.str();
}

}  // namespace iblsync::protocols
