// The CQL parser: the grammar against YAZ's parser on the project's corpus
// (tests/data/cql/corpus.txt), positions and diagnostics of refused
// queries, limits against hostile queries, XCQL and CQL output.

#include "protocols/cql.hpp"

#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pugixml.hpp>

#include "tests/support/yaz_cql.hpp"
#include "tests/unit/protocols/cql_canonical.hpp"

namespace iblsync::protocols {
namespace {

struct Case {
    int line = 0;
    std::string expect;  // ok, err, yaz-accepts, differs
    int diagnostic = 0;
    std::string query;
};

std::vector<Case> Corpus() {
    std::ifstream in(std::string(IBLSYNC_TEST_DATA_DIR) + "/cql/corpus.txt");
    EXPECT_TRUE(in.good());
    std::vector<Case> out;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty() || line[0] == '#') continue;
        Case c;
        c.line = n;
        auto sp = line.find(' ');
        c.expect = line.substr(0, sp);
        std::string rest = line.substr(sp + 1);
        if (c.expect == "err" || c.expect == "yaz-accepts") {
            auto sp2 = rest.find(' ');
            c.diagnostic = std::stoi(rest.substr(0, sp2));
            rest = rest.substr(sp2 + 1);
        }
        c.query = rest;
        out.push_back(c);
    }
    return out;
}

TEST(Cql, AgreesWithYazOnTheCorpus) {
    const auto cases = Corpus();
    int ok = 0, refused = 0;
    for (const auto& c : cases) {
        SCOPED_TRACE(fmt::format("corpus.txt:{}: {} {}", c.line, c.expect, c.query));
        auto ours = ParseCql(c.query);
        auto yaz = test::YazCanonical(c.query);
        if (c.expect == "ok") {
            ASSERT_TRUE(ours) << ours.error.message;
            ASSERT_TRUE(yaz.has_value());
            EXPECT_EQ(test::Canonical(*ours.query), *yaz);
            ++ok;
        } else if (c.expect == "err") {
            EXPECT_FALSE(ours);
            EXPECT_EQ(ours.error.diagnostic, c.diagnostic) << ours.error.message;
            EXPECT_FALSE(yaz.has_value()) << *yaz;
            ++refused;
        } else if (c.expect == "yaz-accepts") {
            EXPECT_FALSE(ours);
            EXPECT_EQ(ours.error.diagnostic, c.diagnostic) << ours.error.message;
            EXPECT_TRUE(yaz.has_value()) << "YAZ now refuses it too: make it an err line";
        } else if (c.expect == "differs") {
            ASSERT_TRUE(ours) << ours.error.message;
            ASSERT_TRUE(yaz.has_value());
            EXPECT_NE(test::Canonical(*ours.query), *yaz) << "YAZ now agrees: make it an ok line";
        } else {
            ADD_FAILURE() << "unknown expectation " << c.expect;
        }
    }
    EXPECT_GE(cases.size(), 200u);
    EXPECT_GE(ok, 150);
    EXPECT_GE(refused, 40);
}

TEST(Cql, WrittenBackAsCqlItParsesToTheSameTree) {
    for (const auto& c : Corpus()) {
        if (c.expect != "ok" && c.expect != "differs") continue;
        SCOPED_TRACE(c.query);
        auto first = ParseCql(c.query);
        ASSERT_TRUE(first);
        const std::string again = ToCql(*first.query);
        auto second = ParseCql(again);
        ASSERT_TRUE(second) << again << ": " << second.error.message;
        EXPECT_EQ(test::Canonical(*second.query), test::Canonical(*first.query)) << again;
        EXPECT_EQ(ToXcql(*second.query), ToXcql(*first.query));
    }
}

