// The SRU server of a real daemon over loopback HTTP, on real records in a
// real PostgreSQL: every response is checked with xmllint against the SRU
// 1.2 or 2.0 schema, and every record in it against MARC21slim.xsd or the
// srw_dc schema (tests/data/schemas, sources in SOURCES.md there). A real
// SRU client, yaz-client (Debian's yaz), searches it too.

#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pugixml.hpp>

#include "protocols/url.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

std::string Schemas() { return SourceDir() + "/tests/data/schemas/"; }

struct Reply {
    int status = 0;
    std::string content_type;
    std::string body;
    pugi::xml_document doc;
};

class SruTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new TempDir();
        schema_ = new TestSchema();
        NodeConfig cfg;
        cfg.conninfo = schema_->conninfo();
        cfg.role = "national";
        cfg.isil = "NL-KB-TEST";
        daemon_ = new DaemonProcess(*dir_, cfg);
        ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
        auto load = [](const std::string& lib, const std::string& province, std::vector<std::string> files) {
            std::vector<std::string> argv{IblctlPath(), "import", "--db", schema_->conninfo(), "--library", lib,
                                          "--name", lib, "--province", province, "--rejects",
                                          dir_->File(lib + ".rejects")};
            for (auto& f : files) argv.push_back(SourceDir() + "/tests/data/" + f);
            auto r = RunCommand(argv, 120s);
            ASSERT_EQ(r.exit_code, 0) << r.err;
        };
        load("NL-0000000101", "NL-GE", {"marc/slices/thomas-mann-shared-71.xml"});
        load("NL-0000000102", "NL-ZH", {"marc/originals/pymarc_basics/NLNZ_100_example_marc.marc"});
        load("NL-DEMO-EDE", "NL-GE", {"demo/NL-DEMO-EDE.ndjson"});
        load("NL-DEMO-ZUT", "NL-GE", {"demo/NL-DEMO-ZUT.ndjson"});
    }
    static void TearDownTestSuite() {
        delete daemon_;
        delete schema_;
        delete dir_;
    }

    static std::unique_ptr<Reply> Get(const std::string& query, const std::string& path = "/sru") {
        return ReplyOf(HttpGet(daemon_->port(), query.empty() ? path : path + "?" + query));
    }
    // The same parameters as a form: for queries longer than a URL may be.
    static std::unique_ptr<Reply> Post(const std::string& form) {
        return ReplyOf(HttpCall(daemon_->port(), "POST", "/sru",
                                {{"Content-Type", "application/x-www-form-urlencoded"}}, form));
    }
    static std::unique_ptr<Reply> ReplyOf(const std::optional<HttpReply>& r) {
        EXPECT_TRUE(r.has_value());
        auto out = std::make_unique<Reply>();
        if (!r) return out;
        out->status = r->status;
        auto type = r->headers.find("content-type");
        out->content_type = type == r->headers.end() ? "" : type->second;
        out->body = r->body;
        out->doc.load_string(out->body.c_str());
        return out;
    }
    // Parameters encoded for a URL.
    static std::string Q(const std::vector<std::pair<std::string, std::string>>& params) {
        std::string out;
        for (const auto& [k, v] : params)
            out += (out.empty() ? "" : "&") + protocols::PercentEncode(k) + "=" + protocols::PercentEncode(v);
        return out;
    }

    // xmllint --schema; returns "" if valid, else what xmllint said.
    static std::string Invalid(const std::string& xml, const std::string& xsd) {
        static int n = 0;
        const std::string file = dir_->File(fmt::format("doc{}.xml", n++));
        WriteFile(file, xml);
        auto r = RunCommand({"/usr/bin/xmllint", "--noout", "--nonet", "--schema", Schemas() + xsd, file});
        return r.exit_code == 0 ? "" : r.err + r.out;
    }
    // The whole response against its version's schema, and each record in
    // it against the record schema.
    static void ExpectValid(const Reply& r, bool v2) {
        EXPECT_EQ(r.status, 200);
        EXPECT_EQ(Invalid(r.body, v2 ? "sru/2.0/sruResponse.xsd" : "sru/1.2/srw-types.xsd"), "") << r.body.substr(0, 2000);
        for (auto rec : r.doc.document_element().child("zs:records").children("zs:record")) {
            const std::string schema = rec.child_value("zs:recordSchema");
            auto data = rec.child("zs:recordData");
            std::string record = data.first_child().type() == pugi::node_element ? "" : data.child_value();
            if (record.empty()) {
                std::ostringstream s;
                data.first_child().print(s, "", pugi::format_raw);
                record = s.str();
            }
            std::string xsd;
            if (schema == "info:srw/schema/1/marcxml-v1.1") xsd = "marc/MARC21slim.xsd";
            if (schema == "info:srw/schema/1/dc-v1.1") xsd = "dc/srw_dc.reconstructed.xsd";
            if (!xsd.empty()) {
                EXPECT_EQ(Invalid(record, xsd), "") << record.substr(0, 500);
            }
        }
    }
    static std::string DiagnosticUri(const Reply& r) {
        return r.doc.document_element().child("zs:diagnostics").child("diag:diagnostic").child_value("diag:uri");
    }
    static std::string DiagnosticDetails(const Reply& r) {
        return r.doc.document_element().child("zs:diagnostics").child("diag:diagnostic").child_value("diag:details");
    }
    static long long Hits(const Reply& r) {
        return std::stoll("0" + std::string(r.doc.document_element().child_value("zs:numberOfRecords")));
    }
    static std::size_t Records(const Reply& r) {
        std::size_t n = 0;
        for (auto rec : r.doc.document_element().child("zs:records").children("zs:record")) n += !rec.empty();
        return n;
    }
    static std::string Fingerprint() {
        return schema_->Query1("SELECT count(*) || '/' || sum(version) || '/' || (SELECT count(*) FROM holding) FROM "
                               "bib_record");
    }

    static TempDir* dir_;
    static TestSchema* schema_;
    static DaemonProcess* daemon_;
};

