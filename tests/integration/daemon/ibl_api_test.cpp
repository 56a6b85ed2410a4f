// IBL requests through the JSON API of a real iblsyncd, over loopback HTTP,
// on a real PostgreSQL: a library asks for a work by ISBN or record, the
// node picks a lender of its province with a copy available and delivers
// the ISO 18626 request to it in the same transaction; the lender sees it
// in its inbox. Duplicates, works no one can lend and bad input are refused
// and leave the database as it was.

#include <signal.h>

#include <future>
#include <map>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kA = "NL-0000000401";  // asks
constexpr const char* kB = "NL-0000000402";  // lends
constexpr const char* kD = "NL-0000000404";  // lends
constexpr const char* kC = "NL-0000000403";  // of another POI: never asked by this node
constexpr const char* kOtherPoi = "NL-0000000499";

// "De avonden", ISBN 9789023466024, as each library catalogues it.
std::string Avonden(const std::string& id, const std::string& copies) {
    return fmt::format(R"({{"id":"{}","title":"De avonden","authors":["Reve, Gerard"],"year":1947,)"
                       R"("isbn":"9789023466024","holdings":{}}})",
                       id, copies);
}

rapidjson::Document Json(const std::string& text) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    EXPECT_FALSE(d.HasParseError()) << text;
    return d;
}

class IblApiTest : public ::testing::Test {
protected:
    void SetUp() override {
        NodeConfig cfg;
        cfg.conninfo = schema_.conninfo();
        daemon_ = std::make_unique<DaemonProcess>(dir_, cfg);
        ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
        for (const char* lib : {kA, kB, kD}) Add({lib});
        Add({kOtherPoi});
        Add({kC, "--poi", kOtherPoi});
        for (const char* lib : {kA, kB, kC, kD}) tokens_[lib] = Issue(lib);
    }

    void Add(std::vector<std::string> args) {
        const std::string isil = args.front();
        args.insert(args.begin(), {"library", "add"});
        args.insert(args.begin() + 3, {"--name", "Bibliotheek " + isil, "--province", "NL-GE"});
        auto r = daemon_->Iblctl(args);
        ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    }

    std::string Issue(const std::string& lib) {
        auto r = daemon_->Iblctl({"--json", "token", "issue", lib});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        auto d = Json(r.out);
        return d.HasMember("token") ? d["token"].GetString() : "";
    }

    std::optional<HttpReply> Call(const std::string& method, const std::string& path, const std::string& lib,
                                  const std::string& body = {}, const std::string& type = "application/json") {
        Headers h;
        if (!lib.empty()) h.emplace_back("Authorization", "Bearer " + tokens_[lib]);
        if (!body.empty()) h.emplace_back("Content-Type", type);
        return HttpCall(daemon_->port(), method, path, h, body);
    }

    void Catalogue(const std::string& lib, const std::string& id, const std::string& copies) {
        auto r = Call("PUT", fmt::format("/v1/libraries/{}/records/{}", lib, id), lib, Avonden(id, copies));
        ASSERT_TRUE(r);
        ASSERT_TRUE(r->status == 201 || r->status == 200) << r->body;
    }

    std::optional<HttpReply> Ask(const std::string& body, const std::string& lib = kA) {
        return Call("POST", "/v1/ibl/requests", lib, body);
    }

    std::string Fingerprint() const {
        return schema_.Query1(
            "SELECT (SELECT count(*) FROM ibl_request) || '/' || (SELECT count(*) FROM ibl_event) || '/' || "
            "(SELECT last_value FROM ibl_request_number)");
    }

    TestSchema schema_;
    TempDir dir_;
    std::unique_ptr<DaemonProcess> daemon_;
    std::map<std::string, std::string> tokens_;
};

