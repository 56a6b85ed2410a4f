// OAI-PMH harvesting by a real daemon from another real iblsyncd's OAI-PMH
// provider, each with its own database, over loopback: a full run in pages,
// an incremental run with `from` that brings a copy lent out and a deleted
// record, a kill -9 mid-list, a resumption token the repository refuses
// (recovered from the last committed datestamp), and 503 with Retry-After
// (from the test's fault proxy in front of the provider).

#include <algorithm>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <rapidjson/document.h>

#include "tests/support/cgi_server.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"
#include "tests/support/replay_server.hpp"
#include "tests/support/sru_peer.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

const std::string kOrigin = "NL-0000000601", kPushed = "NL-0000000602", kTarget = "NL-0000000611";
constexpr long long kMannRecords = 71;

class OaiHarvestTest : public ::testing::Test {
protected:
    void SetUp() override {
        NodeConfig cfg;
        cfg.conninfo = source_db_.conninfo();
        cfg.isil = "NL-0000000600";
        cfg.extra_toml = "[oai]\npage_size = 10\n";
        source_ = std::make_unique<DaemonProcess>(source_dir_, cfg);
        ASSERT_TRUE(source_->Start()) << source_->Log();
        auto r = RunCommand({IblctlPath(), "import", "--db", source_db_.conninfo(), "--library", kOrigin, "--name",
                             "Bron", "--province", "NL-GE", "--rejects", source_dir_.File("rejects"),
                             SourceDir() + "/tests/data/marc/slices/thomas-mann-shared-71.xml"},
                            60s);
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }

