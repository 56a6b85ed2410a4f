// The ISO 18626 endpoint (POST /iso18626) of a real iblsyncd, over loopback
// HTTP, on a real PostgreSQL: requests taken for the node's own libraries,
// messages about them applied through the state table, every answer a
// confirmation that validates against the v1.2 XSD, replays recognised, and
// hostile input refused with the exact error and nothing changed.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "protocols/iso18626.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"
#include "tests/unit/protocols/xml_schema.hpp"

namespace iblsync::test {
namespace {

namespace iso = protocols::iso18626;
using namespace std::chrono_literals;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kLibA = "NL-0000000201";    // requester, of this node
constexpr const char* kLibB = "NL-0000000202";    // supplier, of this node
constexpr const char* kLibC = "NL-0000000203";    // of another POI node
constexpr const char* kOtherPoi = "NL-0000000299";

iso::Time At(int second) {
    return iso::Time{std::chrono::sys_days{std::chrono::year{2026} / 12 / 6}} + std::chrono::hours(9) +
           std::chrono::seconds(second);
}

iso::Header Header(const std::string& requester, const std::string& supplier, const std::string& id, int second) {
    iso::Header h;
    h.requesting_agency = iso::AgencyId::Isil(requester);
    h.supplying_agency = iso::AgencyId::Isil(supplier);
    h.requesting_agency_request_id = id;
    h.timestamp = At(second);
    return h;
}

std::string RequestXml(const std::string& requester, const std::string& supplier, const std::string& id,
                       int second = 0) {
    iso::Request r;
    r.header = Header(requester, supplier, id, second);
    r.bibliographic_info.title = "De avonden";
    r.bibliographic_info.author = "Reve, Gerard";
    r.bibliographic_info.item_ids.push_back({"9789023476009", {"ISBN", ""}});
    iso::ServiceInfo service;
    service.service_type = iso::ServiceType::kLoan;
    r.service_info = service;
    iso::PatronInfo patron;
    patron.patron_id = "p-4711";
    r.patron_info = patron;
    return iso::Write(r);
}

std::string SupplierXml(const std::string& requester, const std::string& supplier, const std::string& id,
                        int second, iso::ReasonForMessage reason, iso::Status status,
                        std::optional<bool> answer = {}) {
    iso::SupplyingAgencyMessage m;
    m.header = Header(requester, supplier, id, second);
    m.message_info.reason = reason;
    m.message_info.answer_yes_no = answer;
    m.status_info.status = status;
    m.status_info.last_change = At(second);
    return iso::Write(m);
}

std::string ActionXml(const std::string& requester, const std::string& supplier, const std::string& id, int second,
                      iso::Action action) {
    iso::RequestingAgencyMessage m;
    m.header = Header(requester, supplier, id, second);
    m.action = action;
    return iso::Write(m);
}

// What a confirmation said.
struct Confirmed {
    bool ok = false;
    std::string error_type, error_value;
};

class Iso18626Test : public ::testing::Test {
protected:
    void SetUp() override {
        NodeConfig cfg;
        cfg.conninfo = schema_.conninfo();
        daemon_ = std::make_unique<DaemonProcess>(dir_, cfg);
        ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
        for (const char* lib : {kLibA, kLibB}) Add({lib, "--province", "NL-GE"});
        Add({kOtherPoi, "--province", "NL-UT"});
        Add({kLibC, "--province", "NL-UT", "--poi", kOtherPoi});
        token_a_ = Issue(kLibA);
        token_b_ = Issue(kLibB);
        token_poi_ = Issue(kOtherPoi);
    }

    void Add(std::vector<std::string> args) {
        const std::string isil = args.front();
        args.insert(args.begin(), {"library", "add"});
        args.insert(args.begin() + 3, {"--name", "Bibliotheek " + isil});
        auto r = daemon_->Iblctl(args);
        ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    }

