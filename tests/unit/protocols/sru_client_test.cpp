// The client side of SRU: page URLs, and pages read back as servers send
// them. The 1.2 and 2.0 responses below follow what Zebra 2.2.7 (YAZ) and
// iblsyncd itself answer; the hostile ones are what a broken or malicious
// source could send.

#include <gtest/gtest.h>

#include "protocols/marcxml.hpp"
#include "protocols/sru_client.hpp"

namespace iblsync::protocols::sru {
namespace {

constexpr const char* kMarc =
    R"(<record xmlns="http://www.loc.gov/MARC21/slim"><leader>00000nam a2200000 a 4500</leader>)"
    R"(<controlfield tag="001">%ID%</controlfield><datafield tag="245" ind1="1" ind2="0">)"
    R"(<subfield code="a">De avonden</subfield></datafield></record>)";

std::string Marc(const std::string& id) {
    std::string s = kMarc;
    s.replace(s.find("%ID%"), 4, id);
    return s;
}

std::string Response12(const std::string& records, int count, const std::string& tail = "") {
    return R"(<?xml version="1.0"?><zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/">)"
           R"(<zs:version>1.2</zs:version><zs:numberOfRecords>)" +
           std::to_string(count) + "</zs:numberOfRecords><zs:records>" + records + "</zs:records>" + tail +
           "</zs:searchRetrieveResponse>";
}

std::string Record12(const std::string& data, int position) {
    return "<zs:record><zs:recordSchema>info:srw/schema/1/marcxml-v1.1</zs:recordSchema>"
           "<zs:recordPacking>xml</zs:recordPacking><zs:recordData>" +
           data + "</zs:recordData><zs:recordPosition>" + std::to_string(position) +
           "</zs:recordPosition></zs:record>";
}

TEST(SruClientUrl, ParsesHttpUrlsAndRefusesWhatItCannotHarvest) {
    auto u = ParseHttpUrl("http://127.0.0.1:8899/Default");
    ASSERT_TRUE(u) << u.error();
    EXPECT_EQ(u->host, "127.0.0.1");
    EXPECT_EQ(u->port, "8899");
    EXPECT_EQ(u->path, "/Default");
    auto bare = ParseHttpUrl("http://sru.example.nl");
    ASSERT_TRUE(bare);
    EXPECT_EQ(bare->port, "80");
    EXPECT_EQ(bare->path, "/");
    auto v6 = ParseHttpUrl("http://[::1]:210/sru");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->port, "210");
    EXPECT_EQ(ParseHttpUrl("https://x.nl/sru").error(),
              "https sources are not supported yet; use an http:// URL (or a TLS-terminating proxy)");
    EXPECT_EQ(ParseHttpUrl("ftp://x.nl/").error(), "'ftp://x.nl/' is not an http:// URL");
    EXPECT_EQ(ParseHttpUrl("http://x.nl/sru?query=a").error(),
              "the URL must not carry a query or fragment; give the SRU base URL only");
    EXPECT_EQ(ParseHttpUrl("http://x.nl:0/").error(), "'0' is not a port number 1..65535");
    EXPECT_EQ(ParseHttpUrl("http://x.nl:99999/").error(), "'99999' is not a port number 1..65535");
    EXPECT_EQ(ParseHttpUrl("http://user:pw@x.nl/").error(), "user names in the URL are not supported");
    EXPECT_EQ(ParseHttpUrl("http:///sru").error(), "the URL has no host");
}

TEST(SruClientUrl, PageTargetEncodesTheQueryAndAsksForXmlPacking) {
    HttpUrl url{"h", "80", "/Default"};
    PageRequest r;
    r.query = "dc.title = \"de avonden\" and rec.id=1&x=2";
    r.start = 51;
    r.maximum = 50;
    EXPECT_EQ(PageTarget(url, r),
              "/Default?version=1.2&operation=searchRetrieve&query=dc.title%20%3D%20%22de%20avonden%22%20and%20"
              "rec.id%3D1%26x%3D2&startRecord=51&maximumRecords=50&recordSchema=marcxml&recordPacking=xml");
    r.version = "2.0";
    EXPECT_NE(PageTarget(url, r).find("&recordXMLEscaping=xml"), std::string::npos);
}

// The time goes in as one quoted CQL term; a value that tries to close the
// quote and add a clause stays inside it.
TEST(SruClientUrl, SinceIsQuotedSoItCannotChangeTheQuery) {
    EXPECT_EQ(QueryWithSince("rec.lastModificationDate > {since}", "2026-12-05T14:03:00Z"),
              "rec.lastModificationDate > \"2026-12-05T14:03:00Z\"");
    EXPECT_EQ(QueryWithSince("a > {since} and b < {since}", "x"), "a > \"x\" and b < \"x\"");
    EXPECT_EQ(QueryWithSince("d > {since}", "1\" or cql.allRecords=1 or \"x"),
              "d > \"1\\\" or cql.allRecords=1 or \\\"x\"");
    EXPECT_EQ(QueryWithSince("no placeholder", "x"), "no placeholder");
}

