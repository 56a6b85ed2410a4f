// The OAI-PMH provider of a real daemon over loopback HTTP, on real MARC
// records (iblctl import) and records and copies pushed over the API, in a
// real PostgreSQL. Every response is checked with xmllint against the
// OAI-PMH schema together with the schemas of what it carries
// (tests/data/schemas/oai-pmh, sources in SOURCES.md there). Two real
// harvesters from Debian harvest it: oai_pmh (libhttp-oai-perl) and
// catmandu's OAI importer (libcatmandu-oai-perl).

#include <algorithm>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pugixml.hpp>
#include <rapidjson/document.h>

#include "protocols/url.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

const std::string kMann = "NL-0000000501", kNlnz = "NL-0000000502", kPush = "NL-0000000503";  // NOLINT
const std::string kRepo = "nl-0000000500.iblsync";
constexpr int kMannRecords = 71, kNlnzRecords = 101;

struct Page {
    int status = 0;
    std::string body;
    pugi::xml_document doc;
    pugi::xml_node root() const { return doc.document_element(); }
    std::string error() const { return root().child("error").attribute("code").value(); }
    std::string error_text() const { return root().child_value("error"); }
};


std::string UtcNow(std::chrono::seconds shift = 0s) {
    const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + shift);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

class OaiProviderTest : public ::testing::Test {
protected:
    void SetUp() override {
        NodeConfig cfg;
        cfg.conninfo = schema_.conninfo();
        cfg.isil = "NL-0000000500";
        cfg.extra_toml = "[oai]\npage_size = 25\nadmin_email = [\"ibl@poi.example.nl\"]\n";
        daemon_ = std::make_unique<DaemonProcess>(dir_, cfg);
        ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
        Import(kMann, "NL-GE", "marc/slices/thomas-mann-shared-71.xml");
        Import(kNlnz, "NL-ZH", "marc/originals/pymarc_basics/NLNZ_100_example_marc.marc");
        ASSERT_EQ(daemon_->Iblctl({"library", "add", kPush, "--name", "Bibliotheek Push", "--province", "NL-GE"})
                      .exit_code,
                  0);
        auto t = daemon_->Iblctl({"--json", "token", "issue", kPush});
        rapidjson::Document d;
        d.Parse(t.out.c_str());
        ASSERT_TRUE(d.IsObject() && d.HasMember("token")) << t.out << t.err;
        token_ = d["token"].GetString();
        ASSERT_EQ(Push("PUT", "/records/j1",
                       R"({"id":"j1","title":"De avonden","isbn":"9789023466772","holdings":[)"
                       R"({"barcode":"J1","branch":"Centrale","shelfmark":"REVE"},{"barcode":"J2"}]})"),
                  201);
        ASSERT_EQ(Push("PUT", "/records/j2", R"({"id":"j2","title":"Het bureau","holdings":[{"barcode":"J3"}]})"),
                  201);
    }