TEST_F(IblApiTest, ARequestGoesToALenderOfTheProvinceWithACopyAvailable) {
    Catalogue(kB, "b1", R"([{"barcode":"B-1","status":"available"}])");
    Catalogue(kD, "d1", R"([{"barcode":"D-1","status":"on_loan","due_date":"2026-12-31"}])");
    Catalogue(kC, "c1", R"([{"barcode":"C-1","status":"available"}])");
    auto r = Ask(R"({"isbn":"90-234-6602-0","patron_ref":"hold-1","pickup":"Centrale"})");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 201) << r->body;
    auto d = Json(r->body);
    const std::string id = d["id"].GetString();
    EXPECT_EQ(r->headers["location"], "/v1/ibl/requests/" + id);
    EXPECT_EQ(std::string(d["lender"].GetString()), kB) << "D's copy is on loan, C is another POI's";
    EXPECT_EQ(std::string(d["state"].GetString()), "Sent");
    EXPECT_EQ(std::string(d["isbn"].GetString()), "9789023466024");
    EXPECT_EQ(std::string(d["title"].GetString()), "De avonden");
    ASSERT_EQ(d["lenders"].Size(), 1u);

    // The lender's inbox has it, with the same id.
    auto inbox = Call("GET", "/v1/ibl/inbox", kB);
    ASSERT_TRUE(inbox);
    ASSERT_EQ(inbox->status, 200) << inbox->body;
    auto in = Json(inbox->body);
    ASSERT_EQ(in["requests"].Size(), 1u) << inbox->body;
    EXPECT_EQ(std::string(in["requests"][0]["id"].GetString()), id);
    EXPECT_EQ(std::string(in["requests"][0]["requester"].GetString()), kA);
    EXPECT_EQ(std::string(in["requests"][0]["pickup"].GetString()), "Centrale");
    EXPECT_EQ(Json(Call("GET", "/v1/ibl/inbox", kD)->body)["requests"].Size(), 0u);

    // The requester reads it back; another library cannot.
    auto back = Call("GET", "/v1/ibl/requests/" + id, kA);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->status, 200);
    EXPECT_EQ(Json(back->body)["lender"], d["lender"]);
    EXPECT_EQ(Call("GET", "/v1/ibl/requests/" + id, kB)->status, 404);

    // Both sides and both messages, in one go.
    EXPECT_EQ(schema_.Query1("SELECT string_agg(role || ':' || state, ',' ORDER BY id) FROM ibl_request"),
              "requester:Sent,supplier:Sent");
    EXPECT_EQ(schema_.Query1("SELECT string_agg(direction || ':' || kind, ',' ORDER BY id) FROM ibl_event"),
              "out:request,in:request");
    EXPECT_EQ(schema_.Query1("SELECT count(DISTINCT body) FROM ibl_event"), "1");
}

TEST_F(IblApiTest, RequestsSpreadOverLendersAndByRecordToo) {
    Catalogue(kB, "b1", R"([{"barcode":"B-1","status":"available"}])");
    Catalogue(kD, "d1", R"([{"barcode":"D-1","status":"available"}])");
    std::set<std::string> lenders;
    for (const char* patron : {"p1", "p2"}) {
        auto r = Ask(fmt::format(R"({{"record":{{"library":"{}","id":"d1"}},"patron_ref":"{}"}})", kD, patron));
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 201) << r->body;
        auto d = Json(r->body);
        EXPECT_EQ(d["lenders"].Size(), 2u);
        lenders.insert(d["lender"].GetString());
    }
    EXPECT_EQ(lenders, (std::set<std::string>{kB, kD})) << "the second goes to the lender with fewer open requests";
}

TEST_F(IblApiTest, ADuplicateOrAWorkNoOneCanLendChangesNothing) {
    Catalogue(kB, "b1", R"([{"barcode":"B-1","status":"available"}])");
    Catalogue(kA, "a1", R"([{"barcode":"A-1","status":"available"}])");
    auto first = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-7"})");
    ASSERT_TRUE(first);
    ASSERT_EQ(first->status, 201);
    const std::string id = Json(first->body)["id"].GetString();
    const auto before = Fingerprint();

    auto again = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-7"})");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 409);
    EXPECT_EQ(std::string(Json(again->body)["type"].GetString()), "urn:iblsync:problem:duplicate-ibl-request");
    EXPECT_EQ(again->headers["location"], "/v1/ibl/requests/" + id);

    // B asks for it: its own copy does not count, and no one else has one.
    auto none = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-8"})", kB);
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 201) << "A has one: " << none->body;
    const auto after_b = Fingerprint();
    Catalogue(kA, "a1", R"([{"barcode":"A-1","status":"on_loan"}])");
    auto nobody = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-9"})", kB);
    ASSERT_TRUE(nobody);
    EXPECT_EQ(nobody->status, 409) << nobody->body;
    EXPECT_EQ(std::string(Json(nobody->body)["type"].GetString()), "urn:iblsync:problem:no-lender");
    auto unknown = Ask(R"({"isbn":"9780140449136","patron_ref":"hold-9"})");
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->status, 404) << unknown->body;
    EXPECT_EQ(Fingerprint(), after_b);
    EXPECT_NE(before, after_b);
}

