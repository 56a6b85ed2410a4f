#include "protocols/delivery.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "protocols/catalogue_record.hpp"
#include "protocols/marcxml.hpp"

namespace iblsync::protocols {
namespace {

marc::Record Stored() {
    marc::Record r;
    r.leader = "00000nam a2200000 a 4500";
    r.fields.push_back({"001", ' ', ' ', "b1", {}});
    r.fields.push_back({"003", ' ', ' ', "OCoLC", {}});
    r.fields.push_back({"005", ' ', ' ', "20261201120000.0", {}});
    r.fields.push_back({"245", '1', '0', "", {{'a', "De avonden"}}});
    r.fields.push_back({"852", ' ', ' ', "", {{'a', "local"}, {'p', "OLD1"}}});
    r.fields.push_back({"900", ' ', ' ', "", {{'a', "local field"}}});
    return r;
}

std::vector<std::string> Tags(const marc::Record& r) {
    std::vector<std::string> out;
    for (const auto& f : r.fields) out.push_back(f.tag);
    return out;
}

TEST(Delivery, CopiesReplaceTheLibrarys852sIn852Order) {
    auto r = WithCopies(Stored(), "NL-0000000402",
                        {{"J1", "Centrale", "REVE", "on_loan", "2027-01-15"}, {"J2", "", "", "available", ""}});
    EXPECT_EQ(Tags(r), (std::vector<std::string>{"001", "003", "005", "245", "852", "852", "900"}));
    EXPECT_EQ(r.fields[1].data, "NL-0000000402");  // 003: whose 001 it is
    const auto& first = r.fields[4];
    EXPECT_EQ(first.Sub('a'), "NL-0000000402");
    EXPECT_EQ(first.Sub('b'), "Centrale");
    EXPECT_EQ(first.Sub('h'), "REVE");
    EXPECT_EQ(first.Sub('p'), "J1");
    EXPECT_EQ(first.Sub('9'), "on_loan");
    EXPECT_EQ(first.Sub('d'), "2027-01-15");
    // Empty values make no subfields.
    EXPECT_EQ(r.fields[5].subfields.size(), 3u);
    // Without copies: no 852 at all, and 003 where it belongs.
    auto none = WithCopies(Stored(), "NL-0000000402", {});
    EXPECT_EQ(Tags(none), (std::vector<std::string>{"001", "003", "005", "245", "900"}));
    auto xml = marc::WriteMarcXmlRecord(r, true);
    ASSERT_TRUE(xml.ok()) << xml.error();
    EXPECT_TRUE(marc::ParseMarcXmlRecord(xml.value()).ok());
}

TEST(Delivery, DeletedRecordsAndJsonLines) {
    auto gone = DeletedRecord("NL-0000000402", "j2");
    EXPECT_EQ(gone.leader[5], 'd');
    EXPECT_EQ(Tags(gone), (std::vector<std::string>{"001", "003"}));
    EXPECT_EQ(gone.ControlNumber(), "j2");

    // Values with quotes, backslashes and non-ASCII are escaped, one line each.
    auto r = WithCopies(Stored(), "NL-0000000402", {{"J\"1\\", "Café", "", "available", ""}});
    const std::string line = DeliveryJsonLine("NL-0000000402", "b\"1", &r, {{"J\"1\\", "Café", "", "available", ""}});
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    rapidjson::Document d;
    d.Parse(line.c_str());
    ASSERT_FALSE(d.HasParseError()) << line;
    EXPECT_EQ(std::string(d["id"].GetString()), "b\"1");
    EXPECT_FALSE(d["deleted"].GetBool());
    EXPECT_TRUE(d["record"].IsObject());
    EXPECT_EQ(std::string(d["copies"][0]["barcode"].GetString()), "J\"1\\");
    EXPECT_EQ(std::string(d["copies"][0]["branch"].GetString()), "Café");
    EXPECT_FALSE(d["copies"][0].HasMember("shelfmark"));

    const std::string deleted = DeliveryJsonLine("NL-0000000402", "j2", nullptr, {});
    EXPECT_EQ(deleted, "{\"library\":\"NL-0000000402\",\"id\":\"j2\",\"deleted\":true,\"record\":null,\"copies\":[]}\n");
}

TEST(Delivery, StoredJsonRecordsComeAsTheirMarcCrosswalk) {
    auto described = DescribeRecord(ParseJsonRecord(R"({"id":"j1","title":"De avonden"})").value());
    ASSERT_TRUE(described.ok()) << described.error();
    auto marc = StoredAsMarc(described->format, described->raw);
    ASSERT_TRUE(marc.ok()) << marc.error();
    EXPECT_EQ(marc->ControlNumber(), "j1");
    EXPECT_FALSE(StoredAsMarc("json", "{not json").ok());
    EXPECT_FALSE(StoredAsMarc("marcxml", "<record>").ok());
}

}  // namespace
}  // namespace iblsync::protocols
