// MARC -> Dublin Core on real records, checked against the DC and MARCXML
// schemas with xmllint (tests/data/schemas, sources in SOURCES.md there).

#include "protocols/dublin_core.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/unit/protocols/marc_test_util.hpp"
#include "tests/unit/protocols/xml_schema.hpp"

namespace iblsync::protocols {
namespace {

using iblsync::testing::SchemaDir;
using iblsync::testing::Xmllint;

TEST(DublinCore, MapsTheCoreElementsOfARealRecord) {
    // The Zebra sample record of Carl Sandburg's poems (LoC), via our MARCXML reader.
    auto items = marc::testing::ReadFile(marc::testing::DataDir() + "/originals/idzebra/collection-sandburg-1.xml");
    ASSERT_EQ(items.size(), 1u);
    ASSERT_TRUE(items[0].record.ok()) << items[0].record.error();
    auto dc = dc::FromMarc(items[0].record.value());
    std::map<std::string, int> count;
    for (const auto& [k, v] : dc) ++count[k];
    EXPECT_EQ(count["title"], 1);
    EXPECT_GE(count["creator"], 1);
    EXPECT_EQ(dc.front().first, "title");
    EXPECT_NE(dc.front().second.back(), '/');  // ISBD punctuation trimmed
    EXPECT_EQ(count["type"], 1);
}

TEST(DublinCore, EveryRecordGivesSchemaValidOaiDc) {
    std::string all = "<records xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">";
    int n = 0;
    // One document per check would take minutes; validate the records one file at a time.
    for (const auto& entry : std::filesystem::directory_iterator(marc::testing::DataDir() + "/marcxml")) {
        for (const auto& item : marc::testing::ReadFile(entry.path().string())) {
            if (!item.record.ok()) continue;
            std::string xml = dc::ToOaiDcXml(dc::FromMarc(item.record.value()));
            std::string out;
            ASSERT_EQ(Xmllint(SchemaDir() + "/dc/oai_dc.reconstructed.xsd", xml, out), 0)
                << entry.path() << "\n" << out << "\n" << xml;
            ++n;
            break;  // the first record of each file: 40+ records in a few seconds
        }
    }
    EXPECT_GE(n, 40);
}

TEST(MarcXmlWriter, OutputIsValidAgainstMarc21Slim) {
    std::string doc = marc::MarcXmlCollectionStart();
    int n = 0, untyped = 0;
    for (const auto& entry : std::filesystem::directory_iterator(marc::testing::DataDir() + "/marcxml")) {
        for (const auto& item : marc::testing::ReadFile(entry.path().string())) {
            if (!item.record.ok()) continue;
            // MARC21slim requires a type of record in leader/06; we keep a blank one
            // rather than invent a type, so such a record cannot be schema-valid.
            if (item.record->leader[6] == ' ') {
                ++untyped;
                continue;
            }
            auto xml = marc::WriteMarcXmlRecord(item.record.value(), false);
            ASSERT_TRUE(xml.ok()) << xml.error();
            doc += *xml + "\n";
            ++n;
        }
    }
    doc += marc::MarcXmlCollectionEnd();
    std::string out;
    EXPECT_EQ(Xmllint(SchemaDir() + "/marc/MARC21slim.xsd", doc, out), 0) << out.substr(0, 2000);
    EXPECT_GE(n, 600);
    EXPECT_EQ(untyped, 1);  // marc4j's bad_leaders_10_11 record, as YAZ converted it
}

TEST(DublinCore, HostileTextIsEscaped) {
    marc::Record r;
    r.leader = "00000nam a2200000 a 4500";
    r.fields.push_back({"245", '1', '0', "", {{'a', "<script>alert(1)</script> & co /"}}});
    auto xml = dc::ToOaiDcXml(dc::FromMarc(r));
    EXPECT_NE(xml.find("<dc:title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</dc:title>"), std::string::npos) << xml;
}

}  // namespace
}  // namespace iblsync::protocols
