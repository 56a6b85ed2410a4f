#pragma once
// CQL, the Contextual Query Language of SRU (version 1.2 of the grammar,
// with sortBy): a parser into a syntax tree, and the tree as XCQL.
//
// The parser follows the grammar of the CQL 1.2 specification, as YAZ's
// parser does in strict mode. Where YAZ accepts more than the grammar (an
// unterminated quote, two terms in a row, an index applied to a
// parenthesised query), this parser refuses; tests/data/cql/corpus.txt lists
// every such query beside what YAZ makes of it.
//
// Terms keep their backslash escapes ("\"", "\*", "\?", "\^", "\\"): what
// a backslash means depends on the index and relation, which the query
// translator knows and the parser does not.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace iblsync::protocols {

// /name or /name<comparison>value, on a relation, a boolean or a sort key.
struct CqlModifier {
    std::string name;        // "ignoreCase", "sort.descending", "distance"
    std::string comparison;  // "" or one of = == < > <= >= <>
    std::string value;
};

struct CqlRelation {
    // A symbol (= == < > <= >= <>) or a name: "any", "all", "adj",
    // "within", "encloses", or a context set's own ("dc.within").
    std::string name = "=";
    std::vector<CqlModifier> modifiers;
};

// `>name="uri"`, or `>"uri"` (name empty: the default context set for
// indexes without a prefix), scoped to the query that follows it.
struct CqlPrefix {
    std::string name;
    std::string uri;
};

struct CqlNode {
    enum class Kind { kClause, kBoolean };
    Kind kind = Kind::kClause;
    std::vector<CqlPrefix> prefixes;  // in force for this node and below, outermost first
    std::size_t position = 0;         // byte offset in the query where the node starts

    // kClause. A bare term has index "cql.serverChoice" and relation "=".
    std::string index = "cql.serverChoice";
    CqlRelation relation;
    std::string term;  // quotes removed, backslash escapes kept
    bool quoted = false;

    // kBoolean: "and", "or", "not" or "prox", in lower case.
    std::string op;
    std::vector<CqlModifier> op_modifiers;
    std::unique_ptr<CqlNode> left, right;
};

struct CqlSortKey {
    std::string index;
    std::vector<CqlModifier> modifiers;  // sort.ascending, sort.descending, sort.ignoreCase, …
};

struct CqlQuery {
    std::unique_ptr<CqlNode> root;
    std::vector<CqlSortKey> sort_keys;
};

struct CqlLimits {
    std::size_t max_bytes = 16384;     // the whole query
    std::size_t max_term_bytes = 1024;
    int max_depth = 64;                // parentheses and prefix assignments inside each other
    int max_booleans = 256;
    int max_sort_keys = 8;
};

// Why a query was refused: the SRU diagnostic (10 syntax, 12 too long,
// 13 parentheses, 14 quotes, 23 term too long, 38 too many booleans, 84
// too many sort keys) and where, with a message for people.
struct CqlError {
    int diagnostic = 10;
    std::size_t position = 0;
    std::string message;
};

struct CqlParse {
    std::optional<CqlQuery> query;
    CqlError error;  // when !query
    explicit operator bool() const { return query.has_value(); }
};

CqlParse ParseCql(std::string_view text, const CqlLimits& limits = {});

// The query as XCQL (namespace http://www.loc.gov/zing/cql/xcql/): a
// <searchClause> or <triple>, prefixes first in the node they are scoped
// to, sort keys in <sortKeys> at the end of the outermost element.
std::string ToXcql(const CqlQuery& query);

// The query written back as CQL, fully parenthesised: parses to the same tree.
std::string ToCql(const CqlQuery& query);

}  // namespace iblsync::protocols
