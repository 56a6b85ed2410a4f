// The harvester's reading of OAI-PMH responses: what real repositories send
// around the protocol is read anyway, what would be stored is checked, and
// hostile responses are refused whole with a reason.

#include "protocols/oai_client.hpp"

#include <gtest/gtest.h>

#include "protocols/oai_pmh.hpp"

namespace iblsync::protocols::oai {
namespace {

const std::string kMarc =
    "<record xmlns=\"http://www.loc.gov/MARC21/slim\"><leader>00000nam a2200000 a 4500</leader>"
    "<controlfield tag=\"001\">1</controlfield></record>";

std::string Envelope(const std::string& body, const std::string& prefix = "") {
    const std::string p = prefix.empty() ? "" : prefix + ":";
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<" + p + "OAI-PMH xmlns" + (prefix.empty() ? "" : ":" + prefix) +
           "=\"http://www.openarchives.org/OAI/2.0/\"><" + p + "responseDate>2026-12-06T10:00:00Z</" + p +
           "responseDate><" + p + "request>http://x/oai</" + p + "request>" + body + "</" + p + "OAI-PMH>";
}

TEST(OaiClient, TargetsEncodeTheirArguments) {
    ListRecordsRequest r;
    r.set = "library:NL-1";
    r.from = "2026-12-06T10:00:00Z";
    EXPECT_EQ(ListRecordsTarget("/oai", r),
              "/oai?verb=ListRecords&metadataPrefix=marc21&set=library%3ANL-1&from=2026-12-06T10%3A00%3A00Z");
    r.resumption_token = "a b&c=d";
    EXPECT_EQ(ListRecordsTarget("/oai", r), "/oai?verb=ListRecords&resumptionToken=a%20b%26c%3Dd");
    EXPECT_EQ(VerbTarget("/cgi/oai2", "Identify"), "/cgi/oai2?verb=Identify");
}

TEST(OaiClient, AListPageWithLiveAndDeletedRecordsAndAToken) {
    const std::string body = Envelope(
        "<ListRecords><record><header><identifier> oai:x:1 </identifier><datestamp>2026-12-01T10:00:00Z</datestamp>"
        "<setSpec>a</setSpec></header><metadata>" + kMarc + "</metadata></record>"
        "<record><header status=\"deleted\"><identifier>oai:x:2</identifier><datestamp>2026-12-02</datestamp>"
        "</header></record>"
        "<resumptionToken completeListSize=\"10\" cursor=\"0\">\n  tok-1\n</resumptionToken></ListRecords>");
    auto page = ParseListRecords(body);
    ASSERT_TRUE(page) << page.error();
    ASSERT_EQ(page->items.size(), 2u);
    EXPECT_EQ(page->items[0].identifier, "oai:x:1");
    EXPECT_FALSE(page->items[0].deleted);
    EXPECT_NE(page->items[0].metadata.find("<controlfield tag=\"001\">1</controlfield>"), std::string::npos);
    EXPECT_EQ(page->items[0].metadata.rfind("<record xmlns=\"http://www.loc.gov/MARC21/slim\">", 0), 0u)
        << page->items[0].metadata;
    EXPECT_TRUE(page->items[1].deleted);
    EXPECT_EQ(page->items[1].metadata, "");
    EXPECT_EQ(page->resumption_token, "tok-1");
    EXPECT_EQ(page->complete_list_size, 10);
    EXPECT_EQ(page->cursor, 0);
}

TEST(OaiClient, EnvelopeFaultsThatRealRepositoriesHaveAreRead) {
    // A byte order mark, whitespace before the declaration, a prefix on every
    // protocol element and a namespace declared on the root only: the
    // metadata element takes the declarations it inherited.
    const std::string prefixed =
        "\xEF\xBB\xBF\n  " +
        Envelope("<oai:ListRecords><oai:record><oai:header><oai:identifier>oai:x:1</oai:identifier>"
                 "<oai:datestamp>2026-12-01</oai:datestamp></oai:header><oai:metadata>"
                 "<marc:record><marc:leader>00000nam a2200000 a 4500</marc:leader>"
                 "<marc:controlfield tag=\"001\">1</marc:controlfield></marc:record>"
                 "</oai:metadata></oai:record><oai:resumptionToken/></oai:ListRecords>",
                 "oai");
    std::string with_marc_ns = prefixed;
    with_marc_ns.replace(with_marc_ns.find("<oai:OAI-PMH "), 13,
                         "<oai:OAI-PMH xmlns:marc=\"http://www.loc.gov/MARC21/slim\" ");
    auto page = ParseListRecords(with_marc_ns);
    ASSERT_TRUE(page) << page.error();
    ASSERT_EQ(page->items.size(), 1u);
    EXPECT_NE(page->items[0].metadata.find("xmlns:marc=\"http://www.loc.gov/MARC21/slim\""), std::string::npos)
        << page->items[0].metadata;
    EXPECT_EQ(page->resumption_token, "");  // an empty token: the list ends here
}

TEST(OaiClient, ErrorsAreReadAsErrors) {
    auto page = ParseListRecords(Envelope("<error code=\"badResumptionToken\">expired</error>"));
    ASSERT_TRUE(page) << page.error();
    EXPECT_TRUE(page->HasError("badResumptionToken"));
    EXPECT_FALSE(page->HasError("noRecordsMatch"));
    EXPECT_EQ(page->errors[0].message, "expired");
    auto none = ParseListRecords(Envelope("<error code=\"noRecordsMatch\"/>"));
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->HasError("noRecordsMatch"));
    EXPECT_TRUE(none->items.empty());
    auto id = ParseIdentify(Envelope("<error code=\"badVerb\">no</error>"));
    ASSERT_FALSE(id);
    EXPECT_EQ(id.error(), "Identify answered badVerb: no");
}

TEST(OaiClient, HostileAndBrokenResponsesAreRefusedWithAReason) {
    struct Case {
        std::string body, error;
    };
    std::string deep;
    for (int i = 0; i < 80; ++i) deep += "<a>";
    for (int i = 0; i < 80; ++i) deep += "</a>";
    const std::vector<Case> cases{
        {"<html><body>502 Bad Gateway</body></html>", "expected an OAI-PMH response, got <html>"},
        {"", "the response is not well-formed XML: No document element found at byte 0"},
        {Envelope("<ListRecords><record>"), "the response is not well-formed XML: Start-end tags mismatch at byte"},
        {"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]>" + Envelope(""),
         "the response declares a DTD or entities; refused"},
        {Envelope("<ListRecords><record><header><identifier>\xff\xfe</identifier></header></record></ListRecords>"),
         "the response is not valid UTF-8"},
        {Envelope("<ListRecords>" + deep + "</ListRecords>"), "the response nests elements deeper than 64"},
        {Envelope("<ListRecords><record><metadata/></record></ListRecords>"), "record 1 has no header"},
        {Envelope("<ListRecords><record><header><identifier> </identifier></header></record></ListRecords>"),
         "record 1 has no identifier"},
        {Envelope("<GetRecord/>"), "the response has neither ListRecords nor an error"},
    };
    for (const auto& c : cases) {
        auto page = ParseListRecords(c.body);
        ASSERT_FALSE(page) << c.body.substr(0, 200);
        EXPECT_EQ(page.error().substr(0, c.error.size()), c.error) << page.error();
    }
}

TEST(OaiClient, IdentifyFormatsAndSets) {
    auto id = ParseIdentify(Envelope(
        "<Identify><repositoryName>KB</repositoryName><baseURL>http://x/oai</baseURL>"
        "<protocolVersion>2.0</protocolVersion><adminEmail>a@b.nl</adminEmail>"
        "<earliestDatestamp>2001-01-01T00:00:00Z</earliestDatestamp><deletedRecord>transient</deletedRecord>"
        "<granularity>YYYY-MM-DDThh:mm:ssZ</granularity><description><oai-identifier "
        "xmlns=\"http://www.openarchives.org/OAI/2.0/oai-identifier\"><repositoryIdentifier>kb.nl"
        "</repositoryIdentifier></oai-identifier></description></Identify>"));
    ASSERT_TRUE(id) << id.error();
    EXPECT_EQ(id->granularity, "YYYY-MM-DDThh:mm:ssZ");
    EXPECT_EQ(id->deleted_record, "transient");
    EXPECT_EQ(id->repository_identifier, "kb.nl");
    EXPECT_EQ(id->admin_emails, std::vector<std::string>{"a@b.nl"});
    auto formats = ParseListMetadataFormats(Envelope(ListMetadataFormatsXml(Formats())));
    ASSERT_TRUE(formats) << formats.error();
    ASSERT_EQ(formats->size(), 2u);
    EXPECT_EQ((*formats)[0].prefix, "marc21");
    auto sets = ParseListSets(Envelope(ListSetsXml({{"library", "Libraries"}, {"library:NL-1", "Een"}})));
    ASSERT_TRUE(sets) << sets.error();
    ASSERT_EQ(sets->sets.size(), 2u);
    EXPECT_EQ(sets->sets[1].spec, "library:NL-1");
    auto none = ParseListSets(Envelope("<error code=\"noSetHierarchy\"/>"));
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->sets.empty());
}

TEST(OaiClient, LocalIdsAndGranularity) {
    EXPECT_EQ(LocalIdOf("oai:koha.example.nl:123").value(), "123");
    EXPECT_EQ(LocalIdOf("oai:nl-ge.iblsync:NL-1:a%20b").value(), "a b");
    EXPECT_EQ(LocalIdOf("plain").value(), "plain");
    EXPECT_FALSE(LocalIdOf("oai:x:"));
    EXPECT_FALSE(LocalIdOf("oai:x:%zz"));
    EXPECT_FALSE(LocalIdOf("oai:x:%ff"));
    EXPECT_FALSE(LocalIdOf("oai:x:" + std::string(201, 'a')));
    EXPECT_EQ(AtGranularity("2026-12-06T10:11:12Z", "YYYY-MM-DD"), "2026-12-06");
    EXPECT_EQ(AtGranularity("2026-12-06T10:11:12Z", "YYYY-MM-DDThh:mm:ssZ"), "2026-12-06T10:11:12Z");
    EXPECT_EQ(AtGranularity("2012-08-15T11:11:22.171Z", "YYYY-MM-DDThh:mm:ssZ"), "2012-08-15T11:11:22Z");
}

}  // namespace
}  // namespace iblsync::protocols::oai
