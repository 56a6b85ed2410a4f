// Reading another node's change feed page and digests: what a valid page
// gives, and the exact error for pages a writer must not trust.

#include <gtest/gtest.h>

#include "protocols/change_feed.hpp"

namespace iblsync::protocols::feed {
namespace {

const std::string kPage = R"({"changes":[
 {"seq":7,"at":"2026-12-05T10:00:00.000001Z","entity":"record","op":"insert","library":"NL-0000000211","version":1,
  "id":"r1","record_id":3,"href":"/v1/libraries/NL-0000000211/records/r1"},
 {"seq":8,"at":"2026-12-05T10:00:00.000001Z","entity":"holding","op":"update","library":"NL-0000000211","version":2,
  "barcode":"C1","item_id":4,"record":"r1","record_href":"x","holding":null}],
 "records":[{"library":"NL-0000000211","id":"r1","deleted":false,"format":"json","raw":"{}",
  "holdings":[{"item_id":4,"library":"NL-0000000211","barcode":"C1","status":"on_loan","due_date":"2026-12-24",
   "updated_at":"x","version":2}]},
  {"library":"NL-0000000211","id":"r0","deleted":true}],
 "libraries":[{"isil":"NL-0000000211","name":"Bibliotheek Veluwe","province":"NL-GE","poi":"NL-0000000910"}],
 "next_since":9,"head":12})";

TEST(ChangeFeedPage, AValidPageWithRecordStatesAndLibraries) {
    auto p = ParsePage(kPage);
    ASSERT_TRUE(p.ok()) << p.error();
    ASSERT_EQ(p->changes.size(), 2u);
    EXPECT_EQ(p->changes[1].record_local_id, "r1");
    EXPECT_EQ(p->changes[1].local_id, "C1");
    ASSERT_EQ(p->records.size(), 2u);
    EXPECT_EQ(p->records[0].holdings.at(0).status, ItemStatus::kOnLoan);
    EXPECT_EQ(p->records[0].holdings.at(0).due_date, "2026-12-24");
    EXPECT_TRUE(p->records[1].deleted);
    EXPECT_EQ(p->libraries.at(0).poi, "NL-0000000910");
    EXPECT_EQ(p->next_since, 9);
    EXPECT_EQ(p->head, 12);
}

std::string ErrorOf(const std::string& from, const std::string& to) {
    std::string text = kPage;
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    auto p = ParsePage(text);
    return p.ok() ? "accepted" : p.error();
}

TEST(ChangeFeedPage, PagesAWriterMustNotTrustAreRefusedWithTheMemberAtFault) {
    EXPECT_EQ(ErrorOf(R"("library":"NL-0000000211","id":"r1","deleted":false)",
                      R"("library":"nl-0000000211","id":"r1","deleted":false)"),
              "/records/0/library: 'nl-0000000211' is not a canonical ISIL");
    EXPECT_EQ(ErrorOf(R"("status":"on_loan")", R"("status":"lost")"),
              "/records/0/holdings/0/status: 'lost' is not a copy status");
    EXPECT_EQ(ErrorOf(R"("due_date":"2026-12-24")", R"("due_date":"24-12-2026")"),
              "/records/0/holdings/0/due_date: must be YYYY-MM-DD");
    EXPECT_EQ(ErrorOf(R"("format":"json")", R"("format":"pica")"), "/records/0/format: must be iso2709, marcxml or json");
    EXPECT_EQ(ErrorOf(R"("seq":8)", R"("seq":7)"), "/changes/1/seq: sequence numbers must increase");
    EXPECT_EQ(ErrorOf(R"("next_since":9)", R"("next_since":5)"), "/next_since: 5 is behind the last change 8");
    EXPECT_EQ(ErrorOf(R"("next_since":9)", R"("next_since":13)"), "/next_since: 13 is beyond the head 12");
    EXPECT_EQ(ErrorOf(R"("op":"insert")", R"("op":"upsert")"), "/changes/0/op: must be insert, update or delete");
    EXPECT_EQ(ErrorOf(R"("barcode":"C1","status")", R"("barcode":"","status")"),
              "/records/0/holdings/0/barcode: must not be empty");
    EXPECT_EQ(ErrorOf(R"("head":12})", R"("head":-1})"), "/head: must be a non-negative integer");
    EXPECT_EQ(ErrorOf(R"("poi":"NL-0000000910")", R"("poi":"")"), "/libraries/0/poi: must not be empty");
    EXPECT_EQ(ErrorOf(R"("raw":"{}")", "\"raw\":\"\xff\""), "invalid JSON at byte 489: Invalid encoding in string.");
    EXPECT_EQ(ParsePage("<html>502</html>").error(), "invalid JSON at byte 0: Invalid value.");
    EXPECT_EQ(ParsePage("[]").error(), "the answer must be a JSON object");
    EXPECT_EQ(ParsePage(std::string(100, '[')).error().substr(0, 13), "JSON nested d");
    Limits small;
    small.max_changes = 1;
    EXPECT_EQ(ParsePage(kPage, small).error(), "/changes: more than 1 changes in one page");
    small = {};
    small.max_record_bytes = 1;
    EXPECT_EQ(ParsePage(kPage, small).error(), "/records/0/raw: longer than 1 bytes");
}

TEST(ChangeFeedDigest, ComparesLibrariesAndNamesTheRecordsThatDiffer) {
    std::vector<LibraryDigest> here{{"NL-1", 2, 1, "10", "5"}, {"NL-2", 1, 0, "7", "0"}, {"NL-4", 0, 0, "0", "0"}};
    std::vector<LibraryDigest> peer{{"NL-1", 2, 1, "10", "6"}, {"NL-3", 1, 0, "8", "0"}};
    auto d = Compare(here, peer);
    ASSERT_EQ(d.size(), 3u);
    EXPECT_EQ(d[0].library, "NL-1");
    EXPECT_EQ(d[0].what, "copies: 1 on both sides, but their states differ");
    EXPECT_EQ(d[1].what, "1 records and 0 copies here, none at the peer");
    EXPECT_EQ(d[2].what, "none here, 1 records and 0 copies at the peer");  // NL-4, empty on both sides, is no difference
    std::vector<RecordDigest> a{{"a", "x", "0", 0}, {"b", "y", "0", 0}, {"c", "z", "1", 1}};
    std::vector<RecordDigest> b{{"b", "y", "0", 0}, {"c", "z", "2", 1}, {"d", "w", "0", 0}};
    std::size_t total = 0;
    EXPECT_EQ(CompareRecords(a, b, 2, &total), (std::vector<std::string>{"a", "c"}));
    EXPECT_EQ(total, 3u);
    auto parsed = ParseDigest(R"({"libraries":[{"isil":"NL-0000000211","records":2,"records_sum":"12","holdings":1,
        "holdings_sum":"3"}],"records":[{"id":"b","checksum":"c","holdings":0,"holdings_sum":"0"},
        {"id":"a","checksum":"c","holdings":0,"holdings_sum":"0"}]})");
    ASSERT_TRUE(parsed.ok()) << parsed.error();
    EXPECT_EQ(parsed->records.at(0).local_id, "a") << "sorted";
    EXPECT_EQ(ParseDigest(R"({"libraries":[{"isil":"nl-1","records":1}]})").error(),
              "/libraries/0/isil: 'nl-1' is not a canonical ISIL");
}

}  // namespace
}  // namespace iblsync::protocols::feed