    // The harvesting node; `url` is the provider's /oai (or a proxy's).
    std::unique_ptr<DaemonProcess> StartHarvester(const std::string& url, const std::string& set,
                                                  const std::string& more = "", const std::string& library = kTarget) {
        NodeConfig cfg;
        cfg.conninfo = schema_.conninfo();
        cfg.extra_toml = fmt::format(
            "\n[[harvest]]\nname = \"oai\"\ntype = \"oai\"\nlibrary = \"{}\"\nurl = \"{}\"\n{}"
            "retry_max_seconds = 1\ntimeout_seconds = 30\n{}",
            library, url, set.empty() ? "" : fmt::format("set = \"{}\"\n", set), more);
        auto d = std::make_unique<DaemonProcess>(dir_, cfg);
        EXPECT_TRUE(d->Start()) << d->Log();
        return d;
    }
    void Register(DaemonProcess& d, const std::string& library = kTarget) {
        // Copies come in the 852s iblsync writes.
        auto r = d.Iblctl({"library", "add", library, "--name", "Oogst", "--province", "NL-GE", "--holdings", "iblsync"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(schema_.Query1("SELECT holdings_mapping FROM library WHERE isil = '" + library + "'"), "iblsync");
        library_ = library;
    }
    std::string Url() const { return fmt::format("http://127.0.0.1:{}/oai", source_->port()); }
    long long Count(const std::string& sql) { return std::stoll(schema_.Query1(sql)); }
    long long Live() {
        return Count(fmt::format("SELECT count(*) FROM bib_record WHERE library = '{}' AND NOT deleted", library_));
    }
    std::string State(const std::string& what) {
        return schema_.Query1(fmt::format("SELECT {} FROM harvest_source WHERE name = 'oai'", what));
    }
    bool WaitForRuns(std::chrono::milliseconds timeout = 60s) {
        return WaitFor([&] { return State("last_success_at IS NOT NULL AND run_kind IS NULL") == "t"; }, timeout);
    }
    // Every record once in the log, and the log numbered without gaps.
    void ExpectLogOncePerRecord(long long inserts) {
        EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'record' AND op = 'insert'"), inserts);
        EXPECT_EQ(Count("SELECT count(DISTINCT local_id) FROM change_log WHERE entity = 'record' AND op = 'insert'"),
                  inserts);
        EXPECT_EQ(Count("SELECT max(seq) - min(seq) + 1 - count(*) FROM change_log"), 0);
    }
    // A library at the source with copies, pushed over its API.
    std::string PushedLibrary() {
        EXPECT_EQ(source_->Iblctl({"library", "add", kPushed, "--name", "Push", "--province", "NL-GE"}).exit_code, 0);
        auto t = source_->Iblctl({"--json", "token", "issue", kPushed});
        rapidjson::Document d;
        d.Parse(t.out.c_str());
        EXPECT_TRUE(d.IsObject() && d.HasMember("token")) << t.out << t.err;
        return d.IsObject() && d.HasMember("token") ? d["token"].GetString() : "";
    }
    int Push(const std::string& token, const std::string& method, const std::string& path, const std::string& body) {
        auto r = HttpCall(source_->port(), method, "/v1/libraries/" + kPushed + path,
                          {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}}, body);
        return r ? r->status : 0;
    }

    TempDir source_dir_, dir_;
    TestSchema source_db_, schema_;
    std::unique_ptr<DaemonProcess> source_;
    std::string library_ = kTarget;
};

TEST_F(OaiHarvestTest, FullThenIncrementalWithCopiesAndDeletions) {
    const std::string token = PushedLibrary();
    ASSERT_EQ(Push(token, "PUT", "/records/j1",
                   R"({"id":"j1","title":"De avonden","holdings":[{"barcode":"J1","branch":"Centrale"},)"
                   R"({"barcode":"J2"}]})"),
              201);
    ASSERT_EQ(Push(token, "PUT", "/records/j2", R"({"id":"j2","title":"Het bureau","holdings":[{"barcode":"J3"}]})"),
              201);
    // The library's own catalogue, harvested from the node that has it
    // (the 852's owner is the library: its copies are taken).
    auto d = StartHarvester(Url(), "library:" + kPushed, "interval_minutes = 600\n", kPushed);
    Register(*d, kPushed);
    ASSERT_TRUE(WaitForRuns()) << d->Log();
    EXPECT_EQ(Live(), 2);
    EXPECT_EQ(Count("SELECT count(*) FROM holding WHERE library = '" + kPushed + "' AND status = 'available'"), 3);
    EXPECT_EQ(schema_.Query1("SELECT branch FROM holding WHERE barcode = 'J1'"), "Centrale");
    EXPECT_TRUE(d->WaitForLog("harvest finished source=oai library=" + kPushed + " kind=full records=2 ", 5s))
        << d->Log();
    const std::string latest = State("oai_latest");
    EXPECT_EQ(latest.size(), 20u) << latest;  // YYYY-MM-DDThh:mm:ssZ, the provider's newest
    auto status = d->Iblctl({"sync", "status"});
    EXPECT_NE(status.out.find("oai                 oai  " + kPushed + "    idle"), std::string::npos) << status.out;
    auto json = d->Iblctl({"--json", "sync", "status"});
    EXPECT_NE(json.out.find("\"type\":\"oai\",\"next_from\":\"" + latest + "\""), std::string::npos) << json.out;

    // At the source: a copy goes out on loan, a record is deleted.
    std::this_thread::sleep_for(1100ms);
    ASSERT_EQ(Push(token, "POST", "/availability", R"([{"barcode":"J1","status":"on_loan","due_date":"2027-02-01"}])"),
              200);
    ASSERT_EQ(Push(token, "DELETE", "/records/j2", "") / 100, 2);
    const auto before = State("last_success_at");
    ASSERT_EQ(d->Iblctl({"sync", "run", "oai"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return State("last_success_at") != before && State("run_kind") == ""; }, 30s))
        << d->Log();
    EXPECT_TRUE(d->WaitForLog("kind=incremental records=2 ", 5s)) << d->Log();
    EXPECT_EQ(Live(), 1);
    EXPECT_EQ(schema_.Query1("SELECT status || ' ' || due_date FROM holding WHERE barcode = 'J1'"),
              "on_loan 2027-02-01");
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE library = '" + kPushed + "' AND local_id = 'j2' AND deleted"),
              1);
    EXPECT_GT(State("oai_latest"), latest);
    // Nothing changed: the next run asks from the latest datestamp (the
    // boundary second comes again, unchanged) and succeeds.
    const auto second = State("last_success_at");
    const auto errors = State("errors_total");
    ASSERT_EQ(d->Iblctl({"sync", "run", "oai"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return State("last_success_at") != second && State("run_kind") == ""; }, 30s))
        << d->Log();
    EXPECT_EQ(State("errors_total"), errors) << d->Log();
    EXPECT_EQ(Live(), 1);
    EXPECT_EQ(schema_.Query1("SELECT status FROM holding WHERE barcode = 'J1'"), "on_loan");
}

