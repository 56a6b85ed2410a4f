// Search (storage/search.hpp) on real records in a private PostgreSQL:
// the Thomas Mann slice (71 editions), the NLNZ sample and the Pride and
// Prejudice set (tests/data/marc, provenance in PROVENANCE.md there), and
// the two demo libraries with copies in every status (tests/data/demo).
// Each CQL search is compared with an SQL oracle that finds the same
// records another way (regular expressions over the folded text, plain
// column comparisons), so that the translation, not its own output, is
// what the expectations rest on.

#include "storage/search.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "storage/database.hpp"
#include "tests/support/test_env.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

class SearchTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        schema_ = new TestSchema();
        dir_ = new TempDir();
        storage::Database(schema_->conninfo(), 1).Migrate();
        Import("NL-0000000101", "NL-GE", {"marc/slices/thomas-mann-shared-71.xml"});
        Import("NL-0000000102", "NL-ZH",
               {"marc/originals/pymarc_basics/NLNZ_100_example_marc.marc",
                "marc/originals/marc4j/pride-and-prejudice-fixed.mrc"});
        Import("NL-DEMO-EDE", "NL-GE", {"demo/NL-DEMO-EDE.ndjson"});
        Import("NL-DEMO-ZUT", "NL-OV", {"demo/NL-DEMO-ZUT.ndjson"});
        db_ = new storage::Database(schema_->conninfo(), 2);
    }
    static void TearDownTestSuite() {
        delete db_;
        delete dir_;
        delete schema_;
    }
    static void Import(const std::string& library, const std::string& province, const std::vector<std::string>& files) {
        std::vector<std::string> argv{IblctlPath(), "import", "--db", schema_->conninfo(), "--library", library,
                                      "--name", library, "--province", province, "--rejects",
                                      dir_->File(library + ".rejects")};
        for (const auto& f : files) argv.push_back(SourceDir() + "/tests/data/" + f);
        auto r = RunCommand(argv, 120s);
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }

    static storage::SearchOutcome Run(const std::string& cql, int maximum = 1000, long long start = 1,
                                      const std::vector<storage::SortKey>& sort = {}, bool holdings = false) {
        auto q = protocols::ParseCql(cql);
        EXPECT_TRUE(q) << cql << ": " << q.error.message;
        if (!q) return {};
        storage::SearchRequest r;
        r.query = &*q.query;
        r.maximum = maximum;
        r.start = start;
        r.sort = sort;
        r.holdings = holdings;
        return storage::Search(*db_, r);
    }
    // library:local id of every hit, sorted.
    static std::vector<std::string> Ids(const std::string& cql) {
        auto o = Run(cql);
        EXPECT_FALSE(o.diagnostic) << cql << ": " << o.diagnostic->message;
        std::vector<std::string> out;
        for (const auto& h : o.hits) out.push_back(h.library + ":" + h.local_id);
        std::sort(out.begin(), out.end());
        EXPECT_EQ(static_cast<long long>(out.size()), o.total) << cql;
        return out;
    }
    // The same from plain SQL over bib_record b.
    static std::vector<std::string> Oracle(const std::string& where) {
        const std::string list = schema_->Query1(
            "SELECT string_agg(library || ':' || local_id, E'\\n' ORDER BY library || ':' || local_id)"
            " FROM bib_record b WHERE NOT deleted AND (" + where + ")");
        std::vector<std::string> out;
        std::size_t i = 0;
        while (i < list.size()) {
            auto j = list.find('\n', i);
            if (j == std::string::npos) j = list.size();
            out.push_back(list.substr(i, j - i));
            i = j + 1;
        }
        return out;
    }
    static void ExpectSame(const std::string& cql, const std::string& where, std::size_t at_least = 1) {
        SCOPED_TRACE(cql);
        const auto got = Ids(cql);
        EXPECT_EQ(got, Oracle(where));
        EXPECT_GE(got.size(), at_least) << "the fixture should have matches for this";
    }
    static storage::SearchDiagnostic Refused(const std::string& cql) {
        auto o = Run(cql);
        EXPECT_TRUE(o.diagnostic.has_value()) << cql << " was answered with " << o.total << " records";
        return o.diagnostic.value_or(storage::SearchDiagnostic{});
    }
    static std::string Word(const char* column, const std::string& word) {
        return fmt::format("coalesce({}, '') ~ '(^| ){}( |$)'", column, word);
    }

    static TestSchema* schema_;
    static TempDir* dir_;
    static storage::Database* db_;
};

