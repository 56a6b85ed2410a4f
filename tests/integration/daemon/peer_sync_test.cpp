// A small network on loopback: a national node and two POI nodes, each a
// real iblsyncd with its own schema. POI A harvests a library system (Zebra
// with 71 real MARC records, tests/data/marc/PROVENANCE.md) and takes pushes;
// POI B takes pushes. The national node follows both POIs' change feeds,
// and both POIs follow the national node. `iblctl sync verify` is the judge
// of convergence; change_log counts show that nothing was applied twice and
// that nothing came back to where it started.

#include <signal.h>

#include <map>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"
#include "tests/support/sru_peer.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kNational = "NL-0000000900";
constexpr const char* kPoiA = "NL-0000000910";
constexpr const char* kPoiB = "NL-0000000920";
constexpr const char* kLibA = "NL-0000000211";  // served by POI A, harvested from Zebra
constexpr const char* kLibA2 = "NL-0000000212"; // served by POI A, pushing
constexpr const char* kLibB = "NL-0000000221";  // served by POI B, pushing

std::string JsonRecord(const std::string& id, const std::string& title, const std::string& holdings) {
    return fmt::format(R"({{"id":"{}","title":"{}","authors":["Mulisch, Harry"],"year":1982,"holdings":{}}})", id,
                       title, holdings);
}

struct Node {
    std::string isil, role;
    int port = 0;
    TempDir dir;
    std::unique_ptr<TestSchema> own_schema;
    std::string conninfo;
    std::string peers_toml;  // [[peer]] tables
    std::string more_toml;   // e.g. [[harvest]]
    std::unique_ptr<DaemonProcess> daemon;

    NodeConfig Config() const {
        NodeConfig cfg;
        cfg.role = role;
        cfg.isil = isil;
        cfg.provinces = isil == kPoiA ? R"(["NL-GE"])" : R"(["NL-UT"])";
        cfg.listen = fmt::format("127.0.0.1:{}", port);
        cfg.conninfo = conninfo;
        cfg.extra_toml = peers_toml + more_toml;
        return cfg;
    }
    bool Start() {
        daemon.reset();
        daemon = std::make_unique<DaemonProcess>(dir, Config());
        return daemon->Start();
    }
    void Kill() {
        daemon->Signal(SIGKILL);
        daemon->WaitExit(10s);
    }
    void Stop() {
        daemon->Signal(SIGTERM);
        EXPECT_EQ(daemon->WaitExit(20s), 0);
    }
    CommandResult Ctl(const std::vector<std::string>& args) const { return daemon->Iblctl(args); }
    std::string Issue(const std::string& library) const {
        auto r = Ctl({"--json", "token", "issue", library, "--label", "peer"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        rapidjson::Document d;
        d.Parse(r.out.c_str());
        return !d.HasParseError() && d.HasMember("token") ? d["token"].GetString() : "";
    }
    std::string Query1(const std::string& sql) const {
        return own_schema ? own_schema->Query1(sql) : std::string();
    }
    long long Count(const std::string& sql) const {
        const auto v = Query1(sql);
        return v.empty() ? -1 : std::stoll(v);
    }
};

class PeerSyncTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(ZebraServer::Installed()) << "zebrasrv is not installed; tools/install-deps installs idzebra-2.0";
        zebra_ = std::make_unique<ZebraServer>(zebra_dir_);
        ASSERT_TRUE(zebra_->Load({SourceDir() + "/tests/data/marc/slices/thomas-mann-shared-71.xml"}));
        ASSERT_TRUE(zebra_->Start()) << zebra_->Log();
        for (auto* n : {&national_, &a_, &b_}) {
            n->port = FreePort();
            if (!n->own_schema) n->own_schema = std::make_unique<TestSchema>();
            if (n->conninfo.empty()) n->conninfo = n->own_schema->conninfo();
        }
        national_.isil = kNational, national_.role = "national";
        a_.isil = kPoiA, a_.role = "poi";
        b_.isil = kPoiB, b_.role = "poi";
    }