TEST_F(OaiHarvestTest, KillNineMidListAndARefusedTokenLoseNothingAndDuplicateNothing) {
    // Pages of 10 from a provider slowed by the proxy: the harvester is
    // killed with some pages applied and others not. The proxy answers six
    // requests at most (Identify, and at most five of the eight pages), so
    // the kill comes mid-list however fast the machine.
    FaultProxy proxy(source_->port());
    proxy.Set(FaultProxy::Mode::kDelay, 300ms);
    proxy.PassOnly(6);
    auto d = StartHarvester(fmt::format("http://127.0.0.1:{}/oai", proxy.port()), "library:" + kOrigin);
    Register(*d);
    ASSERT_TRUE(WaitFor([&] { return State("coalesce(next_position, 0) >= 3") == "t"; }, 60s)) << d->Log();
    d->Signal(SIGKILL);
    EXPECT_EQ(d->WaitExit(10s), 128 + SIGKILL);
    const long long applied = Live();
    EXPECT_GE(applied, 20);
    EXPECT_LT(applied, kMannRecords);
    // The repository has forgotten the token meanwhile (as one that keeps
    // them in memory does after a restart): it answers badResumptionToken.
    ASSERT_FALSE(State("oai_token").empty());
    schema_.Exec("UPDATE harvest_source SET oai_token = 'forgotten-' || oai_token WHERE name = 'oai'");
    proxy.Set(FaultProxy::Mode::kPass);
    const NodeConfig cfg = d->config();
    d = std::make_unique<DaemonProcess>(dir_, cfg);
    ASSERT_TRUE(d->Start()) << d->Log();
    ASSERT_TRUE(WaitForRuns()) << d->Log();
    EXPECT_TRUE(d->WaitForLog("harvest resumption token refused source=oai", 1s)) << d->Log();
    EXPECT_EQ(Live(), kMannRecords);
    ExpectLogOncePerRecord(kMannRecords);
    // Asked again from the last datestamp applied, not from the start.
    EXPECT_EQ(d->Log().find("asking for the list again from its start"), std::string::npos);
}

TEST_F(OaiHarvestTest, A503WithRetryAfterIsWaitedForNotCountedAsAFailure) {
    FaultProxy proxy(source_->port());
    proxy.Set(FaultProxy::Mode::kBusy);
    auto d = StartHarvester(fmt::format("http://127.0.0.1:{}/oai", proxy.port()), "province:NL-GE");
    Register(*d);
    ASSERT_TRUE(d->WaitForLog("harvest source busy source=oai retry_after_seconds=1", 15s)) << d->Log();
    // (A failure may have been counted before the library was registered.)
    const std::string errors = State("errors_total");
    ASSERT_TRUE(WaitFor([&] { return proxy.busy() >= 3; }, 15s));
    EXPECT_EQ(Live(), 0);
    proxy.Set(FaultProxy::Mode::kPass);
    ASSERT_TRUE(WaitForRuns()) << d->Log();
    EXPECT_EQ(Live(), kMannRecords);
    EXPECT_EQ(State("errors_total"), errors);
    EXPECT_EQ(d->Log().find("error=\"HTTP 503"), std::string::npos) << d->Log();
}

// The next page is asked for while a page is applied (its resumption token
// is known before), so the repository and the database work at the same
// time. The test holds the library's write lock: the first page cannot be
// applied, the second is asked for meanwhile, and no third. Then every page
// is asked for once.
TEST_F(OaiHarvestTest, TheNextPageIsAskedForWhileAPageIsApplied) {
    FaultProxy proxy(source_->port());
    pqxx::connection blocker(schema_.conninfo());
    pqxx::work lock(blocker);
    lock.exec_params("SELECT pg_advisory_xact_lock(hashtext('iblsync.import:' || $1))", kTarget);
    auto d = StartHarvester(fmt::format("http://127.0.0.1:{}/oai", proxy.port()), "library:" + kOrigin);
    Register(*d);
    ASSERT_TRUE(WaitFor([&] { return proxy.requests() >= 3; }, 30s)) << d->Log();
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(proxy.requests(), 3) << "Identify, the page that waits and the one after it; no more";
    EXPECT_EQ(Live(), 0);
    lock.abort();
    ASSERT_TRUE(WaitForRuns()) << d->Log();
    EXPECT_EQ(proxy.requests(), 1 + 8) << "Identify, then each of the 8 pages once";
    EXPECT_EQ(Live(), kMannRecords);
    ExpectLogOncePerRecord(kMannRecords);
}

