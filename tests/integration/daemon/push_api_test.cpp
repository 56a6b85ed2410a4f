// The /v1 push API and change feed against the real daemon, over loopback
// HTTP, on a real PostgreSQL: tokens and their scope, records, availability,
// idempotency, preconditions, batches, the feed, and hostile input.

#include <atomic>
#include <functional>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kLibA = "NL-0000000101";
constexpr const char* kLibB = "NL-0000000102";

std::string Record(const std::string& id, const std::string& title, const std::string& isbn = "",
                   const std::string& holdings = "") {
    std::string r = fmt::format(R"({{"id":"{}","title":"{}","authors":["Reve, Gerard"],"year":1947)", id, title);
    if (!isbn.empty()) r += fmt::format(R"(,"isbn":"{}")", isbn);
    if (!holdings.empty()) r += fmt::format(R"(,"holdings":{})", holdings);
    return r + "}";
}

rapidjson::Document Json(const std::string& text) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    EXPECT_FALSE(d.HasParseError()) << text;
    return d;
}

class PushApiTest : public ::testing::Test {
protected:
    void SetUp() override { Start(); }

    void Start(const std::string& api_toml = "") {
        NodeConfig cfg;
        cfg.conninfo = schema_.conninfo();
        cfg.api_toml = api_toml;
        daemon_ = std::make_unique<DaemonProcess>(dir_, cfg);
        ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
        for (const char* lib : {kLibA, kLibB}) {
            auto added = daemon_->Iblctl({"library", "add", lib, "--name", fmt::format("Bibliotheek {}", lib),
                                          "--province", "NL-GE"});
            ASSERT_EQ(added.exit_code, 0) << added.err << added.out;
        }
        token_a_ = Issue(kLibA);
        token_b_ = Issue(kLibB);
    }