    std::string Issue(const std::string& lib) {
        auto r = daemon_->Iblctl({"--json", "token", "issue", lib, "--label", "test"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        auto at = r.out.find("\"token\":\"");
        return at == std::string::npos ? "" : r.out.substr(at + 9, r.out.find('"', at + 9) - at - 9);
    }

    std::optional<HttpReply> Post(const std::string& token, const std::string& body,
                                  const std::string& type = "application/xml", const std::string& method = "POST") {
        Headers h{{"Content-Type", type}};
        if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
        return HttpCall(daemon_->port(), method, "/iso18626", h, body);
    }

    // Posts a message and reads the confirmation, which must be valid v1.2.
    Confirmed Send(const std::string& token, const std::string& body) {
        auto reply = Post(token, body);
        Confirmed c;
        if (!reply) {
            ADD_FAILURE() << "no answer";
            return c;
        }
        EXPECT_EQ(reply->status, 200) << reply->body;
        EXPECT_EQ(reply->headers["content-type"], "application/xml");
        std::string lint;
        EXPECT_EQ(testing::Xmllint(testing::SchemaDir() + "/iso18626/ISO-18626-v1_2.xsd", reply->body, lint), 0)
            << lint << reply->body;
        auto parsed = iso::Parse(reply->body);
        auto* p = std::get_if<iso::Parsed>(&parsed);
        if (!p) {
            ADD_FAILURE() << "confirmation unreadable: " << reply->body;
            return c;
        }
        auto fill = [&](const auto& conf) {
            c.ok = conf.header.ok;
            if (conf.error) {
                c.error_type = iso::ToString(conf.error->type);
                c.error_value = conf.error->value;
            }
        };
        if (auto* r = std::get_if<iso::RequestConfirmation>(&p->message)) fill(*r);
        else if (auto* s = std::get_if<iso::SupplyingAgencyMessageConfirmation>(&p->message)) fill(*s);
        else if (auto* q = std::get_if<iso::RequestingAgencyMessageConfirmation>(&p->message)) fill(*q);
        else ADD_FAILURE() << "not a confirmation: " << reply->body;
        return c;
    }

    // Everything a message could change.
    std::string Fingerprint() const {
        return schema_.Query1(
            "SELECT (SELECT count(*) FROM ibl_request) || '/' || (SELECT count(*) FROM ibl_event) || '/' || "
            "coalesce((SELECT string_agg(concat_ws(',', role, state, cancel_pending, renew_pending, received, "
            "shipped_return, conditional, supplier_request_id, due_date, updated_at), ';' ORDER BY id) "
            "FROM ibl_request), '')");
    }

    std::string State(const std::string& role, const std::string& id) const {
        return schema_.Query1(fmt::format("SELECT state FROM ibl_request WHERE role = '{}' AND request_id = '{}'",
                                          role, id));
    }

    // A request this node's library A sent to B, as the requester side keeps it.
    void Sent(const std::string& id) const {
        schema_.Exec(fmt::format(
            "INSERT INTO ibl_request (role, requesting_agency, request_id, supplying_agency, state, service_type) "
            "VALUES ('requester', '{}', '{}', '{}', 'Sent', 'Loan')",
            kLibA, id, kLibB));
    }

    TestSchema schema_;
    TempDir dir_;
    std::unique_ptr<DaemonProcess> daemon_;
    std::string token_a_, token_b_, token_poi_;
};

TEST_F(Iso18626Test, ARequestForOwnLibraryIsTakenStoredAndConfirmed) {
    auto c = Send(token_a_, RequestXml(kLibA, kLibB, "req-1"));
    EXPECT_TRUE(c.ok) << c.error_type << " " << c.error_value;
    EXPECT_EQ(State("supplier", "req-1"), "Sent");
    EXPECT_EQ(schema_.Query1("SELECT concat_ws('|', requesting_agency, supplying_agency, service_type, title, isbn, "
                             "patron_ref) FROM ibl_request"),
              fmt::format("{}|{}|Loan|De avonden|9789023476009|p-4711", kLibA, kLibB));
    EXPECT_EQ(schema_.Query1("SELECT concat_ws('|', direction, kind, state_after, body LIKE '%De avonden%') "
                             "FROM ibl_event"),
              "in|request|Sent|t");
}

TEST_F(Iso18626Test, ARequestIsStoredWithoutThePatronsNameOrAddress) {
    auto parsed = iso::Parse(RequestXml(kLibA, kLibB, "req-p"));
    ASSERT_TRUE(std::holds_alternative<iso::Parsed>(parsed));
    auto request = std::get<iso::Request>(std::get<iso::Parsed>(parsed).message);
    request.patron_info->surname = "Jansen";
    request.patron_info->given_name = "Marieke";
    request.patron_info->addresses.push_back(iso::ElectronicAddress{{"Email", ""}, "m.jansen@example.org"});
    ASSERT_TRUE(Send(token_a_, iso::Write(request)).ok);
    EXPECT_EQ(schema_.Query1("SELECT count(*) FROM ibl_event WHERE body LIKE '%Jansen%' OR body LIKE '%Marieke%' "
                             "OR body LIKE '%example.org%'"),
              "0");
    EXPECT_EQ(schema_.Query1("SELECT count(*) FROM ibl_event WHERE body LIKE '%<ill:patronId>p-4711</ill:patronId>%'"),
              "1");
}

TEST_F(Iso18626Test, ARequestDeliveredTwiceIsConfirmedTwiceAndStoredOnce) {
    const auto body = RequestXml(kLibA, kLibB, "req-2");
    ASSERT_TRUE(Send(token_a_, body).ok);
    const auto before = Fingerprint();
    auto again = Send(token_a_, body);
    EXPECT_TRUE(again.ok) << again.error_value;
    EXPECT_EQ(Fingerprint(), before);
    EXPECT_EQ(schema_.Query1("SELECT count(*) FROM ibl_event"), "1");
}

TEST_F(Iso18626Test, ANewRequestUnderATakenIdIsRefused) {
    ASSERT_TRUE(Send(token_a_, RequestXml(kLibA, kLibB, "req-3", 0)).ok);
    const auto before = Fingerprint();
    auto c = Send(token_a_, RequestXml(kLibA, kLibB, "req-3", 5));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_type, "UnrecognisedDataValue");
    EXPECT_EQ(c.error_value, fmt::format("requestingAgencyRequestId: req-3 already names a request of {} to {}",
                                         kLibA, kLibB));
    EXPECT_EQ(Fingerprint(), before);
}

TEST_F(Iso18626Test, AgenciesThatAreNotOursOrUnknownAreRefused) {
    const auto before = Fingerprint();
    struct Case {
        std::string body, value;
    };
    const std::vector<Case> cases = {
        {RequestXml(kLibA, kLibC, "r1"),
         fmt::format("supplyingAgencyId: {} is not a library served by this node", kLibC)},
        {RequestXml(kLibA, "NL-0000009999", "r2"),
         "supplyingAgencyId: NL-0000009999 is not a library served by this node"},
        {RequestXml("NL-0000009998", kLibB, "r3"),
         "requestingAgencyId: NL-0000009998 is not a library of this network"},
        {RequestXml(kLibA, "not an isil", "r4"), "supplyingAgencyId: not an isil is not an ISIL"},
        {RequestXml(kLibA, kLibA, "r5"), "supplyingAgencyId: a library cannot lend to itself"},
    };
    for (const auto& k : cases) {
        auto c = Send(token_a_, k.body);
        EXPECT_FALSE(c.ok) << k.value;
        EXPECT_EQ(c.error_type, "UnrecognisedDataValue") << k.value;
        EXPECT_EQ(c.error_value.substr(0, k.value.size()), k.value);
    }
    // An empty request id is a mandatory element left empty: the reader refuses it.
    auto c = Send(token_a_, RequestXml(kLibA, kLibB, ""));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_type, "UnrecognisedDataValue");
    EXPECT_EQ(c.error_value.rfind("/ISO18626Message/request/header/requestingAgencyRequestId", 0), 0u)
        << c.error_value;
    EXPECT_EQ(Fingerprint(), before);
}

TEST_F(Iso18626Test, ASenderSpeaksOnlyForItsOwnLibraryOrThroughItsPoi) {
    const auto before = Fingerprint();
    auto c = Send(token_b_, RequestXml(kLibA, kLibB, "r6"));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_value, fmt::format("requestingAgencyId: the token used belongs to {}, which does not send for {}",
                                         kLibB, kLibA));
    EXPECT_EQ(Fingerprint(), before);
    // The POI node of library C sends for it.
    EXPECT_TRUE(Send(token_poi_, RequestXml(kLibC, kLibB, "r7")).ok);
    EXPECT_EQ(State("supplier", "r7"), "Sent");