    void Import(const std::string& lib, const std::string& province, const std::string& file) {
        auto r = RunCommand({IblctlPath(), "import", "--db", schema_.conninfo(), "--library", lib, "--name",
                             "Bibliotheek " + lib, "--province", province, "--rejects", dir_.File(lib + ".rejects"),
                             SourceDir() + "/tests/data/" + file},
                            120s);
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    int Push(const std::string& method, const std::string& path, const std::string& body) {
        auto r = HttpCall(daemon_->port(), method, "/v1/libraries/" + kPush + path,
                          {{"Authorization", "Bearer " + token_}, {"Content-Type", "application/json"}}, body);
        return r ? r->status : 0;
    }

    std::unique_ptr<Page> Get(const std::vector<std::pair<std::string, std::string>>& params) {
        std::string q;
        for (const auto& [k, v] : params)
            q += (q.empty() ? "?" : "&") + protocols::PercentEncode(k) + "=" + protocols::PercentEncode(v);
        return Of(HttpGet(daemon_->port(), "/oai" + q));
    }
    std::unique_ptr<Page> Raw(const std::string& target) { return Of(HttpGet(daemon_->port(), target)); }
    std::unique_ptr<Page> Of(const std::optional<HttpReply>& r) {
        auto p = std::make_unique<Page>();
        EXPECT_TRUE(r.has_value());
        if (!r) return p;
        p->status = r->status;
        p->body = r->body;
        p->doc.load_string(p->body.c_str());
        if (p->status == 200) {
            EXPECT_EQ(Invalid(p->body), "") << p->body.substr(0, 3000);
        }
        return p;
    }
    std::string Invalid(const std::string& xml) {
        const std::string file = dir_.File(fmt::format("oai{}.xml", documents_++));
        WriteFile(file, xml);
        auto r = RunCommand({"/usr/bin/xmllint", "--noout", "--nonet", "--schema",
                             SourceDir() + "/tests/data/schemas/oai-pmh/responses.local.xsd", file});
        return r.exit_code == 0 ? "" : r.err + r.out;
    }

    struct Harvest {
        std::vector<std::string> identifiers, deleted;
        std::vector<std::string> bodies;
        std::string error;
        long long complete_list_size = -1;
        int pages = 0;
    };
    // A list followed to its end, token by token, the way a harvester does.
    Harvest List(const std::string& verb, std::vector<std::pair<std::string, std::string>> params) {
        Harvest h;
        long long cursor = params.front().first == "resumptionToken" ? -1 : 0;
        params.insert(params.begin(), {"verb", verb});
        for (;;) {
            auto p = Get(params);
            ++h.pages;
            if (p->status != 200 || !p->error().empty()) {
                h.error = p->status != 200 ? std::to_string(p->status) : p->error();
                return h;
            }
            h.bodies.push_back(p->body);
            auto list = p->root().child(verb.c_str());
            for (auto item : list.children()) {
                auto header = std::string(item.name()) == "header" ? item : item.child("header");
                if (!header) continue;
                h.identifiers.push_back(header.child_value("identifier"));
                if (std::string(header.attribute("status").value()) == "deleted")
                    h.deleted.push_back(header.child_value("identifier"));
            }
            auto token = list.child("resumptionToken");
            if (h.pages == 1 && token) h.complete_list_size = token.attribute("completeListSize").as_llong(-1);
            // The cursor is the list position of the response's first item.
            const long long items = static_cast<long long>(
                list.select_nodes(verb == "ListRecords" ? "record" : "header").size());
            if (token && cursor >= 0) {
                EXPECT_EQ(token.attribute("cursor").as_llong(-1), cursor);
            }
            if (token) cursor = token.attribute("cursor").as_llong(-1) + items;
            if (!token || std::string(token.child_value()).empty()) return h;
            params = {{"verb", verb}, {"resumptionToken", token.child_value()}};
            if (h.pages > 1000) {
                ADD_FAILURE() << "the list does not end";
                return h;
            }
        }
    }
    std::string Id(const std::string& lib, const std::string& local) {
        return fmt::format("oai:{}:{}:{}", kRepo, lib, protocols::PercentEncode(local));
    }
    long long Count(const std::string& sql) { return std::stoll(schema_.Query1(sql)); }
    std::string Fingerprint() {
        return schema_.Query1("SELECT count(*) || '/' || sum(version) || '/' || (SELECT count(*) FROM holding) || '/' ||"
                              " (SELECT last_seq FROM change_counter) || '/' || (SELECT count(*) FROM oai_item)"
                              " FROM bib_record");
    }

    TempDir dir_;
    TestSchema schema_;
    std::unique_ptr<DaemonProcess> daemon_;
    std::string token_;
    int documents_ = 0;
};

TEST_F(OaiProviderTest, IdentifyFormatsAndSets) {
    auto id = Get({{"verb", "Identify"}});
    ASSERT_EQ(id->status, 200);
    auto identify = id->root().child("Identify");
    EXPECT_STREQ(identify.child_value("protocolVersion"), "2.0");
    EXPECT_STREQ(identify.child_value("adminEmail"), "ibl@poi.example.nl");
    EXPECT_STREQ(identify.child_value("deletedRecord"), "persistent");
    EXPECT_STREQ(identify.child_value("granularity"), "YYYY-MM-DDThh:mm:ssZ");
    // As the harvester addressed it (the test client sends Host: localhost).
    EXPECT_STREQ(identify.child_value("baseURL"), "http://localhost/oai");
    EXPECT_EQ(identify.child_value("earliestDatestamp"),
              schema_.Query1("SELECT to_char(min(stamp) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                             "FROM oai_item"));
    auto desc = identify.child("description").first_child();
    EXPECT_EQ(std::string(desc.child_value("repositoryIdentifier")), kRepo);
    const std::string sample = desc.child_value("sampleIdentifier");
    EXPECT_EQ(sample.rfind("oai:" + kRepo + ":NL-", 0), 0u) << sample;
    // The sample identifier is a real one.
    auto sample_get = Get({{"verb", "GetRecord"}, {"identifier", sample}, {"metadataPrefix", "oai_dc"}});
    EXPECT_EQ(sample_get->error(), "");

    auto formats = Get({{"verb", "ListMetadataFormats"}});
    std::vector<std::string> prefixes;
    for (auto f : formats->root().child("ListMetadataFormats").children("metadataFormat"))
        prefixes.push_back(f.child_value("metadataPrefix"));
    EXPECT_EQ(prefixes, (std::vector<std::string>{"marc21", "oai_dc"}));
    EXPECT_EQ(Get({{"verb", "ListMetadataFormats"}, {"identifier", Id(kPush, "j1")}})->error(), "");
    EXPECT_EQ(Get({{"verb", "ListMetadataFormats"}, {"identifier", Id(kPush, "nope")}})->error(), "idDoesNotExist");

    auto sets = Get({{"verb", "ListSets"}});
    std::vector<std::string> specs;
    for (auto s : sets->root().child("ListSets").children("set")) specs.push_back(s.child_value("setSpec"));
    EXPECT_EQ(specs, (std::vector<std::string>{"library", "library:" + kMann, "library:" + kNlnz, "library:" + kPush,
                                               "province", "province:NL-GE", "province:NL-ZH"}));
    EXPECT_NE(sets->body.find("<setName>Bibliotheek Push (" + kPush + ")</setName>"), std::string::npos);
}

TEST_F(OaiProviderTest, AFullListInPagesHasEveryRecordOnce) {
    const long long total = Count("SELECT count(*) FROM bib_record");
    ASSERT_EQ(total, kMannRecords + kNlnzRecords + 2);
    for (const char* prefix : {"marc21", "oai_dc"}) {
        auto h = List("ListRecords", {{"metadataPrefix", prefix}});
        ASSERT_EQ(h.error, "") << prefix;
        EXPECT_EQ(static_cast<long long>(h.identifiers.size()), total) << prefix;
        EXPECT_EQ(std::set<std::string>(h.identifiers.begin(), h.identifiers.end()).size(), h.identifiers.size());
        EXPECT_EQ(h.complete_list_size, total);
        EXPECT_EQ(h.pages, static_cast<int>((total + 24) / 25));
        EXPECT_TRUE(h.deleted.empty());
        const std::string all = fmt::format("{}", fmt::join(h.bodies, "\n"));
        if (std::string(prefix) == "marc21") {
            // The copies and their availability in 852, as in the KB delivery.
            EXPECT_EQ(Occurrences(all, "<datafield tag=\"852\""), Count("SELECT count(*) FROM holding"));
            EXPECT_NE(all.find("<subfield code=\"a\">" + kPush + "</subfield><subfield code=\"b\">Centrale</subfield>"
                               "<subfield code=\"h\">REVE</subfield><subfield code=\"p\">J1</subfield>"
                               "<subfield code=\"9\">available</subfield>"),
                      std::string::npos);
            EXPECT_EQ(Occurrences(all, "<controlfield tag=\"003\">" + kMann + "</controlfield>"), kMannRecords);
        } else {
            EXPECT_EQ(Occurrences(all, "<oai_dc:dc "), total);
            EXPECT_NE(all.find("<dc:title>De avonden</dc:title>"), std::string::npos);
        }
    }
    auto ids = List("ListIdentifiers", {{"metadataPrefix", "marc21"}});
    EXPECT_EQ(static_cast<long long>(ids.identifiers.size()), total);
    EXPECT_NE(std::find(ids.identifiers.begin(), ids.identifiers.end(), Id(kPush, "j2")), ids.identifiers.end());
}

TEST_F(OaiProviderTest, SetsAndDateWindowsGiveExactlyTheirRecords) {
    EXPECT_EQ(List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"set", "library:" + kMann}}).identifiers.size(),
              static_cast<std::size_t>(kMannRecords));
    EXPECT_EQ(List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"set", "province:NL-GE"}}).identifiers.size(),
              static_cast<std::size_t>(kMannRecords + 2));
    EXPECT_EQ(List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"set", "province:NL-ZH"}}).identifiers.size(),
              static_cast<std::size_t>(kNlnzRecords));
    EXPECT_EQ(List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"set", "province:NL-FR"}}).error,
              "noRecordsMatch");
    EXPECT_EQ(List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"set", "poi"}}).error, "noRecordsMatch");

    // Changes after a moment: a copy lent out, a record deleted, one record
    // of a MARC load changed by a new load.
    std::this_thread::sleep_for(1100ms);
    const std::string before = UtcNow();
    std::this_thread::sleep_for(1100ms);
    ASSERT_EQ(Push("POST", "/availability", R"([{"barcode":"J1","status":"on_loan","due_date":"2027-01-05"}])"), 200);
    ASSERT_EQ(Push("DELETE", "/records/j2", "") / 100, 2);
    auto changed = List("ListRecords", {{"metadataPrefix", "marc21"}, {"from", before}});
    ASSERT_EQ(changed.error, "");
    EXPECT_EQ(changed.identifiers, (std::vector<std::string>{Id(kPush, "j1"), Id(kPush, "j2")}));
    EXPECT_EQ(changed.deleted, (std::vector<std::string>{Id(kPush, "j2")}));
    EXPECT_NE(changed.bodies[0].find("<subfield code=\"p\">J1</subfield><subfield code=\"9\">on_loan</subfield>"
                                     "<subfield code=\"d\">2027-01-05</subfield>"),
              std::string::npos)
        << changed.bodies[0];
    // The deleted record is a header with status="deleted" and no metadata.
    EXPECT_NE(changed.bodies[0].find("<record><header status=\"deleted\"><identifier>" + Id(kPush, "j2")),
              std::string::npos);
    // Until the moment before: everything else, and these two not.
    auto earlier = List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"until", before}});
    EXPECT_EQ(earlier.identifiers.size(), static_cast<std::size_t>(kMannRecords + kNlnzRecords));
    // Days work as well as seconds, and a huge window is just a window.
    EXPECT_EQ(List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"from", "0001-01-01"}, {"until", "9999-12-31"}})
                  .identifiers.size(),
              static_cast<std::size_t>(kMannRecords + kNlnzRecords + 2));
    EXPECT_EQ(List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"from", UtcNow(10s)}}).error, "noRecordsMatch");
    EXPECT_EQ(List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"until", "1999-12-31"}}).error,
              "noRecordsMatch");
    // The same window with a set.
    EXPECT_EQ(List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"from", before}, {"set", "library:" + kMann}})
                  .error,
              "noRecordsMatch");

    auto got = Get({{"verb", "GetRecord"}, {"identifier", Id(kPush, "j2")}, {"metadataPrefix", "marc21"}});
    EXPECT_EQ(got->error(), "");
    EXPECT_STREQ(got->root().child("GetRecord").child("record").child("header").attribute("status").value(), "deleted");
    EXPECT_FALSE(got->root().child("GetRecord").child("record").child("metadata"));
}