TestSchema* SearchTest::schema_ = nullptr;
TempDir* SearchTest::dir_ = nullptr;
storage::Database* SearchTest::db_ = nullptr;

TEST_F(SearchTest, WordIndexesFindTheirOwnWordsOnly) {
    ExpectSame("dc.title = buddenbrooks", Word("s_title", "buddenbrooks"), 3);
    ExpectSame("buddenbrooks", Word("s_title", "buddenbrooks") + " OR " + Word("s_creator", "buddenbrooks") + " OR " +
                                   Word("s_subject", "buddenbrooks") + " OR " + Word("s_publisher", "buddenbrooks"));
    ExpectSame("dc.creator = mann", Word("s_creator", "mann"), 71);
    ExpectSame("bath.name = austen", Word("s_creator", "austen"));
    ExpectSame("dc.subject = germany", Word("s_subject", "germany"));
    ExpectSame("bath.topicalSubject = \"world war\"", "s_subject ~ '(^| )world war( |$)'");
    ExpectSame("dc.publisher = penguin", Word("s_publisher", "penguin"), 20);
    // Titles are not searched as names: Mann wrote no book called Mann.
    EXPECT_EQ(Ids("dc.title = mann"), Oracle(Word("s_title", "mann")));
    EXPECT_LT(Ids("dc.title = mann").size(), 71u);
    // Case and diacritics are folded on both sides.
    ExpectSame("dc.title = \"MONTAÑA MÁGICA\"", "s_title ~ '(^| )montana magica( |$)'", 2);
    // JSON records are searched like MARC ones.
    ExpectSame("dc.title = avonden and dc.creator = reve", Word("s_title", "avonden") + " AND " + Word("s_creator", "reve"), 2);
}

TEST_F(SearchTest, WordRelations) {
    ExpectSame("dc.title = \"magic mountain\"", "s_title ~ '(^| )magic mountain( |$)'", 2);
    ExpectSame("dc.title adj \"magic mountain\"", "s_title ~ '(^| )magic mountain( |$)'", 2);
    ExpectSame("dc.title all \"mountain magic\"", Word("s_title", "mountain") + " AND " + Word("s_title", "magic"), 2);
    ExpectSame("dc.title any \"buddenbrooks zauberberg\"",
               Word("s_title", "buddenbrooks") + " OR " + Word("s_title", "zauberberg"), 4);
    // == is a whole value: the uniform title "Zauberberg" (240), not "Der Zauberberg : Roman".
    ExpectSame("dc.title == zauberberg", "s_title ~ '(^|\\| )zauberberg( \\||$)'", 1);
    EXPECT_TRUE(Ids("dc.title == \"der zauberberg\"").empty());
    ExpectSame("dc.title <> buddenbrooks", "NOT " + Word("s_title", "buddenbrooks"), 400);
    ExpectSame("dc.title exact zauberberg", "s_title ~ '(^|\\| )zauberberg( \\||$)'", 1);
    ExpectSame("dc.title cql.any \"buddenbrooks zauberberg\"",
               Word("s_title", "buddenbrooks") + " OR " + Word("s_title", "zauberberg"), 4);
}

TEST_F(SearchTest, MasksAndPrefixes) {
    ExpectSame("dc.title = zauber*", "s_title ~ '(^| )zauber[^ ]*( |$)'", 4);
    ExpectSame("dc.title = z?uberberg", "s_title ~ '(^| )z[^ ]uberberg( |$)'", 4);
    ExpectSame("dc.title = z*berg", "s_title ~ '(^| )z[^ ]*berg( |$)'", 4);
    ExpectSame("dc.title = \"magic mount*\"", "s_title ~ '(^| )magic mount[^ ]*( |$)'", 2);
    ExpectSame("dc.title any \"buddenbr* zaub?rberg\"",
               "s_title ~ '(^| )buddenbr[^ ]*( |$)' OR s_title ~ '(^| )zaub[^ ]rberg( |$)'", 4);
    // Escaped masks are plain characters: "*" folds to a space, leaving nothing but z.
    EXPECT_EQ(Ids("dc.title = \"zauber\\*\""), Ids("dc.title = zauber"));
    // /unmasked reads * as a character too.
    EXPECT_EQ(Ids("dc.title =/unmasked zauber*"), Ids("dc.title = zauber"));
    auto leading = Refused("dc.title = *berg");
    EXPECT_EQ(leading.code, 49);
    EXPECT_EQ(leading.details, "*berg");
}