    for (const std::string& token : {std::string(), std::string("iblt_wrong"), token_a_ + "x"}) {
        const auto now = Fingerprint();
        auto reply = Post(token, RequestXml(kLibA, kLibB, "r8"));
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->status, 401) << token;
        EXPECT_EQ(reply->headers["content-type"], "application/problem+json");
        EXPECT_EQ(Fingerprint(), now);
    }
}

TEST_F(Iso18626Test, HostileAndMalformedBodiesChangeNothing) {
    ASSERT_TRUE(Send(token_a_, RequestXml(kLibA, kLibB, "base")).ok);
    const auto before = Fingerprint();
    // Not ISO 18626 at all, or unreadable: no confirmation can answer it.
    const std::string bomb =
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">"
        "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;\">]><ISO18626Message "
        "xmlns=\"http://illtransactions.org/2013/iso18626\" version=\"1.2\"><request>&c;</request></ISO18626Message>";
    // Invalid UTF-8 inside a good message: refused before it is read.
    auto bad_utf8 = RequestXml(kLibA, kLibB, "utf");
    bad_utf8.replace(bad_utf8.find("De avonden"), 2, "\xC3\x28");
    for (const std::string& body : {std::string("not xml"), std::string("<a><b></a>"), bomb,
                                    std::string("<html><body>hello</body></html>"), bad_utf8}) {
        auto reply = Post(token_a_, body);
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->status, 400) << body << reply->body;
        EXPECT_EQ(reply->headers["content-type"], "application/problem+json");
    }
    // A request whose header is missing: an ERROR confirmation, BadlyFormedMessage.
    auto c = Send(token_a_,
                  "<ISO18626Message xmlns=\"http://illtransactions.org/2013/iso18626\" version=\"1.2\"><request>"
                  "<bibliographicInfo><title>x</title></bibliographicInfo></request></ISO18626Message>");
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_type, "BadlyFormedMessage");
    // An unknown status value.
    auto bad_status = SupplierXml(kLibA, kLibB, "base", 1, iso::ReasonForMessage::kStatusChange,
                                  iso::Status::kLoaned);
    bad_status.replace(bad_status.find(">Loaned<"), 8, ">Lent<");
    c = Send(token_b_, bad_status);
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_type, "UnrecognisedDataValue");
    // Transport errors.
    auto reply = Post(token_a_, RequestXml(kLibA, kLibB, "t1"), "application/json");
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 415);
    reply = Post(token_a_, "", "application/xml", "GET");
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 405);
    EXPECT_EQ(reply->headers["allow"], "POST");
    reply = Post(token_a_, std::string(iso::kMaxMessageBytes + 1, ' '));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 413);
    // A confirmation sent as a message.
    auto request = iso::Parse(RequestXml(kLibA, kLibB, "c1"));
    ASSERT_TRUE(std::holds_alternative<iso::Parsed>(request));
    reply = Post(token_a_, iso::Write(iso::ConfirmationOf(std::get<iso::Parsed>(request).message, At(0), At(1))));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 400);
    EXPECT_EQ(Fingerprint(), before);
}