TEST_F(OaiProviderTest, ATokenOutlivesARestartAndARecordChangedMidListIsNotLost) {
    auto first = Get({{"verb", "ListIdentifiers"}, {"metadataPrefix", "marc21"}});
    const std::string token = first->root().child("ListIdentifiers").child_value("resumptionToken");
    ASSERT_FALSE(token.empty()) << first->body.substr(0, 2000);
    std::vector<std::string> seen;
    for (auto h : first->root().child("ListIdentifiers").children("header")) seen.push_back(h.child_value("identifier"));
    ASSERT_EQ(seen.size(), 25u);
    // A record already given changes while the harvest goes on: it comes again, later.
    ASSERT_EQ(Push("POST", "/availability", R"([{"barcode":"J3","status":"missing"}])"), 200);
    daemon_->Signal(SIGKILL);
    EXPECT_EQ(daemon_->WaitExit(10s), 128 + SIGKILL);
    const NodeConfig cfg = daemon_->config();
    daemon_ = std::make_unique<DaemonProcess>(dir_, cfg);
    ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
    auto h = List("ListIdentifiers", {{"resumptionToken", token}});
    ASSERT_EQ(h.error, "");
    seen.insert(seen.end(), h.identifiers.begin(), h.identifiers.end());
    std::set<std::string> distinct(seen.begin(), seen.end());
    EXPECT_EQ(static_cast<long long>(distinct.size()), Count("SELECT count(*) FROM bib_record"));
    // The same token again gives the same page (a harvester retrying).
    auto again = Get({{"verb", "ListIdentifiers"}, {"resumptionToken", token}});
    auto once_more = Get({{"verb", "ListIdentifiers"}, {"resumptionToken", token}});
    EXPECT_EQ(again->root().child("ListIdentifiers").child_value("resumptionToken"),
              std::string(once_more->root().child("ListIdentifiers").child_value("resumptionToken")));
}