TempDir* SruTest::dir_ = nullptr;
TestSchema* SruTest::schema_ = nullptr;
DaemonProcess* SruTest::daemon_ = nullptr;

TEST_F(SruTest, ExplainDescribesTheServerInBothVersions) {
    for (bool v2 : {false, true}) {
        auto r = Get(v2 ? "" : "version=1.2&operation=explain");
        ExpectValid(*r, v2);
        EXPECT_EQ(r->content_type, v2 ? "application/sru+xml; charset=utf-8" : "text/xml; charset=utf-8");
        auto explain = r->doc.document_element().child("zs:record").child("zs:recordData").child("explain");
        ASSERT_TRUE(explain) << r->body.substr(0, 500);
        EXPECT_STREQ(explain.attribute("xmlns").value(), "http://explain.z3950.org/dtd/2.0/");
        EXPECT_STREQ(explain.child("serverInfo").child_value("database"), "sru");
        int indexes = 0;
        for (auto i : explain.child("indexInfo").children("index")) indexes += !i.empty();
        EXPECT_GE(indexes, 30);
        EXPECT_TRUE(explain.child("indexInfo").find_child_by_attribute("set", "name", "ibl"));
        EXPECT_STREQ(explain.child("configInfo").find_child_by_attribute("setting", "type", "maximumRecords").child_value(),
                     "100");
    }
    // Explain packed as a string, and an explain with a wrong parameter.
    ExpectValid(*Get("version=1.2&operation=explain&recordPacking=string"), false);
    auto bad = Get("version=1.2&operation=explain&recordPacking=zip");
    ExpectValid(*bad, false);
    EXPECT_EQ(DiagnosticUri(*bad), "info:srw/diagnostic/1/71");
}