    // First start: libraries and the tokens each node gives the nodes that
    // read its feed (the reading node is registered as a library without
    // records); then a restart with the [[peer]] tables.
    void StartNetwork(const std::string& national_peer_extra = "", int a_port_for_national = 0,
                      const std::string& b_peer_extra = "") {
        for (auto* n : {&national_, &a_, &b_}) ASSERT_TRUE(n->Start()) << n->daemon->Log();
        auto add = [](Node& n, const std::string& isil, const std::string& name, const std::string& province) {
            auto r = n.Ctl({"library", "add", isil, "--name", name, "--province", province});
            ASSERT_EQ(r.exit_code, 0) << r.err;
        };
        add(a_, kLibA, "Bibliotheek Veluwe", "NL-GE");
        add(a_, kLibA2, "Bibliotheek Arnhem", "NL-GE");
        add(b_, kLibB, "Bibliotheek Utrecht", "NL-UT");
        add(a_, kNational, "national node (reads the feed)", "NL-GE");
        add(b_, kNational, "national node (reads the feed)", "NL-UT");
        add(national_, kPoiA, "POI A (reads the feed)", "NL-GE");
        add(national_, kPoiB, "POI B (reads the feed)", "NL-UT");
        token_a_ = a_.Issue(kLibA2);
        token_b_ = b_.Issue(kLibB);
        const std::string national_reads_a = a_.Issue(kNational), national_reads_b = b_.Issue(kNational);
        const std::string a_reads_national = national_.Issue(kPoiA), b_reads_national = national_.Issue(kPoiB);
        for (auto* n : {&national_, &a_, &b_}) n->Stop();

        auto peer = [](const std::string& name, const std::string& isil, int port, const std::string& token,
                       const std::string& extra) {
            return fmt::format(
                "\n[[peer]]\nname = \"{}\"\nisil = \"{}\"\nurl = \"http://127.0.0.1:{}\"\ntoken = \"{}\"\n"
                "wait_seconds = 5\ntimeout_seconds = 5\nretry_max_seconds = 1\n{}",
                name, isil, port, token, extra);
        };
        national_.peers_toml = peer("poi-a", kPoiA, a_port_for_national ? a_port_for_national : a_.port,
                                    national_reads_a, national_peer_extra) +
                               peer("poi-b", kPoiB, b_.port, national_reads_b, national_peer_extra);
        a_.peers_toml = peer("national", kNational, national_.port, a_reads_national, "");
        b_.peers_toml = peer("national", kNational, national_.port, b_reads_national, b_peer_extra);
        a_.more_toml = fmt::format(
            "\n[[harvest]]\nname = \"zebra\"\nlibrary = \"{}\"\nurl = \"{}\"\npage_size = 25\n"
            "retry_max_seconds = 1\n",
            kLibA, zebra_->Url());
        for (auto* n : {&national_, &a_, &b_}) ASSERT_TRUE(n->Start()) << n->daemon->Log();
    }