TEST_F(OaiProviderTest, BadRequestsGetTheirErrorAndChangeNothing) {
    const std::string before = Fingerprint();
    struct Case {
        std::string target;
        std::string code;
    };
    const std::string good_token = Get({{"verb", "ListRecords"}, {"metadataPrefix", "oai_dc"}})
                                       ->root()
                                       .child("ListRecords")
                                       .child_value("resumptionToken");
    std::string tampered = good_token;
    tampered[3] = tampered[3] == 'A' ? 'B' : 'A';
    const std::vector<Case> cases{
        {"/oai", "badVerb"},
        {"/oai?verb=DropTables", "badVerb"},
        {"/oai?verb=Identify&verb=Identify", "badVerb"},
        {"/oai?verb=Identify&debug=1", "badArgument"},
        {"/oai?verb=ListRecords", "badArgument"},
        {"/oai?verb=ListRecords&metadataPrefix=marc21&metadataPrefix=oai_dc", "badArgument"},
        {"/oai?verb=ListRecords&metadataPrefix=marc21&from=yesterday", "badArgument"},
        {"/oai?verb=ListRecords&metadataPrefix=marc21&from=2026-01-01&until=2025-01-01", "badArgument"},
        {"/oai?verb=ListRecords&metadataPrefix=marc21&from=2026-01-01&until=2026-02-01T00:00:00Z", "badArgument"},
        {"/oai?verb=ListRecords&metadataPrefix=marc21&from=99999-01-01", "badArgument"},
        {"/oai?verb=ListRecords&metadataPrefix=marc21&set=library%3A%27%3B%20DROP%20TABLE%20bib_record%3B--",
         "badArgument"},
        {"/oai?verb=ListRecords&metadataPrefix=marc21&set=library:NL-0000000999", "noRecordsMatch"},
        {"/oai?verb=ListRecords&metadataPrefix=mods", "cannotDisseminateFormat"},
        {"/oai?verb=GetRecord&metadataPrefix=marc21&identifier=oai:other.repo:" + kPush + ":j1", "idDoesNotExist"},
        {"/oai?verb=GetRecord&metadataPrefix=marc21&identifier=" + protocols::PercentEncode(Id(kPush, "j1' OR '1'='1")),
         "idDoesNotExist"},
        {"/oai?verb=GetRecord&metadataPrefix=marc21&identifier=%zz", "badArgument"},
        {"/oai?verb=GetRecord&metadataPrefix=marc21&identifier=%ff%fe", "badArgument"},
        {"/oai?verb=ListRecords&resumptionToken=" + protocols::PercentEncode(tampered), "badResumptionToken"},
        {"/oai?verb=ListRecords&resumptionToken=garbage", "badResumptionToken"},
        {"/oai?verb=ListRecords&resumptionToken=" + std::string(3000, 'A'), "badResumptionToken"},
        {"/oai?verb=ListRecords&resumptionToken=" + protocols::PercentEncode(good_token) + "&metadataPrefix=marc21",
         "badArgument"},
        {"/oai?verb=ListSets&resumptionToken=x", "badResumptionToken"},
    };
    for (const auto& c : cases) {
        auto p = Raw(c.target);
        EXPECT_EQ(p->status, 200) << c.target;
        EXPECT_EQ(p->error(), c.code) << c.target << "\n" << p->body.substr(0, 1500);
        // After badVerb and badArgument the request element has no attributes.
        if (c.code == "badVerb" || c.code == "badArgument") {
            EXPECT_FALSE(p->root().child("request").first_attribute()) << c.target;
        }
    }
    // The exact words for a few.
    EXPECT_EQ(Raw("/oai?verb=Identify&debug=1")->error_text(), "Identify takes no argument 'debug'");
    EXPECT_EQ(Raw("/oai?verb=ListRecords&resumptionToken=garbage")->error_text(),
              "the resumption token is not one this repository issued; start the list again");
    // POST with a form is the same request; other bodies and methods are not OAI-PMH.
    auto posted = Of(HttpCall(daemon_->port(), "POST", "/oai", {{"Content-Type", "application/x-www-form-urlencoded"}},
                              "verb=ListIdentifiers&metadataPrefix=oai_dc&set=library%3A" + kPush));
    EXPECT_EQ(posted->error(), "");
    EXPECT_EQ(posted->root().child("ListIdentifiers").select_nodes("header").size(), 2u);
    auto xml_post = HttpCall(daemon_->port(), "POST", "/oai", {{"Content-Type", "text/xml"}}, "<verb/>");
    ASSERT_TRUE(xml_post);
    EXPECT_EQ(xml_post->status, 415);
    auto del = HttpCall(daemon_->port(), "DELETE", "/oai", {}, "");
    ASSERT_TRUE(del);
    EXPECT_EQ(del->status, 405);
    EXPECT_EQ(Fingerprint(), before);
}

