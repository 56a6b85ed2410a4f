// iblsync's JSON record format: the crosswalk to MARC, the canonical form,
// and the exact error (with its JSON pointer) for malformed and hostile input.

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "protocols/catalogue_record.hpp"
#include "protocols/dublin_core.hpp"
#include "protocols/json_record.hpp"

namespace iblsync::protocols {
namespace {

const char* kAvonden = R"({
  "id": "ARN-0001",
  "title": "De avonden",
  "subtitle": "een winterverhaal",
  "authors": ["Reve, Gerard", "Kooiman, Dirk Ayelt"],
  "year": 1947,
  "language": "dut",
  "type": "large_print",
  "publisher": "De Bezige Bij",
  "place": "Amsterdam",
  "subjects": ["Nederlandse letterkunde"],
  "isbn": ["90-234-6602-0"],
  "ppn": ["841227993"],
  "holdings": [
    {"barcode": "ARN1001", "status": "available", "branch": "Centrum", "shelfmark": "GL REVE"},
    {"barcode": "ARN1002", "status": "on_loan", "due_date": "2026-12-01", "changed_at": "2026-11-24T10:30:00+01:00"}
  ]
})";

TEST(JsonRecord, CrosswalksToMarcAndDescribesLikeMarc) {
    auto r = ParseJsonRecord(kAvonden);
    ASSERT_TRUE(r.ok()) << r.error_pointer() << ": " << r.error();
    EXPECT_EQ(r->id, "ARN-0001");
    EXPECT_EQ(r->marc.ControlNumber(), "ARN-0001");
    EXPECT_EQ(r->marc.leader[6], 'a');
    EXPECT_EQ(r->marc.First("008")->data.substr(35, 3), "dut");
    EXPECT_EQ(r->marc.First("245")->Sub('b'), "een winterverhaal");
    EXPECT_EQ(r->marc.First("700")->Sub('a'), "Kooiman, Dirk Ayelt");
    EXPECT_TRUE(marc::Validate(r->marc).empty()) << marc::Validate(r->marc);

    auto d = DescribeRecord(r.value());
    ASSERT_TRUE(d.ok()) << d.error();
    EXPECT_EQ(d->format, "json");
    EXPECT_EQ(d->material_type, "large_print");
    EXPECT_EQ(d->year, 1947);
    EXPECT_EQ(d->language, "dut");
    EXPECT_EQ(d->title_key, "avonden") << "Dutch article dropped";
    EXPECT_EQ(d->author_key, "reve");
    ASSERT_EQ(d->isbns.size(), 1u);
    EXPECT_EQ(d->isbns[0], "9789023466024");
    ASSERT_EQ(d->ppn.size(), 1u);
    EXPECT_EQ(d->ppn[0], "841227993");
    ASSERT_TRUE(d->holdings_given);
    ASSERT_EQ(d->holdings.size(), 2u);
    EXPECT_EQ(d->holdings[1].status, ItemStatus::kOnLoan);
    EXPECT_EQ(d->holdings[1].due_date, "2026-12-01");
    EXPECT_EQ(d->holdings[1].changed_at, "2026-11-24T09:30:00Z");  // converted to UTC
    // The material type survives the MARC crosswalk too.
    auto via_marc = DescribeRecord(r->marc);
    ASSERT_TRUE(via_marc.ok());
    EXPECT_EQ(via_marc->material_type, "large_print");
    EXPECT_EQ(via_marc->title_key, d->title_key);
}

TEST(JsonRecord, EveryMaterialTypeSurvivesTheCrosswalk) {
    for (const char* type : {"book", "large_print", "braille", "ebook", "audiobook", "music", "video", "serial", "map",
                             "score", "electronic", "other"}) {
        auto r = ParseJsonRecord(fmt::format(R"({{"id":"x","title":"T","type":"{}"}})", type));
        ASSERT_TRUE(r.ok()) << type << ": " << r.error();
        auto d = DescribeRecord(r->marc);
        ASSERT_TRUE(d.ok());
        EXPECT_EQ(d->material_type, type);
    }
}