TEST_F(SruTest, SearchRetrieveInEverySchemaPackingAndVersion) {
    for (const char* version : {"1.1", "1.2", "2.0"}) {
        const bool v2 = std::string(version) == "2.0";
        for (const char* schema : {"marcxml", "dc", "json", "info:srw/schema/1/marcxml-v1.1"}) {
            for (bool escaped : {false, true}) {
                SCOPED_TRACE(fmt::format("{} {} {}", version, schema, escaped));
                std::vector<std::pair<std::string, std::string>> p{
                    {"version", version}, {"operation", "searchRetrieve"}, {"query", "dc.creator = mann"},
                    {"maximumRecords", "3"}, {"recordSchema", schema}};
                if (escaped) p.emplace_back(v2 ? "recordXMLEscaping" : "recordPacking", "string");
                auto r = Get(Q(p));
                ExpectValid(*r, v2);
                EXPECT_EQ(Hits(*r), 71);
                EXPECT_EQ(Records(*r), 3u);
                EXPECT_STREQ(r->doc.document_element().child_value("zs:nextRecordPosition"), "4");
                auto first = r->doc.document_element().child("zs:records").child("zs:record");
                EXPECT_STREQ(first.child_value("zs:recordPosition"), "1");
                if (std::string(schema) == "json") {
                    // JSON is text whatever the packing: MARC-in-JSON.
                    EXPECT_EQ(std::string(first.child("zs:recordData").child_value()).rfind("{\"leader\":", 0), 0u);
                }
            }
        }
    }
}

TEST_F(SruTest, PagingEdges) {
    // Past the end: the count and diagnostic 61.
    auto past = Get("version=1.2&operation=searchRetrieve&query=dc.creator=mann&startRecord=72");
    ExpectValid(*past, false);
    EXPECT_EQ(Hits(*past), 71);
    EXPECT_EQ(DiagnosticUri(*past), "info:srw/diagnostic/1/61");
    EXPECT_EQ(DiagnosticDetails(*past), "72");
    auto huge_start = Get("version=1.2&operation=searchRetrieve&query=dc.creator=mann&startRecord=99999999999999999999999");
    EXPECT_EQ(DiagnosticUri(*huge_start), "info:srw/diagnostic/1/61");
    // The last page, exactly.
    auto last = Get("version=1.2&operation=searchRetrieve&query=dc.creator=mann&startRecord=71&maximumRecords=10");
    ExpectValid(*last, false);
    EXPECT_EQ(Records(*last), 1u);
    EXPECT_FALSE(last->doc.document_element().child("zs:nextRecordPosition"));
    // maximumRecords=0: the count only.
    auto count = Get("query=dc.creator=mann&maximumRecords=0");
    ExpectValid(*count, true);
    EXPECT_EQ(Hits(*count), 71);
    EXPECT_EQ(Records(*count), 0u);
    // More than the server sends at once: max_records (100) and a next position.
    auto many = Get("version=1.2&operation=searchRetrieve&query=cql.allRecords=1&maximumRecords=100000000000000000000");
    ExpectValid(*many, false);
    EXPECT_EQ(Records(*many), 100u);
    EXPECT_STREQ(many->doc.document_element().child_value("zs:nextRecordPosition"), "101");
    // Nothing found is no diagnostic.
    auto none = Get("version=1.2&operation=searchRetrieve&query=dc.title=xyzzyplugh");
    ExpectValid(*none, false);
    EXPECT_EQ(Hits(*none), 0);
    EXPECT_EQ(DiagnosticUri(*none), "");
    // Pages follow each other in the sorted order.
    const std::string sorted = "dc.creator=mann sortBy dc.title";
    auto page1 = Get(Q({{"query", sorted}, {"maximumRecords", "5"}, {"recordSchema", "dc"}}));
    auto page2 = Get(Q({{"query", sorted}, {"maximumRecords", "5"}, {"startRecord", "6"}, {"recordSchema", "dc"}}));
    auto both = Get(Q({{"query", sorted}, {"maximumRecords", "10"}, {"recordSchema", "dc"}}));
    std::vector<std::string> a, b;
    for (auto* r : {page1.get(), page2.get()})
        for (auto rec : r->doc.document_element().child("zs:records").children("zs:record"))
            a.push_back(rec.child("zs:recordData").first_child().child_value("dc:title"));
    for (auto rec : both->doc.document_element().child("zs:records").children("zs:record"))
        b.push_back(rec.child("zs:recordData").first_child().child_value("dc:title"));
    EXPECT_EQ(a, b);
    ASSERT_EQ(b.size(), 10u);
}