    std::string Issue(const std::string& lib) {
        auto r = daemon_->Iblctl({"--json", "token", "issue", lib, "--label", "test"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        auto d = Json(r.out);
        return d.HasMember("token") ? d["token"].GetString() : "";
    }

    std::optional<HttpReply> Call(const std::string& method, const std::string& path, const std::string& token,
                                  const std::string& body = {}, Headers headers = {},
                                  const std::string& type = "application/json") {
        if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
        if (!body.empty()) headers.emplace_back("Content-Type", type);
        return HttpCall(daemon_->port(), method, path, headers, body);
    }

    static std::string RecordPath(const std::string& lib, const std::string& id) {
        return fmt::format("/v1/libraries/{}/records/{}", lib, id);
    }

    long long Count(const std::string& sql) const { return std::stoll(schema_.Query1(sql)); }

    // Everything a write could have touched, to show that a refused one touched nothing.
    std::string Fingerprint() const {
        return schema_.Query1(
            "SELECT (SELECT count(*) FROM bib_record) || '/' || (SELECT coalesce(sum(version), 0) FROM bib_record)"
            " || '/' || (SELECT count(*) FROM holding) || '/' || (SELECT coalesce(sum(version), 0) FROM holding)"
            " || '/' || (SELECT count(*) FROM change_log) || '/' || (SELECT last_seq FROM change_counter)"
            " || '/' || (SELECT count(*) FROM idempotency_key) || '/' || (SELECT count(*) FROM audit_log"
            "   WHERE actor LIKE 'token:%') || '/' || (SELECT count(*) FROM work)");
    }

    TempDir dir_;
    TestSchema schema_;
    std::unique_ptr<DaemonProcess> daemon_;
    std::string token_a_, token_b_;
};

// A node of its own with other settings, library A registered and a token
// for it: for the tests of limits that the shared node does not have.
struct OwnNode {
    TempDir dir;
    TestSchema schema;
    std::unique_ptr<DaemonProcess> daemon;
    std::string token;

    explicit OwnNode(const std::function<void(NodeConfig&)>& configure) {
        NodeConfig cfg;
        cfg.conninfo = schema.conninfo();
        configure(cfg);
        daemon = std::make_unique<DaemonProcess>(dir, cfg);
        if (!daemon->Start()) {
            ADD_FAILURE() << daemon->Log();
            return;
        }
        EXPECT_EQ(daemon->Iblctl({"library", "add", kLibA, "--name", "A"}).exit_code, 0);
        const auto issued = Json(daemon->Iblctl({"--json", "token", "issue", kLibA}).out);
        token = issued.HasMember("token") ? issued["token"].GetString() : "";
    }
    int port() const { return daemon->port(); }
};

void ExpectProblem(const std::optional<HttpReply>& r, int status, const std::string& type) {
    ASSERT_TRUE(r.has_value()) << "no response";
    EXPECT_EQ(r->status, status) << r->body;
    auto type_header = r->headers.find("content-type");
    EXPECT_TRUE(type_header != r->headers.end() && type_header->second == "application/problem+json") << r->body;
    EXPECT_NE(r->body.find("\"type\":\"urn:iblsync:problem:" + type + "\""), std::string::npos) << r->body;
}

TEST_F(PushApiTest, TokensAreStoredHashedAndScopedToTheirLibrary) {
    ASSERT_EQ(token_a_.rfind("iblt_", 0), 0u) << token_a_;
    const std::string secret = token_a_.substr(token_a_.rfind('_') + 1);
    // Only the hash is kept: the secret is in no table the node writes.
    EXPECT_EQ(Count(fmt::format("SELECT count(*) FROM library_token WHERE position('{}' in encode(secret_hash, 'escape')) > 0",
                                secret)),
              0);
    EXPECT_EQ(Count(fmt::format("SELECT count(*) FROM audit_log WHERE position('{}' in detail) > 0", secret)), 0);
    EXPECT_EQ(Count("SELECT count(*) FROM audit_log WHERE action = 'token.issue' AND actor LIKE 'control:uid=%'"), 2);

    auto put = Call("PUT", RecordPath(kLibA, "a1"), token_a_, Record("a1", "De avonden"));
    ASSERT_TRUE(put);
    EXPECT_EQ(put->status, 201) << put->body;

    // A's token may read B's part of the catalogue but not write it.
    const auto before = Fingerprint();
    auto forbidden = Call("PUT", RecordPath(kLibB, "b1"), token_a_, Record("b1", "Titel"));
    ExpectProblem(forbidden, 403, "forbidden-library");
    auto avail = Call("POST", fmt::format("/v1/libraries/{}/availability", kLibB), token_a_,
                      R"([{"barcode":"X1","status":"missing"}])");
    ExpectProblem(avail, 403, "forbidden-library");
    ExpectProblem(Call("DELETE", RecordPath(kLibB, "b1"), token_a_), 403, "forbidden-library");
    EXPECT_EQ(Fingerprint(), before);
    auto read = Call("GET", RecordPath(kLibA, "a1"), token_b_);
    ASSERT_TRUE(read);
    EXPECT_EQ(read->status, 200) << read->body;

    // No token, another scheme, a wrong secret, a made-up token.
    auto none = Call("GET", RecordPath(kLibA, "a1"), "");
    ExpectProblem(none, 401, "unauthorized");
    EXPECT_EQ(none->headers["www-authenticate"], "Bearer realm=\"iblsync\"");
    ExpectProblem(HttpCall(daemon_->port(), "GET", RecordPath(kLibA, "a1"), {{"Authorization", "Basic dXNlcjpwdw=="}}),
                  401, "unauthorized");
    std::string wrong = token_a_;
    wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
    auto bad = Call("PUT", RecordPath(kLibA, "a2"), wrong, Record("a2", "Titel"));
    ExpectProblem(bad, 401, "invalid-token");
    EXPECT_NE(bad->headers["www-authenticate"].find("invalid_token"), std::string::npos);
    ExpectProblem(Call("GET", "/v1/changes", "iblt_999_" + std::string(43, 'x')), 401, "invalid-token");
    ExpectProblem(Call("GET", "/v1/changes", "' OR 1=1 --"), 401, "invalid-token");
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE local_id = 'a2'"), 0);
}

TEST_F(PushApiTest, RotationHasNoGapAndRevocationEndsTokens) {
    auto rotated = daemon_->Iblctl({"--json", "token", "rotate", kLibA, "--grace", "3600"});
    ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
    const std::string fresh = Json(rotated.out)["token"].GetString();
    // During the grace period both work.
    EXPECT_EQ(Call("GET", "/v1/changes", token_a_)->status, 200);
    EXPECT_EQ(Call("GET", "/v1/changes", fresh)->status, 200);
    // A rotation without grace ends the others at once.
    auto again = daemon_->Iblctl({"--json", "token", "rotate", kLibA});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    const std::string newest = Json(again.out)["token"].GetString();
    ExpectProblem(Call("GET", "/v1/changes", token_a_), 401, "invalid-token");
    ExpectProblem(Call("GET", "/v1/changes", fresh), 401, "invalid-token");
    EXPECT_EQ(Call("GET", "/v1/changes", newest)->status, 200);

    auto human = daemon_->Iblctl({"token", "revoke", kLibA, "--all"});
    EXPECT_EQ(human.exit_code, 0) << human.err;
    EXPECT_NE(human.out.find("1 token(s) of NL-0000000101 revoked"), std::string::npos) << human.out;
    ExpectProblem(Call("GET", "/v1/changes", newest), 401, "invalid-token");
    EXPECT_EQ(Call("GET", "/v1/changes", token_b_)->status, 200);  // B's token is B's

    auto unknown = daemon_->Iblctl({"token", "revoke", kLibB, "--token-id", "999"});
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_NE(unknown.err.find("has no live token 999"), std::string::npos) << unknown.err;
    auto usage = daemon_->Iblctl({"token", "revoke", kLibB});
    EXPECT_EQ(usage.exit_code, 2) << usage.err;
    const auto tokens = Count("SELECT count(*) FROM library_token");
    for (const char* grace : {"-5", "99999999", "soon"}) {
        auto bad = daemon_->Iblctl({"token", "rotate", kLibB, "--grace", grace});
        EXPECT_EQ(bad.exit_code, 2) << grace << ": " << bad.err;
        EXPECT_NE(bad.err.find("--grace"), std::string::npos) << bad.err;
    }
    auto both = daemon_->Iblctl({"token", "revoke", kLibB, "--token-id", "1", "--all"});
    EXPECT_EQ(both.exit_code, 2) << both.err;
    EXPECT_EQ(Count("SELECT count(*) FROM library_token"), tokens);
    EXPECT_EQ(Count("SELECT count(*) FROM library_token WHERE library = 'NL-0000000102' AND revoked_at IS NULL"), 1);
    auto not_registered = daemon_->Iblctl({"token", "issue", "NL-0000000999"});
    EXPECT_EQ(not_registered.exit_code, 1);
    EXPECT_NE(not_registered.err.find("iblctl library add NL-0000000999"), std::string::npos) << not_registered.err;
}

TEST_F(PushApiTest, LibrariesAreListedAndCanBeDisabled) {
    auto dup = daemon_->Iblctl({"library", "add", kLibA, "--name", "Again"});
    EXPECT_EQ(dup.exit_code, 1);
    EXPECT_NE(dup.err.find("registered already"), std::string::npos) << dup.err;
    auto bad = daemon_->Iblctl({"library", "add", "XX-123", "--name", "Foreign"});
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.err.find("not a valid ISIL"), std::string::npos) << bad.err;

    ASSERT_EQ(Call("PUT", RecordPath(kLibA, "a1"), token_a_, Record("a1", "Titel", "", R"([{"barcode":"C1"}])"))->status,
              201);
    auto list = daemon_->Iblctl({"library", "list"});
    ASSERT_EQ(list.exit_code, 0) << list.err;
    EXPECT_NE(list.out.find("ISIL"), std::string::npos) << list.out;
    auto json = daemon_->Iblctl({"--json", "library", "list"});
    auto d = Json(json.out);
    ASSERT_TRUE(d.HasMember("libraries"));
    ASSERT_EQ(d["libraries"].Size(), 2u);
    const auto& a = d["libraries"][0];
    EXPECT_STREQ(a["isil"].GetString(), kLibA);
    EXPECT_EQ(a["records"].GetInt64(), 1);
    EXPECT_EQ(a["copies"].GetInt64(), 1);
    EXPECT_EQ(a["pushes"].GetInt64(), 1);
    EXPECT_STRNE(a["last_push_at"].GetString(), "");

    // The feed and the pushes, for the operator.
    auto feed = daemon_->Iblctl({"changes", "--since", "0"});
    ASSERT_EQ(feed.exit_code, 0) << feed.err;
    EXPECT_NE(feed.out.find("record  insert  NL-0000000101   a1"), std::string::npos) << feed.out;
    EXPECT_NE(feed.out.find("copy C1 of a1 -> available"), std::string::npos) << feed.out;
    auto feed_json = Json(daemon_->Iblctl({"--json", "changes", "--since", "1", "--limit", "5"}).out);
    EXPECT_EQ(feed_json["changes"].Size(), 1u);
    EXPECT_EQ(feed_json["head"].GetInt64(), 2);
    auto status = daemon_->Iblctl({"status"});
    EXPECT_NE(status.out.find("Change feed"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("NL-0000000101     1 pushes, last 20"), std::string::npos) << status.out;
    EXPECT_EQ(daemon_->Iblctl({"changes", "--since", "-4"}).exit_code, 1);

    ASSERT_EQ(daemon_->Iblctl({"library", "disable", kLibA}).exit_code, 0);
    ExpectProblem(Call("GET", "/v1/changes", token_a_), 403, "library-disabled");
    ASSERT_EQ(daemon_->Iblctl({"library", "enable", kLibA}).exit_code, 0);
    EXPECT_EQ(Call("GET", "/v1/changes", token_a_)->status, 200);
    EXPECT_EQ(Count("SELECT count(*) FROM audit_log WHERE action IN ('library.disable', 'library.enable')"), 2);
}

TEST_F(PushApiTest, ARecordIsCreatedReadUpdatedConditionallyAndDeleted) {
    const auto path = RecordPath(kLibA, "r%2F1");  // local id "r/1"
    auto created = Call("PUT", path, token_a_, Record("r/1", "De avonden", "9789023466772"));
    ASSERT_TRUE(created);
    EXPECT_EQ(created->status, 201) << created->body;
    EXPECT_EQ(created->headers["etag"], "\"1\"");
    EXPECT_EQ(created->headers["location"], "/v1/libraries/NL-0000000101/records/r%2F1");
    auto c = Json(created->body);
    EXPECT_STREQ(c["outcome"].GetString(), "inserted");

    auto read = Call("GET", path, token_a_);
    ASSERT_EQ(read->status, 200) << read->body;
    EXPECT_EQ(read->headers["etag"], "\"1\"");
    auto r = Json(read->body);
    EXPECT_STREQ(r["id"].GetString(), "r/1");
    EXPECT_STREQ(r["record"]["title"].GetString(), "De avonden");
    EXPECT_STREQ(r["isbns"][0].GetString(), "9789023466772");

    auto same = Call("PUT", path, token_a_, Record("r/1", "De avonden", "9789023466772"));
    EXPECT_EQ(same->status, 200);
    EXPECT_STREQ(Json(same->body)["outcome"].GetString(), "unchanged");

    auto updated = Call("PUT", path, token_a_, Record("r/1", "De avonden (herdruk)", "9789023466772"),
                        {{"If-Match", "\"1\""}});
    EXPECT_EQ(updated->status, 200) << updated->body;
    EXPECT_EQ(updated->headers["etag"], "\"2\"");

    // A writer that read version 1 loses: 412, the current ETag, nothing written.
    const auto before = Fingerprint();
    auto stale = Call("PUT", path, token_a_, Record("r/1", "Ander", "9789023466772"), {{"If-Match", "\"1\""}});
    ExpectProblem(stale, 412, "precondition-failed");
    EXPECT_EQ(stale->headers["etag"], "\"2\"");
    ExpectProblem(Call("PUT", path, token_a_, Record("r/1", "Ander"), {{"If-None-Match", "*"}}), 412,
                  "precondition-failed");
    ExpectProblem(Call("DELETE", path, token_a_, "", {{"If-Match", "\"7\""}}), 412, "precondition-failed");
    EXPECT_EQ(Fingerprint(), before);

    auto deleted = Call("DELETE", path, token_a_, "", {{"If-Match", "\"2\""}});
    EXPECT_EQ(deleted->status, 200) << deleted->body;
    EXPECT_STREQ(Json(deleted->body)["outcome"].GetString(), "deleted");
    ExpectProblem(Call("GET", path, token_a_), 410, "record-deleted");
    ExpectProblem(Call("DELETE", path, token_a_), 404, "not-found");
    ExpectProblem(Call("GET", RecordPath(kLibA, "nothing"), token_a_), 404, "not-found");
    ExpectProblem(Call("GET", RecordPath("NL-0000000999", "x"), token_a_), 404, "unknown-library");
    ExpectProblem(Call("GET", RecordPath("not-an-isil", "x"), token_a_), 400, "invalid-isil");

    // Each write that ran (the refused preconditions did not): one audit row
    // naming the token: create, unchanged, update, delete, the second delete.
    EXPECT_EQ(Count("SELECT count(*) FROM audit_log WHERE actor LIKE 'token:%'"), 5);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'record'"), 3);  // insert, update, delete
}

TEST_F(PushApiTest, ARetryWithTheSameIdempotencyKeyGetsTheFirstAnswerAndWritesNothing) {
    const auto path = RecordPath(kLibA, "k1");
    const auto body = Record("k1", "Titel", "", R"([{"barcode":"K1","status":"available"}])");
    auto first = Call("PUT", path, token_a_, body, {{"Idempotency-Key", "5f1c7a9e-0001"}});
    ASSERT_EQ(first->status, 201) << first->body;
    const auto after_first = Fingerprint();
    auto retry = Call("PUT", path, token_a_, body, {{"Idempotency-Key", "5f1c7a9e-0001"}});
    EXPECT_EQ(retry->status, 201);
    EXPECT_EQ(retry->body, first->body);
    EXPECT_EQ(retry->headers["idempotency-replayed"], "true");
    EXPECT_EQ(Fingerprint(), after_first);

    // The same key for something else is refused and changes nothing.
    auto other = Call("PUT", path, token_a_, Record("k1", "Andere titel"), {{"Idempotency-Key", "5f1c7a9e-0001"}});
    ExpectProblem(other, 422, "idempotency-key-reused");
    EXPECT_EQ(Fingerprint(), after_first);
    ExpectProblem(Call("PUT", path, token_a_, body, {{"Idempotency-Key", std::string(300, 'k')}}), 400,
                  "bad-idempotency-key");

    // Availability too: a retried update is applied once.
    const std::string upd = R"([{"barcode":"K1","status":"on_loan","due_date":"2026-12-24"}])";
    const auto avail = fmt::format("/v1/libraries/{}/availability", kLibA);
    auto a1 = Call("POST", avail, token_a_, upd, {{"Idempotency-Key", "avail-1"}});
    ASSERT_EQ(a1->status, 200) << a1->body;
    const auto after_avail = Fingerprint();
    auto a2 = Call("POST", avail, token_a_, upd, {{"Idempotency-Key", "avail-1"}});
    EXPECT_EQ(a2->body, a1->body);
    EXPECT_EQ(Fingerprint(), after_avail);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'holding' AND op = 'update'"), 1);
}

TEST_F(PushApiTest, ABatchWithBadItemsReportsEachByPositionAndWritesTheGoodOnes) {
    const std::string ndjson = Record("n1", "Een") + "\n" + Record("n2", "Twee") + "\n{\"id\":\"n3\",\n" +
                               R"({"id":"n4","title":"Vier","year":"1947"})" + "\n\n" + Record("n5", "Vijf") + "\n";
    const auto path = fmt::format("/v1/libraries/{}/records", kLibA);
    const auto before = Fingerprint();
    // All or nothing: refused as a whole.
    auto atomic = Call("POST", path + "?atomic=true", token_a_, ndjson, {}, "application/x-ndjson");
    ASSERT_TRUE(atomic);
    EXPECT_EQ(atomic->status, 422) << atomic->body;
    EXPECT_EQ(Fingerprint(), before);
    auto refused = Json(atomic->body);
    EXPECT_FALSE(refused["written"].GetBool());
    EXPECT_STREQ(refused["results"][0]["outcome"].GetString(), "not_written");

    auto mixed = Call("POST", path, token_a_, ndjson, {}, "application/x-ndjson");
    ASSERT_EQ(mixed->status, 200) << mixed->body;
    auto d = Json(mixed->body);
    const auto& res = d["results"];
    ASSERT_EQ(res.Size(), 5u);
    EXPECT_STREQ(res[0]["outcome"].GetString(), "inserted");
    EXPECT_EQ(res[2]["status"].GetInt(), 400);
    EXPECT_STREQ(res[2]["error"]["type"].GetString(), "urn:iblsync:problem:invalid-json");
    EXPECT_EQ(res[3]["status"].GetInt(), 422);
    EXPECT_STREQ(res[3]["error"]["pointer"].GetString(), "/3/year");
    EXPECT_EQ(res[4]["position"].GetInt(), 4);
    EXPECT_STREQ(res[4]["id"].GetString(), "n5");  // blank lines are skipped: positions count records
    EXPECT_EQ(d["inserted"].GetInt(), 3);
    EXPECT_EQ(d["invalid"].GetInt(), 2);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 3);

    // A JSON array works the same way; too many items is refused whole.
    auto array = Call("POST", path, token_a_, "[" + Record("n1", "Een") + "," + Record("n6", "Zes") + "]");
    ASSERT_EQ(array->status, 200) << array->body;
    EXPECT_STREQ(Json(array->body)["results"][1]["outcome"].GetString(), "inserted");
    std::string many = "[";
    for (int i = 0; i < 1001; ++i) many += (i ? "," : "") + Record(fmt::format("m{}", i), "T");
    many += "]";
    auto big = Call("POST", path, token_a_, many);
    // 1001 records: more than api.max_batch_items (1000).
    ASSERT_TRUE(big);
    EXPECT_EQ(big->status, 413) << big->body;
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 4);
}

