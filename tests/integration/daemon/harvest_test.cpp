// SRU harvesting by a real daemon from a real SRU server: Zebra 2.2.7
// (Debian's idzebra-2.0) holding 71 real MARCXML records (Thomas Mann
// editions, tests/data/marc/PROVENANCE.md). Faults come from a proxy in
// front of Zebra (tests/support/sru_peer.hpp): HTTP 500s, an HTML page, a
// source that never answers, and Zebra itself stopped.

#include <signal.h>

#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <pqxx/pqxx>
#include <gtest/gtest.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"
#include "tests/support/sru_peer.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

const std::string kLibrary = "NL-0000000201";

std::string Records() { return SourceDir() + "/tests/data/marc/slices/thomas-mann-shared-71.xml"; }

// The 001s of a MARCXML file, in order.
std::vector<std::string> Ids(const std::string& file) {
    std::vector<std::string> out;
    const std::string text = ReadFile(file);
    const std::string tag = "<controlfield tag=\"001\">";
    for (auto p = text.find(tag); p != std::string::npos; p = text.find(tag, p + 1)) {
        auto start = p + tag.size();
        out.push_back(text.substr(start, text.find('<', start) - start));
    }
    return out;
}

// The same collection without its first record.
std::string WithoutFirst(const TempDir& dir) {
    std::string text = ReadFile(Records());
    auto first = text.find("<record");
    auto end = text.find("</record>", first) + 9;
    text.erase(first, end - first);
    std::string path = dir.File("70.xml");
    WriteFile(path, text);
    return path;
}

class HarvestTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(ZebraServer::Installed()) << "zebrasrv is not installed; tools/install-deps installs idzebra-2.0";
        zebra_ = std::make_unique<ZebraServer>(dir_);
        ASSERT_TRUE(zebra_->Load({Records()}));
        ASSERT_TRUE(zebra_->Start()) << zebra_->Log();
    }

    NodeConfig Config(const std::string& url, const std::string& more = "") {
        NodeConfig cfg;
        cfg.conninfo = schema_.conninfo();
        cfg.extra_toml = fmt::format(
            "\n[[harvest]]\nname = \"zebra\"\nlibrary = \"{}\"\nurl = \"{}\"\npage_size = 10\n"
            "retry_max_seconds = 1\ntimeout_seconds = 2\n{}",
            kLibrary, url, more);
        return cfg;
    }

    long long Count(const std::string& sql) { return std::stoll(schema_.Query1(sql)); }
    long long Live() {
        return Count(fmt::format("SELECT count(*) FROM bib_record WHERE library = '{}' AND NOT deleted", kLibrary));
    }
    std::string State(const std::string& what) {
        return schema_.Query1(fmt::format("SELECT {} FROM harvest_source WHERE name = 'zebra'", what));
    }
    long long InRow() {
        const std::string v = State("errors_in_row");
        return v.empty() ? 0 : std::stoll(v);
    }
    bool WaitForRuns(std::chrono::milliseconds timeout = 60s) {
        return WaitFor([&] { return State("last_success_at IS NOT NULL AND run_kind IS NULL") == "t"; }, timeout);
    }
    // Every record once in the log, and the log numbered without gaps.
    void ExpectLogOncePerRecord(long long inserts, long long deletes = 0) {
        EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'record' AND op = 'insert'"), inserts);
        EXPECT_EQ(Count("SELECT count(DISTINCT local_id) FROM change_log WHERE entity = 'record' AND op = 'insert'"),
                  inserts);
        EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'record' AND op = 'delete'"), deletes);
        EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'record' AND op = 'update'"), 0);
        EXPECT_EQ(Count("SELECT max(seq) - min(seq) + 1 - count(*) FROM change_log"), 0);
    }
    // Another iblsyncd as the SRU source, with its own database.
    std::unique_ptr<DaemonProcess> StartSource(const TempDir& dir, const TestSchema& db,
                                               const std::string& extra = "") {
        NodeConfig cfg;
        cfg.conninfo = db.conninfo();
        cfg.role = "national";
        cfg.isil = "NL-KB-TEST";
        cfg.extra_toml = extra;
        auto source = std::make_unique<DaemonProcess>(dir, cfg);
        EXPECT_TRUE(source->Start()) << source->Log();
        return source;
    }
    // Loads a MARC file into the source's library NL-0000000301.
    void LoadSource(const TempDir& dir, const TestSchema& db, const std::string& file) {
        auto r = RunCommand({IblctlPath(), "import", "--db", db.conninfo(), "--library", "NL-0000000301", "--name",
                             "Bron", "--rejects", dir.File("rejects"), file},
                            60s);
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    static std::string Nlnz() {
        return SourceDir() + "/tests/data/marc/originals/pymarc_basics/NLNZ_100_example_marc.marc";
    }

    void Register(DaemonProcess& d) {
        auto r = d.Iblctl({"library", "add", kLibrary, "--name", "Bibliotheek Harvest", "--province", "NL-GE"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }

    TempDir dir_;
    TestSchema schema_;
    std::unique_ptr<ZebraServer> zebra_;
};

// Full run, a repeat that changes nothing, then a record gone at the source
// that a full run deletes.
TEST_F(HarvestTest, FullRunRepeatAndDeletionsFromZebra) {
    DaemonProcess d(dir_, Config(zebra_->Url()));
    ASSERT_TRUE(d.Start()) << d.Log();
    // Not registered yet: the source fails with a hint, and writes nothing.
    ASSERT_TRUE(WaitFor([&] { return InRow() > 0; }, 20s)) << d.Log();
    EXPECT_NE(State("last_error").find("library NL-0000000201 is not registered (register it: iblctl library add"),
              std::string::npos)
        << State("last_error");
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 0);
    Register(d);
    ASSERT_TRUE(WaitForRuns()) << d.Log();

    const auto ids = Ids(Records());
    const std::set<std::string> distinct(ids.begin(), ids.end());
    EXPECT_EQ(Live(), static_cast<long long>(distinct.size()));
    EXPECT_EQ(State("run_total"), std::to_string(ids.size()));
    for (const auto& id : {ids.front(), ids.back()})
        EXPECT_EQ(Count(fmt::format("SELECT count(*) FROM bib_record WHERE local_id = '{}'", id)), 1) << id;
    ExpectLogOncePerRecord(static_cast<long long>(distinct.size()));
    EXPECT_TRUE(d.WaitForLog("harvest finished source=zebra library=NL-0000000201 kind=full records=71", 5s))
        << d.Log();

    auto status = d.Iblctl({"sync", "status"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    EXPECT_NE(status.out.find("zebra               sru  NL-0000000201    idle"), std::string::npos) << status.out;
    auto metrics = HttpGet(d.port(), "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("iblsync_harvest_records_total{source=\"zebra\"} 71\n"), std::string::npos)
        << metrics->body;
    EXPECT_NE(metrics->body.find("iblsync_harvest_failing{source=\"zebra\"} 0\n"), std::string::npos);
    EXPECT_EQ(metrics->body.find("iblsync_harvest_last_success_timestamp_seconds{source=\"zebra\"} 0\n"),
              std::string::npos)
        << "a completed run sets the time";
    auto json = d.Iblctl({"--json", "sync", "status"});
    EXPECT_NE(json.out.find("\"records_total\":71"), std::string::npos) << json.out;

    // Again: the same records, nothing new in the log.
    const auto seq = Count("SELECT max(seq) FROM change_log");
    const auto finished = State("last_success_at");
    auto run = d.Iblctl({"sync", "run", "zebra"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out, "source zebra will run now (or right after the run in progress)\n");
    ASSERT_TRUE(WaitFor([&] { return State("last_success_at") != finished && State("run_kind") == ""; }, 30s))
        << d.Log();
    EXPECT_EQ(Count("SELECT max(seq) FROM change_log"), seq);

    // The library system dropped a record: the next full run deletes it.
    ASSERT_TRUE(zebra_->Load({WithoutFirst(dir_)})) << zebra_->Log();
    const auto second = State("last_success_at");
    ASSERT_EQ(d.Iblctl({"sync", "run", "zebra", "--full"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return State("last_success_at") != second && State("run_kind") == ""; }, 30s))
        << d.Log();
    EXPECT_EQ(Live(), static_cast<long long>(distinct.size()) - 1);
    EXPECT_EQ(Count(fmt::format("SELECT count(*) FROM bib_record WHERE local_id = '{}' AND deleted", ids.front())), 1);
    ExpectLogOncePerRecord(static_cast<long long>(distinct.size()), 1);
    EXPECT_EQ(d.Iblctl({"sync", "run", "nosuch"}).err,
              fmt::format("iblctl: sync.run failed: no harvest source, peer or drop 'nosuch' in {}\nhint: 'iblctl "
                          "sync status' lists them; add a source with 'iblctl source add' (a [[peer]] or [[drop]] "
                          "table in the config file takes a restart)\n",
                          d.config_path()));
}

// A record that reached the harvested library another way (a push) and
// that the source does not have: the last page of the next full run
// deletes it, in the same transaction as the page's own records. (That
// second merge once saw the first one's scratch rows and failed on a
// duplicate work id, run after run.)
TEST_F(HarvestTest, AFullRunsLastPageDeletesWhatTheSourceLacksInTheSameTransaction) {
    DaemonProcess d(dir_, Config(zebra_->Url()));
    ASSERT_TRUE(d.Start()) << d.Log();
    Register(d);
    ASSERT_TRUE(WaitForRuns()) << d.Log();
    const long long harvested = Live();
    auto issued = d.Iblctl({"--json", "token", "issue", kLibrary});
    const auto at = issued.out.find("iblt_");
    ASSERT_NE(at, std::string::npos) << issued.out;
    const std::string token = issued.out.substr(at, issued.out.find('"', at) - at);
    auto pushed = HttpCall(d.port(), "PUT", fmt::format("/v1/libraries/{}/records/pushed-1", kLibrary),
                           {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}},
                           R"({"id":"pushed-1","title":"Buiten de bron","authors":["Mann, Thomas"],"year":1901})");
    ASSERT_TRUE(pushed);
    ASSERT_EQ(pushed->status, 201) << pushed->body;
    const auto before = State("last_success_at");
    ASSERT_EQ(d.Iblctl({"sync", "run", "zebra", "--full"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return State("last_success_at") != before && State("run_kind") == ""; }, 30s))
        << State("last_error");
    EXPECT_EQ(State("errors_in_row"), "0") << State("last_error");
    EXPECT_EQ(Live(), harvested);
    EXPECT_EQ(Count(fmt::format("SELECT count(*) FROM bib_record WHERE library = '{}' AND local_id = 'pushed-1'"
                                " AND deleted",
                                kLibrary)),
              1);
    EXPECT_EQ(Count("SELECT count(*) FROM work w WHERE NOT EXISTS (SELECT 1 FROM record_work r"
                    " WHERE r.work_id = w.id)"),
              0)
        << "the deleted record's work went with it";
}

// Another iblsyncd as the source (its SRU server): a full run, then an
// incremental one that asks only for what changed since the last run began.
TEST_F(HarvestTest, FromAnotherIblsyncdFullThenIncremental) {
    TempDir source_dir;
    TestSchema source_db;
    auto source_node = StartSource(source_dir, source_db);
    DaemonProcess& source = *source_node;
    auto load = [&](const std::string& file) { LoadSource(source_dir, source_db, file); };
    load(Nlnz());
    const long long at_source = std::stoll(source_db.Query1("SELECT count(*) FROM bib_record WHERE NOT deleted"));
    ASSERT_GT(at_source, 50);
    // {since} has whole seconds, rounded down (fetching a record twice is
    // harmless, missing one is not): start the first run a second later.
    std::this_thread::sleep_for(1100ms);

    auto cfg = Config(fmt::format("http://127.0.0.1:{}/sru", source.port()),
                      "incremental_query = \"rec.lastModificationDate > {since}\"\n");
    DaemonProcess d(dir_, cfg);
    ASSERT_TRUE(d.Start()) << d.Log();
    Register(d);
    ASSERT_TRUE(WaitForRuns()) << d.Log();
    EXPECT_EQ(Live(), at_source);
    EXPECT_EQ(State("run_total"), std::to_string(at_source));
    ExpectLogOncePerRecord(at_source);

    // One new record at the source; the incremental run brings only it.
    std::string one = ReadFile(Records());
    auto first_end = one.find("</record>") + 9;
    one.erase(first_end, one.rfind("</collection>") - first_end);
    WriteFile(dir_.File("one.xml"), one);
    load(dir_.File("one.xml"));
    const auto before = State("last_success_at");
    ASSERT_EQ(d.Iblctl({"sync", "run", "zebra"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return State("last_success_at") != before && State("run_kind") == ""; }, 30s))
        << d.Log();
    EXPECT_TRUE(d.WaitForLog("kind=incremental records=1 ", 5s)) << d.Log();
    EXPECT_EQ(State("run_records"), "1");
    EXPECT_EQ(Live(), at_source + 1);
    ExpectLogOncePerRecord(at_source + 1);
}

// Three pages asked for at once, each on its own connection to Zebra:
// every record comes once, no page is asked for twice, and nothing past
// the end is asked for.
TEST_F(HarvestTest, PagesAskedForThreeAtATimeComeOnceEach) {
    auto cfg = Config(zebra_->Url(), "concurrency = 3\n");
    cfg.log_level = "debug";
    DaemonProcess d(dir_, cfg);
    ASSERT_TRUE(d.Start()) << d.Log();
    Register(d);
    ASSERT_TRUE(WaitForRuns()) << d.Log();
    EXPECT_EQ(Live(), 71);
    ExpectLogOncePerRecord(71);
    // Zebra logs each searchRetrieve and each connection (session).
    const std::string log = zebra_->Log();
    auto count = [&](const std::string& needle) {
        long long n = 0;
        for (auto p = log.find(needle); p != std::string::npos; p = log.find(needle, p + 1)) ++n;
        return n;
    };
    // A first run that found the library not yet registered may have asked
    // for pages before; the ones after registering are 8: count the pages
    // with the records' positions instead.
    std::set<std::string> starts;
    for (auto p = log.find("operation=searchRetrieve"); p != std::string::npos;
         p = log.find("operation=searchRetrieve", p + 1)) {
        auto at = log.find("startRecord=", p);
        starts.insert(log.substr(at + 12, log.find('&', at) - at - 12));
    }
    EXPECT_EQ(starts, (std::set<std::string>{"1", "11", "21", "31", "41", "51", "61", "71"}))
        << "no page past the end" << d.Log();
    EXPECT_GE(count("Session - OK"), 3) << "the pages went over more than one connection";
}

// A source that sends shorter pages than asked for (this iblsyncd caps
// maximumRecords at 7; the harvester asks for 10, three at a time): the
// pages asked for on the wrong guess are dropped and asked for again where
// they really start, and every record comes once.
TEST_F(HarvestTest, AShortPagingSourceProvesTheGuessedStartsWrong) {
    TempDir source_dir;
    TestSchema source_db;
    auto source_node = StartSource(source_dir, source_db, "\n[sru]\nmax_records = 7\ndefault_records = 7\n");
    DaemonProcess& source = *source_node;
    LoadSource(source_dir, source_db, Nlnz());
    const long long at_source = std::stoll(source_db.Query1("SELECT count(*) FROM bib_record WHERE NOT deleted"));
    ASSERT_GT(at_source, 50);

    DaemonProcess d(dir_, Config(fmt::format("http://127.0.0.1:{}/sru", source.port()), "concurrency = 3\n"));
    ASSERT_TRUE(d.Start()) << d.Log();
    Register(d);
    ASSERT_TRUE(WaitForRuns()) << d.Log();
    EXPECT_EQ(Live(), at_source);
    EXPECT_EQ(State("run_total"), std::to_string(at_source));
    ExpectLogOncePerRecord(at_source);
}

// A source that suddenly returns almost nothing: the full run's deletions
// are held back, said so once, and applied when an operator allows them.
TEST_F(HarvestTest, AFullRunThatWouldEmptyTheLibraryIsHeldBack) {
    DaemonProcess d(dir_, Config(zebra_->Url(), "max_delete_percent = 10\n"));
    ASSERT_TRUE(d.Start()) << d.Log();
    Register(d);
    ASSERT_TRUE(WaitForRuns()) << d.Log();
    const long long all = Live();
    // Zebra now holds only 11 of the records.
    std::string text = ReadFile(Records());
    std::size_t cut = 0;
    for (int i = 0; i < 11; ++i) cut = text.find("</record>", cut) + 9;
    text.erase(cut, text.rfind("</collection>") - cut);
    WriteFile(dir_.File("11.xml"), text);
    ASSERT_TRUE(zebra_->Load({dir_.File("11.xml")}));
    const auto before = State("last_success_at");
    ASSERT_EQ(d.Iblctl({"sync", "run", "zebra", "--full"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return State("last_success_at") != before && State("run_kind") == ""; }, 30s));
    EXPECT_EQ(Live(), all);
    EXPECT_NE(State("last_error").find(fmt::format("the full run would delete {} of the library's {} records; none "
                                                   "deleted (more than 10%",
                                                   all - 11, all)),
              std::string::npos)
        << State("last_error");
    EXPECT_TRUE(d.WaitForLog("harvest deletions held back source=zebra", 5s));
    const auto held = State("last_success_at");
    ASSERT_EQ(d.Iblctl({"sync", "run", "zebra", "--full", "--allow-deletions"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return State("last_success_at") != held && State("run_kind") == ""; }, 30s));
    EXPECT_EQ(Live(), 11);
    EXPECT_EQ(State("errors_in_row"), "0");
}

// kill -9 in the middle of a run, then a restart: the run resumes at the
// first page not committed, and every record is in the catalogue and in the
// log exactly once. The proxy answers only the first three pages, so the
// kill comes mid-run however fast the machine (CI's once took every page
// between two polls, and pages that wait for a busy database go in
// together: all 71 records in one transaction).
TEST_F(HarvestTest, KillNineMidRunResumesWithoutLossOrDuplicates) {
    FaultProxy proxy(zebra_->port());
    proxy.PassOnly(3);
    auto cfg = Config(proxy.Url());
    {
        DaemonProcess d(dir_, cfg);
        ASSERT_TRUE(d.Start()) << d.Log();
        Register(d);
        ASSERT_TRUE(WaitFor([&] { return Live() >= 10; }, 30s)) << d.Log();
        d.Signal(SIGKILL);
        d.WaitExit(5s);
    }
    const long long at_kill = Live();
    EXPECT_LE(at_kill, 30) << "at most the three pages answered";
    EXPECT_EQ(State("run_kind"), "full");
    EXPECT_EQ(State("next_position"), std::to_string(at_kill + 1)) << "the cursor moved with the records";
    proxy.Set(FaultProxy::Mode::kPass);
    DaemonProcess again(dir_, cfg);
    ASSERT_TRUE(again.Start()) << again.Log();
    ASSERT_TRUE(WaitForRuns()) << again.Log();
    EXPECT_TRUE(again.WaitForLog(fmt::format("harvest resumed source=zebra library=NL-0000000201 kind=full "
                                             "position={}",
                                             at_kill + 1),
                                 1s))
        << again.Log();
    EXPECT_EQ(Live(), 71);
    ExpectLogOncePerRecord(71);
}

// Pages that come in while the database is busy wait, and then go into one
// transaction together, with the cursor after the last of them. The test
// keeps the database busy by holding the library's write lock: the first
// page waits for it, and the other seven are fetched meanwhile.
TEST_F(HarvestTest, PagesThatCameInWhileTheDatabaseWasBusyAreAppliedTogether) {
    FaultProxy proxy(zebra_->port());
    // Held from before the start, so that the first page waits even before
    // the library is registered (which is checked under the lock).
    pqxx::connection blocker(schema_.conninfo());
    pqxx::work lock(blocker);
    lock.exec_params("SELECT pg_advisory_xact_lock(hashtext('iblsync.import:' || $1))", kLibrary);
    DaemonProcess d(dir_, Config(proxy.Url()));
    ASSERT_TRUE(d.Start()) << d.Log();
    Register(d);
    // 71 records, 10 a page: 8 pages, all asked for while the first waits.
    ASSERT_TRUE(WaitFor([&] { return proxy.requests() >= 8; }, 30s)) << d.Log();
    EXPECT_EQ(Live(), 0);
    EXPECT_EQ(State("next_position"), "1");
    lock.abort();
    ASSERT_TRUE(WaitForRuns()) << d.Log();
    EXPECT_EQ(proxy.requests(), 8) << "no page asked for twice";
    EXPECT_EQ(Live(), 71);
    ExpectLogOncePerRecord(71);
    auto metrics = HttpGet(d.port(), "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("iblsync_harvest_pages_total{source=\"zebra\"} 8\n"), std::string::npos)
        << metrics->body;
    EXPECT_NE(metrics->body.find("iblsync_harvest_transactions_total{source=\"zebra\"} 2\n"), std::string::npos)
        << "the first page alone, then the seven that waited: " << metrics->body;
}

// A source that fails in every way for a while: the failure is visible in
// `iblctl sync status` at once, logged once per kind of failure (not per
// retry), nothing is written, and the harvest completes when it recovers.
// A source behind HTTP Basic authentication (the proxy asks for it): the
// configured credentials go with every page; refused ones are a failure
// that says which settings to check.
TEST_F(HarvestTest, ASourceBehindHttpBasicAuthentication) {
    FaultProxy proxy(zebra_->port());
    proxy.RequireAuthorization("Basic aGFydmVzdGVyOnMzY3JldA==");  // harvester:s3cret
    DaemonProcess d(dir_, Config(proxy.Url(), "username = \"harvester\"\npassword = \"s3cret\"\n"));
    ASSERT_TRUE(d.Start()) << d.Log();
    Register(d);
    ASSERT_TRUE(WaitForRuns()) << d.Log();
    const auto ids = Ids(Records());
    EXPECT_EQ(Live(), static_cast<long long>(std::set<std::string>(ids.begin(), ids.end()).size()));
    EXPECT_EQ(proxy.unauthorized(), 0);
    EXPECT_GT(proxy.requests(), 3);
    EXPECT_EQ(d.Log().find("s3cret"), std::string::npos);  // never logged

    proxy.RequireAuthorization("Basic c29tZW9uZTplbHNl");  // the source changed its password
    ASSERT_EQ(d.Iblctl({"sync", "run", "zebra", "--full"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return InRow() > 0; }, 30s)) << d.Log();
    EXPECT_EQ(State("last_error"), fmt::format("HTTP 401 from {} (check harvest.username and harvest.password of zebra)",
                                               proxy.Url()));
    EXPECT_GT(proxy.unauthorized(), 0);
}

TEST_F(HarvestTest, AFailingSourceIsVisibleLoggedOnceAndRecovers) {
    FaultProxy proxy(zebra_->port());
    proxy.Set(FaultProxy::Mode::kError500);
    DaemonProcess d(dir_, Config(proxy.Url()));
    ASSERT_TRUE(d.Start()) << d.Log();
    Register(d);
    auto failing_with = [&](const std::string& error) {
        const long long before = Count("SELECT errors_total FROM harvest_source");
        return WaitFor(
            [&] {
                return State("last_error").find(error) != std::string::npos &&
                       Count("SELECT errors_total FROM harvest_source") >= before + 3;
            },
            30s);
    };
    ASSERT_TRUE(failing_with(fmt::format("HTTP 500 from {}", proxy.Url()))) << d.Log();
    auto status = d.Iblctl({"sync", "status"});
    EXPECT_NE(status.out.find("failing"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("HTTP 500"), std::string::npos) << status.out;
    auto metrics = HttpGet(d.port(), "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("iblsync_harvest_failing{source=\"zebra\"} 1\n"), std::string::npos)
        << metrics->body;
    EXPECT_NE(metrics->body.find("iblsync_harvest_last_success_timestamp_seconds{source=\"zebra\"} 0\n"),
              std::string::npos);

    // Paused, it asks the source nothing more, across its retries; resumed,
    // it goes on failing where it was.
    ASSERT_EQ(d.Iblctl({"sync", "pause", "zebra"}).out,
              "source zebra is paused; 'iblctl sync resume' harvests it again\n");
    std::this_thread::sleep_for(300ms);  // a request in flight ends
    const int asked = proxy.requests();
    std::this_thread::sleep_for(2500ms);
    EXPECT_EQ(proxy.requests(), asked);
    EXPECT_NE(d.Iblctl({"sync", "status"}).out.find("paused"), std::string::npos);
    ASSERT_EQ(d.Iblctl({"sync", "resume", "zebra"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return proxy.requests() > asked; }, 5s));

    proxy.Set(FaultProxy::Mode::kHtml);
    ASSERT_TRUE(failing_with("not an SRU response from")) << d.Log();
    EXPECT_NE(State("last_error").find("expected an SRU searchRetrieveResponse, got <html>"), std::string::npos);

    proxy.Set(FaultProxy::Mode::kSilent, 5s);
    ASSERT_TRUE(failing_with("no answer within 2 s")) << d.Log();

    zebra_->Stop();  // the proxy passes on, to nobody: the connection ends without an answer
    proxy.Set(FaultProxy::Mode::kPass);
    ASSERT_TRUE(failing_with("no complete answer from")) << d.Log();
    EXPECT_GE(InRow(), 12);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 0) << "nothing written while the source failed";
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 0);

    ASSERT_TRUE(zebra_->Start());
    ASSERT_TRUE(WaitForRuns()) << d.Log();
    EXPECT_EQ(Live(), 71);
    ExpectLogOncePerRecord(71);
    EXPECT_TRUE(d.WaitForLog("harvest recovered source=zebra", 1s)) << d.Log();
    // One warning per change of reason, however many retries there were.
    const std::string log = d.Log();
    int warnings = 0;
    for (auto p = log.find("harvest failing source=zebra"); p != std::string::npos;
         p = log.find("harvest failing source=zebra", p + 1))
        ++warnings;
    EXPECT_GE(Count("SELECT errors_total FROM harvest_source"), 12);
    EXPECT_GE(warnings, 4) << log;  // 500, HTML, timeout, no answer (and "not registered" if it came first)
    EXPECT_LE(warnings, 5) << log;
    EXPECT_EQ(InRow(), 0);
}

}  // namespace
}  // namespace iblsync::test
