#pragma once
// The canonical form of iblsync's CQL tree that tests/support/yaz_cql.hpp
// writes for YAZ's tree: prefix assignments resolved the way YAZ resolves
// them (the innermost assignment that fits wins; an unnamed one applies to
// indexes without a dot), modifiers in the order written.

#include <string>
#include <vector>

#include "protocols/cql.hpp"

namespace iblsync::test {

namespace detail {

inline bool PrefixIs(const std::string& name, const std::string& prefix) {
    const auto dot = name.find('.');
    if (dot == std::string::npos || dot != prefix.size()) return false;
    for (std::size_t i = 0; i < dot; ++i)
        if (std::tolower(static_cast<unsigned char>(name[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
            return false;
    return true;
}

// `name` with the prefix of the innermost assignment that fits taken off and
// its URI appended ("title@uri").
inline std::string Resolve(const std::string& name, const std::vector<const protocols::CqlPrefix*>& scopes,
                           bool unnamed_applies) {
    for (auto it = scopes.rbegin(); it != scopes.rend(); ++it) {
        const auto& p = **it;
        if (!p.name.empty() && PrefixIs(name, p.name)) return name.substr(p.name.size() + 1) + "@" + p.uri;
        if (p.name.empty() && unnamed_applies && name.find('.') == std::string::npos) return name + "@" + p.uri;
    }
    return name;
}

inline std::string Modifiers(const std::vector<protocols::CqlModifier>& mods,
                             const std::vector<const protocols::CqlPrefix*>* scopes) {
    std::string out = "[";
    for (std::size_t i = 0; i < mods.size(); ++i) {
        out += (i ? " /" : "/") + (scopes ? Resolve(mods[i].name, *scopes, false) : mods[i].name);
        if (!mods[i].comparison.empty()) out += " " + mods[i].comparison + " " + mods[i].value;
    }
    return out + "]";
}

inline std::string Node(const protocols::CqlNode& n, std::vector<const protocols::CqlPrefix*>& scopes) {
    for (const auto& p : n.prefixes) scopes.push_back(&p);
    std::string out;
    if (n.kind == protocols::CqlNode::Kind::kClause) {
        out = "(sc " + Resolve(n.index, scopes, true) + " " + Resolve(n.relation.name, scopes, false) + " " +
              Modifiers(n.relation.modifiers, &scopes) + " \"" + n.term + "\")";
    } else {
        out = "(" + n.op + " " + Modifiers(n.op_modifiers, nullptr) + " " + Node(*n.left, scopes) + " " +
              Node(*n.right, scopes) + ")";
    }
    scopes.resize(scopes.size() - n.prefixes.size());
    return out;
}

}  // namespace detail

inline std::string Canonical(const protocols::CqlQuery& q) {
    std::vector<const protocols::CqlPrefix*> scopes;
    std::string out = detail::Node(*q.root, scopes);
    if (!q.sort_keys.empty()) {
        out += " sortby";
        for (const auto& k : q.sort_keys) out += " (key " + k.index + " " + detail::Modifiers(k.modifiers, nullptr) + ")";
    }
    return out;
}

}  // namespace iblsync::test