TEST_F(OaiHarvestTest, ARepositoryErrorIsAClearFailureAndWritesNothing) {
    // A format the provider does not offer: cannotDisseminateFormat.
    auto d = StartHarvester(Url(), "library:" + kOrigin, "metadata_prefix = \"mods\"\n");
    Register(*d);
    ASSERT_TRUE(WaitFor([&] { return State("last_error").find("OAI-PMH error") != std::string::npos; }, 30s))
        << d->Log();
    EXPECT_EQ(State("last_error"),
              fmt::format("OAI-PMH error cannotDisseminateFormat from {}: metadataPrefix 'mods' is not offered here; "
                          "ListMetadataFormats lists the ones that are",
                          Url()));
    EXPECT_EQ(Live(), 0);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 0);
}

}  // namespace
}  // namespace iblsync::test

namespace iblsync::test {
namespace {

TEST_F(OaiHarvestTest, OaiCheckSaysWhatARepositoryOffersAndWhatIsWrong) {
    auto d = StartHarvester(Url(), "library:" + kOrigin, "interval_minutes = 600\n");
    auto good = d->Iblctl({"oai", "check", Url()});
    ASSERT_EQ(good.exit_code, 0) << good.err;
    EXPECT_NE(good.out.find("OAI-PMH repository at " + Url() + "\n"), std::string::npos) << good.out;
    EXPECT_NE(good.out.find("  granularity   YYYY-MM-DDThh:mm:ssZ\n"), std::string::npos) << good.out;
    EXPECT_NE(good.out.find("  deletions     persistent\n"), std::string::npos) << good.out;
    EXPECT_NE(good.out.find("  formats       marc21, oai_dc\n"), std::string::npos) << good.out;
    EXPECT_NE(good.out.find("  first page    10 records in marc21 (0 deleted, 10 readable as MARC 21), 71 in the "
                            "whole list\n"),
              std::string::npos)
        << good.out;
    EXPECT_NE(good.out.find("no problems found: register the library, then add the source (the node starts it at "
                            "once):\n\n  iblctl library add ISIL --name ... --holdings ...\n  iblctl source add NAME "
                            "--type oai --library ISIL --url '" +
                            Url() + "' --metadata-prefix marc21\n"),
              std::string::npos)
        << good.out;
    EXPECT_NE(good.out.find("or add this table to the config file and run iblctl reload:\n\n[[harvest]]\n"),
              std::string::npos)
        << good.out;
    EXPECT_NE(good.out.find("type = \"oai\"\nurl = \"" + Url() + "\"\nmetadata_prefix = \"marc21\"\n"),
              std::string::npos)
        << good.out;
    auto json = d->Iblctl({"--json", "oai", "check", Url(), "--set", "library:NL-0000000999"});
    ASSERT_EQ(json.exit_code, 0) << json.err;
    rapidjson::Document doc;
    doc.Parse(json.out.c_str());
    ASSERT_TRUE(doc.IsObject()) << json.out;
    ASSERT_TRUE(doc.HasMember("problems") && doc["problems"].IsArray()) << json.out;
    std::vector<std::string> problems;
    for (const auto& p : doc["problems"].GetArray()) problems.push_back(p.GetString());
    EXPECT_EQ(problems, (std::vector<std::string>{
                            "the set 'library:NL-0000000999' is not among the repository's sets",
                            "ListRecords failed: noRecordsMatch: no record matches these arguments"}))
        << json.out;

    // Not an OAI-PMH endpoint: the node's own health check.
    auto wrong = d->Iblctl({"oai", "check", fmt::format("http://127.0.0.1:{}/healthz", source_->port())});
    ASSERT_EQ(wrong.exit_code, 0) << wrong.err;
    EXPECT_NE(wrong.out.find("  - Identify failed: the response is not well-formed XML"), std::string::npos)
        << wrong.out;
    auto https = d->Iblctl({"oai", "check", "https://oai.example.nl/oai"});
    EXPECT_NE(https.exit_code, 0);
    EXPECT_NE(https.err.find("https sources are not supported yet"), std::string::npos) << https.err;
}

}  // namespace
}  // namespace iblsync::test