TEST_F(SearchTest, NumbersDatesAndIdentifiers) {
    ExpectSame("dc.date within \"1900 1930\"", "pub_year BETWEEN 1900 AND 1930", 17);
    ExpectSame("dc.date > 2000", "pub_year > 2000", 90);
    ExpectSame("dc.date >= 2000", "pub_year >= 2000", 90);
    ExpectSame("dc.date < 1920", "pub_year < 1920");
    ExpectSame("dc.date <= 1920", "pub_year <= 1920");
    ExpectSame("dc.date = 1928", "pub_year = 1928", 3);
    ExpectSame("dc.date encloses 1928", "pub_year = 1928", 3);
    ExpectSame("dc.date any \"1905 1910\"", "pub_year IN (1905, 1910)", 2);
    ExpectSame("dc.date <> 1928", "pub_year <> 1928", 100);
    ExpectSame("dc.date = 1928-06-01", "pub_year = 1928", 3);
    ExpectSame("bath.isbn = 0-394-60365-6", "isbns @> '{9780394603650}'", 1);
    ExpectSame("bath.isbn = 9780520070073", "isbns @> '{9780520070073}'", 1);
    ExpectSame("bath.issn = 1175-5253", "issns @> '{1175-5253}'", 1);
    ExpectSame("dc.identifier = 9780801408304", "isbns @> '{9780801408304}'", 1);
    ExpectSame("dc.identifier = 687540411", "oclc @> '{687540411}'", 1);
    ExpectSame("dc.identifier = ede-0001", "local_id = 'ede-0001'", 1);
    ExpectSame("rec.identifier = \"NL-DEMO-ZUT:ZUT-77001\"", "library = 'NL-DEMO-ZUT' AND local_id = 'ZUT-77001'", 1);
    ExpectSame("rec.identifier = 15552", "local_id = '15552'", 1);
    ExpectSame("rec.lastModificationDate > 2020-01-01", "updated_at > '2020-01-02'", 480);
    ExpectSame("rec.lastModificationDate < 2020-01-01", "false", 0);
    ExpectSame("rec.lastModificationDate within \"2020-01-01 2099-12-31\"", "true", 480);
    ExpectSame("dc.language = ger", "language = 'ger'", 4);
    ExpectSame("dc.language = GER", "language = 'ger'", 4);
    ExpectSame("dc.type = audiobook", "material_type = 'audiobook'", 1);
    ExpectSame("ibl.materialType any \"large_print audiobook\"", "material_type IN ('large_print', 'audiobook')", 2);
}

TEST_F(SearchTest, AvailabilityHoldingLibraryAndProvince) {
    ExpectSame("ibl.available = true",
               "EXISTS (SELECT 1 FROM holding h WHERE h.record_id = b.id AND h.status = 'available')", 6);
    ExpectSame("ibl.available = false",
               "NOT EXISTS (SELECT 1 FROM holding h WHERE h.record_id = b.id AND h.status = 'available')", 400);
    ExpectSame("ibl.holdingLibrary = nl-demo-ede", "library = 'NL-DEMO-EDE'", 6);
    ExpectSame("bath.possessingInstitution = NL-DEMO-ZUT", "library = 'NL-DEMO-ZUT'", 4);
    ExpectSame("ibl.province = NL-OV", "library = 'NL-DEMO-ZUT'", 4);
    ExpectSame("ibl.province = ge", "library IN ('NL-0000000101', 'NL-DEMO-EDE')", 77);
    // Which libraries in Gelderland can lend De avonden now: Ede, not Zutphen (Overijssel here, and on loan).
    ExpectSame("dc.title = avonden and ibl.available = true and ibl.province = NL-GE", "local_id = 'ede-0001'", 1);
    auto with = Run("dc.title = avonden", 10, 1, {}, true);
    ASSERT_EQ(with.hits.size(), 2u);
    std::size_t copies = 0;
    for (const auto& h : with.hits) copies += h.holdings.size();
    EXPECT_EQ(copies, 3u);  // Ede two, Zutphen one
    for (const auto& h : with.hits)
        for (const auto& c : h.holdings) {
            EXPECT_EQ(c.library, h.library);
            EXPECT_FALSE(c.status.empty());
        }
}