TEST_F(IblApiTest, BadRequestsAreRefusedWithTheirReason) {
    Catalogue(kB, "b1", R"([{"barcode":"B-1","status":"available"}])");
    const auto before = Fingerprint();
    struct Case {
        std::string body, type, detail;
        int status = 400;
    };
    const std::vector<Case> cases = {
        {"not json", "application/json", "the body is not JSON (or not valid UTF-8)"},
        {"[1,2]", "application/json", "the body must be a JSON object"},
        {R"({"isbn":"9789023466024"})", "application/json", "patron_ref is required"},
        {R"({"patron_ref":"x"})", "application/json",
         "name the work with either isbn or record, not both and not neither"},
        {R"({"isbn":"9789023466025","patron_ref":"x"})", "application/json", "isbn: "},
        {R"({"isbn":"9789023466024","patron_ref":"Jan de Vries"})", "application/json",
         "patron_ref must be your system's opaque reference"},
        {R"({"isbn":"9789023466024","patron_ref":"x","card":"2000123"})", "application/json", "unknown field 'card'"},
        {"{\"isbn\":\"9789023466024\",\"patron_ref\":\"x\",\"pickup\":\"\xC3\x28\"}", "application/json",
         "the body is not JSON (or not valid UTF-8)"},
        {R"({"record":{"library":"Ede","id":"1"},"patron_ref":"x"})", "application/json", "record.library: "},
        {R"({"isbn":"9789023466024","patron_ref":"x"})", "text/plain", "send the request as application/json", 415},
    };
    for (const auto& k : cases) {
        auto r = Call("POST", "/v1/ibl/requests", kA, k.body, k.type);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, k.status) << k.body << r->body;
        EXPECT_EQ(r->headers["content-type"], "application/problem+json");
        const std::string detail = Json(r->body)["detail"].GetString();
        EXPECT_EQ(detail.substr(0, k.detail.size()), k.detail) << k.body;
    }
    auto no_token = Call("POST", "/v1/ibl/requests", "", R"({"isbn":"9789023466024","patron_ref":"x"})");
    ASSERT_TRUE(no_token);
    EXPECT_EQ(no_token->status, 401);
    tokens_["wrong"] = tokens_[kA] + "0";
    EXPECT_EQ(Call("GET", "/v1/ibl/inbox", "wrong")->status, 401);
    EXPECT_EQ(Call("DELETE", "/v1/ibl/inbox", kA)->status, 405);
    EXPECT_EQ(Fingerprint(), before);
}

