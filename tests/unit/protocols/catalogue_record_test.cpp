#include "protocols/catalogue_record.hpp"

#include <filesystem>

#include <gtest/gtest.h>

#include "tests/unit/protocols/marc_test_util.hpp"

namespace iblsync::protocols {
namespace {

marc::Record Minimal() {
    marc::Record r;
    r.leader = "00000nam a2200000 a 4500";
    r.fields.push_back({"001", ' ', ' ', " b1234 ", {}});
    r.fields.push_back({"020", ' ', ' ', "", {{'a', "90-274-3964-8"}}});
    r.fields.push_back({"020", ' ', ' ', "", {{'a', "90-274-3964-0"}}});
    r.fields.push_back({"245", '1', '4', "", {{'a', "Het achterhuis :"}, {'b', "dagboekbrieven /"}, {'c', "Anne Frank"}}});
    return r;
}

TEST(DescribeRecord, CollectsTheCatalogueFields) {
    auto d = DescribeRecord(Minimal());
    ASSERT_TRUE(d.ok()) << d.error();
    EXPECT_EQ(d->local_id, "b1234");  // trimmed
    EXPECT_EQ(d->title, "Het achterhuis : dagboekbrieven");
    EXPECT_EQ(d->title_key, "achterhuis");
    EXPECT_EQ(d->isbns, (std::vector<std::string>{"9789027439642"}));
    ASSERT_EQ(d->warnings.size(), 1u);  // the second ISBN has a wrong check digit; the record is kept
    // Stored as ISO 2709, from which the record comes back as it was.
    EXPECT_EQ(d->format, "iso2709");
    auto stored = StoredMarc(d->format, d->raw);
    ASSERT_TRUE(stored.ok()) << stored.error();
    // Only the leader's lengths (00-04, 12-16) are computed anew.
    EXPECT_EQ(stored->leader.substr(5, 7), Minimal().leader.substr(5, 7));
    EXPECT_EQ(stored->leader.substr(17), Minimal().leader.substr(17));
    stored.value().leader = Minimal().leader;
    EXPECT_EQ(marc::WriteMarcXmlRecord(stored.value()).value(), marc::WriteMarcXmlRecord(Minimal()).value());
}

TEST(DescribeRecord, ARecordTooLongForIso2709IsStoredAsMarcXml) {
    auto r = Minimal();
    for (int i = 0; i < 30; ++i) r.fields.push_back({"500", ' ', ' ', "", {{'a', std::string(4000, 'x')}}});
    auto d = DescribeRecord(r);
    ASSERT_TRUE(d.ok()) << d.error();
    EXPECT_EQ(d->format, "marcxml");
    EXPECT_EQ(d->raw.rfind("<record><leader>", 0), 0u);
    auto stored = StoredMarc(d->format, d->raw);
    ASSERT_TRUE(stored.ok()) << stored.error();
    EXPECT_EQ(stored->fields.size(), r.fields.size());
    EXPECT_EQ(StoredMarc("json", "{}").error(), "a record stored as json is not MARC");
}

TEST(DescribeRecord, RefusesWhatIsNotAMarc21BibliographicRecord) {
    auto r = Minimal();
    r.fields.erase(r.fields.begin());
    EXPECT_EQ(DescribeRecord(r).error(), "record has no control number (001); the catalogue keys records by it");
    r = Minimal();
    r.leader[6] = 'x';
    EXPECT_EQ(DescribeRecord(r).error(), "this is a MARC 21 holdings record (leader/06 u, v, x or y), not a bibliographic one");
    r.leader[6] = 'z';
    EXPECT_EQ(DescribeRecord(r).error(), "this is a MARC 21 authority record (leader/06 z), not a bibliographic one");
    r = Minimal();
    r.fields.back().tag = "246";
    EXPECT_EQ(DescribeRecord(r).error(), "record has no title field 245");
    r = Minimal();
    r.fields[0].data = std::string(201, '9');
    EXPECT_EQ(DescribeRecord(r).error(), "control number (001) is 201 bytes; the limit is 200");
}

TEST(DescribeRecord, FlagsRealUnimarcRecords) {
    // qa-catalogue's short.bnr.1993.mrc: UNIMARC, structurally valid ISO 2709.
    auto items = marc::testing::ReadFile(marc::testing::DataDir() + "/originals/qa-catalogue/short.bnr.1993.mrc");
    ASSERT_EQ(items.size(), 10u);
    for (const auto& it : items) {
        ASSERT_TRUE(it.record.ok()) << it.record.error();
        EXPECT_EQ(DescribeRecord(it.record.value()).error(),
                  "looks like UNIMARC (title in field 200, no 245); only MARC 21 is accepted");
    }
}

// A POI node following only availability and works keeps brief records of
// the rest of the country. Over every real record of tests/data, the brief
// record must cluster and describe as the whole one does, and not be larger.
TEST(BriefRecord, KeepsWhatWorksAndDescriptionsNeed) {
    std::vector<std::string> files = {marc::testing::DataDir() + "/slices/thomas-mann-shared-71.xml"};
    for (const auto& e : std::filesystem::directory_iterator(marc::testing::DataDir() + "/marcxml"))
        files.push_back(e.path().string());
    int compared = 0, smaller = 0;
    for (const auto& file : files) {
        for (const auto& it : marc::testing::ReadFile(file)) {
            if (!it.record.ok()) continue;
            auto whole = DescribeRecord(it.record.value());
            if (!whole) continue;
            auto brief = DescribeStoredBrief(whole->format, whole->raw);
            ASSERT_TRUE(brief.ok()) << file << ": " << brief.error();
            EXPECT_EQ(brief->local_id, whole->local_id) << file;
            EXPECT_EQ(brief->match_keys, whole->match_keys) << file << " " << whole->local_id;
            EXPECT_EQ(brief->material_type, whole->material_type) << file << " " << whole->local_id;
            EXPECT_EQ(brief->title, whole->title) << file;
            EXPECT_EQ(brief->year, whole->year) << file;
            EXPECT_LE(brief->raw.size(), whole->raw.size()) << file;
            EXPECT_FALSE(brief->holdings_given);
            // Brief twice is brief once: a record applied again is unchanged.
            EXPECT_EQ(DescribeStoredBrief(brief->format, brief->raw)->raw, brief->raw);
            ++compared;
            if (brief->raw.size() < whole->raw.size()) ++smaller;
        }
    }
    EXPECT_GT(compared, 150);
    EXPECT_GT(smaller, compared / 2);  // most real records carry notes or subjects
}

}  // namespace
}  // namespace iblsync::protocols