TEST_F(SearchTest, BooleansParenthesesProximityAndPrefixes) {
    ExpectSame("dc.creator = mann and (dc.title = buddenbrooks or dc.title = zauberberg)",
               Word("s_creator", "mann") + " AND (" + Word("s_title", "buddenbrooks") + " OR " +
                   Word("s_title", "zauberberg") + ")",
               4);
    ExpectSame("dc.creator = mann not dc.language = eng", Word("s_creator", "mann") + " AND language IS DISTINCT FROM 'eng'",
               10);
    ExpectSame("dc.title = avonden prox/distance<=3/unit=word reve",
               "local_id IN ('ede-0001', 'ZUT-77001')", 2);  // title words then author words, 3 positions apart at most
    ExpectSame("avonden prox/distance=1 reve", "local_id = 'ZUT-77001'", 1);
    ExpectSame("reve prox/distance=1/ordered avonden", "false", 0);  // order matters when asked
    ExpectSame(">d=\"info:srw/cql-context-set/1/dc-v1.1\" d.title = buddenbrooks", Word("s_title", "buddenbrooks"), 3);
    ExpectSame(">\"http://zing.z3950.org/cql/bath/2.0/\" isbn = 9780394603650", "isbns @> '{9780394603650}'", 1);
    ExpectSame("title = buddenbrooks", Word("s_title", "buddenbrooks"), 3);  // dc is the default set
    ExpectSame("cql.allRecords = 1", "true", 480);
}

TEST_F(SearchTest, SortingAndPaging) {
    auto titles = [](const storage::SearchOutcome& o) {
        std::vector<std::string> out;
        for (const auto& h : o.hits) out.push_back(h.local_id);
        return out;
    };
    // Sorted by title key, ties by id: the same as SQL's order.
    const auto by_title = titles(Run("dc.creator = mann sortBy dc.title"));
    const auto oracle = schema_->Query1(
        "SELECT string_agg(local_id, ',' ORDER BY title_key ASC NULLS LAST, id) FROM bib_record WHERE "
        "s_creator ~ '(^| )mann( |$)'");
    EXPECT_EQ(fmt::format("{}", fmt::join(by_title, ",")), oracle);
    const auto by_date = titles(Run("dc.creator = mann sortBy dc.date/sort.descending"));
    EXPECT_EQ(fmt::format("{}", fmt::join(by_date, ",")),
              schema_->Query1("SELECT string_agg(local_id, ',' ORDER BY pub_year DESC NULLS FIRST, id) FROM "
                              "bib_record WHERE s_creator ~ '(^| )mann( |$)'"));
    // A sort key given outside the query replaces the query's.
    storage::SortKey date_desc{"dc.date", false, false, ""};
    EXPECT_EQ(titles(Run("dc.creator = mann sortBy dc.title", 1000, 1, {date_desc})), by_date);
    // Pages are slices of the same order.
    auto page2 = Run("dc.creator = mann sortBy dc.title", 10, 11);
    EXPECT_EQ(page2.total, 71);
    ASSERT_EQ(page2.hits.size(), 10u);
    EXPECT_EQ(page2.hits[0].position, 11);
    EXPECT_EQ(titles(page2), std::vector<std::string>(by_title.begin() + 10, by_title.begin() + 20));
    auto last = Run("dc.creator = mann sortBy dc.title", 10, 71);
    EXPECT_EQ(last.hits.size(), 1u);
    auto beyond = Run("dc.creator = mann", 10, 72);
    EXPECT_EQ(beyond.total, 71);
    EXPECT_TRUE(beyond.hits.empty());
    auto count_only = Run("dc.creator = mann", 0);
    EXPECT_EQ(count_only.total, 71);
    EXPECT_TRUE(count_only.hits.empty());
    // /relevant ranks by relevance: a word in the title
    // weighs more than the same word in a subject, so every record with
    // "germany" in its title comes before every record with it only elsewhere.
    auto ranked = Run("cql.serverChoice =/relevant germany");
    const auto in_title = Oracle(Word("s_title", "germany"));
    ASSERT_FALSE(in_title.empty());
    ASSERT_GT(ranked.hits.size(), in_title.size());
    for (std::size_t i = 0; i < ranked.hits.size(); ++i) {
        const bool title = std::count(in_title.begin(), in_title.end(),
                                      ranked.hits[i].library + ":" + ranked.hits[i].local_id) > 0;
        EXPECT_EQ(title, i < in_title.size()) << "hit " << i << " " << ranked.hits[i].local_id;
    }
}