    std::optional<HttpReply> Push(Node& n, const std::string& method, const std::string& path,
                                  const std::string& token, const std::string& body) {
        return HttpCall(n.port, method, path,
                        {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}}, body);
    }
    void PushRecords(Node& n, const std::string& lib, const std::string& token, const std::string& array) {
        auto r = Push(n, "POST", fmt::format("/v1/libraries/{}/records", lib), token, array);
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200) << r->body;
    }
    void PushAvailability(Node& n, const std::string& lib, const std::string& token, const std::string& array) {
        auto r = Push(n, "POST", fmt::format("/v1/libraries/{}/availability", lib), token, array);
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200) << r->body;
    }

    // `iblctl sync verify` at `n` against its peer `peer` says identical.
    bool Identical(const Node& n, const std::string& peer, const std::vector<std::string>& more = {}) {
        std::vector<std::string> args{"sync", "verify", peer};
        args.insert(args.end(), more.begin(), more.end());
        last_verify_ = n.Ctl(args);
        return last_verify_.exit_code == 0 && last_verify_.out.find("identical") != std::string::npos;
    }
    bool Converged(std::chrono::milliseconds timeout = 60s) {
        return WaitFor(
            [&] {
                return Identical(national_, "poi-a", {"--origin", kPoiA}) &&
                       Identical(national_, "poi-b", {"--origin", kPoiB}) && Identical(a_, "national") &&
                       Identical(b_, "national");
            },
            timeout);
    }
    // Each record and each copy change logged at most once per change made:
    // applying a page again, or a change coming back, would add rows.
    void ExpectNoDuplicateChanges(const Node& n) {
        EXPECT_EQ(n.Count("SELECT count(*) FROM (SELECT library, local_id FROM change_log WHERE entity = 'record'"
                          " AND op = 'insert' GROUP BY 1, 2 HAVING count(*) > 1) d"),
                  0)
            << n.isil;
        EXPECT_EQ(n.Count("SELECT count(*) FROM (SELECT library, local_id, version FROM change_log"
                          " GROUP BY 1, 2, 3, entity HAVING count(*) > 1) d"),
                  0)
            << n.isil;
        EXPECT_EQ(n.Count("SELECT max(seq) - min(seq) + 1 - count(*) FROM change_log"), 0) << n.isil;
    }
    long long Live(const Node& n, const std::string& lib) const {
        return n.Count(fmt::format("SELECT count(*) FROM bib_record WHERE library = '{}' AND NOT deleted", lib));
    }
    std::string Status(const Node& n, const std::string& lib, const std::string& barcode) const {
        return n.Query1(fmt::format("SELECT status FROM holding WHERE library = '{}' AND barcode = '{}'", lib, barcode));
    }

    TempDir zebra_dir_;
    std::unique_ptr<ZebraServer> zebra_;
    Node national_, a_, b_;
    std::string token_a_, token_b_;
    CommandResult last_verify_;
};