TEST_F(PushApiTest, AvailabilityUpdatesLastWriterWinsByTheLibraryClock) {
    ASSERT_EQ(Call("PUT", RecordPath(kLibA, "v1"), token_a_,
                   Record("v1", "Titel", "", R"([{"barcode":"B1"},{"barcode":"B2"}])"))
                  ->status,
              201);
    const auto path = fmt::format("/v1/libraries/{}/availability", kLibA);
    auto newer = Call("POST", path, token_a_,
                      R"([{"barcode":"B1","status":"on_loan","due_date":"2026-12-24","changed_at":"2026-12-04T10:00:00+01:00"}])");
    ASSERT_EQ(newer->status, 200) << newer->body;
    EXPECT_STREQ(Json(newer->body)["results"][0]["outcome"].GetString(), "updated");
    // An older update arriving later is ignored, and the answer says so.
    auto older = Call("POST", path, token_a_,
                      R"([{"barcode":"B1","status":"available","changed_at":"2026-12-04T08:59:59Z"}])");
    auto o = Json(older->body);
    EXPECT_STREQ(o["results"][0]["outcome"].GetString(), "stale") << older->body;
    EXPECT_STREQ(o["results"][0]["stored_changed_at"].GetString(), "2026-12-04T09:00:00.000000Z");
    EXPECT_EQ(schema_.Query1("SELECT status FROM holding WHERE barcode = 'B1'"), "on_loan");

    // In one batch: the later change time counts, wherever it stands; unknown
    // copies and bad entries are reported by position.
    const auto item_b2 = schema_.Query1("SELECT id FROM holding WHERE barcode = 'B2'");
    auto batch = Call("POST", path, token_a_,
                      fmt::format(R"([{{"item_id":{0},"status":"reserved","changed_at":"2026-12-04T12:00:00Z"}},)"
                                  R"({{"item_id":{0},"status":"missing","changed_at":"2026-12-04T11:00:00Z"}},)"
                                  R"({{"barcode":"NOPE","status":"available"}},)"
                                  R"({{"barcode":"B1","status":"lost"}},)"
                                  R"({{"barcode":"B1","item_id":1,"status":"available"}}])",
                                  item_b2));
    ASSERT_EQ(batch->status, 200) << batch->body;
    auto b = Json(batch->body);
    EXPECT_STREQ(b["results"][0]["outcome"].GetString(), "updated");
    EXPECT_STREQ(b["results"][1]["outcome"].GetString(), "superseded");
    EXPECT_STREQ(b["results"][2]["outcome"].GetString(), "not_found");
    EXPECT_STREQ(b["results"][3]["error"]["pointer"].GetString(), "/3/status");
    EXPECT_EQ(b["results"][4]["status"].GetInt(), 422);
    EXPECT_EQ(schema_.Query1("SELECT status FROM holding WHERE barcode = 'B2'"), "reserved");

    // All or nothing: an unknown copy fails the batch, nothing is written.
    const auto before = Fingerprint();
    auto atomic = Call("POST", path + "?atomic=true", token_a_,
                       R"([{"barcode":"B1","status":"in_transit"},{"barcode":"NOPE","status":"available"}])");
    EXPECT_EQ(atomic->status, 422) << atomic->body;
    EXPECT_EQ(Fingerprint(), before);
    EXPECT_EQ(schema_.Query1("SELECT status FROM holding WHERE barcode = 'B1'"), "on_loan");

    // The change log holds each applied update once.
    EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'holding' AND op = 'update'"), 2);
    EXPECT_EQ(schema_.Query1("SELECT string_agg(seq::text, ',' ORDER BY seq) = string_agg(n::text, ',' ORDER BY n)"
                             " FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM change_log) s"),
              "t");  // gap-free from 1
}