TEST_F(SearchTest, LargeCountsAreEstimatedAboveTheExactLimit) {
    auto q = protocols::ParseCql("dc.creator = mann");
    storage::SearchRequest r;
    r.query = &*q.query;
    r.maximum = 5;
    r.exact_count_limit = 1000;
    auto exact = storage::Search(*db_, r);
    EXPECT_TRUE(exact.exact);
    EXPECT_EQ(exact.total, 71);
    EXPECT_TRUE(exact.more);
    r.exact_count_limit = 10;
    auto estimated = storage::Search(*db_, r);
    EXPECT_FALSE(estimated.exact);
    EXPECT_GT(estimated.total, 10);  // the planner's estimate of 71, never below what was seen
    EXPECT_EQ(estimated.hits.size(), 5u);
    // A first page that is not full is the whole result, exact whatever the limit.
    auto q2 = protocols::ParseCql("dc.title = buddenbrooks");
    r.query = &*q2.query;
    r.exact_count_limit = 1;
    auto small = storage::Search(*db_, r);
    EXPECT_TRUE(small.exact);
    EXPECT_EQ(small.total, 3);
    EXPECT_FALSE(small.more);
    // The last page: no more after it.
    r.query = &*q.query;
    r.start = 70;
    r.exact_count_limit = 1000;
    auto last = storage::Search(*db_, r);
    EXPECT_EQ(last.hits.size(), 2u);
    EXPECT_FALSE(last.more);
    EXPECT_EQ(last.total, 71);
}

TEST_F(SearchTest, UnsupportedPartsGetTheirDiagnostic) {
    struct {
        const char* cql;
        int code;
        const char* details;
    } cases[] = {
        {"foo.title = x", 15, "foo"},
        {">x=\"urn:nothing\" x.title = a", 15, "urn:nothing"},
        {"dc.colour = red", 16, "dc.colour"},
        {"colour = red", 16, "colour"},
        {"dc.title within \"a b\"", 22, "within"},
        {"dc.title > m", 22, ">"},
        {"dc.title foo.near x", 19, "foo.near"},
        {"dc.title near x", 19, "near"},
        {"dc.title =/respectCase X", 20, "respectCase"},
        {"dc.title =/stem fishes", 20, "stem"},
        {"dc.title = \"\"", 27, ""},
        {"dc.title = \"...\"", 27, "..."},
        {"bath.isbn = 978*", 28, "978*"},
        {"dc.title = ^begin", 31, "^begin"},
        {"dc.title = \"a\\b\"", 26, "a\\b"},
        {"bath.isbn = 1234567890", 36, "1234567890"},
        {"dc.date = nineteen", 36, "nineteen"},
        {"rec.lastModificationDate > yesterday", 36, "yesterday"},
        {"ibl.available = perhaps", 36, "perhaps"},
        {"ibl.holdingLibrary = XX-1", 36, "XX-1"},
        {"a and/rel.algorithm=cori b", 46, "rel.algorithm"},
        {"a prox/unit=sentence b", 42, "sentence"},
        {"a prox/distance>2 b", 40, ">"},
        {"(a or b) prox c", 48, "prox"},
        {"x sortBy dc.subject", 16, "dc.subject"},
        {"x sortBy dc.title/sort.respectCase", 91, "dc.title"},
        {"x sortBy dc.title/sort.missingOmit", 92, "sort.missingOmit"},
        {"cql.allRecords <> 1", 22, "<>"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.cql);
        auto d = Refused(c.cql);
        EXPECT_EQ(d.code, c.code) << d.message;
        EXPECT_EQ(d.details, c.details) << d.message;
        EXPECT_FALSE(d.message.empty());
    }
}