TEST_F(SruTest, SortByAndSortKeysGiveTheSameOrder) {
    auto titles = [](const Reply& r) {
        std::vector<std::string> out;
        for (auto rec : r.doc.document_element().child("zs:records").children("zs:record"))
            out.push_back(rec.child("zs:recordData").first_child().child_value("dc:date"));
        return out;
    };
    auto by = Get(Q({{"version", "1.2"}, {"operation", "searchRetrieve"},
                     {"query", "dc.creator = mann sortBy dc.date/sort.descending"}, {"recordSchema", "dc"}}));
    auto keys = Get(Q({{"version", "1.1"}, {"operation", "searchRetrieve"}, {"query", "dc.creator = mann"},
                       {"sortKeys", "dc.date,,0"}, {"recordSchema", "dc"}}));
    ExpectValid(*by, false);
    ExpectValid(*keys, false);
    EXPECT_EQ(titles(*by), titles(*keys));
    EXPECT_EQ(titles(*by).size(), 10u);
}

TEST_F(SruTest, BadRequestsGetTheirDiagnostic) {
    struct {
        std::string query;
        bool v2;
        int code;
        std::string details;
    } cases[] = {
        {"version=9.9&operation=searchRetrieve&query=x", true, 5, "2.0"},
        {"version=1.2&operation=frobnicate", false, 4, "frobnicate"},
        {"version=1.2&operation=searchRetrieve", false, 7, "query"},
        {"version=1.2&operation=searchRetrieve&query=x&colour=red", false, 8, "colour"},
        {"version=1.2&operation=searchRetrieve&query=x&query=y", false, 6, "query"},
        {"version=1.2&operation=searchRetrieve&query=x&recordSchema=mods", false, 66, "mods"},
        {"version=1.2&operation=searchRetrieve&query=x&recordPacking=zip", false, 71, "zip"},
        {"query=x&recordXMLEscaping=zip", true, 71, "zip"},
        {"version=1.2&operation=searchRetrieve&query=x&stylesheet=s.xsl", false, 110, "s.xsl"},
        {"version=1.2&operation=searchRetrieve&query=x&recordXPath=/a", false, 72, "/a"},
        {"version=1.2&operation=searchRetrieve&query=x&maximumRecords=abc", false, 6, "maximumRecords"},
        {"version=1.2&operation=searchRetrieve&query=x&startRecord=0", false, 6, "startRecord"},
        {"version=1.1&operation=searchRetrieve&query=x&sortKeys=,,,", false, 6, "sortKeys"},
        {"version=1.1&operation=searchRetrieve&query=x&sortKeys=dc.title,,1,0,missingOmit", false, 92, "missingOmit"},
        {"query=x&queryType=pqf", true, 6, "queryType"},
        {"query=x&httpAccept=application/json", true, 6, "httpAccept"},
        {"version=1.2&operation=searchRetrieve&query=dc.title%3D(opera", false, 10, "9"},
        {"query=a%20and", true, 10, "5"},
        {"version=1.2&operation=searchRetrieve&query=dc.coverage%3Dx", false, 16, "dc.coverage"},
        {"version=1.2&operation=searchRetrieve&query=foo.bar%3Dx", false, 15, "foo"},
        {"version=1.2&operation=searchRetrieve&query=dc.title%20%3D%2FrespectCase%20Aida", false, 20, "respectCase"},
        {"version=1.2&operation=searchRetrieve&query=dc.title%20near%20aida", false, 19, "near"},
        {"version=1.2&operation=searchRetrieve&query=dc.title%20%3E%20aida", false, 22, ">"},
        {"version=1.2&operation=searchRetrieve&query=cql.resultSetId%3Dabc", false, 51, "abc"},
        {"version=1.2&operation=scan", false, 7, "scanClause"},
        {"version=1.2&operation=scan&scanClause=dc.date%3D1990", false, 16, "dc.date"},
        {"version=1.2&operation=scan&scanClause=a%20and%20b", false, 10, ""},
        {"version=1.2&operation=searchRetrieve&query=%zz", true, 6, ""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.query);
        auto r = Get(c.query);
        ExpectValid(*r, c.v2);
        EXPECT_EQ(DiagnosticUri(*r), fmt::format("info:srw/diagnostic/1/{}", c.code)) << r->body.substr(0, 1500);
        EXPECT_EQ(DiagnosticDetails(*r), c.details);
    }
}