TEST_F(Iso18626Test, SupplierMessagesMoveTheRequestersRequestAndRefusedOnesChangeNothing) {
    Sent("out-1");
    using R = iso::ReasonForMessage;
    using S = iso::Status;
    auto c = Send(token_b_, SupplierXml(kLibA, kLibB, "out-1", 1, R::kRequestResponse, S::kWillSupply));
    EXPECT_TRUE(c.ok) << c.error_value;
    EXPECT_EQ(State("requester", "out-1"), "WillSupply");
    const auto loaned = SupplierXml(kLibA, kLibB, "out-1", 2, R::kStatusChange, S::kLoaned);
    EXPECT_TRUE(Send(token_b_, loaned).ok);
    EXPECT_EQ(State("requester", "out-1"), "Loaned");

    auto before = Fingerprint();
    // The same Loaned again: a second delivery.
    EXPECT_TRUE(Send(token_b_, loaned).ok);
    EXPECT_EQ(Fingerprint(), before);
    // A CancelResponse when no cancel was asked for.
    c = Send(token_b_, SupplierXml(kLibA, kLibB, "out-1", 3, R::kCancelResponse, S::kCancelled, true));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_type, "UnsupportedReasonForMessageType");
    EXPECT_EQ(c.error_value, "reasonForMessage: CancelResponse, but no cancel was asked for");
    // Back to ExpectToSupply after Loaned.
    c = Send(token_b_, SupplierXml(kLibA, kLibB, "out-1", 4, R::kStatusChange, S::kExpectToSupply));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_type, "UnrecognisedDataValue");
    // From a library that is not the supplier of this request.
    c = Send(token_poi_, SupplierXml(kLibA, kLibC, "out-1", 5, R::kStatusChange, S::kOverdue));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_value,
              fmt::format("requestingAgencyRequestId: {} did not send {} a request out-1", kLibA, kLibC));
    // About a request of a library that is not ours.
    c = Send(token_b_, SupplierXml(kLibC, kLibB, "out-1", 6, R::kStatusChange, S::kOverdue));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_value, fmt::format("requestingAgencyId: {} is not a library served by this node", kLibC));
    EXPECT_EQ(Fingerprint(), before);

    EXPECT_TRUE(Send(token_b_, SupplierXml(kLibA, kLibB, "out-1", 7, R::kStatusChange, S::kLoanCompleted)).ok);
    EXPECT_EQ(State("requester", "out-1"), "LoanCompleted");
    EXPECT_EQ(schema_.Query1("SELECT string_agg(what || '>' || state_after, ', ' ORDER BY id) FROM ibl_event"),
              "RequestResponse WillSupply>WillSupply, StatusChange Loaned>Loaned, "
              "StatusChange LoanCompleted>LoanCompleted");
}

