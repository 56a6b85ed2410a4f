// Hostile and malformed MARCXML: each stops with a specific reason, nothing
// is expanded or loaded, and memory stays bounded.

#include <sstream>

#include <gtest/gtest.h>

#include "protocols/marcxml.hpp"

namespace iblsync::protocols::marc {
namespace {

const char* kRecord =
    "<record><leader>00000nam a2200000 a 4500</leader><controlfield tag=\"001\">42</controlfield>"
    "<datafield tag=\"245\" ind1=\"1\" ind2=\"0\"><subfield code=\"a\">Max Havelaar</subfield></datafield></record>";

std::vector<RawRecord> Split(const std::string& text) {
    std::istringstream in(text);
    MarcXmlSplitter s(in);
    std::vector<RawRecord> out;
    RawRecord r;
    while (s.Next(r)) out.push_back(r);
    return out;
}

TEST(MarcXmlSplitter, CutsCollectionsWithAndWithoutPrefix) {
    auto plain = Split(MarcXmlCollectionStart() + kRecord + kRecord + MarcXmlCollectionEnd());
    ASSERT_EQ(plain.size(), 2u);
    auto r = ParseMarcXmlRecord(plain[1].bytes);
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r->ControlNumber(), "42");
    EXPECT_EQ(r->First("245")->Sub('a'), "Max Havelaar");

    auto prefixed = Split(
        "<?xml version='1.0'?><marc:collection xmlns:marc=\"http://www.loc.gov/MARC21/slim\"><!-- a > comment -->"
        "<marc:record><marc:leader>00000nam a2200000 a 4500</marc:leader>"
        "<marc:datafield tag=\"245\" ind1=\"0\" ind2=\"0\"><marc:subfield code=\"a\">A &amp; B &lt;c&gt; &#233;</marc:subfield>"
        "</marc:datafield></marc:record></marc:collection>");
    ASSERT_EQ(prefixed.size(), 1u);
    auto p = ParseMarcXmlRecord(prefixed[0].bytes);
    ASSERT_TRUE(p.ok()) << p.error();
    EXPECT_EQ(p->First("245")->Sub('a'), "A & B <c> \xc3\xa9");
}

TEST(MarcXmlSplitter, RefusesDtdsSoNoEntityIsEverExpanded) {
    std::string bomb =
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>"
        "<collection>" + std::string(kRecord) + "</collection>";
    auto out = Split(bomb);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].error, "document type declarations (DTDs, <!ENTITY>) are not allowed in MARCXML");
    std::string external = "<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><collection>" + std::string(kRecord) + "</collection>";
    EXPECT_EQ(Split(external).at(0).error, "document type declarations (DTDs, <!ENTITY>) are not allowed in MARCXML");
}

TEST(MarcXmlRecord, RefusesUndeclaredEntitiesAndBadText) {
    std::string with_entity = kRecord;
    with_entity.replace(with_entity.find("Max"), 3, "&xxe;");
    EXPECT_EQ(ParseMarcXmlRecord(with_entity).error().rfind("undeclared entity '&xxe;'", 0), 0u);
    std::string bad_utf8 = kRecord;
    bad_utf8.replace(bad_utf8.find("Max"), 3, "M\xc3\x28x");
    EXPECT_NE(ParseMarcXmlRecord(bad_utf8).error().find("invalid UTF-8 at byte"), std::string::npos);
    std::string unclosed = kRecord;
    unclosed.replace(unclosed.find("</subfield>"), 11, "");
    EXPECT_NE(ParseMarcXmlRecord(unclosed).error().find("not well-formed XML"), std::string::npos);
    std::string no_leader = kRecord;
    no_leader.replace(no_leader.find("<leader>"), 38, "");
    EXPECT_EQ(ParseMarcXmlRecord(no_leader).error(), "record has no leader");
    std::string odd = kRecord;
    odd.replace(odd.find("<controlfield"), 0, "<script/>");
    EXPECT_EQ(ParseMarcXmlRecord(odd).error(), "unexpected element <script> in a record");
}

TEST(MarcXmlSplitter, RefusesOtherEncodingsAndTruncation) {
    EXPECT_EQ(Split("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><collection/>").at(0).error,
              "encoding 'iso-8859-1' is not supported; send UTF-8");
    std::string record = kRecord;
    EXPECT_EQ(Split("<collection>" + record.substr(0, record.find("Havelaar"))).at(0).error,
              "stream ends inside a <record> element");
    EXPECT_EQ(Split("<collection>" + record.substr(0, record.find("ind2"))).at(0).error, "stream ends inside a tag");
    EXPECT_EQ(Split("<collection><record/></collection>").at(0).error, "empty <record/> element");
}

TEST(MarcXmlSplitter, SkipsAnOversizedRecordAndGoesOn) {
    std::string huge = "<record><leader>00000nam a2200000 a 4500</leader><datafield tag=\"500\" ind1=\" \" ind2=\" \">"
                       "<subfield code=\"a\">" + std::string(kMaxMarcXmlRecord + 10, 'x') + "</subfield></datafield></record>";
    auto out = Split("<collection>" + huge + kRecord + "</collection>");
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].error, "record element larger than 4194304 bytes; skipped");
    EXPECT_TRUE(out[1].error.empty());
    EXPECT_TRUE(ParseMarcXmlRecord(out[1].bytes).ok());
}

TEST(MarcXmlWriter, EscapesAndRefusesWhatXmlCannotCarry) {
    Record r;
    r.leader = "00000nam a2200000 a 4500";
    r.fields.push_back(Field{"245", '1', '0', "", {Subfield{'a', "Tom & \"Jerry\" <3"}}});
    auto xml = WriteMarcXmlRecord(r);
    ASSERT_TRUE(xml.ok());
    EXPECT_NE(xml->find("Tom &amp; &quot;Jerry&quot; &lt;3"), std::string::npos);
    EXPECT_EQ(ParseMarcXmlRecord(*xml)->First("245")->Sub('a'), "Tom & \"Jerry\" <3");
    r.fields[0].subfields[0].value = "bell\x07";
    EXPECT_EQ(WriteMarcXmlRecord(r).error(), "field 245 holds characters XML 1.0 cannot carry");
}

}  // namespace
}  // namespace iblsync::protocols::marc