TEST_F(SruTest, PostedFormsWorkLikeGetAndOtherMethodsAreRefused) {
    auto posted = HttpCall(daemon_->port(), "POST", "/sru",
                           {{"Content-Type", "application/x-www-form-urlencoded"}},
                           "version=1.2&operation=searchRetrieve&query=dc.title%3Dbuddenbrooks&recordSchema=dc");
    ASSERT_TRUE(posted);
    pugi::xml_document doc;
    doc.load_string(posted->body.c_str());
    EXPECT_STREQ(doc.document_element().child_value("zs:numberOfRecords"), "3");
    auto json = HttpCall(daemon_->port(), "POST", "/sru", {{"Content-Type", "application/json"}}, "{\"query\":\"x\"}");
    ASSERT_TRUE(json);
    EXPECT_EQ(json->status, 200);
    EXPECT_NE(json->body.find("info:srw/diagnostic/1/6"), std::string::npos);
    auto put = HttpCall(daemon_->port(), "PUT", "/sru", {}, "x");
    ASSERT_TRUE(put);
    EXPECT_EQ(put->status, 405);
    EXPECT_EQ(put->headers["allow"], "GET, POST");
}

TEST_F(SruTest, SrwSoapRequestsGetSoapAnswers) {
    const std::string request =
        "<?xml version=\"1.0\"?><SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\">"
        "<SOAP-ENV:Body><srw:searchRetrieveRequest xmlns:srw=\"http://www.loc.gov/zing/srw/\"><srw:version>1.2"
        "</srw:version><srw:query>dc.title=buddenbrooks</srw:query><srw:maximumRecords>2</srw:maximumRecords>"
        "<srw:recordSchema>dc</srw:recordSchema></srw:searchRetrieveRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>";
    auto r = HttpCall(daemon_->port(), "POST", "/sru", {{"Content-Type", "text/xml"}}, request);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    pugi::xml_document doc;
    ASSERT_TRUE(doc.load_string(r->body.c_str())) << r->body;
    auto response = doc.document_element().child("SOAP-ENV:Body").child("zs:searchRetrieveResponse");
    ASSERT_TRUE(response) << r->body.substr(0, 500);
    EXPECT_STREQ(response.child_value("zs:numberOfRecords"), "3");
    std::ostringstream inner;
    response.print(inner, "", pugi::format_raw);
    EXPECT_EQ(Invalid(inner.str(), "sru/1.2/srw-types.xsd"), "");
    // Not SOAP, or with a document type: a diagnostic in an envelope, nothing expanded.
    for (const std::string& bad : {std::string("<not-soap/>"), std::string("<<<"),
                                  "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]>" + request.substr(21)}) {
        auto b = HttpCall(daemon_->port(), "POST", "/sru", {{"Content-Type", "text/xml"}}, bad);
        ASSERT_TRUE(b);
        EXPECT_EQ(b->status, 200);
        EXPECT_NE(b->body.find("<SOAP-ENV:Body><zs:searchRetrieveResponse"), std::string::npos) << b->body;
        EXPECT_NE(b->body.find("info:srw/diagnostic/1/6"), std::string::npos) << b->body;
    }
}