// The whole loop: a harvest at POI A and pushes at A and B reach the
// national node and the other POI; a copy's loan, a record's deletion too.
// Every node ends with the same catalogue, and nothing came back as new.
TEST_F(PeerSyncTest, NationalAggregatesBothPoisAndEachPoiFollowsTheRest) {
    StartNetwork();
    PushRecords(a_, kLibA2, token_a_,
                "[" + JsonRecord("a-1", "De aanslag", R"([{"barcode":"A1","status":"available"}])") + "," +
                    JsonRecord("a-2", "Het stenen bruidsbed", R"([{"barcode":"A2","status":"available"}])") + "]");
    PushRecords(b_, kLibB, token_b_,
                "[" + JsonRecord("b-1", "De aanslag", R"([{"barcode":"B1"},{"barcode":"B2"}])") + "]");
    ASSERT_TRUE(WaitFor([&] { return Live(b_, kLibA) == 71 && Live(b_, kLibA2) == 2 && Live(a_, kLibB) == 1; }, 60s))
        << "A's harvest at B: " << Live(b_, kLibA) << ", A's pushes at B: " << Live(b_, kLibA2)
        << ", B's push at A: " << Live(a_, kLibB) << "\n"
        << national_.daemon->Log() << "\n--- A:\n"
        << a_.daemon->Log();
    ASSERT_TRUE(Converged()) << last_verify_.out << last_verify_.err;
    EXPECT_EQ(Live(national_, kLibA), 71);
    EXPECT_EQ(Live(national_, kLibA2), 2);
    EXPECT_EQ(Live(national_, kLibB), 1);
    // Records keep their origin: the library, and the POI that serves it.
    EXPECT_EQ(national_.Query1(fmt::format("SELECT poi FROM library WHERE isil = '{}'", kLibA)), kPoiA);
    EXPECT_EQ(b_.Query1(fmt::format("SELECT poi FROM library WHERE isil = '{}'", kLibA)), kPoiA);
    EXPECT_EQ(national_.Query1(fmt::format("SELECT poi FROM library WHERE isil = '{}'", kLibB)), kPoiB);
    // The same edition at A and B is one work at the national node.
    EXPECT_EQ(national_.Count("SELECT count(DISTINCT w.work_id) FROM record_work w JOIN bib_record b"
                              " ON b.id = w.record_id WHERE b.local_id IN ('a-1', 'b-1')"),
              1);

    // A loan at A, seen at the national node and at B.
    PushAvailability(a_, kLibA2, token_a_, R"([{"barcode":"A1","status":"on_loan","due_date":"2026-12-24"}])");
    ASSERT_TRUE(WaitFor([&] { return Status(b_, kLibA2, "A1") == "on_loan"; }, 20s)) << b_.daemon->Log();
    EXPECT_EQ(Status(national_, kLibA2, "A1"), "on_loan");
    EXPECT_EQ(b_.Query1(fmt::format("SELECT due_date FROM holding WHERE library = '{}' AND barcode = 'A1'", kLibA2)),
              "2026-12-24");
    // A deletion at B and a copy dropped from a record at A.
    ASSERT_EQ(Push(b_, "DELETE", fmt::format("/v1/libraries/{}/records/b-1", kLibB), token_b_, "")->status, 200);
    PushRecords(a_, kLibA2, token_a_, "[" + JsonRecord("a-2", "Het stenen bruidsbed", "[]") + "]");
    ASSERT_TRUE(WaitFor([&] { return Live(a_, kLibB) == 0 && Status(b_, kLibA2, "A2").empty(); }, 20s));
    ASSERT_TRUE(Converged()) << last_verify_.out << last_verify_.err;

    // No echo: POI A's own libraries were written at A only by A's own
    // harvest and pushes, never by what came back from the national node.
    EXPECT_EQ(a_.Count(fmt::format("SELECT count(*) FROM audit_log WHERE actor LIKE 'peer:%' AND library IN"
                                   " ('{}', '{}')",
                                   kLibA, kLibA2)),
              0);
    EXPECT_EQ(a_.Count(fmt::format("SELECT refused_total FROM sync_peer WHERE name = 'national'")), 0);
    for (const auto* n : {&national_, &a_, &b_}) ExpectNoDuplicateChanges(*n);
    // The national node's feed and B's hold each change of A's pushing
    // library once, as A's own feed does (the changes came one at a time,
    // each applied before the next was made).
    const std::string of_a2 = fmt::format("SELECT count(*) FROM change_log WHERE library = '{}'", kLibA2);
    EXPECT_EQ(national_.Count(of_a2), a_.Count(of_a2));
    EXPECT_EQ(b_.Count(of_a2), a_.Count(of_a2));
    EXPECT_EQ(national_.Count(fmt::format("SELECT count(*) FROM change_log WHERE library = '{}'", kLibA)), 71);

    // Status for people and for scripts.
    auto status = national_.Ctl({"sync", "status"});
    EXPECT_NE(status.out.find("poi-a"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("aggregate"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("following"), std::string::npos) << status.out;
    auto json = a_.Ctl({"--json", "sync", "status"});
    EXPECT_NE(json.out.find(R"("direction":"follow")"), std::string::npos) << json.out;
    EXPECT_NE(json.out.find(R"("lag_changes":0)"), std::string::npos) << json.out;
    auto metrics = HttpGet(national_.port, "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("iblsync_peer_lag_changes{peer=\"poi-a\"} 0"), std::string::npos) << metrics->body;
    EXPECT_NE(metrics->body.find("iblsync_peer_failing{peer=\"poi-b\"} 0"), std::string::npos);
    EXPECT_TRUE(national_.daemon->WaitForNotification("peers=2 peers_failing=0", 1s));
}

// `iblctl sync verify` finds a difference and names the records.
// follow = "availability": POI B keeps the other provinces' records brief
// (what works and descriptions need), with every copy and its state. The
// harvested real records take less room at B than at the national node,
// cluster into the same works, and verify compares them by presence and
// copies.
TEST_F(PeerSyncTest, APoiFollowingAvailabilityKeepsBriefRecordsWithEveryCopy) {
    StartNetwork("", 0, "follow = \"availability\"\n");
    PushRecords(a_, kLibA2, token_a_,
                "[" + JsonRecord("a-1", "De aanslag", R"([{"barcode":"A1","status":"available"}])") + "]");
    ASSERT_TRUE(WaitFor([&] { return Live(b_, kLibA) == 71 && Live(b_, kLibA2) == 1; }, 60s)) << b_.daemon->Log();
    ASSERT_TRUE(Converged()) << last_verify_.out << last_verify_.err;
    EXPECT_NE(last_verify_.out.find("identical: same records and copies (records are kept brief here"),
              std::string::npos)
        << last_verify_.out;
    auto bytes = [&](const Node& n) {
        return n.Count(fmt::format("SELECT sum(length(raw)) FROM bib_record WHERE library = '{}'", kLibA));
    };
    EXPECT_LT(bytes(b_), bytes(national_) * 3 / 4) << "brief: " << bytes(b_) << ", whole: " << bytes(national_);
    auto works = [&](const Node& n) {
        return n.Count(fmt::format("SELECT count(DISTINCT w.work_id) FROM record_work w JOIN bib_record b"
                                   " ON b.id = w.record_id WHERE b.library = '{}'",
                                   kLibA));
    };
    EXPECT_EQ(works(b_), works(national_));
    // A at the national node keeps whole records: A's own are never brief.
    EXPECT_EQ(bytes(national_), bytes(a_));
    // A loan at A reaches B.
    PushAvailability(a_, kLibA2, token_a_, R"([{"barcode":"A1","status":"on_loan","due_date":"2026-12-24"}])");
    ASSERT_TRUE(WaitFor([&] { return Status(b_, kLibA2, "A1") == "on_loan"; }, 20s)) << b_.daemon->Log();
    ExpectNoDuplicateChanges(b_);
}

TEST_F(PeerSyncTest, VerifyListsTheLibrariesAndRecordsThatDiffer) {
    StartNetwork();
    PushRecords(b_, kLibB, token_b_,
                "[" + JsonRecord("v-1", "Twee vrouwen", R"([{"barcode":"V1"}])") + "," +
                    JsonRecord("v-2", "Siegfried", "[]") + "]");
    ASSERT_TRUE(Converged()) << last_verify_.out << last_verify_.err;
    // Behind the node's back: a copy's state changed at the national node only.
    national_.own_schema->Exec(
        fmt::format("UPDATE holding SET status = 'missing' WHERE library = '{}' AND barcode = 'V1'", kLibB));
    auto r = national_.Ctl({"sync", "verify", "poi-b", "--origin", kPoiB});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(fmt::format("{}    copies: 1 on both sides, but their states differ", kLibB)),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("1 records differ: v-1"), std::string::npos) << r.out;
    auto json = national_.Ctl({"--json", "sync", "verify", "poi-b"});
    EXPECT_NE(json.out.find(R"("identical":false)"), std::string::npos) << json.out;
    // The feed's and digest's parameters are checked like every other.
    auto bad = [&](const std::string& path) {
        auto r = HttpCall(b_.port, "GET", path, {{"Authorization", "Bearer " + token_b_}});
        return r ? std::to_string(r->status) + " " + r->body : std::string("no answer");
    };
    EXPECT_NE(bad("/v1/changes?embed=all").find("400 "), std::string::npos);
    EXPECT_NE(bad("/v1/changes?embed=all").find("embed takes records or none"), std::string::npos);
    EXPECT_NE(bad("/v1/changes?origin=DE-1").find("origin=DE-1 is not an ISIL"), std::string::npos);
    EXPECT_NE(bad("/v1/digest?library=x%27%20OR%201=1").find("400 "), std::string::npos);
    EXPECT_NE(bad("/v1/digest?since=1").find("unknown parameter 'since'"), std::string::npos);
    EXPECT_EQ(HttpCall(b_.port, "GET", "/v1/digest", {{"Authorization", "Bearer iblt_1_wrong"}})->status, 401);
    auto unknown = national_.Ctl({"sync", "verify", "nosuch"});
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_NE(unknown.err.find("no peer 'nosuch'"), std::string::npos) << unknown.err;
}

// kill -9 of the national node while it applies pages (the POI feeds a
// steady stream), and the national node down for a while as the POIs keep
// taking pushes: it catches up, with nothing lost and nothing twice.
TEST_F(PeerSyncTest, NationalKilledOrDownWhilePoisTakePushesCatchesUp) {
    StartNetwork();
    ASSERT_TRUE(WaitFor([&] { return Live(national_, kLibA) == 71; }, 60s)) << national_.daemon->Log();
    for (int round = 0; round < 3; ++round) {
        std::string batch = "[";
        for (int i = 0; i < 200; ++i)
            batch += (i ? "," : "") + JsonRecord(fmt::format("k{}-{}", round, i), fmt::format("Titel {} {}", round, i),
                                                fmt::format(R"([{{"barcode":"K{}-{}"}}])", round, i));
        PushRecords(b_, kLibB, token_b_, batch + "]");
        if (round == 0) {
            // Killed as soon as some of the stream arrived.
            ASSERT_TRUE(WaitFor([&] { return Live(national_, kLibB) > 0; }, 20s));
            national_.Kill();
        }
    }
    // Down: the POIs go on taking pushes.
    PushRecords(a_, kLibA2, token_a_, "[" + JsonRecord("while-down", "Ondertussen", R"([{"barcode":"WD"}])") + "]");
    PushAvailability(b_, kLibB, token_b_, R"([{"barcode":"K0-7","status":"on_loan"}])");
    ASSERT_TRUE(national_.Start()) << national_.daemon->Log();
    ASSERT_TRUE(Converged(90s)) << last_verify_.out << last_verify_.err;
    EXPECT_EQ(Live(national_, kLibB), 600);
    EXPECT_EQ(Status(a_, kLibB, "K0-7"), "on_loan");
    for (const auto* n : {&national_, &a_, &b_}) ExpectNoDuplicateChanges(*n);
}

// The feed between the nodes failing for a while (HTTP 500s, an HTML page
// where JSON belongs, then a peer that never answers): the national node
// shows it at once, logs it once per kind of failure, writes nothing, and
// catches up when the way is clear.
TEST_F(PeerSyncTest, AFailingPeerIsVisibleLoggedOnceAndCatchesUp) {
    FaultProxy proxy(a_.port);
    proxy.Set(FaultProxy::Mode::kError500);
    StartNetwork("", proxy.port());
    PushRecords(a_, kLibA2, token_a_, "[" + JsonRecord("f-1", "Hoogste tijd", R"([{"barcode":"F1"}])") + "]");
    auto peer_state = [&](const std::string& what) {
        return national_.Query1(fmt::format("SELECT {} FROM sync_peer WHERE name = 'poi-a'", what));
    };
    auto failing_with = [&](const std::string& error) {
        const long long before = national_.Count("SELECT errors_total FROM sync_peer WHERE name = 'poi-a'");
        return WaitFor(
            [&] {
                return peer_state("last_error").find(error) != std::string::npos &&
                       national_.Count("SELECT errors_total FROM sync_peer WHERE name = 'poi-a'") >= before + 3;
            },
            60s);
    };
    ASSERT_TRUE(failing_with("HTTP 500")) << national_.daemon->Log();
    EXPECT_EQ(Live(national_, kLibA), 0);
    auto status = national_.Ctl({"sync", "status"});
    EXPECT_NE(status.out.find("failing"), std::string::npos) << status.out;
    EXPECT_TRUE(national_.daemon->WaitForNotification("peers=2 peers_failing=1", 5s));
    proxy.Set(FaultProxy::Mode::kHtml);
    ASSERT_TRUE(failing_with("not a change feed page")) << peer_state("last_error");
    proxy.Set(FaultProxy::Mode::kSilent, 15s);  // longer than wait_seconds + timeout_seconds
    ASSERT_TRUE(failing_with("no answer within 10 s")) << peer_state("last_error") << national_.daemon->Log();
    EXPECT_EQ(Live(national_, kLibA), 0);
    // Once per kind, not once per retry.
    const std::string log = national_.daemon->Log();
    std::size_t warnings = 0;
    for (auto p = log.find("peer failing peer=poi-a"); p != std::string::npos;
         p = log.find("peer failing peer=poi-a", p + 1))
        ++warnings;
    EXPECT_EQ(warnings, 3u) << log;
    proxy.Set(FaultProxy::Mode::kPass);
    ASSERT_TRUE(WaitFor([&] { return Live(national_, kLibA) == 71 && Live(national_, kLibA2) == 1; }, 60s))
        << national_.daemon->Log();
    EXPECT_TRUE(national_.daemon->WaitForLog("peer recovered peer=poi-a", 5s));
    EXPECT_EQ(peer_state("errors_in_row"), "0");
    ASSERT_TRUE(Converged()) << last_verify_.out << last_verify_.err;
    for (const auto* n : {&national_, &a_, &b_}) ExpectNoDuplicateChanges(*n);
}

// PostgreSQL under the national node stopped (immediate: as a crash) and
// started again while the POIs keep changing: the national node retries,
// and ends with the same catalogue as theirs. The national node runs on a
// cluster of its own for this (tools/pgcluster), so that the stop touches
// no other node or test.
TEST_F(PeerSyncTest, PostgresRestartAtTheNationalNodeDuringSync) {
    TempDir pgdir;
    PrivateCluster pg(pgdir);
    pg.Start();
    national_.conninfo = pg.Conninfo();
    national_.own_schema.reset();
    StartNetwork();
    auto national_live = [&](const std::string& lib) {
        auto r = RunCommand({"/usr/bin/psql", "-XAtq", "-d", pg.Conninfo(), "-c",
                             fmt::format("SELECT count(*) FROM bib_record WHERE library = '{}' AND NOT deleted", lib)},
                            10s);
        return r.exit_code == 0 ? std::stoll(r.out) : -1;
    };
    ASSERT_TRUE(WaitFor([&] { return national_live(kLibA) == 71; }, 60s)) << national_.daemon->Log();
    std::string batch = "[";
    for (int i = 0; i < 300; ++i)
        batch += (i ? "," : "") + JsonRecord(fmt::format("p{}", i), fmt::format("Titel {}", i),
                                            fmt::format(R"([{{"barcode":"P{}"}}])", i));
    PushRecords(b_, kLibB, token_b_, batch + "]");
    pg.Stop();
    PushAvailability(b_, kLibB, token_b_, R"([{"barcode":"P5","status":"in_transit"}])");
    PushRecords(a_, kLibA2, token_a_, "[" + JsonRecord("pg-1", "Tijdens de herstart", "[]") + "]");
    ASSERT_TRUE(WaitFor([&] { return national_.daemon->Log().find("peer failing") != std::string::npos; }, 30s))
        << national_.daemon->Log();
    pg.Start();
    ASSERT_TRUE(WaitFor(
        [&] {
            return Identical(national_, "poi-a", {"--origin", kPoiA}) &&
                   Identical(national_, "poi-b", {"--origin", kPoiB}) && Identical(b_, "national");
        },
        90s))
        << last_verify_.out << last_verify_.err << national_.daemon->Log();
    EXPECT_EQ(national_live(kLibB), 300);
    EXPECT_EQ(national_live(kLibA), 71);
    EXPECT_EQ(national_live(kLibA2), 1);
    auto dup = RunCommand({"/usr/bin/psql", "-XAtq", "-d", pg.Conninfo(), "-c",
                           "SELECT count(*) FROM (SELECT library, local_id, version, entity FROM change_log"
                           " GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d"},
                          10s);
    EXPECT_EQ(dup.out, "0\n");
}

}  // namespace
}  // namespace iblsync::test