TEST(JsonRecord, CanonicalFormIgnoresKeyOrderWhitespaceAndHoldings) {
    auto a = ParseJsonRecord(R"({"title":" De avonden ","id":"1","year":1947,"isbn":"9789023466024"})");
    auto b = ParseJsonRecord(
        R"({ "id" : "1", "isbn": ["9789023466024"], "year": 1947, "title": "De avonden", "holdings": [] })");
    ASSERT_TRUE(a.ok()) << a.error();
    ASSERT_TRUE(b.ok()) << b.error();
    EXPECT_EQ(a->canonical, b->canonical);
    EXPECT_EQ(a->canonical, R"({"id":"1","type":"book","title":"De avonden","year":1947,"isbn":["9789023466024"]})");
    EXPECT_FALSE(a->holdings_given);
    EXPECT_TRUE(b->holdings_given);  // an empty list is a statement: no copies
}

TEST(JsonRecord, DublinCoreFromTheCrosswalk) {
    auto r = ParseJsonRecord(kAvonden);
    ASSERT_TRUE(r.ok());
    auto dc = dc::ToOaiDcXml(dc::FromMarc(r->marc));
    EXPECT_NE(dc.find("<dc:title>De avonden"), std::string::npos) << dc;
    EXPECT_NE(dc.find("<dc:creator>Reve, Gerard</dc:creator>"), std::string::npos) << dc;
}

struct BadCase {
    std::string input;
    std::string pointer;
    std::string message;  // a part of the error
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << "'" << c.pointer << "' " << c.message; }

class JsonRecordRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(JsonRecordRejects, WithTheExactPointerAndReason) {
    const auto& c = GetParam();
    auto r = ParseJsonRecord(c.input);
    ASSERT_FALSE(r.ok()) << c.input.substr(0, 80);
    EXPECT_EQ(r.error_pointer(), c.pointer) << r.error();
    EXPECT_NE(r.error().find(c.message), std::string::npos) << r.error();
}

std::string Deep(int n) { return std::string(n, '[') + std::string(n, ']'); }