TEST_F(OaiProviderTest, AnExcludedLibraryIsNotInTheRepository) {
    auto cfg = daemon_->config();
    cfg.extra_toml += fmt::format("excluded_libraries = [\"{}\"]\n", kMann);
    daemon_->RewriteConfig(cfg.ToToml());
    daemon_->Signal(SIGHUP);
    ASSERT_TRUE(daemon_->WaitForLog("config reloaded", 10s)) << daemon_->Log();
    auto h = List("ListIdentifiers", {{"metadataPrefix", "marc21"}});
    EXPECT_EQ(h.identifiers.size(), static_cast<std::size_t>(kNlnzRecords + 2));
    const std::string mann_id = schema_.Query1("SELECT local_id FROM bib_record WHERE library = '" + kMann + "' LIMIT 1");
    EXPECT_EQ(Get({{"verb", "GetRecord"}, {"identifier", Id(kMann, mann_id)}, {"metadataPrefix", "marc21"}})->error(),
              "idDoesNotExist");
    EXPECT_EQ(List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"set", "library:" + kMann}}).error,
              "noRecordsMatch");
    auto sets = Get({{"verb", "ListSets"}});
    EXPECT_EQ(sets->body.find("library:" + kMann), std::string::npos);
}

TEST_F(OaiProviderTest, RealHarvestersTakeTheWholeCatalogue) {
    const std::string base = fmt::format("http://127.0.0.1:{}/oai", daemon_->port());
    const long long total = Count("SELECT count(*) FROM bib_record");
    // oai_pmh (libhttp-oai-perl) follows the resumption tokens and prints
    // each record's header as "identifier: ..." lines, then its metadata.
    auto perl = RunCommand({"/usr/bin/oai_pmh", "-X", "ListRecords", "--metadataPrefix", "marc21", base}, 120s);
    ASSERT_EQ(perl.exit_code, 0) << perl.err.substr(0, 2000);
    EXPECT_EQ(Occurrences(perl.out, "identifier: oai:" + kRepo + ":"), total) << perl.out.substr(0, 2000);
    EXPECT_EQ(Occurrences(perl.out, "tag=\"852\""), Count("SELECT count(*) FROM holding"))
        << perl.out.substr(perl.out.find("NL-0000000503:j1"), 3000);
    auto perl_set = RunCommand(
        {"/usr/bin/oai_pmh", "-X", "ListIdentifiers", "--metadataPrefix", "oai_dc", "--set", "library:" + kPush, base},
        60s);
    ASSERT_EQ(perl_set.exit_code, 0) << perl_set.err;
    EXPECT_EQ(Occurrences(perl_set.out, "identifier: oai:" + kRepo + ":"), 2) << perl_set.out;

    // catmandu's OAI importer, to JSON, one object per record.
    auto cat = RunCommand({"/usr/bin/catmandu", "convert", "OAI", "--url", base, "--metadataPrefix", "oai_dc", "to",
                           "JSON", "--line_delimited", "1"},
                          180s);
    ASSERT_EQ(cat.exit_code, 0) << cat.err.substr(0, 2000);
    EXPECT_EQ(Occurrences(cat.out, "\"_id\":\"oai:" + kRepo + ":"), total) << cat.out.substr(0, 2000);
    EXPECT_NE(cat.out.find("\"De avonden\""), std::string::npos);

    // An incremental window: after a copy goes out on loan and a record is
    // deleted, both harvesters see exactly those two from that moment, the
    // deleted one as deleted.
    std::this_thread::sleep_for(1100ms);
    const std::string from = UtcNow();
    std::this_thread::sleep_for(1100ms);
    ASSERT_EQ(Push("POST", "/availability", R"([{"barcode":"J3","status":"on_loan","due_date":"2027-03-01"}])"), 200);
    ASSERT_EQ(Push("DELETE", "/records/j1", "") / 100, 2);
    auto perl_window =
        RunCommand({"/usr/bin/oai_pmh", "-X", "ListIdentifiers", "--metadataPrefix", "marc21", "--from", from, base}, 60s);
    ASSERT_EQ(perl_window.exit_code, 0) << perl_window.err;
    EXPECT_EQ(Occurrences(perl_window.out, "identifier: oai:"), 2) << perl_window.out;
    EXPECT_NE(perl_window.out.find("identifier: " + Id(kPush, "j1") + "\ndatestamp: "), std::string::npos);
    EXPECT_NE(perl_window.out.find("identifier: " + Id(kPush, "j2") + "\n"), std::string::npos);
    EXPECT_EQ(Occurrences(perl_window.out, "status: deleted"), 1) << perl_window.out;
    auto cat_window = RunCommand({"/usr/bin/catmandu", "convert", "OAI", "--url", base, "--metadataPrefix", "oai_dc",
                                  "--from", from, "--set", "library:" + kPush, "to", "JSON", "--line_delimited", "1"},
                                 60s);
    ASSERT_EQ(cat_window.exit_code, 0) << cat_window.err;
    EXPECT_EQ(Occurrences(cat_window.out, "\"_id\":\"oai:" + kRepo + ":"), 2) << cat_window.out;
    EXPECT_EQ(Occurrences(cat_window.out, "\"_status\":\"deleted\""), 1) << cat_window.out;
    // A set of another library in the same window: nothing.
    auto cat_other = RunCommand({"/usr/bin/catmandu", "convert", "OAI", "--url", base, "--metadataPrefix", "oai_dc",
                                 "--from", from, "--set", "library:" + kMann, "to", "JSON", "--line_delimited", "1"},
                                60s);
    EXPECT_EQ(Occurrences(cat_other.out, "\"_id\""), 0) << cat_other.out << cat_other.err;
}