// The first lender cannot supply: the request goes on to the second, who
// supplies, ships and gets the item back. Every answer reaches the
// requester in the same transaction; answers out of turn change nothing.
TEST_F(IblApiTest, ALenderAnswersAndAnUnfilledGoesOnToTheNextLender) {
    Catalogue(kB, "b1", R"([{"barcode":"B-1","status":"available"}])");
    Catalogue(kD, "d1", R"([{"barcode":"D-1","status":"available"}])");
    auto made = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-20"})");
    ASSERT_TRUE(made);
    ASSERT_EQ(made->status, 201) << made->body;
    auto request = Json(made->body);
    const std::string id = request["id"].GetString();
    const std::string first = request["lenders"][0].GetString();
    const std::string second = request["lenders"][1].GetString();
    auto task_of = [&](const std::string& lender) -> std::string {
        auto in = Json(Call("GET", "/v1/ibl/inbox", lender)->body);
        if (in["requests"].Size() != 1) return "";
        return std::to_string(in["requests"][0]["task"].GetInt64());
    };
    auto answer = [&](const std::string& lender, const std::string& task, const std::string& body) {
        return Call("POST", "/v1/ibl/inbox/" + task, lender, body);
    };
    auto requester_state = [&] {
        return std::string(Json(Call("GET", "/v1/ibl/requests/" + id, kA)->body)["state"].GetString());
    };

    const std::string t1 = task_of(first);
    ASSERT_NE(t1, "");
    // Out of turn: nothing was shipped, so it cannot come back.
    auto before = Fingerprint();
    auto early = answer(first, t1, R"({"answer":"returned"})");
    ASSERT_TRUE(early);
    EXPECT_EQ(early->status, 409) << early->body;
    EXPECT_EQ(Fingerprint(), before);
    // Another library cannot answer for the lender.
    EXPECT_EQ(answer(second, t1, R"({"answer":"will_supply"})")->status, 404);
    EXPECT_EQ(answer(first, "abc", R"({"answer":"will_supply"})")->status, 404);
    auto bad = answer(first, t1, R"({"answer":"shipped","due_date":"2026-02-30"})");
    EXPECT_EQ(bad->status, 400) << bad->body;
    EXPECT_EQ(answer(first, t1, R"({"answer":"lent"})")->status, 400);
    for (const char* bad : {R"({"answer":"shipped","due_date":"2027-01-01","item_barcode":"has space"})",
                            R"({"answer":"will_supply","conditions":"LibraryUseOnly"})",
                            R"({"answer":"shipped","due_date":"2027-01-01","conditions":"Library Use"})",
                            R"({"answer":"retry_possible","retry_after":"2027-13-01"})",
                            R"({"answer":"unfilled","retry_after":"2027-01-01"})",
                            R"({"answer":"unfilled","cost":"2.50"})", R"({"answer":"will_supply","cost":"2.505"})",
                            R"({"answer":"recalled","due_date":"tomorrow"})"}) {
        auto r = answer(first, t1, bad);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 400) << bad << " " << r->body;
        EXPECT_NE(r->body.find("invalid-ibl-answer"), std::string::npos) << r->body;
    }
    EXPECT_EQ(Fingerprint(), before);

    auto unfilled = answer(first, t1, R"({"answer":"unfilled","reason":"NotOnShelf"})");
    ASSERT_TRUE(unfilled);
    ASSERT_EQ(unfilled->status, 200) << unfilled->body;
    auto u = Json(unfilled->body);
    EXPECT_EQ(std::string(u["next_lender"].GetString()), second);
    EXPECT_EQ(std::string(u["task"]["state"].GetString()), "Unfilled");
    EXPECT_EQ(requester_state(), "Sent") << "the requester is not told the request ended";
    EXPECT_EQ(task_of(first), "") << "finished tasks leave the inbox";

    const std::string t2 = task_of(second);
    ASSERT_NE(t2, "");
    EXPECT_EQ(answer(second, t2, R"({"answer":"will_supply"})")->status, 200);
    EXPECT_EQ(requester_state(), "WillSupply");
    auto shipped = answer(second, t2, R"({"answer":"shipped","due_date":"2027-01-15"})");
    ASSERT_EQ(shipped->status, 200) << shipped->body;
    auto now = Json(Call("GET", "/v1/ibl/requests/" + id, kA)->body);
    EXPECT_EQ(std::string(now["state"].GetString()), "Loaned");
    EXPECT_EQ(std::string(now["lender"].GetString()), second);
    EXPECT_EQ(std::string(now["due_date"].GetString()), "2027-01-15T23:59:59Z");
    EXPECT_EQ(answer(second, t2, R"({"answer":"returned"})")->status, 200);
    EXPECT_EQ(requester_state(), "LoanCompleted");
    EXPECT_EQ(task_of(second), "");

    // What the requester's side saw, in order: one transaction per lender
    // under the same request id, the first ended by its Unfilled and
    // pointing to the second.
    EXPECT_EQ(schema_.Query1(fmt::format(
                  "SELECT string_agg(r.supplying_agency || ': ' || e.direction || ' ' || e.kind || ' ' || e.what || "
                  "'>' || e.state_after, '; ' ORDER BY e.id) FROM ibl_event e JOIN ibl_request r ON r.id = e.request "
                  "WHERE r.role = 'requester' AND r.request_id = '{}'",
                  id)),
              fmt::format("{0}: out request >Sent; {0}: in supplyingAgencyMessage RequestResponse Unfilled>Unfilled; "
                          "{1}: out request >Sent; {1}: in supplyingAgencyMessage RequestResponse WillSupply>WillSupply; "
                          "{1}: in supplyingAgencyMessage StatusChange Loaned>Loaned; "
                          "{1}: in supplyingAgencyMessage StatusChange LoanCompleted>LoanCompleted",
                          first, second));
    EXPECT_EQ(schema_.Query1(fmt::format(
                  "SELECT string_agg(supplying_agency || ' ' || state || ' ' || "
                  "coalesce((SELECT n.supplying_agency FROM ibl_request n WHERE n.id = r.superseded_by), '-'), '; ' "
                  "ORDER BY id) FROM ibl_request r WHERE role = 'requester' AND request_id = '{}'",
                  id)),
              fmt::format("{0} Unfilled {1}; {1} LoanCompleted -", first, second));
}