TEST_F(Iso18626Test, RequesterActionsMoveTheSuppliersRequest) {
    ASSERT_TRUE(Send(token_a_, RequestXml(kLibA, kLibB, "in-1")).ok);
    auto before = Fingerprint();
    auto c = Send(token_a_, ActionXml(kLibA, kLibB, "in-1", 1, iso::Action::kReceived));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_type, "UnrecognisedDataValue");
    EXPECT_EQ(c.error_value, "action: nothing was sent yet (Sent)");
    c = Send(token_a_, ActionXml(kLibA, kLibB, "in-1", 2, iso::Action::kShippedForward));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_type, "UnsupportedActionType");
    c = Send(token_a_, ActionXml(kLibA, kLibB, "in-404", 3, iso::Action::kCancel));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_value, fmt::format("requestingAgencyRequestId: {} has no request in-404 from {}", kLibB, kLibA));
    EXPECT_EQ(Fingerprint(), before);

    const auto cancel = ActionXml(kLibA, kLibB, "in-1", 4, iso::Action::kCancel);
    EXPECT_TRUE(Send(token_a_, cancel).ok);
    EXPECT_EQ(schema_.Query1("SELECT cancel_pending FROM ibl_request WHERE request_id = 'in-1'"), "t");
    before = Fingerprint();
    EXPECT_TRUE(Send(token_a_, cancel).ok);  // delivered twice
    EXPECT_EQ(Fingerprint(), before);
    c = Send(token_a_, ActionXml(kLibA, kLibB, "in-1", 5, iso::Action::kCancel));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.error_value, "action: a Cancel is already waiting for the supplier's answer");
    EXPECT_EQ(Fingerprint(), before);
}

}  // namespace
}  // namespace iblsync::test
