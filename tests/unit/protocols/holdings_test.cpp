// Copies read out of local holdings fields, on real exports (SirsiDynix 999
// from marc4j's test files, 949 from a Bodleian export) and on the presets.

#include <gtest/gtest.h>

#include "protocols/holdings.hpp"
#include "tests/unit/protocols/marc_test_util.hpp"

namespace iblsync::protocols {
namespace {

using marc::Field;
using marc::Record;

Record WithFields(std::vector<Field> fields) {
    Record r;
    r.leader = "00000nam a2200000 a 4500";
    r.fields.push_back(Field{"001", ' ', ' ', "rec-1", {}});
    for (auto& f : fields) r.fields.push_back(std::move(f));
    return r;
}

TEST(ItemStatus, NamesRoundTrip) {
    for (auto s : {ItemStatus::kAvailable, ItemStatus::kOnLoan, ItemStatus::kInTransit, ItemStatus::kReserved,
                   ItemStatus::kMissing, ItemStatus::kNotLendable}) {
        auto parsed = ParseItemStatus(ToString(s));
        ASSERT_TRUE(parsed.has_value()) << ToString(s);
        EXPECT_EQ(*parsed, s);
    }
    EXPECT_FALSE(ParseItemStatus("Available").has_value());  // the vocabulary is exact
    EXPECT_FALSE(ParseItemStatus("lost").has_value());
    EXPECT_FALSE(ParseItemStatus("").has_value());
}

TEST(NormalizeDate, AcceptsTheFormsSystemsWrite) {
    EXPECT_EQ(NormalizeDate("2026-12-01").value(), "2026-12-01");
    EXPECT_EQ(NormalizeDate("20261201").value(), "2026-12-01");
    EXPECT_EQ(NormalizeDate("2026-12-01T23:59:00").value(), "2026-12-01");
    EXPECT_EQ(NormalizeDate("2026-12-01 23:59:00").value(), "2026-12-01");
    EXPECT_EQ(NormalizeDate("5/30/2013").value(), "2013-05-30");  // SirsiDynix, US order
    EXPECT_EQ(NormalizeDate("11/27/2013").value(), "2013-11-27");
    EXPECT_EQ(NormalizeDate("2024-02-29").value(), "2024-02-29");
}

TEST(NormalizeDate, RefusesWhatIsNotACalendarDate) {
    for (const char* bad : {"2023-02-29", "2026-13-01", "2026-00-10", "2026-04-31", "26-12-01", "30/5/2013",
                            "5/30/13", "tomorrow", "", "2026-1-01", "1899-12-31", "99999999", "2026-12-01x"}) {
        auto r = NormalizeDate(bad);
        EXPECT_FALSE(r.ok()) << bad;
        if (!r.ok()) {
            EXPECT_NE(r.error().find("is not a date"), std::string::npos) << r.error();
        }
    }
}

TEST(HoldingsMapping, PresetsParseAndReadBack) {
    for (const char* preset : {"marc21", "koha", "sirsi", "KOHA"}) {
        auto m = ParseHoldingsMapping(preset);
        ASSERT_TRUE(m.ok()) << preset << ": " << m.error();
        EXPECT_TRUE(m->Enabled());
        auto again = ParseHoldingsMapping(m->Spec());
        ASSERT_TRUE(again.ok()) << m->Spec() << ": " << again.error();
        EXPECT_EQ(again->Spec(), m->Spec());
    }
    auto none = ParseHoldingsMapping("none");
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->Enabled());
    EXPECT_EQ(none->Spec(), "none");
    EXPECT_EQ(ParseHoldingsMapping("koha")->tag, "952");
    EXPECT_EQ(ParseHoldingsMapping("sirsi")->tag, "999");
}

TEST(HoldingsMapping, ASpecReadsBack) {
    auto m = ParseHoldingsMapping("949  barcode=p branch=b shelfmark=ch due=d status(r=Y)=reserved status(x)=missing");
    ASSERT_TRUE(m.ok()) << m.error();
    EXPECT_EQ(m->tag, "949");
    EXPECT_EQ(m->shelfmark, "ch");
    ASSERT_EQ(m->rules.size(), 2u);
    EXPECT_EQ(m->rules[0].test, StatusRule::Test::kEquals);
    EXPECT_EQ(m->rules[1].test, StatusRule::Test::kPresent);
    EXPECT_EQ(m->Spec(), "949 barcode=p branch=b shelfmark=ch due=d status(r=Y)=reserved status(x)=missing");
}

TEST(HoldingsMapping, BadSpecsNameTheTokenAtFault) {
    struct Case {
        const char* spec;
        const char* expect;
    };
    for (const auto& c : std::vector<Case>{
             {"", "empty holdings mapping"},
             {"koah", "'koah' is neither a preset"},
             {"001 barcode=a", "'001' is neither a preset"},
             {"95 barcode=p", "'95' is neither a preset"},
             {"952 branch=b", "needs barcode=<code>"},
             {"952 barcode=p colour=c", "unknown key 'colour'"},
             {"952 barcode=", "'barcode=': subfield codes are letters or digits"},
             {"952 barcode=p$", "'barcode=p$': subfield codes"},
             {"952 barcode=p status(7!=0)=lost", "unknown status 'lost'"},
             {"952 barcode=p status(7!=0", "write status(<code>"},
             {"952 barcode=p status()=missing", "must start with a subfield code"},
             {"952 barcode=p status(7<0)=missing", "after the subfield code comes = or !="},
             {"952 barcode", "expected key=subfield codes"},
         }) {
        auto m = ParseHoldingsMapping(c.spec);
        ASSERT_FALSE(m.ok()) << c.spec;
        EXPECT_NE(m.error().find(c.expect), std::string::npos) << c.spec << " -> " << m.error();
    }
}

TEST(ExtractHoldings, SirsiExportFromARealFile) {
    // marc4j's cyrillic_capital_e.mrc: two records from a SirsiDynix
    // catalogue (University of Virginia, library ALDERMAN), one copy each.
    auto items = marc::testing::ReadFile(marc::testing::DataDir() + "/marcxml/marc4j__cyrillic_capital_e.mrc.xml");
    ASSERT_EQ(items.size(), 2u);
    auto sirsi = ParseHoldingsMapping("sirsi").value();
    auto first = ExtractHoldings(items[0].record.value(), sirsi, "NL-TEST");
    ASSERT_EQ(first.holdings.size(), 1u);
    EXPECT_EQ(first.holdings[0].barcode, "X031605101");
    EXPECT_EQ(first.holdings[0].branch, "ALDERMAN");
    EXPECT_EQ(first.holdings[0].shelfmark, "PG3479.4 .U485 V67 2013");
    EXPECT_EQ(first.holdings[0].status, ItemStatus::kOnLoan);  // $k CHECKEDOUT
    auto second = ExtractHoldings(items[1].record.value(), sirsi, "NL-TEST");
    ASSERT_EQ(second.holdings.size(), 1u);
    EXPECT_EQ(second.holdings[0].barcode, "X030813180");
    EXPECT_EQ(second.holdings[0].status, ItemStatus::kAvailable);  // no current location: on the shelf
    EXPECT_TRUE(second.warnings.empty());
}

TEST(ExtractHoldings, A949SpecOnABodleianExport) {
    auto items = marc::testing::ReadFile(marc::testing::DataDir() + "/marcxml/marc4j__pride-and-prejudice-fixed.mrc.xml");
    ASSERT_FALSE(items.empty());
    auto m = ParseHoldingsMapping("949 barcode=p branch=a").value();
    int copies = 0;
    for (const auto& it : items) {
        if (!it.record) continue;
        auto h = ExtractHoldings(it.record.value(), m, "NL-TEST");
        for (const auto& c : h.holdings) {
            EXPECT_EQ(c.barcode.size(), 14u) << c.barcode;  // Bodleian item barcodes
            EXPECT_EQ(c.status, ItemStatus::kAvailable);
            ++copies;
        }
    }
    EXPECT_GT(copies, 0);
}

TEST(ExtractHoldings, KohaStatusRulesAndDueDates) {
    auto koha = ParseHoldingsMapping("koha").value();
    auto r = WithFields({
        Field{"952", ' ', ' ', "", {{'a', "ARN"}, {'b', "ARN-C"}, {'o', "R HERM"}, {'p', "1001"}}},
        Field{"952", ' ', ' ', "", {{'b', "ARN-C"}, {'p', "1002"}, {'q', "2026-12-01"}}},
        Field{"952", ' ', ' ', "", {{'b', "ARN-C"}, {'p', "1003"}, {'1', "1"}, {'q', "2026-12-01"}}},
        Field{"952", ' ', ' ', "", {{'b', "ARN-C"}, {'p', "1004"}, {'7', "0"}}},
        Field{"952", ' ', ' ', "", {{'b', "ARN-C"}, {'p', "1005"}, {'7', "-1"}}},
        Field{"952", ' ', ' ', "", {{'b', "ARN-C"}, {'p', "1006"}, {'q', "not a date"}}},
        Field{"952", ' ', ' ', "", {{'b', "ARN-C"}, {'o', "no barcode"}}},
    });
    auto h = ExtractHoldings(r, koha, "NL-TEST");
    ASSERT_EQ(h.holdings.size(), 6u);
    EXPECT_EQ(h.holdings[0].status, ItemStatus::kAvailable);
    EXPECT_EQ(h.holdings[0].shelfmark, "R HERM");
    EXPECT_EQ(h.holdings[0].branch, "ARN-C");
    EXPECT_EQ(h.holdings[1].status, ItemStatus::kOnLoan);
    EXPECT_EQ(h.holdings[1].due_date, "2026-12-01");
    EXPECT_EQ(h.holdings[2].status, ItemStatus::kMissing);  // lost wins over a due date
    EXPECT_EQ(h.holdings[2].due_date, "");
    EXPECT_EQ(h.holdings[3].status, ItemStatus::kAvailable);  // notforloan 0 means lendable
    EXPECT_EQ(h.holdings[4].status, ItemStatus::kNotLendable);
    EXPECT_EQ(h.holdings[5].status, ItemStatus::kAvailable);  // bad due date dropped, with a warning
    ASSERT_EQ(h.warnings.size(), 2u);
    EXPECT_NE(h.warnings[0].find("'not a date' is not a date"), std::string::npos) << h.warnings[0];
    EXPECT_NE(h.warnings[1].find("copy 7 in 952 has no barcode"), std::string::npos) << h.warnings[1];
}

TEST(ExtractHoldings, Marc21SkipsOtherLibrariesCopiesAndKeepsTheLastOfADuplicateBarcode) {
    auto m = ParseHoldingsMapping("marc21").value();
    auto r = WithFields({
        Field{"852", ' ', ' ', "", {{'a', "NL-ARN"}, {'b', "Centrum"}, {'h', "R"}, {'i', "HERM"}, {'p', "A1"}}},
        Field{"852", ' ', ' ', "", {{'a', "NL-ZWO"}, {'b', "Centrum"}, {'p', "Z1"}}},  // another library's copy
        Field{"852", ' ', ' ', "", {{'a', "UkOxU"}, {'b', "Bodleian"}, {'p', "B1"}}},   // not an ISIL: kept
        Field{"852", ' ', ' ', "", {{'a', "nl-arn"}, {'b', "Noord"}, {'p', "A1"}}},     // same barcode again
    });
    auto h = ExtractHoldings(r, m, "NL-ARN");
    ASSERT_EQ(h.holdings.size(), 2u);
    EXPECT_EQ(h.holdings[0].barcode, "A1");
    EXPECT_EQ(h.holdings[0].branch, "Noord");  // the last copy with that barcode counts
    EXPECT_EQ(h.holdings[1].barcode, "B1");
    ASSERT_EQ(h.warnings.size(), 1u);
    EXPECT_NE(h.warnings[0].find("barcode A1 appears twice"), std::string::npos);
}

TEST(ExtractHoldings, DisabledMappingFindsNothing) {
    auto r = WithFields({Field{"852", ' ', ' ', "", {{'p', "A1"}}}});
    auto h = ExtractHoldings(r, ParseHoldingsMapping("none").value(), "NL-ARN");
    EXPECT_TRUE(h.holdings.empty());
    EXPECT_TRUE(h.warnings.empty());
}

}  // namespace
}  // namespace iblsync::protocols