TEST_F(IblApiTest, TheLastLendersUnfilledEndsTheRequest) {
    Catalogue(kB, "b1", R"([{"barcode":"B-1","status":"available"}])");
    auto made = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-30"})");
    ASSERT_EQ(made->status, 201) << made->body;
    const std::string id = Json(made->body)["id"].GetString();
    auto in = Json(Call("GET", "/v1/ibl/inbox", kB)->body);
    const std::string task = std::to_string(in["requests"][0]["task"].GetInt64());
    auto r = Call("POST", "/v1/ibl/inbox/" + task, kB, R"({"answer":"unfilled"})");
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_FALSE(Json(r->body).HasMember("next_lender"));
    EXPECT_EQ(std::string(Json(Call("GET", "/v1/ibl/requests/" + id, kA)->body)["state"].GetString()), "Unfilled");
    // Open no more: the same patron may ask again.
    EXPECT_EQ(Ask(R"({"isbn":"9789023466024","patron_ref":"hold-30"})")->status, 201);
}

// A whole loan: supplied, received, renewed (once granted, once refused),
// sent back and received back; and a cancel before shipping. Actions out of
// turn are refused and change nothing.
TEST_F(IblApiTest, ALoanFromRequestToReturnAndACancelBeforeShipping) {
    Catalogue(kB, "b1", R"([{"barcode":"B-1","status":"available"}])");
    auto made = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-40"})");
    ASSERT_EQ(made->status, 201) << made->body;
    const std::string id = Json(made->body)["id"].GetString();
    const std::string task =
        std::to_string(Json(Call("GET", "/v1/ibl/inbox", kB)->body)["requests"][0]["task"].GetInt64());
    auto act = [&](const std::string& action) {
        return Call("POST", "/v1/ibl/requests/" + id + "/actions", kA, fmt::format(R"({{"action":"{}"}})", action));
    };
    auto answer = [&](const std::string& body) { return Call("POST", "/v1/ibl/inbox/" + task, kB, body); };
    auto requester = [&] { return Json(Call("GET", "/v1/ibl/requests/" + id, kA)->body); };

    auto before = Fingerprint();
    auto early = act("received");
    ASSERT_EQ(early->status, 409) << early->body;
    EXPECT_EQ(std::string(Json(early->body)["detail"].GetString()),
              "the request is not in a state for this action: nothing was sent yet (Sent)");
    EXPECT_EQ(act("fly")->status, 400);
    EXPECT_EQ(Call("POST", "/v1/ibl/requests/IBL-0/actions", kA, R"({"action":"cancel"})")->status, 404);
    EXPECT_EQ(Call("POST", "/v1/ibl/requests/" + id + "/actions", kB, R"({"action":"cancel"})")->status, 404)
        << "only the requester acts on its request";
    EXPECT_EQ(Fingerprint(), before);

    ASSERT_EQ(answer(R"({"answer":"will_supply"})")->status, 200);
    ASSERT_EQ(answer(R"({"answer":"shipped","due_date":"2027-01-15"})")->status, 200);
    EXPECT_EQ(act("cancel")->status, 409) << "shipped: it must come back instead";
    ASSERT_EQ(act("received")->status, 200);
    EXPECT_TRUE(requester()["received"].GetBool());
    auto renew = act("renew");
    ASSERT_EQ(renew->status, 200) << renew->body;
    EXPECT_TRUE(Json(renew->body)["renew_pending"].GetBool());
    EXPECT_EQ(act("renew")->status, 409) << "one renew at a time";
    EXPECT_EQ(answer(R"({"answer":"renew_granted"})")->status, 400) << "a granted renew needs its due date";
    ASSERT_EQ(answer(R"({"answer":"renew_granted","due_date":"2027-02-12"})")->status, 200);
    auto now = requester();
    EXPECT_FALSE(now["renew_pending"].GetBool());
    EXPECT_EQ(std::string(now["due_date"].GetString()), "2027-02-12T23:59:59Z");
    EXPECT_EQ(std::string(now["state"].GetString()), "Loaned");
    ASSERT_EQ(act("renew")->status, 200);
    ASSERT_EQ(answer(R"({"answer":"renew_refused"})")->status, 200);
    EXPECT_EQ(std::string(requester()["due_date"].GetString()), "2027-02-12T23:59:59Z");
    ASSERT_EQ(act("shipped_return")->status, 200);
    EXPECT_EQ(act("renew")->status, 409) << "no renew after it was sent back";
    ASSERT_EQ(answer(R"({"answer":"returned"})")->status, 200);
    EXPECT_EQ(std::string(requester()["state"].GetString()), "LoanCompleted");
    EXPECT_EQ(schema_.Query1("SELECT string_agg(state || ':' || received || shipped_return, ',' ORDER BY id) "
                             "FROM ibl_request"),
              "LoanCompleted:truetrue,LoanCompleted:truetrue")
        << "both sides agree";

    // A second request, cancelled before it was shipped.
    auto other = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-41"})");
    ASSERT_EQ(other->status, 201) << other->body;
    const std::string id2 = Json(other->body)["id"].GetString();
    const std::string task2 =
        std::to_string(Json(Call("GET", "/v1/ibl/inbox", kB)->body)["requests"][0]["task"].GetInt64());
    EXPECT_EQ(Call("POST", "/v1/ibl/inbox/" + task2, kB, R"({"answer":"cancel_accepted"})")->status, 409)
        << "no cancel was asked for";
    ASSERT_EQ(Call("POST", "/v1/ibl/requests/" + id2 + "/actions", kA, R"({"action":"cancel"})")->status, 200);
    ASSERT_EQ(Call("POST", "/v1/ibl/inbox/" + task2, kB, R"({"answer":"cancel_accepted"})")->status, 200);
    EXPECT_EQ(std::string(Json(Call("GET", "/v1/ibl/requests/" + id2, kA)->body)["state"].GetString()), "Cancelled");
    EXPECT_EQ(Json(Call("GET", "/v1/ibl/inbox", kB)->body)["requests"].Size(), 0u);
}

