// IBL between provinces with real iblsyncd processes on loopback, each with
// its own database: a national node and two POI nodes that follow it. A
// library of POI A asks for a work only libraries of POI B have available;
// the request, the answers and the actions travel as ISO 18626 over HTTP
// between the two POI nodes ([[ibl_peer]]), through each node's outbox.
// Faults: a node down for a while, a node killed mid-flow, a confirmation
// lost on the way, a lender silent past its deadline.

#include <signal.h>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"
#include "tests/support/sru_peer.hpp"
#include "tests/unit/protocols/xml_schema.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kNational = "NL-0000000930";
constexpr const char* kPoiA = "NL-0000000931";
constexpr const char* kPoiB = "NL-0000000932";
constexpr const char* kAsker = "NL-0000000311";  // a library of POI A (Gelderland)
constexpr const char* kLend1 = "NL-0000000321";  // libraries of POI B (Utrecht)
constexpr const char* kLend2 = "NL-0000000322";

rapidjson::Document Json(const std::string& text) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    EXPECT_FALSE(d.HasParseError()) << text;
    return d;
}

std::string Str(const rapidjson::Value& v, const char* key) {
    return v.IsObject() && v.HasMember(key) && v[key].IsString() ? v[key].GetString() : std::string();
}

struct Node {
    std::string isil, role, provinces;
    int port = 0;
    TempDir dir;
    TestSchema schema;
    std::string extra;  // [[peer]] and [[ibl_peer]] tables
    std::unique_ptr<DaemonProcess> daemon;