TEST_F(PushApiTest, TheChangeFeedPagesLongPollsAndRefusesCursorsItNeverIssued) {
    for (int i = 0; i < 3; ++i)
        ASSERT_EQ(Call("PUT", RecordPath(kLibA, fmt::format("f{}", i)), token_a_, Record(fmt::format("f{}", i), "T"))
                      ->status,
                  201);
    auto page = Call("GET", "/v1/changes?since=0&limit=2", token_b_);
    ASSERT_EQ(page->status, 200) << page->body;
    auto p = Json(page->body);
    ASSERT_EQ(p["changes"].Size(), 2u);
    EXPECT_EQ(p["changes"][0]["seq"].GetInt64(), 1);
    EXPECT_EQ(p["next_since"].GetInt64(), 2);
    EXPECT_EQ(p["head"].GetInt64(), 3);
    auto rest = Json(Call("GET", "/v1/changes?since=2&limit=2", token_b_)->body);
    ASSERT_EQ(rest["changes"].Size(), 1u);
    EXPECT_STREQ(rest["changes"][0]["href"].GetString(), "/v1/libraries/NL-0000000101/records/f2");

    auto beyond = Call("GET", "/v1/changes?since=99", token_b_);
    ExpectProblem(beyond, 409, "since-beyond-head");
    EXPECT_NE(beyond->body.find("\"head\":3"), std::string::npos) << beyond->body;
    ExpectProblem(Call("GET", "/v1/changes?since=-1", token_b_), 400, "bad-parameter");
    ExpectProblem(Call("GET", "/v1/changes?since=1&since=2", token_b_), 400, "bad-parameter");
    ExpectProblem(Call("GET", "/v1/changes?from=1", token_b_), 400, "bad-parameter");
    ExpectProblem(Call("GET", "/v1/changes?limit=0", token_b_), 400, "bad-parameter");
    ExpectProblem(Call("POST", "/v1/changes", token_b_, "{}"), 405, "method-not-allowed");

    // Nothing new: an empty page once the wait is over.
    auto empty = Json(Call("GET", "/v1/changes?since=3&wait=1", token_b_)->body);
    EXPECT_EQ(empty["changes"].Size(), 0u);
    EXPECT_EQ(empty["next_since"].GetInt64(), 3);

    // A long poll returns with the change that a write makes meanwhile.
    std::optional<HttpReply> polled;
    std::thread poll([&] { polled = Call("GET", "/v1/changes?since=3&wait=30", token_b_); });
    std::this_thread::sleep_for(300ms);
    ASSERT_EQ(Call("PUT", RecordPath(kLibA, "f9"), token_a_, Record("f9", "T"))->status, 201);
    poll.join();
    ASSERT_TRUE(polled);
    auto woke = Json(polled->body);
    ASSERT_EQ(woke["changes"].Size(), 1u) << polled->body;
    EXPECT_STREQ(woke["changes"][0]["id"].GetString(), "f9");
}