// Privacy: once a request is finished and the retention has passed, the
// patron reference and pickup place leave its rows and its stored request
// documents; open requests keep theirs.
TEST_F(IblApiTest, ALenderWaitsForItsNextTaskWithALongPoll) {
    Catalogue(kB, "b1", R"([{"barcode":"B-1","status":"available"}])");
    auto first = Call("GET", "/v1/ibl/inbox", kB);
    ASSERT_TRUE(first);
    ASSERT_EQ(first->status, 200) << first->body;
    auto d = Json(first->body);
    EXPECT_EQ(d["requests"].Size(), 0u);
    const long long cursor = d["cursor"].GetInt64();
    // Nothing new: the wait runs out and the cursor stays.
    auto idle = Call("GET", fmt::format("/v1/ibl/inbox?wait=1&cursor={}", cursor), kB);
    ASSERT_TRUE(idle);
    EXPECT_EQ(Json(idle->body)["cursor"].GetInt64(), cursor);
    // A request comes while the lender waits: the wait ends with it.
    auto waiting = std::async(std::launch::async, [&] {
        return Call("GET", fmt::format("/v1/ibl/inbox?wait=30&cursor={}", cursor), kB);
    });
    EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout) << "it waits";
    auto asked = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-lp"})");
    ASSERT_TRUE(asked);
    ASSERT_EQ(asked->status, 201) << asked->body;
    auto woke = waiting.get();
    ASSERT_TRUE(woke);
    auto got = Json(woke->body);
    ASSERT_EQ(got["requests"].Size(), 1u) << woke->body;
    EXPECT_GT(got["cursor"].GetInt64(), cursor);
    // A cancel of that task moves the cursor too.
    const long long after = got["cursor"].GetInt64();
    auto cancel = Call("POST", "/v1/ibl/requests/" + std::string(Json(asked->body)["id"].GetString()) + "/actions",
                       kA, R"({"action":"cancel"})");
    ASSERT_EQ(cancel->status, 200) << cancel->body;
    auto changed = Call("GET", fmt::format("/v1/ibl/inbox?wait=30&cursor={}", after), kB);
    EXPECT_GT(Json(changed->body)["cursor"].GetInt64(), after);
    EXPECT_TRUE(Json(changed->body)["requests"][0]["cancel_pending"].GetBool());
    for (const char* bad : {"?wait=x", "?cursor=-1", "?since=3", "?wait=1&wait=2"}) {
        auto r = Call("GET", std::string("/v1/ibl/inbox") + bad, kB);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 400) << bad << " " << r->body;
    }
}