    bool Start() {
        NodeConfig cfg;
        cfg.role = role;
        cfg.isil = isil;
        cfg.provinces = provinces;
        cfg.listen = fmt::format("127.0.0.1:{}", port);
        cfg.conninfo = schema.conninfo();
        cfg.extra_toml = extra;
        daemon.reset();
        daemon = std::make_unique<DaemonProcess>(dir, cfg);
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
    void Add(const std::string& isil_, const std::string& province) {
        auto r = Ctl({"library", "add", isil_, "--name", "Bibliotheek " + isil_, "--province", province});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    std::string Issue(const std::string& library) const {
        auto r = Ctl({"--json", "token", "issue", library});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        auto d = Json(r.out);
        return Str(d, "token");
    }
    std::string Query1(const std::string& sql) const { return schema.Query1(sql); }
};

class IblNetworkTest : public ::testing::Test {
protected:
    void SetUp() override {
        national_.isil = kNational, national_.role = "national", national_.provinces = "[]";
        a_.isil = kPoiA, a_.role = "poi", a_.provinces = R"(["NL-GE"])";
        b_.isil = kPoiB, b_.role = "poi", b_.provinces = R"(["NL-UT"])";
        for (auto* n : {&national_, &a_, &b_}) {
            n->port = FreePort();
            ASSERT_TRUE(n->Start()) << n->daemon->Log();
        }
        a_.Add(kAsker, "NL-GE");
        b_.Add(kLend1, "NL-UT");
        b_.Add(kLend2, "NL-UT");
        // The nodes that read a feed or send IBL messages are registered
        // where they do it, as libraries without records, with a token.
        a_.Add(kNational, "NL-GE");
        b_.Add(kNational, "NL-UT");
        national_.Add(kPoiA, "NL-GE");
        national_.Add(kPoiB, "NL-UT");
        a_.Add(kPoiB, "NL-UT");
        b_.Add(kPoiA, "NL-GE");
        tokens_[kAsker] = a_.Issue(kAsker);
        tokens_[kLend1] = b_.Issue(kLend1);
        tokens_[kLend2] = b_.Issue(kLend2);
        const std::string national_reads_a = a_.Issue(kNational), national_reads_b = b_.Issue(kNational);
        const std::string a_reads_national = national_.Issue(kPoiA), b_reads_national = national_.Issue(kPoiB);
        const std::string a_sends_b = b_.Issue(kPoiA), b_sends_a = a_.Issue(kPoiB);
        for (auto* n : {&national_, &a_, &b_}) n->Stop();

        auto peer = [](const char* table, const std::string& name, const std::string& isil, int port,
                       const std::string& token, const std::string& more) {
            return fmt::format("\n[[{}]]\nname = \"{}\"\nisil = \"{}\"\nurl = \"http://127.0.0.1:{}\"\n"
                               "token = \"{}\"\nretry_max_seconds = 1\n{}",
                               table, name, isil, port, token, more);
        };
        const std::string feed = "wait_seconds = 1\ntimeout_seconds = 5\n";
        national_.extra = peer("peer", "poi-a", kPoiA, a_.port, national_reads_a, feed) +
                          peer("peer", "poi-b", kPoiB, b_.port, national_reads_b, feed);
        a_.extra = peer("peer", "national", kNational, national_.port, a_reads_national, feed) +
                   peer("ibl_peer", "poi-b", kPoiB, b_.port, a_sends_b, "timeout_seconds = 5\n");
        b_.extra = peer("peer", "national", kNational, national_.port, b_reads_national, feed) +
                   peer("ibl_peer", "poi-a", kPoiA, a_.port, b_sends_a, "timeout_seconds = 5\n");
        // Tariffs: at A a loan from Utrecht costs more than any other; at B one price.
        a_.extra += "\n[[ibl_tariff]]\nname = \"from Utrecht\"\nfrom = \"NL-UT\"\nto = \"NL-GE\"\namount = \"4.25\"\n"
                    "\n[[ibl_tariff]]\namount = \"1\"\n";
        b_.extra += "\n[[ibl_tariff]]\nkind = \"loan\"\namount = \"3.00\"\n";
        for (auto* n : {&national_, &a_, &b_}) ASSERT_TRUE(n->Start()) << n->daemon->Log();

        // Catalogues: both Utrecht libraries have "De avonden" on the shelf;
        // the asking library has another book (so that it is known
        // network-wide through the national node).
        Push(b_, kLend1, "l1", "De avonden", "9789023466024", "available");
        Push(b_, kLend2, "l2", "De avonden", "9789023466024", "available");
        Push(a_, kAsker, "a1", "Het stenen bruidsbed", "9789023409564", "available");
        // A knows B's copies and B knows A's library, through the national node.
        ASSERT_TRUE(WaitFor([&] { return a_.Query1("SELECT count(*) FROM holding WHERE library LIKE 'NL-000000032%'") == "2"; },
                            60s))
            << a_.daemon->Log() << national_.daemon->Log();
        ASSERT_TRUE(WaitFor([&] { return b_.Query1(fmt::format("SELECT poi FROM library WHERE isil = '{}'", kAsker)) == kPoiA; },
                            60s))
            << b_.daemon->Log();
    }

    void Push(Node& n, const std::string& lib, const std::string& id, const std::string& title,
              const std::string& isbn, const std::string& status) {
        auto body = fmt::format(R"({{"id":"{}","title":"{}","authors":["Reve, Gerard"],"year":1947,"isbn":"{}",)"
                                R"("holdings":[{{"barcode":"{}-1","status":"{}"}}]}})",
                                id, title, isbn, id, status);
        auto r = Call(n, "PUT", fmt::format("/v1/libraries/{}/records/{}", lib, id), lib, body);
        ASSERT_TRUE(r);
        ASSERT_TRUE(r->status == 201 || r->status == 200) << r->body;
    }

    std::optional<HttpReply> Call(Node& n, const std::string& method, const std::string& path,
                                  const std::string& lib, const std::string& body = {}) {
        std::vector<std::pair<std::string, std::string>> h{{"Authorization", "Bearer " + tokens_[lib]}};
        if (!body.empty()) h.emplace_back("Content-Type", "application/json");
        return HttpCall(n.port, method, path, h, body);
    }

    // The request as the asking library sees it.
    rapidjson::Document Request(const std::string& id) {
        auto r = Call(a_, "GET", "/v1/ibl/requests/" + id, kAsker);
        return Json(r ? r->body : "{}");
    }
    bool RequestIs(const std::string& id, const std::string& lender, const std::string& state) {
        auto d = Request(id);
        return Str(d, "lender") == lender && Str(d, "state") == state;
    }
    // The lender's task for the request, "" while its inbox does not have it.
    std::string TaskOf(const std::string& lender, const std::string& id) {
        auto r = Call(b_, "GET", "/v1/ibl/inbox", lender);
        if (!r || r->status != 200) return "";
        auto d = Json(r->body);
        for (const auto& t : d["requests"].GetArray())
            if (Str(t, "id") == id) return std::to_string(t["task"].GetInt64());
        return "";
    }
    std::string TaskState(const std::string& task) {
        return b_.Query1(fmt::format("SELECT state || coalesce(CASE WHEN cancel_pending THEN '+cancel' END, '') || "
                                     "coalesce(CASE WHEN renew_pending THEN '+renew' END, '') || "
                                     "coalesce(CASE WHEN received THEN '+received' END, '') || "
                                     "coalesce(CASE WHEN shipped_return THEN '+returning' END, '') "
                                     "FROM ibl_request WHERE id = {}",
                                     task));
    }
    int Answer(const std::string& lender, const std::string& task, const std::string& body) {
        auto r = Call(b_, "POST", "/v1/ibl/inbox/" + task, lender, body);
        EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
        return r ? r->status : 0;
    }
    int Act(const std::string& id, const std::string& action) {
        auto r = Call(a_, "POST", "/v1/ibl/requests/" + id + "/actions", kAsker,
                      fmt::format(R"({{"action":"{}"}})", action));
        EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
        return r ? r->status : 0;
    }
    std::string Ask(const std::string& patron) {
        auto r = Call(a_, "POST", "/v1/ibl/requests", kAsker,
                      fmt::format(R"({{"isbn":"9789023466024","patron_ref":"{}","pickup":"Ede"}})", patron));
        EXPECT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
        if (!r || r->status != 201) return "";
        return Str(Json(r->body), "id");
    }
    // Every message each node sent the other was confirmed once, and each
    // was taken once: the other node has exactly one 'in' event for it.
    void ExpectEachMessageOnce(const std::string& id) {
        // A sender records the confirmation a moment after the receiver
        // committed: both outboxes are empty within a few seconds.
        EXPECT_TRUE(WaitFor([&] {
            return a_.Query1("SELECT count(*) FROM ibl_outbox WHERE delivered_at IS NULL") == "0" &&
                   b_.Query1("SELECT count(*) FROM ibl_outbox WHERE delivered_at IS NULL") == "0";
        }, 20s));
        for (auto [from, to] : {std::pair{&a_, &b_}, std::pair{&b_, &a_}}) {
            EXPECT_EQ(from->Query1("SELECT count(*) FROM ibl_outbox WHERE delivered_at IS NULL"), "0")
                << from->isil << " still has messages to send";
            EXPECT_EQ(from->Query1("SELECT count(*) FROM ibl_outbox WHERE refused IS NOT NULL"), "0");
            const std::string sent = from->Query1(fmt::format(
                "SELECT string_agg(e.identity, ' ' ORDER BY e.identity) FROM ibl_outbox o JOIN ibl_event e ON "
                "e.id = o.event JOIN ibl_request r ON r.id = e.request WHERE r.request_id = '{}'",
                id));
            const std::string taken = to->Query1(fmt::format(
                "SELECT string_agg(e.identity, ' ' ORDER BY e.identity) FROM ibl_event e JOIN ibl_request r ON "
                "r.id = e.request WHERE e.direction = 'in' AND r.request_id = '{}'",
                id));
            EXPECT_FALSE(sent.empty());
            EXPECT_EQ(sent, taken) << "from " << from->isil;
            // Every message that crossed is valid ISO 18626 v1.2.
            const int n = std::stoi(from->Query1(fmt::format(
                "SELECT count(*) FROM ibl_outbox o JOIN ibl_request r ON r.id = o.request WHERE r.request_id = '{}'",
                id)));
            for (int i = 0; i < n; ++i) {
                const std::string body = from->Query1(fmt::format(
                    "SELECT e.body FROM ibl_outbox o JOIN ibl_event e ON e.id = o.event JOIN ibl_request r ON "
                    "r.id = o.request WHERE r.request_id = '{}' ORDER BY o.event OFFSET {} LIMIT 1",
                    id, i));
                std::string lint;
                EXPECT_EQ(testing::Xmllint(testing::SchemaDir() + "/iso18626/ISO-18626-v1_2.xsd", body, lint), 0)
                    << lint << body;
            }
        }
    }

    Node national_, a_, b_;
    std::map<std::string, std::string> tokens_;
};

TEST_F(IblNetworkTest, ARequestIsFilledFromAnotherProvinceAndTheLoanRunsItsCourse) {
    const std::string id = Ask("hold-7");
    ASSERT_FALSE(id.empty());
    auto asked = Request(id);
    const std::string first = Str(asked, "lender"), second = first == kLend1 ? kLend2 : kLend1;
    EXPECT_TRUE(first == kLend1 || first == kLend2) << first;
    ASSERT_EQ(asked["lenders"].Size(), 2u);
    EXPECT_EQ(Str(asked, "state"), "Sent");
    EXPECT_FALSE(Str(asked, "answer_by").empty()) << "the lender has a deadline";

    // The request reaches the Utrecht lender's inbox through POI B.
    std::string t1;
    ASSERT_TRUE(WaitFor([&] { return !(t1 = TaskOf(first, id)).empty(); }, 20s)) << a_.daemon->Log();
    // What POI A sent is valid ISO 18626 v1.2.
    std::string lint;
    EXPECT_EQ(testing::Xmllint(testing::SchemaDir() + "/iso18626/ISO-18626-v1_2.xsd",
                               a_.Query1("SELECT body FROM ibl_event WHERE direction = 'out' ORDER BY id LIMIT 1"),
                               lint),
              0)
        << lint;
    EXPECT_EQ(b_.Query1(fmt::format("SELECT patron_ref || '|' || title FROM ibl_request WHERE id = {}", t1)),
              "hold-7|De avonden");

    // The first lender cannot: the request goes on to the other one, in
    // a new transaction, and the asking library still sees it under way.
    Answer(first, t1, R"({"answer":"unfilled","reason":"NotOnShelf"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, second, "Sent"); }, 20s)) << a_.daemon->Log();
    std::string t2;
    ASSERT_TRUE(WaitFor([&] { return !(t2 = TaskOf(second, id)).empty(); }, 20s)) << a_.daemon->Log();

    Answer(second, t2, R"({"answer":"will_supply"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, second, "WillSupply"); }, 20s));
    Answer(second, t2, R"({"answer":"shipped","due_date":"2027-01-20","item_barcode":"L2-1"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, second, "Loaned"); }, 20s));
    EXPECT_EQ(Str(Request(id), "due_date"), "2027-01-20T23:59:59Z");

    Act(id, "received");
    ASSERT_TRUE(WaitFor([&] { return TaskState(t2) == "Loaned+received"; }, 20s)) << TaskState(t2);
    Act(id, "renew");
    ASSERT_TRUE(WaitFor([&] { return TaskState(t2) == "Loaned+renew+received"; }, 20s)) << TaskState(t2);
    Answer(second, t2, R"({"answer":"renew_granted","due_date":"2027-02-10"})");
    ASSERT_TRUE(WaitFor([&] { return Str(Request(id), "due_date") == "2027-02-10T23:59:59Z"; }, 20s));
    Act(id, "renew");
    ASSERT_TRUE(WaitFor([&] { return TaskState(t2) == "Loaned+renew+received"; }, 20s)) << TaskState(t2);
    Answer(second, t2, R"({"answer":"renew_refused"})");
    ASSERT_TRUE(WaitFor([&] { return a_.Query1(fmt::format("SELECT renew_pending::int FROM ibl_request WHERE "
                                                            "request_id = '{}' AND superseded_by IS NULL", id)) == "0"; },
                        20s));
    Act(id, "shipped_return");
    ASSERT_TRUE(WaitFor([&] { return TaskState(t2) == "Loaned+received+returning"; }, 20s)) << TaskState(t2);
    Answer(second, t2, R"({"answer":"returned"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, second, "LoanCompleted"); }, 20s));
    EXPECT_EQ(TaskOf(second, id), "") << "a finished task leaves the inbox";

    // Each side's story, in order; every message crossed once.
    EXPECT_EQ(a_.Query1(fmt::format(
                  "SELECT string_agg(e.direction || ' ' || e.what || '>' || e.state_after, '; ' ORDER BY e.id) "
                  "FROM ibl_event e JOIN ibl_request r ON r.id = e.request WHERE r.request_id = '{}' "
                  "AND r.supplying_agency = '{}'",
                  id, second)),
              "out >Sent; in RequestResponse WillSupply>WillSupply; in StatusChange Loaned>Loaned; "
              "out Received>Loaned; out Renew>Loaned; in RenewResponse Loaned>Loaned; out Renew>Loaned; "
              "in RenewResponse Loaned>Loaned; out ShippedReturn>Loaned; in StatusChange LoanCompleted>LoanCompleted");
    ExpectEachMessageOnce(id);
    auto metrics = HttpCall(a_.port, "GET", "/metrics", {}, "");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("iblsync_ibl_messages_sent_total{outcome=\"confirmed\"} 6\n"), std::string::npos)
        << metrics->body.substr(metrics->body.find("iblsync_ibl"), 600);
    // The gauges follow within their 5 s.
    ASSERT_TRUE(WaitFor([&] {
        auto m = HttpCall(a_.port, "GET", "/metrics", {}, "");
        return m && m->body.find("iblsync_ibl_requests{role=\"requester\",state=\"LoanCompleted\"} 1\n") !=
                        std::string::npos &&
               m->body.find("iblsync_ibl_outbox_messages{state=\"unsent\"} 0\n") != std::string::npos;
    }, 15s));

    // What the operators see. The story of the request at POI A: two
    // transactions, the first moved on to the second lender.
    auto shown = a_.Ctl({"ibl", "show", id});
    ASSERT_EQ(shown.exit_code, 0) << shown.err;
    EXPECT_NE(shown.out.find(fmt::format("{} -> {}  Unfilled  (moved on to {})", kAsker, first, second)),
              std::string::npos)
        << shown.out;
    EXPECT_NE(shown.out.find("RequestResponse Unfilled"), std::string::npos) << shown.out;
    EXPECT_EQ(shown.out.find("UNSENT"), std::string::npos) << shown.out;
    auto listed = a_.Ctl({"--json", "ibl", "list", "--state", "all"});
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    EXPECT_EQ(Json(listed.out)["requests"].Size(), 1u) << listed.out;
    EXPECT_EQ(a_.Ctl({"--json", "ibl", "list"}).out, R"({"state":"open","requests":[]})" "\n");
    // The month's statistics, on each node, are what happened.
    const std::string month = a_.Query1("SELECT to_char(now() AT TIME ZONE 'Europe/Amsterdam', 'YYYY-MM')");
    auto stats_a = Json(a_.Ctl({"--json", "ibl", "stats", "--month", month}).out);
    ASSERT_EQ(stats_a["libraries"].Size(), 1u);
    const auto& asker = stats_a["libraries"][0];
    EXPECT_EQ(Str(asker, "library"), kAsker);
    EXPECT_EQ(asker["requested"].GetInt64(), 1);
    EXPECT_EQ(asker["supplied"].GetInt64(), 1);
    EXPECT_EQ(asker["unfilled"].GetInt64(), 0);
    EXPECT_GT(asker["mean_hours_to_supply"].GetDouble(), 0.0);
    EXPECT_LT(asker["mean_hours_to_supply"].GetDouble(), 0.05);
    auto stats_b = Json(b_.Ctl({"--json", "ibl", "stats", "--month", month}).out);
    ASSERT_EQ(stats_b["libraries"].Size(), 2u) << b_.Ctl({"ibl", "stats", "--month", month}).out;
    for (const auto& l : stats_b["libraries"].GetArray()) {
        const bool declined = Str(l, "library") == first;
        EXPECT_EQ(l["asked"].GetInt64(), 1);
        EXPECT_EQ(l["lent"].GetInt64(), declined ? 0 : 1);
        EXPECT_EQ(l["declined"].GetInt64(), declined ? 1 : 0);
        EXPECT_EQ(l["requested"].GetInt64(), 0);
    }
    auto table = b_.Ctl({"ibl", "stats", "--month", month});
    EXPECT_NE(table.out.find("total"), std::string::npos) << table.out;
    // The slips: the lender's and the requester's show the same codes.
    const std::string out_code = fmt::format("{}/{}/H", kAsker, id), back_code = fmt::format("{}/{}/T", kAsker, id);
    auto slip = Call(b_, "GET", "/v1/ibl/inbox/" + t2 + "/slip", second);
    ASSERT_TRUE(slip);
    ASSERT_EQ(slip->status, 200) << slip->body;
    EXPECT_EQ(slip->headers["content-type"], "text/html; charset=utf-8");
    for (const auto& code : {out_code, back_code})
        EXPECT_NE(slip->body.find("aria-label=\"" + code + "\""), std::string::npos) << code << slip->body;
    EXPECT_NE(slip->body.find("L2-1"), std::string::npos);
    auto their_slip = Call(a_, "GET", "/v1/ibl/requests/" + id + "/slip", kAsker);
    ASSERT_TRUE(their_slip);
    EXPECT_NE(their_slip->body.find("aria-label=\"" + back_code + "\""), std::string::npos) << their_slip->body;
    EXPECT_EQ(Call(b_, "GET", "/v1/ibl/inbox/" + t2 + "/slip", first)->status, 404) << "another lender's task";

    // The day's transport: at B the item left for POI A and came back from
    // it; at A it came in from POI B and went back to it.
    const std::string today = a_.Query1("SELECT to_char(now() AT TIME ZONE 'Europe/Amsterdam', 'YYYY-MM-DD')");
    auto manifest_b = Json(b_.Ctl({"--json", "ibl", "manifest", "--date", today}).out);
    ASSERT_EQ(manifest_b["items"].Size(), 2u);
    auto line = [](const rapidjson::Value& m) {
        return fmt::format("{}|{}|{}|{}|{}|{}", Str(m, "route"), Str(m, "direction"), Str(m, "from"), Str(m, "to"),
                           Str(m, "item_barcode"), Str(m, "slip"));
    };
    EXPECT_EQ(line(manifest_b["items"][0]), fmt::format("from {}|return|{}|{}|L2-1|{}", kPoiA, kAsker, second, back_code));
    EXPECT_EQ(line(manifest_b["items"][1]), fmt::format("to {}|outbound|{}|{}|L2-1|{}", kPoiA, second, kAsker, out_code));
    auto manifest_a = Json(a_.Ctl({"--json", "ibl", "manifest", "--date", today}).out);
    ASSERT_EQ(manifest_a["items"].Size(), 2u);
    EXPECT_EQ(line(manifest_a["items"][0]), fmt::format("from {}|outbound|{}|{}|L2-1|{}", kPoiB, second, kAsker, out_code));
    EXPECT_EQ(line(manifest_a["items"][1]), fmt::format("to {}|return|{}|{}|L2-1|{}", kPoiB, kAsker, second, back_code));
    auto csv = a_.Ctl({"ibl", "manifest", "--date", today, "--csv"});
    EXPECT_EQ(csv.out.substr(0, csv.out.find("\r\n")),
              "date,route,direction,from,to,requester,request_id,item_barcode,slip,sent_at");
    EXPECT_NE(csv.out.find(fmt::format("{},from {},outbound,{},{},{},{},L2-1,{},", today, kPoiB, second, kAsker, kAsker,
                                       id, out_code)),
              std::string::npos)
        << csv.out;
    EXPECT_EQ(Json(a_.Ctl({"--json", "ibl", "manifest", "--date", "2020-01-01"}).out)["items"].Size(), 0u);
    EXPECT_EQ(a_.Ctl({"ibl", "manifest", "--date", "2026-12-32"}).exit_code, 1);

    // The month's statements: A's library pays for the loan by A's
    // tariff for Utrecht, B's lender receives by B's; the Unfilled costs
    // nothing.
    auto invoice_a = Json(a_.Ctl({"--json", "ibl", "invoice", "--month", month}).out);
    ASSERT_EQ(invoice_a["lines"].Size(), 1u);
    const auto& charge = invoice_a["lines"][0];
    EXPECT_EQ(fmt::format("{}|{}|{}|{}|{}|{}", Str(charge, "library"), Str(charge, "side"), Str(charge, "counterpart"),
                          Str(charge, "request_id"), Str(charge, "tariff"), charge["cents"].GetInt64()),
              fmt::format("{}|pays|{}|{}|from Utrecht|425", kAsker, second, id));
    auto invoice_b = Json(b_.Ctl({"--json", "ibl", "invoice", "--month", month}).out);
    ASSERT_EQ(invoice_b["lines"].Size(), 1u);
    EXPECT_EQ(fmt::format("{}|{}|{}", Str(invoice_b["lines"][0], "library"), Str(invoice_b["lines"][0], "side"),
                          invoice_b["lines"][0]["cents"].GetInt64()),
              fmt::format("{}|receives|300", second));
    auto statement = a_.Ctl({"ibl", "invoice", "--month", month});
    EXPECT_NE(statement.out.find("balance (to pay - to receive)"), std::string::npos) << statement.out;
    EXPECT_NE(statement.out.find("4.25"), std::string::npos) << statement.out;
    auto invoice_csv = b_.Ctl({"ibl", "invoice", "--month", month, "--csv"});
    EXPECT_NE(invoice_csv.out.find(fmt::format(",{},receives,{},{},{},loan,* to * loan,", second, kAsker, kAsker, id)),
              std::string::npos)
        << invoice_csv.out;

    auto bad_month = b_.Ctl({"ibl", "stats", "--month", "2026-13"});
    EXPECT_EQ(bad_month.exit_code, 1);
    EXPECT_NE(bad_month.err.find("month must be YYYY-MM"), std::string::npos) << bad_month.err;
}

TEST_F(IblNetworkTest, ARequestWithinTheProvinceStaysOnItsNode) {
    // Utrecht asks Utrecht: only the second library has "Tirza"; POI B
    // delivers the request in the transaction that makes it, and nothing
    // goes through the outbox or to the other nodes.
    Push(b_, kLend2, "l2-tirza", "Tirza", "9789028423749", "available");
    auto r = Call(b_, "POST", "/v1/ibl/requests", kLend1,
                  R"({"isbn":"9789028423749","patron_ref":"ut-1","pickup":"Utrecht Centrum"})");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 201) << r->body;
    const std::string id = Str(Json(r->body), "id");
    EXPECT_EQ(Str(Json(r->body), "lender"), kLend2);
    const std::string task = TaskOf(kLend2, id);
    ASSERT_FALSE(task.empty()) << "in the lender's inbox at once";
    Answer(kLend2, task, R"({"answer":"will_supply"})");
    Answer(kLend2, task, R"({"answer":"shipped","due_date":"2027-02-01"})");
    auto seen = Call(b_, "GET", "/v1/ibl/requests/" + id, kLend1);
    EXPECT_EQ(Str(Json(seen->body), "state"), "Loaned");
    for (const auto* a : {"received", "shipped_return"}) {
        auto acted = Call(b_, "POST", "/v1/ibl/requests/" + id + "/actions", kLend1,
                          fmt::format(R"({{"action":"{}"}})", a));
        ASSERT_EQ(acted->status, 200) << acted->body;
    }
    Answer(kLend2, task, R"({"answer":"returned"})");
    EXPECT_EQ(Str(Json(Call(b_, "GET", "/v1/ibl/requests/" + id, kLend1)->body), "state"), "LoanCompleted");
    EXPECT_EQ(b_.Query1("SELECT count(*) FROM ibl_outbox"), "0");
    EXPECT_EQ(a_.Query1("SELECT count(*) FROM ibl_request"), "0");
    EXPECT_EQ(b_.Query1(fmt::format("SELECT count(*) FROM ibl_event e JOIN ibl_request q ON q.id = e.request "
                                    "WHERE q.request_id = '{}'",
                                    id)),
              "12")
        << "six messages, each out on one side and in on the other";
    // On the day's manifest as a delivery within the province.
    const std::string today = b_.Query1("SELECT to_char(now() AT TIME ZONE 'Europe/Amsterdam', 'YYYY-MM-DD')");
    auto manifest = Json(b_.Ctl({"--json", "ibl", "manifest", "--date", today}).out);
    ASSERT_EQ(manifest["items"].Size(), 2u);
    for (const auto& m : manifest["items"].GetArray()) EXPECT_EQ(Str(m, "route"), "province");
}

TEST_F(IblNetworkTest, AStaleCopyAtAnotherNodeIsCheckedBeforeItsLibraryIsAsked) {
    // A stops hearing from the national node, and the first lender's copy
    // goes out on loan at B: what A knows of it grows old and wrong.
    national_.Kill();
    auto pushed = Call(b_, "POST", fmt::format("/v1/libraries/{}/availability", kLend1), kLend1,
                       R"([{"barcode":"l1-1","status":"on_loan","due_date":"2027-01-10"}])");
    ASSERT_TRUE(pushed);
    ASSERT_EQ(pushed->status, 200) << pushed->body;
    a_.schema.Exec("UPDATE holding SET updated_at = now() - interval '2 hours' WHERE library IN ('" +
                   std::string(kLend1) + "', '" + std::string(kLend2) + "')");
    EXPECT_EQ(a_.Query1(fmt::format("SELECT status FROM holding WHERE library = '{}'", kLend1)), "available");
    // Asked live, B says the first has no copy on the shelf: only the second is asked.
    const std::string id = Ask("hold-16");
    ASSERT_FALSE(id.empty());
    auto asked = Request(id);
    ASSERT_EQ(asked["lenders"].Size(), 1u) << Str(asked, "lender");
    EXPECT_EQ(Str(asked, "lender"), kLend2);
    // B down as well: nobody can say, and both are asked as A knows them.
    b_.Kill();
    const std::string id2 = Ask("hold-17");
    ASSERT_FALSE(id2.empty());
    EXPECT_EQ(Request(id2)["lenders"].Size(), 2u);
}

TEST_F(IblNetworkTest, ConditionsOverdueRecallAndCancelsBeforeAndAfterShipping) {
    const std::string id = Ask("hold-11");
    ASSERT_FALSE(id.empty());
    const std::string lender = Str(Request(id), "lender");
    std::string task;
    ASSERT_TRUE(WaitFor([&] { return !(task = TaskOf(lender, id)).empty(); }, 20s));
    // The lender asks a fee: the requester sees it and must agree first.
    auto bad_cost = Call(b_, "POST", "/v1/ibl/inbox/" + task, lender, R"({"answer":"will_supply","cost":"2,50"})");
    ASSERT_TRUE(bad_cost);
    EXPECT_EQ(bad_cost->status, 400) << bad_cost->body;
    Answer(lender, task, R"({"answer":"will_supply","cost":"2.50"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, lender, "WillSupply"); }, 20s));
    auto offered = Request(id);
    EXPECT_EQ(Str(offered, "offered_cost"), "2.50 EUR");
    EXPECT_TRUE(offered["conditions_to_accept"].GetBool());
    Act(id, "accept_conditions");
    EXPECT_FALSE(Request(id)["conditions_to_accept"].GetBool());
    ASSERT_TRUE(WaitFor([&] { return b_.Query1(fmt::format("SELECT conditional::int FROM ibl_request WHERE id = {}",
                                                            task)) == "0"; },
                        20s));
    auto again = Call(a_, "POST", "/v1/ibl/requests/" + id + "/actions", kAsker, R"({"action":"accept_conditions"})");
    EXPECT_EQ(again->status, 409) << again->body;

    Answer(lender, task, R"({"answer":"shipped","due_date":"2027-01-20","conditions":"LibraryUseOnly"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, lender, "Loaned"); }, 20s));
    EXPECT_EQ(Str(Request(id), "loan_condition"), "LibraryUseOnly");
    // Shipped: too late to cancel; the item must come back.
    const std::string before = a_.Query1("SELECT count(*) FROM ibl_event") + "/" +
                               a_.Query1("SELECT count(*) FROM ibl_outbox");
    auto late = Call(a_, "POST", "/v1/ibl/requests/" + id + "/actions", kAsker, R"({"action":"cancel"})");
    ASSERT_TRUE(late);
    EXPECT_EQ(late->status, 409) << late->body;
    EXPECT_NE(late->body.find("send it back"), std::string::npos) << late->body;
    EXPECT_EQ(a_.Query1("SELECT count(*) FROM ibl_event") + "/" + a_.Query1("SELECT count(*) FROM ibl_outbox"),
              before);

    Answer(lender, task, R"({"answer":"overdue"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, lender, "Overdue"); }, 20s));
    Answer(lender, task, R"({"answer":"recalled","due_date":"2027-01-25"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, lender, "Recalled"); }, 20s));
    EXPECT_EQ(Str(Request(id), "due_date"), "2027-01-25T23:59:59Z");
    Act(id, "shipped_return");
    ASSERT_TRUE(WaitFor([&] { return TaskState(task) == "Recalled+returning"; }, 20s)) << TaskState(task);
    Answer(lender, task, R"({"answer":"returned"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, lender, "LoanCompleted"); }, 20s));
    ExpectEachMessageOnce(id);

    // Cancelled before shipping: the lender agrees, both sides end Cancelled.
    const std::string id2 = Ask("hold-12");
    ASSERT_FALSE(id2.empty());
    const std::string lender2 = Str(Request(id2), "lender");
    std::string task2;
    ASSERT_TRUE(WaitFor([&] { return !(task2 = TaskOf(lender2, id2)).empty(); }, 20s));
    Answer(lender2, task2, R"({"answer":"expect_to_supply"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id2, lender2, "ExpectToSupply"); }, 20s));
    Act(id2, "cancel");
    ASSERT_TRUE(WaitFor([&] { return TaskState(task2) == "ExpectToSupply+cancel"; }, 20s)) << TaskState(task2);
    Answer(lender2, task2, R"({"answer":"cancel_accepted"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id2, lender2, "Cancelled"); }, 20s));
    EXPECT_EQ(TaskState(task2), "Cancelled");
    ExpectEachMessageOnce(id2);
}

TEST_F(IblNetworkTest, ANodeDownOrKilledMidFlowLosesAndRepeatsNothing) {
    // POI B is down: the request waits in A's outbox, tried again and again.
    b_.Kill();
    const std::string id = Ask("hold-8");
    ASSERT_FALSE(id.empty());
    ASSERT_TRUE(WaitFor([&] { return std::stoi(a_.Query1("SELECT coalesce(max(attempts), 0) FROM ibl_outbox")) >= 2; },
                        20s));
    EXPECT_NE(a_.Query1("SELECT last_error FROM ibl_outbox").find("cannot connect"), std::string::npos)
        << a_.Query1("SELECT last_error FROM ibl_outbox");
    EXPECT_TRUE(a_.daemon->WaitForLog("ibl message not confirmed node=" + std::string(kPoiB), 5s));
    // A is killed too, and comes back: the outbox is rows, nothing is lost.
    a_.Kill();
    ASSERT_TRUE(a_.Start()) << a_.daemon->Log();
    ASSERT_TRUE(b_.Start()) << b_.daemon->Log();
    const std::string lender = Str(Request(id), "lender");
    std::string task;
    ASSERT_TRUE(WaitFor([&] { return !(task = TaskOf(lender, id)).empty(); }, 30s)) << a_.daemon->Log();

    // Now A is down while the lender answers twice: both wait in B's outbox
    // and reach A in the order they were given.
    a_.Kill();
    Answer(lender, task, R"({"answer":"will_supply"})");
    Answer(lender, task, R"({"answer":"shipped","due_date":"2027-03-01"})");
    ASSERT_TRUE(WaitFor([&] { return std::stoi(b_.Query1("SELECT coalesce(max(attempts), 0) FROM ibl_outbox")) >= 1; },
                        20s));
    EXPECT_EQ(b_.Query1("SELECT count(*) FROM ibl_outbox WHERE delivered_at IS NULL"), "2");
    ASSERT_TRUE(a_.Start()) << a_.daemon->Log();
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, lender, "Loaned"); }, 30s)) << b_.daemon->Log();

    // A confirmation lost on the way (B crashed before recording it): B
    // sends the message again, and A recognises it and changes nothing.
    const std::string events_before = a_.Query1("SELECT count(*) FROM ibl_event");
    b_.Kill();
    b_.schema.Exec("UPDATE ibl_outbox SET delivered_at = NULL, attempts = 0 WHERE event = "
                   "(SELECT max(event) FROM ibl_outbox)");
    ASSERT_TRUE(b_.Start()) << b_.daemon->Log();
    ASSERT_TRUE(WaitFor([&] { return b_.Query1("SELECT count(*) FROM ibl_outbox WHERE delivered_at IS NULL") == "0"; },
                        30s));
    EXPECT_EQ(a_.Query1("SELECT count(*) FROM ibl_event"), events_before);
    EXPECT_TRUE(RequestIs(id, lender, "Loaned"));
    EXPECT_EQ(b_.Query1("SELECT attempts FROM ibl_outbox WHERE event = (SELECT max(event) FROM ibl_outbox)"), "1");
    ExpectEachMessageOnce(id);
}

TEST_F(IblNetworkTest, ASilentLenderIsPassedOverAtItsDeadlineEvenAcrossARestart) {
    const std::string id = Ask("hold-9");
    ASSERT_FALSE(id.empty());
    const std::string first = Str(Request(id), "lender"), second = first == kLend1 ? kLend2 : kLend1;
    std::string t1;
    ASSERT_TRUE(WaitFor([&] { return !(t1 = TaskOf(first, id)).empty(); }, 20s));
    // Two days pass without an answer while A is down: the deadline is a
    // row, so the restarted node still sees it.
    a_.Kill();
    a_.schema.Exec(fmt::format("UPDATE ibl_request SET answer_by = now() - interval '1 minute' WHERE request_id = '{}'",
                               id));
    ASSERT_TRUE(a_.Start()) << a_.daemon->Log();
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, second, "Sent"); }, 20s)) << a_.daemon->Log();
    EXPECT_TRUE(a_.daemon->WaitForLog("ibl requests passed over requests=1", 5s));
    // The silent lender is told to stand down; the next has the request.
    ASSERT_TRUE(WaitFor([&] { return TaskState(t1) == "Sent+cancel"; }, 20s)) << TaskState(t1);
    std::string t2;
    ASSERT_TRUE(WaitFor([&] { return !(t2 = TaskOf(second, id)).empty(); }, 20s));
    // The first lender's late Unfilled ends its own transaction and leaves
    // the request with the second lender: it is not passed on again.
    Answer(first, t1, R"({"answer":"unfilled"})");
    ASSERT_TRUE(WaitFor([&] { return a_.Query1(fmt::format("SELECT state FROM ibl_request WHERE request_id = '{}' AND "
                                                            "supplying_agency = '{}'", id, first)) == "Unfilled"; },
                        20s));
    EXPECT_TRUE(RequestIs(id, second, "Sent"));
    EXPECT_EQ(a_.Query1(fmt::format("SELECT count(*) FROM ibl_request WHERE request_id = '{}'", id)), "2");
    Answer(second, t2, R"({"answer":"will_supply"})");
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, second, "WillSupply"); }, 20s));
    ExpectEachMessageOnce(id);

    // A request the library cancels has no deadline: it waits for the
    // lender's answer to the Cancel and is not passed on.
    const std::string id2 = Ask("hold-13");
    ASSERT_FALSE(id2.empty());
    const std::string lender2 = Str(Request(id2), "lender");
    Act(id2, "cancel");
    EXPECT_EQ(Str(Request(id2), "answer_by"), "");
    a_.schema.Exec(fmt::format("UPDATE ibl_request SET answer_by = now() - interval '1 minute' WHERE request_id = '{}'",
                               id2));
    ASSERT_TRUE(WaitFor([&] { return a_.Query1(fmt::format("SELECT count(*) FROM ibl_request WHERE request_id = '{}' "
                                                            "AND answer_by IS NOT NULL", id2)) == "0"; },
                        20s));
    EXPECT_EQ(a_.Query1(fmt::format("SELECT count(*) FROM ibl_request WHERE request_id = '{}'", id2)), "1");
    EXPECT_TRUE(RequestIs(id2, lender2, "Sent"));
}