INSTANTIATE_TEST_SUITE_P(
    Hostile, JsonRecordRejects,
    ::testing::Values(
        BadCase{"", "", "invalid JSON at byte 0"},
        BadCase{"{\"id\":\"1\",", "", "invalid JSON"},
        BadCase{"[]", "", "must be a JSON object"},
        BadCase{"{\"id\":\"1\",\"title\":\"T\"} {}", "", "invalid JSON at byte 23"},  // trailing garbage
        BadCase{"{\"id\":\"1\",\"title\":\"\xC3\x28\"}", "", "invalid JSON"},           // invalid UTF-8
        BadCase{"{\"id\":\"1\",\"title\":\"\xED\xA0\x80\"}", "", "invalid JSON"},       // UTF-8 surrogate
        BadCase{"{\"id\":\"1\",\"title\":\"T\",\"subjects\":" + Deep(100000) + "}", "/subjects/0",
                "must be a string"},  // deep nesting: no stack overflow
        BadCase{R"({"title":"T"})", "/id", "'id' is required"},
        BadCase{R"({"id":"1"})", "/title", "'title' is required"},
        BadCase{R"({"id":"1","title":"   "})", "/title", "must not be empty"},
        BadCase{R"({"id":1,"title":"T"})", "/id", "must be a string"},
        BadCase{R"({"id":"1","title":"T","id":"2"})", "/id", "appears twice"},
        BadCase{R"({"id":"1","title":"T","titel":"x"})", "/titel", "unknown member 'titel'"},
        BadCase{R"({"id":"1","title":"T","a/b~c":1})", "/a~1b~0c", "unknown member"},
        BadCase{R"({"id":"1","title":"T\u0000"})", "/title", "control character U+0000"},
        BadCase{R"({"id":"1","title":"T\u001d"})", "/title", "control character U+001D"},  // a MARC delimiter
        BadCase{R"({"id":"1","title":"T","year":"1947"})", "/year", "whole number"},
        BadCase{R"({"id":"1","title":"T","year":1e3})", "/year", "whole number"},
        BadCase{R"({"id":"1","title":"T","year":99999})", "/year", "whole number"},
        BadCase{R"({"id":"1","title":"T","language":"nl"})", "/language", "ISO 639-2"},
        BadCase{R"({"id":"1","title":"T","type":"dvd"})", "/type", "'dvd' is not a material type"},
        BadCase{R"({"id":"1","title":"T","isbn":["9789023466025"]})", "/isbn/0", "not a valid ISBN"},
        BadCase{R"({"id":"1","title":"T","isbn":[1]})", "/isbn/0", "must be a string"},
        BadCase{R"({"id":"1","title":"T","issn":"1234-5678"})", "/issn/0", "not a valid ISSN"},
        BadCase{R"({"id":"1","title":"T","authors":{"a":1}})", "/authors", "array of strings"},
        BadCase{R"({"id":"1","title":"T","holdings":{}})", "/holdings", "array of copies"},
        BadCase{R"({"id":"1","title":"T","holdings":["A1"]})", "/holdings/0", "must be an object"},
        BadCase{R"({"id":"1","title":"T","holdings":[{"status":"available"}]})", "/holdings/0/barcode",
                "'barcode' is required"},
        BadCase{R"({"id":"1","title":"T","holdings":[{"barcode":"A","status":"lost"}]})", "/holdings/0/status",
                "'lost' is not a status"},
        BadCase{R"({"id":"1","title":"T","holdings":[{"barcode":"A","due_date":"2026-02-30"}]})",
                "/holdings/0/due_date", "is not a date"},
        BadCase{R"({"id":"1","title":"T","holdings":[{"barcode":"A","changed_at":"2026-11-24 10:00"}]})",
                "/holdings/0/changed_at", "RFC 3339"},
        BadCase{R"({"id":"1","title":"T","holdings":[{"barcode":"A"},{"barcode":"A"}]})", "/holdings/1/barcode",
                "appears twice"},
        BadCase{R"({"id":"1","title":"T","holdings":[{"barcode":"A","colour":"red"}]})", "/holdings/0/colour",
                "unknown member"},
        BadCase{"{\"id\":\"" + std::string(201, 'x') + "\",\"title\":\"T\"}", "/id", "the limit is 200"},
        BadCase{"{\"id\":\"1\",\"title\":\"" + std::string(9000, 'x') + "\"}", "/title", "the limit is 8000"},
        BadCase{"{\"id\":\"1\",\"title\":\"T\",\"subjects\":[" + [] {
                    std::string s = "\"x\"";
                    for (int i = 0; i < 1000; ++i) s += ",\"x\"";
                    return s;
                }() + "]}",
                "/subjects", "1001 items; the limit is 1000"}));

TEST(JsonRecord, OversizedDocumentIsRefusedBeforeParsing) {
    JsonRecordLimits limits;
    limits.max_bytes = 100;
    auto r = ParseJsonRecord(std::string(101, ' '), limits);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "record of 101 bytes; the limit is 100");
}

TEST(NormalizeTimestamp, ConvertsOffsetsToUtc) {
    EXPECT_EQ(NormalizeTimestamp("2026-11-24T09:30:00Z").value(), "2026-11-24T09:30:00Z");
    EXPECT_EQ(NormalizeTimestamp("2026-11-24T00:30:00+01:00").value(), "2026-11-23T23:30:00Z");
    EXPECT_EQ(NormalizeTimestamp("2026-12-31T23:30:00-01:00").value(), "2027-01-01T00:30:00Z");
    EXPECT_EQ(NormalizeTimestamp("2024-02-29T12:00:00.5Z").value(), "2024-02-29T12:00:00.500000Z");
    EXPECT_EQ(NormalizeTimestamp("2026-03-01T00:15:00+02:00").value(), "2026-02-28T22:15:00Z");
    for (const char* bad : {"2026-11-24", "2026-11-24T09:30:00", "2026-11-24T25:00:00Z", "2026-02-30T00:00:00Z",
                            "2026-11-24T09:30:00+0100", "2026-11-24T09:30:00.Z", "yesterday"}) {
        auto r = NormalizeTimestamp(bad);
        EXPECT_FALSE(r.ok()) << bad;
    }
}

}  // namespace
}  // namespace iblsync::protocols