TEST(Cql, TheTreeKeepsIndexRelationModifiersTermAndPositions) {
    auto p = ParseCql(R"(dc.title ANY/ignoreCase/rel.algorithm=cori "fish \"frog\"" OR bath.isbn=9789023466338)");
    ASSERT_TRUE(p) << p.error.message;
    const auto& root = *p.query->root;
    ASSERT_EQ(root.kind, CqlNode::Kind::kBoolean);
    EXPECT_EQ(root.op, "or");
    const auto& left = *root.left;
    EXPECT_EQ(left.index, "dc.title");
    EXPECT_EQ(left.relation.name, "ANY");
    ASSERT_EQ(left.relation.modifiers.size(), 2u);
    EXPECT_EQ(left.relation.modifiers[0].name, "ignoreCase");
    EXPECT_EQ(left.relation.modifiers[1].name, "rel.algorithm");
    EXPECT_EQ(left.relation.modifiers[1].comparison, "=");
    EXPECT_EQ(left.relation.modifiers[1].value, "cori");
    EXPECT_EQ(left.term, R"(fish \"frog\")");  // escapes kept for the translator
    EXPECT_TRUE(left.quoted);
    EXPECT_EQ(left.position, 0u);
    EXPECT_EQ(root.right->position, 62u);
    EXPECT_EQ(root.right->index, "bath.isbn");
    EXPECT_FALSE(root.right->quoted);
}

TEST(Cql, PrefixesAreScopedToTheQueryThatFollowsThem) {
    auto p = ParseCql(R"(>dc="info:srw/cql-context-set/1/dc-v1.1" (>x="urn:x" x.a=1) and dc.title=b sortBy dc.date/sort.descending)");
    ASSERT_TRUE(p) << p.error.message;
    const auto& root = *p.query->root;
    ASSERT_EQ(root.prefixes.size(), 1u);
    EXPECT_EQ(root.prefixes[0].name, "dc");
    EXPECT_EQ(root.prefixes[0].uri, "info:srw/cql-context-set/1/dc-v1.1");
    ASSERT_EQ(root.left->prefixes.size(), 1u);
    EXPECT_EQ(root.left->prefixes[0].name, "x");
    EXPECT_TRUE(root.right->prefixes.empty());
    ASSERT_EQ(p.query->sort_keys.size(), 1u);
    EXPECT_EQ(p.query->sort_keys[0].index, "dc.date");
    EXPECT_EQ(p.query->sort_keys[0].modifiers[0].name, "sort.descending");
}

TEST(Cql, RefusedQueriesSayWhereAndGetTheirDiagnostic) {
    struct {
        const char* query;
        int diagnostic;
        std::size_t position;
        const char* says;
    } cases[] = {
        {"a b", 10, 3, "expected a search term after the relation 'b' at position 3, found the end of the query"},
        {"dc.title = ", 10, 11, "expected a search term after the relation '=' at position 11"},
        {"(a or b", 13, 7, "the '(' at position 0 is not closed"},
        {"a or b)", 13, 6, "the ')' at position 6 closes no '('"},
        {"title = \"open", 14, 8, "the quote opened at position 8 is never closed"},
        {"fish sortBy", 10, 11, "sortBy at position 5 names no index to sort by"},
        {"a and b c", 10, 9, "expected a search term after the relation 'c'"},
        {"a = b c", 10, 6, "unexpected 'c' at position 6; join search clauses with and, or, not or prox"},
        {"", 10, 0, "the query is empty"},
        {"   ", 10, 0, "the query is empty"},
        {"caf\xC3\x28", 10, 3, "the query is not valid UTF-8 (byte 3)"},
        {"title=x\\", 10, 7, "a backslash at position 7 escapes nothing"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.query);
        auto p = ParseCql(c.query);
        ASSERT_FALSE(p);
        EXPECT_EQ(p.error.diagnostic, c.diagnostic);
        EXPECT_EQ(p.error.position, c.position);
        EXPECT_NE(p.error.message.find(c.says), std::string::npos) << p.error.message;
    }
}