TEST_F(IblNetworkTest, ARequestTheLendersNodeRefusesPassesThatLenderOver) {
    // POI B no longer serves the first lender (disabled): its node refuses
    // the request with an ISO 18626 error, and A asks the next lender.
    const std::string first = kLend1;  // with no load on either, the rota goes by ISIL
    ASSERT_EQ(b_.Ctl({"library", "disable", first}).exit_code, 0);
    const std::string id = Ask("hold-10");
    ASSERT_FALSE(id.empty());
    // Asked first (the refusal may already have moved it on).
    ASSERT_EQ(a_.Query1(fmt::format("SELECT supplying_agency FROM ibl_request WHERE request_id = '{}' ORDER BY id "
                                    "LIMIT 1",
                                    id)),
              first);
    const std::string second = first == kLend1 ? kLend2 : kLend1;
    ASSERT_TRUE(WaitFor([&] { return RequestIs(id, second, "Sent"); }, 20s)) << a_.daemon->Log();
    EXPECT_NE(a_.Query1("SELECT refused FROM ibl_outbox WHERE refused IS NOT NULL").find("UnrecognisedDataValue"),
              std::string::npos);
    EXPECT_TRUE(a_.daemon->WaitForLog("ibl message refused node=" + std::string(kPoiB), 5s));
    EXPECT_EQ(a_.Query1(fmt::format("SELECT state FROM ibl_request WHERE request_id = '{}' AND supplying_agency = '{}'",
                                    id, first)),
              "Unfilled");
    std::string t2;
    ASSERT_TRUE(WaitFor([&] { return !(t2 = TaskOf(second, id)).empty(); }, 20s));
    EXPECT_EQ(b_.Query1(fmt::format("SELECT count(*) FROM ibl_request WHERE request_id = '{}'", id)), "1")
        << "the refused request changed nothing at B";

    // A library POI A has just registered, which the national node's feed
    // has not brought to B: B takes POI A's word that it serves it.
    const std::string fresh = "NL-0000000319";
    a_.Add(fresh, "NL-GE");
    tokens_[fresh] = a_.Issue(fresh);
    auto r = Call(a_, "POST", "/v1/ibl/requests", fresh, R"({"isbn":"9789023466024","patron_ref":"hold-14"})");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 201) << r->body;
    const std::string id2 = Str(Json(r->body), "id");
    ASSERT_TRUE(WaitFor([&] { return !TaskOf(second, id2).empty(); }, 20s)) << b_.daemon->Log();
    EXPECT_EQ(b_.Query1(fmt::format("SELECT poi FROM library WHERE isil = '{}'", fresh)), kPoiA);
    EXPECT_EQ(b_.Query1(fmt::format("SELECT actor FROM audit_log WHERE library = '{}'", fresh)),
              std::string("ibl:") + kPoiA);

    // An admin sends a request on to the next lender, and then cancels it.
    ASSERT_EQ(b_.Ctl({"library", "enable", first}).exit_code, 0);
    const std::string id3 = Ask("hold-15");
    ASSERT_FALSE(id3.empty());
    const std::string from = Str(Request(id3), "lender"), to = from == kLend1 ? kLend2 : kLend1;
    auto rerouted = a_.Ctl({"ibl", "reroute", id3});
    ASSERT_EQ(rerouted.exit_code, 0) << rerouted.err;
    EXPECT_EQ(rerouted.out, fmt::format("request {} went from {} to {}; {} was sent a Cancel\n", id3, from, to, from));
    EXPECT_TRUE(RequestIs(id3, to, "Sent"));
    auto last = a_.Ctl({"ibl", "reroute", id3});
    EXPECT_EQ(last.exit_code, 1);
    EXPECT_NE(last.err.find("is the last lender with a copy"), std::string::npos) << last.err;
    auto cancelled = a_.Ctl({"ibl", "cancel", id3});
    ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
    EXPECT_NE(cancelled.out.find("a Cancel went to " + to), std::string::npos) << cancelled.out;
    auto open = a_.Ctl({"ibl", "list", "--library", kAsker});
    EXPECT_NE(open.out.find("Sent+cancel"), std::string::npos) << open.out;
    EXPECT_EQ(a_.Ctl({"ibl", "reroute", "IBL-999"}).exit_code, 1);
    EXPECT_EQ(a_.Ctl({"ibl", "show", "IBL-999"}).exit_code, 1);
}

}  // namespace
}  // namespace iblsync::test