TEST_F(IblApiTest, ClosedExcludedAndLimitedLendersAreSkippedAndTheLastResortIsAsked) {
    constexpr const char* kE = "NL-0000000405";  // the lender of last resort: no copy needed
    Add({kE});
    Catalogue(kB, "b1", R"([{"barcode":"B-1","status":"available"}])");
    Catalogue(kD, "d1", R"([{"barcode":"D-1","status":"available"}])");
    auto lenders_of = [](const rapidjson::Document& d) {
        std::string out;
        for (const auto& l : d["lenders"].GetArray()) out += (out.empty() ? "" : ",") + std::string(l.GetString());
        return out;
    };
    // B is closed for the holidays: it is not asked.
    auto closed = daemon_->Iblctl({"ibl", "close", kB, "--from", "2026-01-01", "--until", "2099-12-31", "--reason",
                                   "verbouwing"});
    ASSERT_EQ(closed.exit_code, 0) << closed.err;
    EXPECT_NE(closed.out.find("verbouwing"), std::string::npos) << closed.out;
    EXPECT_EQ(daemon_->Iblctl({"ibl", "close", kB, "--from", "2026-02-01", "--until", "2026-01-01"}).exit_code, 1);
    EXPECT_EQ(daemon_->Iblctl({"ibl", "close", "NL-0000000777", "--from", "2026-02-01", "--until", "2026-03-01"})
                  .exit_code,
              1);
    auto r1 = Ask(R"({"isbn":"9789023466024","patron_ref":"p1"})");
    ASSERT_EQ(r1->status, 201) << r1->body;
    EXPECT_EQ(lenders_of(Json(r1->body)), kD);
    auto reopened = daemon_->Iblctl({"ibl", "reopen", kB});
    ASSERT_EQ(reopened.exit_code, 0) << reopened.err;
    EXPECT_NE(reopened.out.find("has no closures ahead"), std::string::npos) << reopened.out;

    // Reloaded: D excluded, E the last resort, and limits.
    auto cfg = daemon_->config();
    cfg.extra_toml = fmt::format("[ibl]\nexcluded_lenders = [\"{}\"]\nlast_resort = \"{}\"\n"
                                 "max_open_per_patron = 1\nmax_open_per_library = 3\n",
                                 kD, kE);
    daemon_->RewriteConfig(cfg.ToToml());
    ASSERT_EQ(daemon_->Iblctl({"reload"}).exit_code, 0);
    auto r2 = Ask(R"({"isbn":"9789023466024","patron_ref":"p2"})");
    ASSERT_EQ(r2->status, 201) << r2->body;
    EXPECT_EQ(lenders_of(Json(r2->body)), fmt::format("{},{}", kB, kE)) << "D excluded; E last";
    // A work nobody has on the shelf goes to the last resort alone.
    auto put = Call("PUT", fmt::format("/v1/libraries/{}/records/x1", kB), kB,
                    R"({"id":"x1","title":"Tirza","isbn":"9789028423749","holdings":[{"barcode":"X-1","status":"on_loan"}]})");
    ASSERT_TRUE(put->status == 201 || put->status == 200) << put->body;
    auto r3 = Ask(R"({"isbn":"9789028423749","patron_ref":"p3"})");
    ASSERT_EQ(r3->status, 201) << r3->body;
    EXPECT_EQ(lenders_of(Json(r3->body)), kE);

    // Limits: p1 has one open request; the library has three.
    const auto before = Fingerprint();
    auto patron = Ask(R"({"isbn":"9789028423749","patron_ref":"p1"})");
    EXPECT_EQ(patron->status, 409) << patron->body;
    EXPECT_NE(patron->body.find("max_open_per_patron"), std::string::npos) << patron->body;
    auto library = Ask(R"({"isbn":"9789028423749","patron_ref":"p4"})");
    EXPECT_EQ(library->status, 409) << library->body;
    EXPECT_NE(library->body.find("has 3 open requests; this node allows 3"), std::string::npos) << library->body;
    EXPECT_EQ(Fingerprint(), before);

    // E closes after p2's rota was made: B's Unfilled ends p2 rather than
    // asking a closed library.
    ASSERT_EQ(daemon_->Iblctl({"ibl", "close", kE, "--from", "2026-01-01", "--until", "2099-12-31"}).exit_code, 0);
    auto inbox = Json(Call("GET", "/v1/ibl/inbox", kB)->body);
    std::string task;
    for (const auto& t : inbox["requests"].GetArray())
        if (std::string(t["id"].GetString()) == Json(r2->body)["id"].GetString()) task = std::to_string(t["task"].GetInt64());
    ASSERT_FALSE(task.empty()) << inbox["requests"].Size();
    auto unfilled = Call("POST", "/v1/ibl/inbox/" + task, kB, R"({"answer":"unfilled"})");
    ASSERT_EQ(unfilled->status, 200) << unfilled->body;
    auto u = Json(unfilled->body);
    EXPECT_FALSE(u.HasMember("next_lender")) << unfilled->body;
    EXPECT_EQ(std::string(u["requester_state"].GetString()), "Unfilled");
}