TEST(SruClientPage, ReadsAnSru12PageWithNamespacedMarcRecords) {
    auto page = ParsePage(Response12(Record12(Marc("r1"), 1) + Record12(Marc("r2"), 2), 71,
                                     "<zs:nextRecordPosition>3</zs:nextRecordPosition>"));
    ASSERT_TRUE(page) << page.error();
    EXPECT_EQ(page->number_of_records, 71);
    ASSERT_EQ(page->records.size(), 2u);
    EXPECT_EQ(page->records[1].position, 2);
    EXPECT_EQ(page->records[0].schema, "info:srw/schema/1/marcxml-v1.1");
    ASSERT_TRUE(page->next_position);
    EXPECT_EQ(*page->next_position, 3);
    auto marc = marc::ParseMarcXmlRecord(page->records[1].data);
    ASSERT_TRUE(marc) << marc.error() << "\n" << page->records[1].data;
    EXPECT_EQ(marc->ControlNumber(), "r2");
    auto next = NextStart(*page, 1);
    ASSERT_TRUE(next);
    EXPECT_EQ(next.value(), std::optional<long long>(3));
}

// A prefix declared on the envelope, not on the record: the record is cut
// out with the declaration it needs.
TEST(SruClientPage, RecordsKeepNamespaceDeclarationsOfTheirAncestors) {
    std::string body =
        R"(<sru:searchRetrieveResponse xmlns:sru="http://docs.oasis-open.org/ns/search-ws/sruResponse")"
        R"( xmlns:marc="http://www.loc.gov/MARC21/slim"><sru:version>2.0</sru:version>)"
        R"(<sru:numberOfRecords>1</sru:numberOfRecords><sru:records><sru:record>)"
        R"(<sru:recordSchema>marcxml</sru:recordSchema><sru:recordXMLEscaping>xml</sru:recordXMLEscaping>)"
        R"(<sru:recordData><marc:record><marc:leader>00000nam a2200000 a 4500</marc:leader>)"
        R"(<marc:controlfield tag="001">p1</marc:controlfield></marc:record></sru:recordData>)"
        R"(<sru:recordPosition>1</sru:recordPosition></sru:record></sru:records></sru:searchRetrieveResponse>)";
    auto page = ParsePage(body);
    ASSERT_TRUE(page) << page.error();
    ASSERT_EQ(page->records.size(), 1u);
    EXPECT_NE(page->records[0].data.find(R"(xmlns:marc="http://www.loc.gov/MARC21/slim")"), std::string::npos)
        << page->records[0].data;
    auto marc = marc::ParseMarcXmlRecord(page->records[0].data);
    ASSERT_TRUE(marc) << marc.error();
    EXPECT_EQ(marc->ControlNumber(), "p1");
    auto next = NextStart(*page, 1);
    ASSERT_TRUE(next);
    EXPECT_FALSE(next.value()) << "one record of one: the last page";
}

TEST(SruClientPage, StringPackedRecordsAreUnescaped) {
    std::string escaped;
    for (char c : Marc("s1")) {
        if (c == '<') escaped += "&lt;";
        else if (c == '>') escaped += "&gt;";
        else if (c == '"') escaped += "&quot;";
        else escaped += c;
    }
    auto page = ParsePage(Response12(Record12(escaped, 1), 1));
    ASSERT_TRUE(page) << page.error();
    auto marc = marc::ParseMarcXmlRecord(page->records.at(0).data);
    ASSERT_TRUE(marc) << marc.error();
    EXPECT_EQ(marc->ControlNumber(), "s1");
}

TEST(SruClientPage, DiagnosticsForTheRequestAndForOneRecord) {
    auto failed = ParsePage(
        R"(<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:version>1.2</zs:version>)"
        R"(<zs:numberOfRecords>0</zs:numberOfRecords><zs:diagnostics>)"
        R"(<diagnostic xmlns="http://www.loc.gov/zing/srw/diagnostic/"><uri>info:srw/diagnostic/1/2</uri>)"
        R"(<details>index rebuild</details><message>System temporarily unavailable</message></diagnostic>)"
        R"(</zs:diagnostics></zs:searchRetrieveResponse>)");
    ASSERT_TRUE(failed) << failed.error();
    ASSERT_EQ(failed->diagnostics.size(), 1u);
    EXPECT_EQ(failed->diagnostics[0].Code(), 2);
    EXPECT_TRUE(failed->diagnostics[0].Transient());
    EXPECT_EQ(failed->diagnostics[0].details, "index rebuild");
    RemoteDiagnostic syntax{"info:srw/diagnostic/1/10", "", ""};
    EXPECT_FALSE(syntax.Transient());
    EXPECT_EQ((RemoteDiagnostic{"info:srw/diagnostic/1/2x", "", ""}.Code()), 0);
    EXPECT_EQ((RemoteDiagnostic{"http://example.org/diag/2", "", ""}.Code()), 0);

    auto surrogate = ParsePage(Response12(
        Record12(Marc("ok"), 1) +
            "<zs:record><zs:recordSchema>info:srw/schema/1/diagnostics-v1.1</zs:recordSchema><zs:recordData>"
            "<diagnostic xmlns=\"http://www.loc.gov/zing/srw/diagnostic/\"><uri>info:srw/diagnostic/1/65</uri>"
            "<details>2</details></diagnostic></zs:recordData><zs:recordPosition>2</zs:recordPosition></zs:record>",
        2));
    ASSERT_TRUE(surrogate) << surrogate.error();
    ASSERT_EQ(surrogate->records.size(), 2u);
    EXPECT_FALSE(surrogate->records[0].diagnostic);
    ASSERT_TRUE(surrogate->records[1].diagnostic);
    EXPECT_EQ(surrogate->records[1].diagnostic->Code(), 65);
    EXPECT_TRUE(surrogate->diagnostics.empty());
}

// Paging ends when the count is reached; a server whose
// nextRecordPosition would skip records or loop is refused.
TEST(SruClientPage, NextStartFollowsTheCountAndRefusesLoops) {
    Page p;
    p.number_of_records = 5;
    p.records.resize(2);
    EXPECT_EQ(NextStart(p, 1).value(), std::optional<long long>(3));
    EXPECT_EQ(NextStart(p, 4).value(), std::optional<long long>());  // 4 and 5: the end
    p.records.clear();
    EXPECT_EQ(NextStart(p, 1).value(), std::optional<long long>()) << "an empty page ends the run";
    p.records.resize(2);
    p.next_position = 1;
    auto loop = NextStart(p, 1);
    ASSERT_FALSE(loop);
    EXPECT_EQ(loop.error(), "nextRecordPosition 1 does not follow a page of 2 records from 1");
    p.next_position = 9;
    EXPECT_FALSE(NextStart(p, 1));
    p.next_position = 3;
    EXPECT_EQ(NextStart(p, 1).value(), std::optional<long long>(3));
}

TEST(SruClientPage, HostileAndBrokenAnswersAreRefusedWithAReason) {
    struct Case {
        std::string body, error;
    };
    std::string deep = "<searchRetrieveResponse><numberOfRecords>1</numberOfRecords><records><record><recordData>";
    for (int i = 0; i < 80; ++i) deep += "<a>";
    for (int i = 0; i < 80; ++i) deep += "</a>";
    deep += "</recordData></record></records></searchRetrieveResponse>";
    const Case cases[] = {
        {"<html><body>502 Bad Gateway</body></html>", "expected an SRU searchRetrieveResponse, got <html>"},
        {"", "the response is not well-formed XML: No document element found at byte 0"},
        {"<searchRetrieveResponse><numberOfRecords>1</numberOf", "the response is not well-formed XML: "
                                                                 "Start-end tags mismatch at byte 44"},
        {R"(<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>)"
         R"(<searchRetrieveResponse><numberOfRecords>&lol2;</numberOfRecords></searchRetrieveResponse>)",
         "the response declares a DTD or entities; refused"},
        {"<searchRetrieveResponse><numberOfRecords>1\xff</numberOfRecords></searchRetrieveResponse>",
         "the response is not valid UTF-8"},
        {"<searchRetrieveResponse><version>1.2</version></searchRetrieveResponse>",
         "the response has no numberOfRecords"},
        {"<searchRetrieveResponse><numberOfRecords>-4</numberOfRecords></searchRetrieveResponse>",
         "numberOfRecords is negative"},
        {"<searchRetrieveResponse><numberOfRecords>3</numberOfRecords><nextRecordPosition>x</nextRecordPosition>"
         "</searchRetrieveResponse>",
         "nextRecordPosition 'x' is not a positive number"},
        {"<searchRetrieveResponse><numberOfRecords>1</numberOfRecords><records><record><recordSchema>marcxml"
         "</recordSchema></record></records></searchRetrieveResponse>",
         "record 1 has no recordData"},
        {"<searchRetrieveResponse><numberOfRecords>1</numberOfRecords><records><record><recordData>"
         "&lt;!DOCTYPE x [&lt;!ENTITY a \"b\"&gt;]&gt;&lt;record/&gt;</recordData></record></records>"
         "</searchRetrieveResponse>",
         "record 1 declares a DTD or entities; refused"},
        {deep, "the response nests elements deeper than 64"},
    };
    for (const auto& c : cases) {
        auto r = ParsePage(c.body);
        ASSERT_FALSE(r) << c.body;
        EXPECT_EQ(r.error(), c.error) << c.body;
    }
}

}  // namespace
}  // namespace iblsync::protocols::sru