namespace iblsync::test {
namespace {

// A third-party provider: the static-repository gateway shipped in Debian's
// libhttp-oai-perl, run as CGI by the test's loopback server, serving the
// project's 71 real Thomas Mann records (tests/data/oai/static). The
// gateway was written for HTTP::OAI 3.x; tests/support/oai-static has the
// preload module that lets the unmodified script run on Debian 12's 4.12
// (its NOTES.md says what it changes and why).
class StaticGatewayTest : public OaiHarvestTest {
protected:
    static std::unique_ptr<CgiServer> Gateway() {
        return std::make_unique<CgiServer>(
            std::vector<std::string>{"/usr/bin/perl", "-I" + SourceDir() + "/tests/support/oai-static",
                                     "-MOAIStaticGatewayCompat",
                                     "/usr/share/doc/libhttp-oai-perl/examples/oai_static_gateway.pl"},
            std::vector<std::string>{"OAI_STATIC_REPO=" + SourceDir() +
                                     "/tests/data/oai/static/thomas-mann-71.static.xml"},
            "/oai");
    }
};

TEST_F(StaticGatewayTest, FullHarvestThenAnUnchangedRepeatAndTheCheck) {
    auto gateway = Gateway();
    auto d = StartHarvester(gateway->Url(), "", "interval_minutes = 600\n");
    Register(*d);
    ASSERT_TRUE(WaitForRuns(120s)) << d->Log() << gateway->Stderr();
    EXPECT_EQ(Live(), kMannRecords);
    EXPECT_EQ(gateway->failures(), 0) << gateway->Stderr();
    // Local ids come from the identifiers (oai:static.example.org:<001>).
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE library = '" + kTarget + "' AND local_id = '15552'"), 1);
    ExpectLogOncePerRecord(kMannRecords);
    EXPECT_EQ(State("oai_latest"), "2024-08-07");  // the newest 005 among the records

    // The gateway ignores `from` and gives all 71 again: nothing changes.
    const long long seq = Count("SELECT max(seq) FROM change_log");
    const auto before = State("last_success_at");
    ASSERT_EQ(d->Iblctl({"sync", "run", "oai"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return State("last_success_at") != before && State("run_kind") == ""; }, 120s))
        << d->Log();
    EXPECT_TRUE(d->WaitForLog("kind=incremental records=71 ", 5s)) << d->Log();
    EXPECT_EQ(Count("SELECT max(seq) FROM change_log"), seq);

    // What the check says about it: what a static repository is.
    auto check = d->Iblctl({"oai", "check", gateway->Url()});
    ASSERT_EQ(check.exit_code, 0) << check.err;
    EXPECT_NE(check.out.find("  formats       marc21\n"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("  first page    71 records in marc21 (0 deleted, 71 readable as MARC 21), the whole list"),
              std::string::npos)
        << check.out;
    EXPECT_NE(check.out.find("  - deletedRecord is 'no': deletions are only found by full runs"), std::string::npos)
        << check.out;
    EXPECT_NE(check.out.find("  - day granularity: every incremental run asks for the whole last day again"),
              std::string::npos)
        << check.out;
}

}  // namespace
}  // namespace iblsync::test

namespace iblsync::test {
namespace {

// Responses recorded from real repositories (tests/data/oai/recorded, with
// their sources), replayed on loopback by the test's server.
std::string RecordedFile(const std::string& name) { return SourceDir() + "/tests/data/oai/recorded/" + name; }

TEST_F(OaiHarvestTest, RecordedAlephPagesFromBrnoAreHarvestedWhole) {
    ReplayServer replay({{"verb=Identify", RecordedFile("aleph-mzk-identify.xml")},
                         {"resumptionToken=", RecordedFile("aleph-mzk-listrecords-marc21-page2-last.xml")},
                         {"verb=ListRecords", RecordedFile("aleph-mzk-listrecords-marc21-page1.xml")}});
    auto d = StartHarvester(replay.Url("/OAI"), "", "interval_minutes = 600\n");
    Register(*d);
    ASSERT_TRUE(WaitForRuns()) << d->Log();
    EXPECT_EQ(Live(), 11);
    // Local ids are the identifiers' (MZK01-...), whatever the 001 says.
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE library = '" + kTarget + "' AND local_id LIKE 'MZK01-%'"),
              11);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE local_id = 'MZK01-000213478'"), 1);
    const auto targets = replay.Targets();
    ASSERT_GE(targets.size(), 3u);
    EXPECT_NE(std::find(targets.begin(), targets.end(),
                        "/OAI?verb=ListRecords&resumptionToken=201408211302186999999999999999MZK01-VDK%3AMZK01-VDK"),
              targets.end());
    EXPECT_EQ(State("oai_latest").substr(0, 2), "20");
}

TEST_F(OaiHarvestTest, RecordedDivaPageThenARefusedTokenThenNoRecordsMatch) {
    // DiVA's first page (100 records, 14 of them deleted), then the token is
    // refused (Melinda's badResumptionToken): the list is asked for again
    // from DiVA's latest datestamp, which arXiv's noRecordsMatch answers:
    // the run ends, successfully, with what the page brought.
    ReplayServer replay({{"verb=Identify", RecordedFile("nsdl-identify.xml")},
                         {"resumptionToken=", RecordedFile("melinda-error-badresumptiontoken.xml"), 1},
                         {"from=", RecordedFile("arxiv-error-norecordsmatch.xml")},
                         {"verb=ListRecords", RecordedFile("diva-listrecords-marc21-page1.xml"), 1}});
    auto d = StartHarvester(replay.Url("/dice/oai"), "", "interval_minutes = 600\n");
    Register(*d);
    ASSERT_TRUE(WaitForRuns()) << d->Log();
    EXPECT_EQ(Live(), 86);
    EXPECT_TRUE(d->WaitForLog("harvest resumption token refused source=oai page=2 action=\"asking for the list again "
                              "from 2009-11-16T08:32:46Z\"",
                              1s))
        << d->Log();
    const auto targets = replay.Targets();
    EXPECT_NE(std::find(targets.begin(), targets.end(),
                        "/dice/oai?verb=ListRecords&metadataPrefix=marc21&from=2009-11-16T08%3A32%3A46Z"),
              targets.end())
        << fmt::format("{}", fmt::join(targets, "\n"));
    EXPECT_EQ(State("oai_latest"), "2009-11-16T08:32:46Z");
    // A failure was not counted for any of it.
    EXPECT_EQ(d->Log().find("harvest failing source=oai library=" + kTarget + " error=\"OAI-PMH"), std::string::npos);
}

}  // namespace
}  // namespace iblsync::test