TEST_F(OaiProviderTest, TheLibrariesOfAPoiFormItsSet) {
    // Libraries a node knows through a POI (at the national node: all of
    // them) carry its ISIL.
    ASSERT_EQ(daemon_->Iblctl({"library", "add", "NL-0000000504", "--name", "Via POI", "--province", "NL-UT", "--poi",
                               "NL-UT-POI"})
                  .exit_code,
              0);
    auto r = RunCommand({IblctlPath(), "import", "--db", schema_.conninfo(), "--library", "NL-0000000504",
                         "--rejects", dir_.File("poi.rejects"),
                         SourceDir() + "/tests/data/marc/originals/pymarc_basics/NLNZ_100_example_marc.marc"},
                        120s);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto sets = Get({{"verb", "ListSets"}});
    EXPECT_NE(sets->body.find("<set><setSpec>poi</setSpec>"), std::string::npos) << sets->body;
    EXPECT_NE(sets->body.find("<set><setSpec>poi:NL-UT-POI</setSpec><setName>Libraries served by the POI "
                              "NL-UT-POI</setName></set>"),
              std::string::npos)
        << sets->body;
    auto h = List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"set", "poi:NL-UT-POI"}});
    EXPECT_EQ(h.identifiers.size(), static_cast<std::size_t>(kNlnzRecords));
    for (const auto& id : h.identifiers) EXPECT_EQ(id.rfind("oai:" + kRepo + ":NL-0000000504:", 0), 0u) << id;
    auto all_pois = List("ListIdentifiers", {{"metadataPrefix", "marc21"}, {"set", "poi"}});
    EXPECT_EQ(all_pois.identifiers.size(), static_cast<std::size_t>(kNlnzRecords));
    auto rec = Get({{"verb", "GetRecord"}, {"identifier", h.identifiers.front()}, {"metadataPrefix", "oai_dc"}});
    EXPECT_NE(rec->body.find("<setSpec>poi:NL-UT-POI</setSpec>"), std::string::npos) << rec->body.substr(0, 1500);
}

}  // namespace
}  // namespace iblsync::test