TEST(Cql, HostileQueriesAreRefusedByTheirLimit) {
    // 10,000 terms: too many booleans, found before the tree grows past the limit.
    std::string many = "a";
    for (int i = 1; i < 10000; ++i) many += " or a";
    CqlLimits roomy;
    roomy.max_bytes = 1 << 20;
    auto p = ParseCql(many, roomy);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error.diagnostic, 38);
    EXPECT_EQ(p.error.message, "more than 256 boolean operators; this server takes at most 256");
    // The same from the default byte limit first.
    EXPECT_EQ(ParseCql(many).error.diagnostic, 12);
    // Deep nesting: parentheses and prefix assignments.
    auto deep = ParseCql(std::string(100000, '(') + "a" + std::string(100000, ')'), roomy);
    EXPECT_EQ(deep.error.diagnostic, 13);
    EXPECT_NE(deep.error.message.find("deeper than 64"), std::string::npos);
    std::string prefixes;
    for (int i = 0; i < 1000; ++i) prefixes += fmt::format(">p{}=\"u\" ", i);
    EXPECT_EQ(ParseCql(prefixes + "a", roomy).error.diagnostic, 13);
    // A term too long, a query too long.
    auto long_term = ParseCql("title=" + std::string(2000, 'x'));
    EXPECT_EQ(long_term.error.diagnostic, 23);
    EXPECT_EQ(long_term.error.position, 6u);
    EXPECT_EQ(ParseCql(std::string(20000, 'x')).error.diagnostic, 12);
    // SQL and XML metacharacters are only characters.
    auto sql = ParseCql(R"(title = "'; DROP TABLE bib_record; --" and x = "<b>&amp;")");
    ASSERT_TRUE(sql) << sql.error.message;
    EXPECT_EQ(sql.query->root->left->term, "'; DROP TABLE bib_record; --");
    std::string keys = "a sortBy";
    for (int i = 0; i < 9; ++i) keys += " k" + std::to_string(i);
    EXPECT_EQ(ParseCql(keys).error.diagnostic, 84);
    // Just below the limits is fine.
    std::string fine = "a";
    for (int i = 0; i < 256; ++i) fine += " or a";
    EXPECT_TRUE(ParseCql(fine, roomy));
    EXPECT_TRUE(ParseCql(std::string(64, '(') + "a" + std::string(64, ')')));
}

TEST(Cql, WhiteSpaceIsAnyAsciiSpaceAndKeywordsIgnoreCase) {
    // YAZ ends a word only at a space or newline and ends the query at a
    // newline; CQL's white space includes tabs, and a newline is white space.
    auto p = ParseCql("fish\tAnD\n\tdc.title\t=\tfrog\r\nSORTby title");
    ASSERT_TRUE(p) << p.error.message;
    EXPECT_EQ(test::Canonical(*p.query),
              "(and [] (sc cql.serverChoice = [] \"fish\") (sc dc.title = [] \"frog\")) sortby (key title [])");
    EXPECT_FALSE(test::YazCanonical("fish\tAnD dc.title=frog").has_value()) << "YAZ now splits words at tabs";
}

TEST(Cql, XcqlIsWellFormedAndComplete) {
    auto p = ParseCql(R"(>dc="info:x" dc.title any/stem "a&b" prox/unit=word/distance<=2 c sortBy dc.date/sort.descending)");
    ASSERT_TRUE(p) << p.error.message;
    const std::string xcql = ToXcql(*p.query);
    pugi::xml_document doc;
    ASSERT_TRUE(doc.load_string(xcql.c_str())) << xcql;
    auto triple = doc.child("triple");
    ASSERT_TRUE(triple);
    EXPECT_STREQ(triple.attribute("xmlns").value(), "http://www.loc.gov/zing/cql/xcql/");
    EXPECT_STREQ(triple.child("prefixes").child("prefix").child_value("name"), "dc");
    EXPECT_STREQ(triple.child("prefixes").child("prefix").child_value("identifier"), "info:x");
    EXPECT_STREQ(triple.child("boolean").child_value("value"), "prox");
    auto mods = triple.child("boolean").child("modifiers");
    EXPECT_STREQ(mods.first_child().child_value("type"), "unit");
    EXPECT_STREQ(mods.last_child().child_value("comparison"), "<=");
    auto left = triple.child("leftOperand").child("searchClause");
    EXPECT_STREQ(left.child_value("index"), "dc.title");
    EXPECT_STREQ(left.child("relation").child_value("value"), "any");
    EXPECT_STREQ(left.child("relation").child("modifiers").child("modifier").child_value("type"), "stem");
    EXPECT_STREQ(left.child_value("term"), "a&b");
    EXPECT_STREQ(triple.child("sortKeys").child("key").child_value("index"), "dc.date");
}

}  // namespace
}  // namespace iblsync::protocols