TEST_F(SearchTest, TermsAreValuesNeverSql) {
    const auto before = schema_->Query1("SELECT count(*) || '/' || sum(version) FROM bib_record");
    for (const char* cql : {R"(dc.title = "'; DELETE FROM bib_record; --")", R"(dc.title = "a' OR '1'='1")",
                            R"(rec.identifier = "x' OR true --")", R"(dc.language = "dut' OR 'a'='a")",
                            R"(dc.title == "a|b)(c")", R"(dc.title = "[[[(((")", R"(dc.title = "\\\\")"}) {
        SCOPED_TRACE(cql);
        auto o = Run(cql);
        if (o.diagnostic) {
            EXPECT_EQ(o.diagnostic->code, 27) << o.diagnostic->message;  // nothing left to search for
        } else {
            EXPECT_EQ(o.total, 0);
        }
    }
    EXPECT_EQ(schema_->Query1("SELECT count(*) || '/' || sum(version) FROM bib_record"), before);
}

TEST_F(SearchTest, ScanListsHeadingsWithTheirRecords) {
    auto scan = [](const std::string& clause, int position, int terms) {
        auto q = protocols::ParseCql(clause);
        EXPECT_TRUE(q);
        return storage::Scan(*db_, *q.query, position, terms);
    };
    // Subject headings: each value of a record's 6XX, folded, counted by record.
    auto s = scan("dc.subject = world", 1, 5);
    ASSERT_FALSE(s.diagnostic) << s.diagnostic->message;
    ASSERT_EQ(s.terms.size(), 5u);
    const std::string oracle = schema_->Query1(
        "SELECT string_agg(h || '=' || n, ',' ORDER BY h) FROM (SELECT h, count(DISTINCT id) AS n FROM bib_record,"
        " regexp_split_to_table(s_subject, ' \\| ') h WHERE NOT deleted AND h >= 'world' GROUP BY h ORDER BY h LIMIT 5) x");
    std::string got;
    for (const auto& t : s.terms) got += (got.empty() ? "" : ",") + t.value + "=" + std::to_string(t.records);
    EXPECT_EQ(got, oracle);
    // Titles by title key, around the term: two before it, three from it.
    auto t = scan("dc.title = magic", 3, 5);
    ASSERT_EQ(t.terms.size(), 5u);
    EXPECT_LT(t.terms[1].value, "magic");
    EXPECT_EQ(t.terms[2].value, "magic mountain");
    EXPECT_EQ(t.terms[2].records, 2);
    EXPECT_EQ(t.terms[2].display, "The magic mountain");
    auto c = scan("dc.creator = mann", 1, 1);
    ASSERT_EQ(c.terms.size(), 1u);
    EXPECT_EQ(c.terms[0].value, "mann");
    EXPECT_EQ(c.terms[0].records, 71);
    EXPECT_EQ(scan("dc.date = 1990", 1, 5).diagnostic->code, 16);
    EXPECT_EQ(scan("dc.title any magic", 1, 5).diagnostic->code, 22);
    // A deleted record's headings leave the list; they come back with it.
    const auto before = scan("bath.topicalSubject = \"nederlandse letterkunde\"", 1, 1);
    ASSERT_EQ(before.terms.at(0).value, "nederlandse letterkunde");
    schema_->Exec("UPDATE bib_record SET deleted = true WHERE local_id = 'ede-0001'");
    const auto gone = scan("bath.topicalSubject = \"nederlandse letterkunde\"", 1, 1);
    EXPECT_TRUE(gone.terms.empty() || gone.terms[0].value != "nederlandse letterkunde");
    schema_->Exec("UPDATE bib_record SET deleted = false WHERE local_id = 'ede-0001'");
    EXPECT_EQ(scan("bath.topicalSubject = \"nederlandse letterkunde\"", 1, 1).terms.at(0).records, before.terms[0].records);
}

TEST_F(SearchTest, DeletedRecordsAreNotFound) {
    ASSERT_EQ(Ids("dc.title = tirza").size(), 2u);
    schema_->Exec("UPDATE bib_record SET deleted = true WHERE local_id = 'ZUT-77003'");
    EXPECT_EQ(Ids("dc.title = tirza"), std::vector<std::string>{"NL-DEMO-EDE:ede-0005"});
    schema_->Exec("UPDATE bib_record SET deleted = false WHERE local_id = 'ZUT-77003'");
}

}  // namespace
}  // namespace iblsync::test