TEST_F(IblApiTest, ALibraryIsNotAskedForAMaterialTypeItDoesNotLend) {
    auto put = [&](const std::string& lib, const std::string& id, const std::string& type) {
        auto r = Call("PUT", fmt::format("/v1/libraries/{}/records/{}", lib, id), lib,
                      fmt::format(R"({{"id":"{}","title":"Het diner","authors":["Koch, Herman"],"year":2009,)"
                                  R"("isbn":"9789041413017","type":"{}","holdings":[{{"barcode":"{}-1","status":"available"}}]}})",
                                  id, type, id));
        ASSERT_TRUE(r);
        ASSERT_TRUE(r->status == 201 || r->status == 200) << r->body;
    };
    put(kB, "b-audio", "audiobook");
    put(kD, "d-audio", "audiobook");
    // B lends no audiobooks.
    auto set = daemon_->Iblctl({"ibl", "lends", kB, "--not", "audiobook", "--not", "video"});
    ASSERT_EQ(set.exit_code, 0) << set.err;
    EXPECT_EQ(set.out, fmt::format("{} does not lend: audiobook, video\n", kB));
    EXPECT_EQ(daemon_->Iblctl({"ibl", "lends", kB, "--not", "cassette"}).exit_code, 1);
    auto r = Ask(R"({"isbn":"9789041413017","patron_ref":"a1"})");
    ASSERT_EQ(r->status, 201) << r->body;
    auto d = Json(r->body);
    ASSERT_EQ(d["lenders"].Size(), 1u);
    EXPECT_EQ(std::string(d["lenders"][0].GetString()), kD);
    auto all = daemon_->Iblctl({"ibl", "lends", kB, "--all"});
    EXPECT_EQ(all.out, fmt::format("{} lends every material type that travels (not e-books)\n", kB));
    // An e-book travels nowhere: nobody is asked for one.
    auto e = Call("PUT", fmt::format("/v1/libraries/{}/records/e1", kB), kB,
                  R"({"id":"e1","title":"Tirza","isbn":"9789028423749","type":"ebook","holdings":[{"barcode":"E-1","status":"available"}]})");
    ASSERT_TRUE(e->status == 201 || e->status == 200) << e->body;
    auto none = Ask(R"({"isbn":"9789028423749","patron_ref":"a2"})");
    EXPECT_EQ(none->status, 409) << none->body;
    EXPECT_NE(none->body.find("no-lender"), std::string::npos) << none->body;
}

TEST_F(IblApiTest, FinishedRequestsLoseThePatronReferenceAfterTheRetention) {
    using namespace std::chrono_literals;
    Catalogue(kB, "b1", R"([{"barcode":"B-1","status":"available"}])");
    auto done = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-50","pickup":"Balie"})");
    ASSERT_EQ(done->status, 201) << done->body;
    const std::string task =
        std::to_string(Json(Call("GET", "/v1/ibl/inbox", kB)->body)["requests"][0]["task"].GetInt64());
    ASSERT_EQ(Call("POST", "/v1/ibl/inbox/" + task, kB, R"({"answer":"unfilled"})")->status, 200);
    auto open = Ask(R"({"isbn":"9789023466024","patron_ref":"hold-51","pickup":"Balie"})");
    ASSERT_EQ(open->status, 201) << open->body;
    auto count = [&](const std::string& sql) { return std::stoll(schema_.Query1(sql)); };
    EXPECT_EQ(count("SELECT count(*) FROM ibl_event WHERE body LIKE '%hold-50%'"), 2);

    // Kept for 30 days by default; with 0, the next housekeeping (a reload
    // runs one) anonymises what is finished.
    auto& cfg = daemon_->config();
    cfg.extra_toml = "\n[ibl]\nanonymise_after_days = 0\n";
    daemon_->RewriteConfig(cfg.ToToml());
    daemon_->Signal(SIGHUP);
    ASSERT_TRUE(WaitFor([&] { return count("SELECT count(*) FROM ibl_request WHERE patron_ref IS NULL") == 2; }, 20s))
        << daemon_->Log();
    EXPECT_TRUE(daemon_->WaitForLog("ibl requests anonymised requests=2 ", 5s)) << daemon_->Log();
    EXPECT_EQ(count("SELECT count(*) FROM ibl_request WHERE pickup IS NULL"), 2);
    EXPECT_EQ(count("SELECT count(*) FROM ibl_event WHERE body LIKE '%hold-50%'"), 0);
    EXPECT_EQ(count("SELECT count(*) FROM ibl_event WHERE body LIKE '%<ill:patronId>anonymised</ill:patronId>%'"), 2);
    EXPECT_EQ(count("SELECT count(*) FROM ibl_request WHERE patron_ref = 'hold-51' AND pickup = 'Balie'"), 2)
        << "the open request keeps its reference";
    EXPECT_EQ(count("SELECT count(*) FROM ibl_event WHERE body LIKE '%hold-51%'"), 2);
}

}  // namespace
}  // namespace iblsync::test