TEST_F(PushApiTest, AFeedReadFromZeroAndOneFollowedLiveEndTheSame) {
    ASSERT_EQ(Call("PUT", RecordPath(kLibA, "s1"), token_a_,
                   Record("s1", "Titel", "", R"([{"barcode":"S1"},{"barcode":"S2"},{"barcode":"S3"}])"))
                  ->status,
              201);
    // A follower applies what it reads (copy -> status, version) while the
    // library keeps pushing; afterwards a consumer reads everything from 0.
    using State = std::map<std::string, std::pair<std::string, int>>;
    auto apply = [](State& s, const rapidjson::Value& changes) {
        for (const auto& c : changes.GetArray()) {
            if (std::string(c["entity"].GetString()) != "holding") continue;
            const auto& h = c["holding"];
            if (h.IsNull()) s.erase(c["barcode"].GetString());
            else {
                auto& slot = s[c["barcode"].GetString()];
                if (h["version"].GetInt() >= slot.second) slot = {h["status"].GetString(), h["version"].GetInt()};
            }
        }
    };
    std::atomic<bool> done{false};
    State live;
    long long live_cursor = 0;
    std::thread follower([&] {
        for (int round = 0; round < 500; ++round) {
            const bool last = done.load();
            auto r = Call("GET", fmt::format("/v1/changes?since={}&wait=1", live_cursor), token_b_);
            if (!r || r->status != 200) continue;
            auto d = Json(r->body);
            apply(live, d["changes"]);
            live_cursor = d["next_since"].GetInt64();
            if (last && d["changes"].Empty()) break;
        }
    });
    const char* statuses[] = {"on_loan", "available", "reserved", "in_transit", "missing"};
    for (int i = 0; i < 30; ++i) {
        auto r = Call("POST", fmt::format("/v1/libraries/{}/availability", kLibA), token_a_,
                      fmt::format(R"([{{"barcode":"S{}","status":"{}"}}])", 1 + i % 3, statuses[i % 5]));
        ASSERT_EQ(r->status, 200) << r->body;
    }
    done = true;
    follower.join();
    State replay;
    long long cursor = 0;
    while (true) {
        auto d = Json(Call("GET", fmt::format("/v1/changes?since={}&limit=7", cursor), token_b_)->body);
        if (d["changes"].Empty()) break;
        apply(replay, d["changes"]);
        cursor = d["next_since"].GetInt64();
    }
    EXPECT_EQ(live, replay);
    EXPECT_EQ(cursor, live_cursor);
    for (const auto& [barcode, st] : replay)
        EXPECT_EQ(schema_.Query1(fmt::format("SELECT status FROM holding WHERE barcode = '{}'", barcode)), st.first)
            << barcode;
    EXPECT_EQ(replay.size(), 3u);
}