TEST_F(SruTest, AvailabilityOfEachCopyWhenAsked) {
    auto r = Get("version=1.2&operation=searchRetrieve&query=dc.title%3Davonden&x-holdings=true&recordSchema=dc");
    ExpectValid(*r, false);
    ASSERT_EQ(Hits(*r), 2);
    int copies = 0, available = 0;
    for (auto rec : r->doc.document_element().child("zs:records").children("zs:record")) {
        auto holdings = rec.child("zs:extraRecordData").child("ibl:holdings");
        ASSERT_TRUE(holdings);
        EXPECT_STREQ(holdings.attribute("xmlns:ibl").value(), "urn:iblsync:holdings:1.0");
        for (auto c : holdings.children("ibl:copy")) {
            ++copies;
            available += std::string(c.child_value("ibl:availableNow")) == "true";
            EXPECT_TRUE(std::string(c.child_value("ibl:library")).rfind("NL-DEMO-", 0) == 0);
        }
    }
    EXPECT_EQ(copies, 3);
    EXPECT_EQ(available, 1);
    // Not asked: no extra data.
    auto plain = Get("version=1.2&operation=searchRetrieve&query=dc.title%3Davonden");
    EXPECT_FALSE(plain->doc.document_element().child("zs:records").child("zs:record").child("zs:extraRecordData"));
    // Where can it be borrowed now: the availability index.
    auto now = Get(Q({{"query", "dc.title = avonden and ibl.available = true"}}));
    EXPECT_EQ(Hits(*now), 1);
}

TEST_F(SruTest, ScanListsHeadingsAroundTheTerm) {
    for (bool v2 : {false, true}) {
        auto r = Get(fmt::format("version={}&operation=scan&scanClause=dc.title%3Dmagic&maximumTerms=3&responsePosition=2",
                                 v2 ? "2.0" : "1.2"));
        if (v2)
            EXPECT_EQ(Invalid(r->body, "sru/2.0/scan.local.xsd"), "") << r->body;
        else
            ExpectValid(*r, false);
        std::vector<std::string> terms;
        for (auto t : r->doc.document_element().child("zs:terms").children("zs:term")) terms.push_back(t.child_value("zs:value"));
        ASSERT_EQ(terms.size(), 3u) << r->body;
        EXPECT_LT(terms[0], "magic");
        EXPECT_GE(terms[1], "magic");
        EXPECT_EQ(terms[1], "magic mountain");
    }
}