namespace iblsync::test {
namespace {

TEST_F(OaiHarvestTest, ABrokenOrHostilePageIsAClearErrorAndWritesNothing) {
    // DiVA's page cut in the middle, then an entity bomb: each is a failing
    // source with its reason, and nothing of either page is written.
    const std::string diva = ReadFile(RecordedFile("diva-listrecords-marc21-page1.xml"));
    WriteFile(dir_.File("cut.xml"), diva.substr(0, diva.size() / 2));
    WriteFile(dir_.File("bomb.xml"),
              "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;\">]>"
              "<OAI-PMH xmlns=\"http://www.openarchives.org/OAI/2.0/\"><ListRecords>&b;</ListRecords></OAI-PMH>");
    ReplayServer replay({{"verb=Identify", RecordedFile("aleph-mzk-identify.xml")},
                         {"verb=ListRecords", dir_.File("cut.xml"), 3},
                         {"verb=ListRecords", dir_.File("bomb.xml")}});
    auto d = StartHarvester(replay.Url("/oai"), "", "interval_minutes = 600\n");
    Register(*d);
    const std::string url = replay.Url("/oai");
    ASSERT_TRUE(WaitFor([&] { return State("last_error").find("well-formed") != std::string::npos; }, 30s))
        << d->Log();
    EXPECT_EQ(State("last_error").rfind("not an OAI-PMH response from " + url + ": the response is not well-formed XML",
                                        0),
              0u)
        << State("last_error");
    ASSERT_TRUE(WaitFor([&] { return State("last_error").find("DTD") != std::string::npos; }, 30s)) << d->Log();
    EXPECT_EQ(State("last_error"),
              "not an OAI-PMH response from " + url + ": the response declares a DTD or entities; refused");
    EXPECT_EQ(Live(), 0);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 0);
    EXPECT_EQ(State("coalesce(next_position, 0)"), "1");
}

}  // namespace
}  // namespace iblsync::test

