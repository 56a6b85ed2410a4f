#pragma once
// What readers of XML from outside check before walking a document.

#include <algorithm>
#include <cstddef>
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

}  // namespace iblsync::protocols