TEST_F(SruTest, HostileInputGetsADiagnosticAndChangesNothing) {
    const auto before = Fingerprint();
    std::string many = "a";
    for (int i = 1; i < 10000; ++i) many += " or a";
    auto r = Post(Q({{"query", many}}));
    ExpectValid(*r, true);
    EXPECT_EQ(DiagnosticUri(*r), "info:srw/diagnostic/1/12");
    // In a URL it is over the HTTP header limit first: 431, before SRU sees it.
    auto url = HttpGet(daemon_->port(), "/sru?" + Q({{"query", many}}));
    ASSERT_TRUE(url);
    EXPECT_EQ(url->status, 431);
    std::string booleans = "a";
    for (int i = 0; i < 300; ++i) booleans += " or a";
    EXPECT_EQ(DiagnosticUri(*Post(Q({{"query", booleans}}))), "info:srw/diagnostic/1/38");
    EXPECT_EQ(DiagnosticUri(*Post(Q({{"query", std::string(5000, '(') + "a" + std::string(5000, ')')}}))),
              "info:srw/diagnostic/1/13");
    // Invalid UTF-8 in the query and in a parameter that is echoed: still well-formed XML.
    auto utf8 = Get("version=1.2&operation=searchRetrieve&query=caf%C3%28");
    ExpectValid(*utf8, false);
    EXPECT_EQ(DiagnosticUri(*utf8), "info:srw/diagnostic/1/10");
    auto echoed = Get("version=1.2&operation=searchRetrieve&query=x&recordSchema=%FF%FE%01");
    ExpectValid(*echoed, false);
    EXPECT_EQ(DiagnosticUri(*echoed), "info:srw/diagnostic/1/66");
    // SQL and XML in terms are only characters.
    for (const char* q : {"dc.title = \"'; DROP TABLE bib_record; --\"", "dc.title = \"<x>&amp;\"",
                          "rec.identifier = \"1' OR '1'='1\"", "dc.title = \"a\\\" or 1=1 --\""}) {
        auto s = Get(Q({{"version", "1.2"}, {"operation", "searchRetrieve"}, {"query", q}}));
        ExpectValid(*s, false);
        EXPECT_EQ(Hits(*s), 0) << q;
        EXPECT_EQ(DiagnosticUri(*s), "") << q;
    }
    EXPECT_EQ(Fingerprint(), before);
    EXPECT_EQ(HttpGet(daemon_->port(), "/healthz")->status, 200);
    EXPECT_TRUE(daemon_->Running());
}

TEST_F(SruTest, YazClientSearchesIt) {
    const std::string cmds = dir_->File("yaz.cmds");
    WriteFile(cmds, fmt::format("open http://127.0.0.1:{}/sru\nsru get 1.2\nexplain\nquerytype cql\nschema marcxml\n"
                                "find dc.title=buddenbrooks\nshow 1\nschema dc\nshow 2\nfind dc.title = (oops\n"
                                "sru post 1.2\nfind dc.creator=mann and dc.date>1950\nquit\n",
                                daemon_->port()));
    auto r = RunCommand({"/usr/bin/yaz-client", "-f", cmds}, 60s);
    const std::string out = r.out + r.err;
    EXPECT_NE(out.find("schema=http://explain.z3950.org/dtd/2.0/"), std::string::npos) << out;
    EXPECT_NE(out.find("Number of hits: 3"), std::string::npos) << out;
    EXPECT_NE(out.find("<record xmlns=\"http://www.loc.gov/MARC21/slim\">"), std::string::npos) << out;
    EXPECT_NE(out.find("<srw_dc:dc"), std::string::npos) << out;
    EXPECT_NE(out.find("<dc:title>Buddenbrooks"), std::string::npos) << out;
    EXPECT_NE(out.find("SRW diagnostic info:srw/diagnostic/1/10"), std::string::npos) << out;
    // yaz-client's own default is SRW (SOAP): that works too.
    WriteFile(cmds, fmt::format("open http://127.0.0.1:{}/sru\nquerytype cql\nfind dc.title=buddenbrooks\nshow 1\nquit\n",
                                daemon_->port()));
    auto soap = RunCommand({"/usr/bin/yaz-client", "-f", cmds}, 60s);
    EXPECT_NE(soap.out.find("Number of hits: 3"), std::string::npos) << soap.out << soap.err;
    EXPECT_NE(soap.out.find("<record xmlns=\"http://www.loc.gov/MARC21/slim\">"), std::string::npos) << soap.out;
    const auto mann_after_1950 =
        schema_->Query1("SELECT count(*) FROM bib_record WHERE s_creator ~ '(^| )mann( |$)' AND pub_year > 1950");
    EXPECT_NE(out.find("Number of hits: " + mann_after_1950), std::string::npos) << out;
}

}  // namespace
}  // namespace iblsync::test