TEST_F(PushApiTest, AWorkShowsAvailabilityAcrossLibraries) {
    ASSERT_EQ(Call("PUT", RecordPath(kLibA, "w1"), token_a_,
                   Record("w1", "De avonden", "9789023466772", R"([{"barcode":"A1"},{"barcode":"A2","status":"on_loan"}])"))
                  ->status,
              201);
    auto b = Call("PUT", RecordPath(kLibB, "x7"), token_b_,
                  Record("x7", "Avonden, De", "90-234-6677-2", R"([{"barcode":"Z1","status":"on_loan"}])"));
    ASSERT_EQ(b->status, 201) << b->body;
    const long long work = Json(b->body)["work_id"].GetInt64();
    auto w = Call("GET", fmt::format("/v1/works/{}", work), token_a_);
    ASSERT_EQ(w->status, 200) << w->body;
    auto d = Json(w->body);
    ASSERT_EQ(d["records"].Size(), 2u) << w->body;  // the ISBN-10 and ISBN-13 are one edition
    ASSERT_EQ(d["availability"].Size(), 2u);
    EXPECT_STREQ(d["availability"][0]["library"].GetString(), kLibA);
    EXPECT_EQ(d["availability"][0]["available"].GetInt(), 1);
    EXPECT_EQ(d["availability"][1]["available"].GetInt(), 0);
    ExpectProblem(Call("GET", "/v1/works/99999", token_a_), 404, "not-found");
    ExpectProblem(Call("GET", "/v1/works/abc", token_a_), 400, "bad-parameter");
    auto holdings = Json(Call("GET", RecordPath(kLibA, "w1") + "/holdings", token_b_)->body);
    EXPECT_EQ(holdings["holdings"].Size(), 2u);
}