namespace iblsync::test {
namespace {

TEST_F(OaiHarvestTest, LibraryAddRefusesABadHoldingsMappingAndRegistersNothing) {
    auto d = StartHarvester(Url(), "", "interval_minutes = 600\n");
    auto bad = d->Iblctl({"library", "add", kTarget, "--name", "Oogst", "--holdings", "koah"});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.err.find("--holdings: 'koah' is neither a preset (marc21, iblsync, koha, sirsi, none) nor a data "
                           "field tag"),
              std::string::npos)
        << bad.err;
    EXPECT_EQ(Count("SELECT count(*) FROM library WHERE isil = '" + kTarget + "'"), 0);
}

}  // namespace
}  // namespace iblsync::test

namespace iblsync::test {
namespace {

// iblctl source add, the operator's way to connect a library: the node
// checks the repository, the table goes into its config file, and a reload
// starts it; the whole list comes in without a restart. What the check or
// the config reader refuses leaves the file and the database as they were.
TEST_F(OaiHarvestTest, SourceAddChecksWritesTheConfigAndStartsHarvestingWithoutARestart) {
    NodeConfig cfg;
    cfg.conninfo = schema_.conninfo();
    auto d = std::make_unique<DaemonProcess>(dir_, cfg);
    ASSERT_TRUE(d->Start()) << d->Log();
    Register(*d);
    const std::string path = dir_.File("iblsyncd.toml");
    const std::string original = ReadFile(path);
    const std::vector<std::string> add = {"source", "add", "oai", "--type", "oai", "--library", kTarget, "--url", Url()};
    auto with = [&](std::vector<std::string> more) {
        auto args = add;
        args.insert(args.end(), more.begin(), more.end());
        return args;
    };
    auto unchanged = [&] {
        EXPECT_EQ(ReadFile(path), original);
        EXPECT_EQ(Count("SELECT count(*) FROM harvest_source"), 0);
        EXPECT_EQ(Live(), 0);
    };

    // A set the repository lacks: the check says so and nothing is written.
    auto missing = d->Iblctl(with({"--set", "library:NL-0000000999"}));
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_NE(missing.out.find("  - the set 'library:NL-0000000999' is not among the repository's sets\n"),
              std::string::npos)
        << missing.out;
    EXPECT_EQ(missing.err,
              "iblctl: source add: not added: the repository check found 2 problems; fix the arguments or the "
              "repository, or add it anyway with --no-check\n");
    unchanged();
    // Not an OAI-PMH endpoint.
    auto health = d->Iblctl({"source", "add", "oai", "--type", "oai", "--library", kTarget, "--url",
                             fmt::format("http://127.0.0.1:{}/healthz", source_->port())});
    EXPECT_EQ(health.exit_code, 1);
    EXPECT_NE(health.out.find("  - Identify failed: the response is not well-formed XML"), std::string::npos)
        << health.out;
    unchanged();
    // What the config reader refuses, before anyone is asked.
    auto https = d->Iblctl({"source", "add", "oai", "--type", "oai", "--library", kTarget, "--url",
                            "https://oai.example.nl/oai"});
    EXPECT_EQ(https.exit_code, 2);
    EXPECT_EQ(https.err,
              "iblctl: source add: not added: harvest[1].url: https sources are not supported yet; use an http:// "
              "URL (or a TLS-terminating proxy)\n");
    auto name = d->Iblctl({"source", "add", "Oai Bron", "--library", kTarget, "--url", Url()});
    EXPECT_EQ(name.exit_code, 2);
    EXPECT_EQ(name.err, "iblctl: source add: not added: harvest[1].name: must be 1..64 of a-z 0-9 - _, starting "
                        "with a letter or digit\n");
    unchanged();

    auto added = d->Iblctl(with({"--set", "library:" + kOrigin}));
    ASSERT_EQ(added.exit_code, 0) << added.err << d->Log();
    const std::string table = fmt::format("[[harvest]]\nname = \"oai\"\nlibrary = \"{}\"\ntype = \"oai\"\nurl = \"{}\"\n"
                                          "metadata_prefix = \"marc21\"\nset = \"library:{}\"\n",
                                          kTarget, Url(), kOrigin);
    EXPECT_EQ(ReadFile(path), original + "\n" + table);
    const long long line = Occurrences(original, "\n") + 2;
    EXPECT_NE(added.out.find(fmt::format("added [[harvest]] 'oai' to {} at line {}:\n\n{}\nthe node harvests it now",
                                         path, line, table)),
              std::string::npos)
        << added.out;
    EXPECT_NE(added.out.find("  first page    10 records in marc21"), std::string::npos) << added.out;
    ASSERT_TRUE(WaitForRuns()) << d->Log();
    EXPECT_EQ(Live(), kMannRecords);
    ExpectLogOncePerRecord(kMannRecords);
    EXPECT_TRUE(d->WaitForLog(fmt::format("config reloaded origin=control changed=harvest.oai"), 1s)) << d->Log();
    EXPECT_TRUE(d->WaitForLog(fmt::format("harvest source added source=oai library={} type=oai", kTarget), 1s));
    auto status = d->Iblctl({"--json", "sync", "status"});
    EXPECT_NE(status.out.find("\"name\":\"oai\""), std::string::npos) << status.out;

    // The same name again: refused, and the file stays as it is now.
    const std::string now = ReadFile(path);
    auto again = d->Iblctl(with({"--no-check"}));
    EXPECT_EQ(again.exit_code, 2);
    EXPECT_EQ(again.err, fmt::format("iblctl: source add: not added: 'oai' is already the name of the [[harvest]] at "
                                     "{}:{}\n",
                                     path, line));
    EXPECT_EQ(ReadFile(path), now);

    // --json, and --no-check for a source the node cannot reach yet: it is
    // added, started and failing (sync status says why), as a source in
    // the file would be.
    auto later = d->Iblctl({"--json", "source", "add", "later", "--type", "oai", "--library", kTarget, "--url",
                            "http://127.0.0.1:9/oai", "--no-check", "--interval-minutes", "600"});
    ASSERT_EQ(later.exit_code, 0) << later.err;
    rapidjson::Document doc;
    doc.Parse(later.out.c_str());
    ASSERT_TRUE(doc.IsObject()) << later.out;
    EXPECT_TRUE(doc["added"].GetBool());
    EXPECT_TRUE(doc["started"].GetBool());
    EXPECT_EQ(std::string(doc["config"].GetString()), path);
    EXPECT_TRUE(doc["check"].IsNull());
    EXPECT_EQ(doc["line"].GetInt64(), Occurrences(now, "\n") + 2);
    EXPECT_TRUE(WaitFor([&] {
        return schema_.Query1("SELECT errors_in_row > 0 FROM harvest_source WHERE name = 'later'") == "t";
    }, 30s)) << d->Log();

    // Both are in the file: a restart starts them, and nothing comes twice.
    const std::string both = ReadFile(path);
    const long long runs = Occurrences(d->Log(), "harvest finished source=oai ");
    d->Signal(SIGTERM);
    EXPECT_EQ(d->WaitExit(20s), 0);
    d = std::make_unique<DaemonProcess>(dir_, cfg);
    WriteFile(path, both);  // the harness wrote its own config; the operator's file is what the node reads
    ASSERT_TRUE(d->Start()) << d->Log();
    auto restarted = d->Iblctl({"--json", "sync", "status"});
    EXPECT_NE(restarted.out.find("\"name\":\"oai\""), std::string::npos) << restarted.out;
    EXPECT_NE(restarted.out.find("\"name\":\"later\""), std::string::npos) << restarted.out;
    ASSERT_EQ(d->Iblctl({"sync", "run", "oai"}).exit_code, 0);
    EXPECT_TRUE(WaitFor([&] { return Occurrences(d->Log(), "harvest finished source=oai ") > runs; }, 30s))
        << d->Log();
    EXPECT_EQ(Live(), kMannRecords);
    ExpectLogOncePerRecord(kMannRecords);
}

}  // namespace
}  // namespace iblsync::test
