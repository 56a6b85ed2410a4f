#include "tests/support/yaz_cql.hpp"

#include <vector>

#include <yaz/cql.h>

namespace iblsync::test {
namespace {

std::string Str(const char* s) { return s ? s : ""; }

std::string WithUri(const char* name, const char* uri) {
    return uri ? Str(name) + "@" + Str(uri) : Str(name);
}

// YAZ links modifiers newest first; the canonical form has them as written.
std::string Modifiers(const cql_node* m) {
    std::vector<std::string> mods;
    for (; m; m = m->u.st.modifiers) {
        std::string one = "/" + WithUri(m->u.st.index, m->u.st.index_uri);
        if (m->u.st.relation) one += " " + Str(m->u.st.relation) + " " + Str(m->u.st.term);
        mods.insert(mods.begin(), one);
    }
    std::string out = "[";
    for (std::size_t i = 0; i < mods.size(); ++i) out += (i ? " " : "") + mods[i];
    return out + "]";
}

std::string Canonical(const cql_node* n) {
    if (!n) return "()";
    switch (n->which) {
        case CQL_NODE_ST: {
            std::string out = "(sc " + WithUri(n->u.st.index, n->u.st.index_uri) + " " +
                              WithUri(n->u.st.relation, n->u.st.relation_uri) + " " + Modifiers(n->u.st.modifiers) +
                              " \"" + Str(n->u.st.term) + "\"";
            for (const cql_node* e = n->u.st.extra_terms; e; e = e->u.st.extra_terms)
                out += " \"" + Str(e->u.st.term) + "\"";
            return out + ")";
        }
        case CQL_NODE_BOOL:
            return "(" + Str(n->u.boolean.value) + " " + Modifiers(n->u.boolean.modifiers) + " " +
                   Canonical(n->u.boolean.left) + " " + Canonical(n->u.boolean.right) + ")";
        case CQL_NODE_SORT: {
            std::string out = Canonical(n->u.sort.search) + " sortby";
            for (const cql_node* k = n; k; k = k->u.sort.next)
                out += " (key " + Str(k->u.sort.index) + " " + Modifiers(k->u.sort.modifiers) + ")";
            return out;
        }
    }
    return "(?)";
}

}  // namespace

std::optional<std::string> YazCanonical(const std::string& query) {
    CQL_parser cp = cql_parser_create();
    cql_parser_strict(cp, 1);
    std::optional<std::string> out;
    if (cql_parser_string(cp, query.c_str()) == 0) out = Canonical(cql_parser_result(cp));
    cql_parser_destroy(cp);
    return out;
}

}  // namespace iblsync::test