TEST_F(PushApiTest, HostileInputGetsAClearErrorAndChangesNothing) {
    const auto path = RecordPath(kLibA, "h1");
    const auto before = Fingerprint();
    // Invalid UTF-8 inside a string.
    ExpectProblem(Call("PUT", path, token_a_, "{\"id\":\"h1\",\"title\":\"caf\xC3\x28\"}"), 400, "invalid-json");
    // Nesting far beyond any record.
    ExpectProblem(Call("PUT", path, token_a_, std::string(100000, '[') + std::string(100000, ']')), 400,
                  "json-too-deep");
    ExpectProblem(Call("POST", fmt::format("/v1/libraries/{}/availability", kLibA), token_a_,
                       std::string(5000, '[') + std::string(5000, ']')),
                  400, "json-too-deep");
    // A MARCXML record with a DTD and entities (a "billion laughs").
    const std::string bomb =
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>"
        "<record xmlns=\"http://www.loc.gov/MARC21/slim\"><leader>00000nam a2200000 a 4500</leader>"
        "<controlfield tag=\"001\">h1</controlfield><datafield tag=\"245\" ind1=\"0\" ind2=\"0\">"
        "<subfield code=\"a\">&b;</subfield></datafield></record>";
    ExpectProblem(Call("PUT", path, token_a_, bomb, {}, "application/marcxml+xml"), 400, "invalid-marcxml");
    ExpectProblem(Call("PUT", path, token_a_, "<record><unclosed>", {}, "application/marcxml+xml"), 400,
                  "invalid-marcxml");
    ExpectProblem(Call("PUT", path, token_a_, "id=h1", {}, "application/x-www-form-urlencoded"), 415,
                  "unsupported-media-type");
    auto wrong_id = Call("PUT", path, token_a_, Record("other", "T"));
    ExpectProblem(wrong_id, 422, "schema-violation");
    EXPECT_NE(wrong_id->body.find("\"pointer\":\"/id\""), std::string::npos) << wrong_id->body;
    ExpectProblem(Call("PUT", path, token_a_, R"({"id":"h1","title":"T","extra":1})"), 422, "schema-violation");
    ExpectProblem(Call("PUT", RecordPath(kLibA, "h%zz"), token_a_, Record("h1", "T")), 400, "bad-target");
    // 100 MB announced: refused from the headers, the body is never read.
    RawConnection c(daemon_->port());
    ASSERT_TRUE(c.Send(fmt::format("PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n"
                                   "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
                                   path, token_a_, 100 << 20)));
    auto huge = c.Read();
    ExpectProblem(huge, 413, "body-too-large");
    EXPECT_EQ(Fingerprint(), before);
    EXPECT_EQ(HttpGet(daemon_->port(), "/healthz")->status, 200);
    // And a good record still goes in.
    EXPECT_EQ(Call("PUT", path, token_a_, Record("h1", "T"))->status, 201);
}

TEST_F(PushApiTest, ATokenOverItsRateIsToldWhenToComeBack) {
    OwnNode node([](NodeConfig& c) { c.api_toml = "rate_per_second = 1\nrate_burst = 2\n"; });
    const std::string& token = node.token;
    std::vector<int> statuses;
    std::string retry_after;
    for (int i = 0; i < 4; ++i) {
        auto r = HttpCall(node.port(), "GET", "/v1/changes", {{"Authorization", "Bearer " + token}});
        ASSERT_TRUE(r);
        statuses.push_back(r->status);
        if (r->status == 429) {
            retry_after = r->headers["retry-after"];
            EXPECT_NE(r->body.find("urn:iblsync:problem:rate-limited"), std::string::npos);
        }
    }
    EXPECT_EQ(statuses[0], 200);
    EXPECT_EQ(statuses[1], 200);
    EXPECT_EQ(statuses[3], 429);
    EXPECT_EQ(retry_after, "1");
}

TEST_F(PushApiTest, OldChangesLeaveTheFrontOfTheFeedAndReadersBehindAreToldSo) {
    for (int i = 0; i < 3; ++i)
        ASSERT_EQ(Call("PUT", RecordPath(kLibA, fmt::format("r{}", i)), token_a_, Record(fmt::format("r{}", i), "T"))
                      ->status,
                  201);
    ASSERT_EQ(Call("PUT", RecordPath(kLibA, "r9"), token_a_, Record("r9", "T"), {{"Idempotency-Key", "old-key"}})
                  ->status,
              201);
    ASSERT_EQ(Count("SELECT count(*) FROM change_log"), 4);
    // Changes 1 and 3 are past the retention, 2 is not: only 1 may go, or
    // the feed would have a hole at 3.
    schema_.Exec("UPDATE change_log SET changed_at = now() - interval '100 days' WHERE seq IN (1, 3)");
    schema_.Exec("UPDATE idempotency_key SET created_at = now() - interval '25 hours'");
    // A reload applies the retention at once (keep_changes_days = 90, keep_idempotency_hours = 24).
    ASSERT_EQ(daemon_->Iblctl({"reload"}).exit_code, 0);
    ASSERT_TRUE(daemon_->WaitForLog("retention pruned changes=1 idempotency_keys=1", 10s)) << daemon_->Log();
    EXPECT_EQ(schema_.Query1("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM change_log"), "2,3,4");

    auto expired = Call("GET", "/v1/changes?since=0", token_b_);
    ExpectProblem(expired, 410, "changes-expired");
    EXPECT_NE(expired->body.find("\"oldest\":2"), std::string::npos) << expired->body;
    auto from_oldest = Json(Call("GET", "/v1/changes?since=1", token_b_)->body);
    ASSERT_EQ(from_oldest["changes"].Size(), 3u);
    EXPECT_EQ(from_oldest["changes"][0]["seq"].GetInt64(), 2);
    // The forgotten key is new again: the same request writes (an update now).
    auto again = Call("PUT", RecordPath(kLibA, "r9"), token_a_, Record("r9", "T2"), {{"Idempotency-Key", "old-key"}});
    EXPECT_EQ(again->status, 200) << again->body;
    EXPECT_EQ(again->headers.count("idempotency-replayed"), 0u);
}

TEST_F(PushApiTest, EveryLimitHasItsOwnProblem) {
    OwnNode node([](NodeConfig& c) { c.api_toml = "max_batch_items = 2\nmax_record_bytes = 1024\n"; });
    const std::string& token = node.token;
    const TestSchema& fresh = node.schema;
    auto call = [&](const std::string& method, const std::string& path, const std::string& body,
                    Headers headers = {}) {
        headers.emplace_back("Authorization", "Bearer " + token);
        headers.emplace_back("Content-Type", "application/json");
        return HttpCall(node.port(), method, path, headers, body);
    };
    const auto fingerprint = [&] {
        return fresh.Query1("SELECT (SELECT count(*) FROM bib_record) || '/' || (SELECT count(*) FROM change_log)"
                            " || '/' || (SELECT count(*) FROM audit_log WHERE actor LIKE 'token:%')");
    };
    const auto before = fingerprint();
    const std::string records = fmt::format("/v1/libraries/{}/records", kLibA);
    ExpectProblem(call("POST", records, "[" + Record("a", "T") + "," + Record("b", "T") + "," + Record("c", "T") + "]"),
                  413, "batch-too-large");
    ExpectProblem(call("POST", fmt::format("/v1/libraries/{}/availability", kLibA),
                       R"([{"barcode":"1","status":"available"},{"barcode":"2","status":"available"},)"
                       R"({"barcode":"3","status":"available"}])"),
                  413, "batch-too-large");
    ExpectProblem(call("PUT", records + "/big", Record("big", std::string(2000, 'x'))), 413, "record-too-large");
    ExpectProblem(call("PUT", records + "/a", Record("a", "T"), {{"If-None-Match", "\"3\""}}), 400,
                  "bad-precondition");
    auto anonymous = HttpCall(node.port(), "GET", "/v1/changes");
    ExpectProblem(anonymous, 401, "unauthorized");
    EXPECT_EQ(anonymous->headers.count("www-authenticate"), 1u);
    EXPECT_EQ(fingerprint(), before);
    EXPECT_EQ(call("PUT", records + "/a", Record("a", "T"))->status, 201);
}

TEST_F(PushApiTest, ASlowLorisOnTheApiIsCutOffAndWritesNothing) {
    OwnNode node([](NodeConfig& c) { c.request_timeout_seconds = 2; });
    const std::string& token = node.token;
    const TestSchema& fresh = node.schema;
    const std::string body = Record("slow", "Langzaam");
    // Headers complete, then the body a byte every 200 ms: it would take
    // far longer than the request timeout.
    RawConnection slow(node.port());
    ASSERT_TRUE(slow.Send(fmt::format("PUT /v1/libraries/{}/records/slow HTTP/1.1\r\nHost: x\r\n"
                                      "Authorization: Bearer {}\r\nContent-Type: application/json\r\n"
                                      "Content-Length: {}\r\n\r\n",
                                      kLibA, token, body.size())));
    const auto t0 = std::chrono::steady_clock::now();
    bool cut = false;
    for (std::size_t i = 0; i < body.size() && !cut; ++i) {
        cut = !slow.Send(body.substr(i, 1)) || slow.WaitClosed(200ms);
        if (i == 3) {  // meanwhile the node serves others
            auto health = HttpGet(node.port(), "/healthz");
            ASSERT_TRUE(health);
            EXPECT_EQ(health->status, 200);
        }
    }
    EXPECT_TRUE(cut) << "the slow request was never cut off";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    EXPECT_EQ(fresh.Query1("SELECT count(*) FROM bib_record"), "0");
    EXPECT_EQ(fresh.Query1("SELECT count(*) FROM change_log"), "0");
    EXPECT_NE(HttpGet(node.port(), "/metrics")->body.find("iblsync_http_rejected_total{reason=\"timeout\"} 1"),
              std::string::npos);
}

}  // namespace
}  // namespace iblsync::test

