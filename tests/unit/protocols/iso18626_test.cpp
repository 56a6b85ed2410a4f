// The ISO 18626 codec: every message type written, validated against the
// v1.2 schema with xmllint (tests/data/schemas/iso18626) and read back;
// what real senders do that the schema does not allow, read anyway; and
// each error type, with the confirmation that answers it.

#include "protocols/iso18626.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/unit/protocols/xml_schema.hpp"

namespace iblsync::protocols::iso18626 {
namespace {

using namespace std::chrono;

std::string Xsd() { return iblsync::testing::SchemaDir() + "/iso18626/ISO-18626-v1_2.xsd"; }

Time At(std::string_view text) {
    auto t = ParseTime(text);
    EXPECT_TRUE(t) << text;
    return t.value_or(Time{});
}

void ExpectValid(const std::string& xml) {
    std::string out;
    EXPECT_EQ(iblsync::testing::Xmllint(Xsd(), xml, out), 0) << out << "\n" << xml;
}

Header SomeHeader() {
    Header h;
    h.supplying_agency = AgencyId::Isil("NL-0000000202");
    h.requesting_agency = AgencyId::Isil("NL-0000000201");
    h.multiple_item_request_id = "";
    h.timestamp = At("2026-12-05T10:15:30.123456Z");
    h.requesting_agency_request_id = "NL-GE-POI:r-000123";
    return h;
}

Request FullRequest() {
    Request q;
    q.header = SomeHeader();
    q.header.supplying_agency_request_id = "s-77";
    q.header.account_id = "ibl";
    q.header.security_code = "s3cret";
    auto& b = q.bibliographic_info;
    b.supplier_unique_record_id = "PPN 123456789";
    b.title = "De avonden";
    b.author = "Reve, Gerard";
    b.subtitle = "een winterverhaal";
    b.edition = "35e druk";
    b.item_ids = {{"9789023466611", {"ISBN", ""}}};
    b.record_ids = {{{"PPN", "http://illtransactions.org/ISO18626/OpenCodeList/BibliographicRecordIdentifierCodeList"},
                     "123456789"}};
    q.publication_info = PublicationInfo{"De Bezige Bij", Code{"Book", ""}, "2011", "Amsterdam"};
    ServiceInfo s;
    s.request_type = RequestType::kNew;
    s.request_sub_types = {RequestSubType::kPatronRequest};
    s.service_type = ServiceType::kLoan;
    s.service_level = Code{"Normal", ""};
    s.need_before_date = At("2027-01-31T23:59:59Z");
    s.any_edition = true;
    s.note = "voor een leesclub";
    q.service_info = s;
    SupplierInfo si;
    si.sort_order = 1;
    si.supplier_code = AgencyId::Isil("NL-0000000202");
    si.call_number = "REVE";
    q.supplier_info.push_back(si);
    PhysicalAddress pickup;
    pickup.line1 = "Stationsplein 1";
    pickup.locality = "Arnhem";
    pickup.postal_code = "6811 KG";
    pickup.country = Code{"NL", ""};
    q.requested_delivery_info.push_back({1, Address{pickup}});
    q.requesting_agency_info = RequestingAgencyInfo{"Bibliotheek Arnhem", "Balie IBL",
                                                    {Address{ElectronicAddress{{"Email", ""}, "ibl@example.nl"}}}};
    PatronInfo p;
    p.patron_id = "opaque-7f3a";
    p.send_to_patron = false;
    q.patron_info = p;
    BillingInfo bill;
    bill.maximum_costs = Costs{{"EUR", ""}, "7.50"};
    bill.billing_method = Code{"Account", ""};
    q.billing_info = bill;
    return q;
}

SupplyingAgencyMessage FullSupplyingMessage() {
    SupplyingAgencyMessage m;
    m.header = SomeHeader();
    m.header.supplying_agency_request_id = "s-77";
    m.message_info.reason = ReasonForMessage::kStatusChange;
    m.message_info.answer_yes_no = true;
    m.message_info.note = "in de bus";
    m.message_info.offered_costs = Costs{{"EUR", ""}, "3.00"};
    m.status_info.status = Status::kLoaned;
    m.status_info.due_date = At("2027-01-02T23:59:59Z");
    m.status_info.last_change = At("2026-12-06T08:00:00Z");
    DeliveryInfo d;
    d.date_sent = At("2026-12-06T08:00:00Z");
    d.item_id = "31234000123456";
    d.sent_via = Code{"Mail", ""};
    d.sent_to_patron = false;
    d.loan_condition = Code{"LibraryUseOnly", ""};
    m.delivery_info = d;
    PhysicalAddress back;
    back.line1 = "Bibliotheekweg 2";
    back.locality = "Nijmegen";
    m.return_info = ReturnInfo{AgencyId::Isil("NL-0000000202"), "Bibliotheek Nijmegen", back};
    return m;
}

ConfirmationHeader SomeConfirmationHeader(bool ok) {
    ConfirmationHeader h;
    h.supplying_agency = AgencyId::Isil("NL-0000000202");
    h.requesting_agency = AgencyId::Isil("NL-0000000201");
    h.timestamp = At("2026-12-05T10:15:31Z");
    h.requesting_agency_request_id = "NL-GE-POI:r-000123";
    h.timestamp_received = At("2026-12-05T10:15:30.5Z");
    h.ok = ok;
    return h;
}

std::vector<Message> EveryMessage() {
    RequestingAgencyMessage ram;
    ram.header = SomeHeader();
    ram.action = Action::kRenew;
    ram.note = "nog twee weken graag";
    return {FullRequest(),
            RequestConfirmation{SomeConfirmationHeader(true), std::nullopt},
            FullSupplyingMessage(),
            SupplyingAgencyMessageConfirmation{SomeConfirmationHeader(false), ReasonForMessage::kStatusChange,
                                               ErrorData{ErrorType::kUnrecognisedDataValue, "no such request"}},
            ram,
            RequestingAgencyMessageConfirmation{SomeConfirmationHeader(true), Action::kRenew, std::nullopt}};
}

TEST(Iso18626, EveryMessageTypeValidatesAndReadsBackTheSame) {
    for (const auto& message : EveryMessage()) {
        const std::string xml = Write(message);
        SCOPED_TRACE(xml);
        ExpectValid(xml);
        auto parsed = Parse(xml);
        ASSERT_TRUE(std::holds_alternative<Parsed>(parsed)) << std::get<ParseError>(parsed).error.value;
        EXPECT_EQ(std::get<Parsed>(parsed).version, Version::k1_2);
        EXPECT_TRUE(std::get<Parsed>(parsed).message == message);
    }
}

TEST(Iso18626, EveryStatusActionAndReasonIsWrittenAsTheSchemaSpellsIt) {
    for (int i = 0; i <= static_cast<int>(Status::kCancelled); ++i) {
        auto m = FullSupplyingMessage();
        m.status_info.status = static_cast<Status>(i);
        ExpectValid(Write(m));
        EXPECT_EQ(StatusFrom(ToString(m.status_info.status)), m.status_info.status);
    }
    for (int i = 0; i <= static_cast<int>(ReasonForMessage::kNotification); ++i) {
        auto m = FullSupplyingMessage();
        m.message_info.reason = static_cast<ReasonForMessage>(i);
        ExpectValid(Write(m));
    }
    for (int i = 0; i <= static_cast<int>(Action::kNotification); ++i) {
        RequestingAgencyMessage m;
        m.header = SomeHeader();
        m.action = static_cast<Action>(i);
        ExpectValid(Write(m));
        EXPECT_EQ(ActionFrom(ToString(m.action)), m.action);
    }
}

// What ReShare, OCLC and CrossLink send (the ILL research notes name the sources): a
// prefix of their own, an unqualified version of another value, no
// multipleItemRequestId, empty optional elements, "+0000" offsets and
// nine fractional digits.
TEST(Iso18626, WhatRealSendersWriteIsReadAnyway) {
    const std::string xml = R"(<?xml version="1.0"?>
<ns1:ISO18626Message xmlns:ns1="http://illtransactions.org/2013/iso18626" version="v1_2_2017">
  <ns1:supplyingAgencyMessage>
    <ns1:header>
      <ns1:supplyingAgencyId><ns1:agencyIdType>ISIL</ns1:agencyIdType>
        <ns1:agencyIdValue>NL-0000000202</ns1:agencyIdValue></ns1:supplyingAgencyId>
      <ns1:requestingAgencyId><ns1:agencyIdType ns1:scheme="http://x">ISIL</ns1:agencyIdType>
        <ns1:agencyIdValue> NL-0000000201 </ns1:agencyIdValue></ns1:requestingAgencyId>
      <ns1:timestamp>2026-12-05T11:15:30.629597710+0100</ns1:timestamp>
      <ns1:requestingAgencyRequestId>r-1</ns1:requestingAgencyRequestId>
    </ns1:header>
    <ns1:messageInfo>
      <ns1:reasonForMessage>RequestResponse</ns1:reasonForMessage>
      <ns1:answerYesNo/>
      <ns1:offeredCosts></ns1:offeredCosts>
      <ns1:retryAfter/>
      <ns1:reasonUnfilled
          ns1:scheme="http://illtransactions.org/ISO18626/OpenCodeList/ReasonUnfilledList-V1.0">NotHeld</ns1:reasonUnfilled>
    </ns1:messageInfo>
    <ns1:statusInfo>
      <ns1:status>Unfilled</ns1:status>
      <ns1:expectedDeliveryDate></ns1:expectedDeliveryDate>
      <ns1:lastChange>1900-01-01T01:01:01+0000</ns1:lastChange>
    </ns1:statusInfo>
  </ns1:supplyingAgencyMessage>
</ns1:ISO18626Message>)";
    auto parsed = Parse(xml);
    ASSERT_TRUE(std::holds_alternative<Parsed>(parsed)) << std::get<ParseError>(parsed).error.value;
    const auto& m = std::get<SupplyingAgencyMessage>(std::get<Parsed>(parsed).message);
    EXPECT_EQ(m.header.requesting_agency.value, "NL-0000000201");
    EXPECT_EQ(m.header.requesting_agency.type.scheme, "http://x");
    EXPECT_EQ(m.header.multiple_item_request_id, "");
    EXPECT_EQ(FormatTime(m.header.timestamp), "2026-12-05T10:15:30.629597Z") << "to UTC, to the microsecond";
    EXPECT_EQ(m.message_info.reason, ReasonForMessage::kRequestResponse);
    EXPECT_FALSE(m.message_info.answer_yes_no);
    EXPECT_FALSE(m.message_info.offered_costs);
    EXPECT_FALSE(m.message_info.retry_after);
    ASSERT_TRUE(m.message_info.reason_unfilled);
    EXPECT_EQ(m.message_info.reason_unfilled->value, "NotHeld");
    EXPECT_EQ(m.status_info.status, Status::kUnfilled);
    EXPECT_FALSE(m.status_info.expected_delivery_date);
    EXPECT_EQ(FormatTime(m.status_info.last_change), "1900-01-01T01:01:01Z");
    // Written again, it is strict v1.2: the empty multipleItemRequestId is there.
    const std::string again = Write(m);
    ExpectValid(again);
    EXPECT_NE(again.find("<ill:multipleItemRequestId></ill:multipleItemRequestId>"), std::string::npos) << again;

    // No prefix at all, version 1.0 (ReShare) and 1.1 (Alma).
    for (const std::string version : {"1.0", "1.1"}) {
        std::string plain = Write(RequestingAgencyMessage{SomeHeader(), Action::kStatusRequest, ""});
        for (auto p = plain.find("ill:"); p != std::string::npos; p = plain.find("ill:")) plain.erase(p, 4);
        plain.replace(plain.find("xmlns:ill="), 10, "xmlns=");
        plain.replace(plain.find("version=\"1.2\""), 13, "version=\"" + version + "\"");
        auto p = Parse(plain);
        ASSERT_TRUE(std::holds_alternative<Parsed>(p)) << plain << std::get<ParseError>(p).error.value;
        EXPECT_EQ(std::get<Parsed>(p).version, version == "1.0" ? Version::k1_0 : Version::k1_1);
    }
}

// An ISO18626Message with elements nested `depth` deep inside it.
std::string Nested(int depth) {
    std::string open, close;
    for (int i = 0; i < depth; ++i) {
        open += "<ill:note>";
        close = "</ill:note>" + close;
    }
    return "<ill:ISO18626Message xmlns:ill='http://illtransactions.org/2013/iso18626' ill:version='1.2'>"
           "<ill:request>" + open + close + "</ill:request></ill:ISO18626Message>";
}

struct Broken {
    std::string what;
    std::string xml;
    ErrorType type;
    std::string value;  // a part of errorValue
    std::string kind;   // "" when no confirmation can be made
};

std::string Replace(std::string s, const std::string& from, const std::string& to) {
    auto p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    if (p != std::string::npos) s.replace(p, from.size(), to);
    return s;
}

TEST(Iso18626, EachErrorTypeWithTheConfirmationThatAnswersIt) {
    const std::string request = Write(FullRequest());
    const std::string sam = Write(FullSupplyingMessage());
    const std::string ram = Write(RequestingAgencyMessage{SomeHeader(), Action::kCancel, ""});
    const std::vector<Broken> cases = {
        {"unknown action", Replace(ram, ">Cancel<", ">Dance<"), ErrorType::kUnsupportedActionType,
         "/ISO18626Message/requestingAgencyMessage/action: Dance", "requestingAgencyMessage"},
        {"unknown reason", Replace(sam, ">StatusChange<", ">Gossip<"), ErrorType::kUnsupportedReasonForMessageType,
         "messageInfo/reasonForMessage: Gossip", "supplyingAgencyMessage"},
        {"unknown element",
         Replace(request, "<ill:timestamp>", "<ill:favouriteColour>blue</ill:favouriteColour><ill:timestamp>"),
         ErrorType::kUnrecognisedDataElement, "/ISO18626Message/request/header/favouriteColour: not known here",
         "request"},
        {"unknown status", Replace(sam, ">Loaned<", ">Sleeping<"), ErrorType::kUnrecognisedDataValue,
         "statusInfo/status: Sleeping", "supplyingAgencyMessage"},
        {"bad time", Replace(ram, "2026-12-05T10:15:30.123456Z", "yesterday"), ErrorType::kUnrecognisedDataValue,
         "header/timestamp: not a date and time: yesterday", "requestingAgencyMessage"},
        {"empty request id", Replace(request, ">NL-GE-POI:r-000123<", "><"), ErrorType::kUnrecognisedDataValue,
         "requestingAgencyRequestId: cannot be empty", "request"},
        {"2021 version", Replace(ram, "ill:version=\"1.2\"", "ill:version=\"2021-2\""),
         ErrorType::kUnrecognisedDataValue, "@version: 2021-2", "requestingAgencyMessage"},
        {"missing timestamp", Replace(ram, "<ill:timestamp>2026-12-05T10:15:30.123456Z</ill:timestamp>", ""),
         ErrorType::kBadlyFormedMessage, "header/timestamp: missing", "requestingAgencyMessage"},
        {"missing serviceType", Replace(request, "<ill:serviceType>Loan</ill:serviceType>", ""),
         ErrorType::kBadlyFormedMessage, "serviceInfo/serviceType: missing", "request"},
        {"bad yes/no", Replace(request, "<ill:anyEdition>Y<", "<ill:anyEdition>Ja<"), ErrorType::kUnrecognisedDataValue,
         "anyEdition: Ja (Y or N)", "request"},
        {"bad amount", Replace(request, ">7.50<", ">zeven<"), ErrorType::kUnrecognisedDataValue,
         "monetaryValue: not a decimal: zeven", "request"},
        {"two messages", Replace(ram, "</ill:ISO18626Message>",
                                 "<ill:requestingAgencyMessage/></ill:ISO18626Message>"),
         ErrorType::kBadlyFormedMessage, "more than one message", ""},
        {"not a message", Replace(ram, "requestingAgencyMessage>", "teaParty>"), ErrorType::kBadlyFormedMessage,
         "not well-formed", ""},
        {"unknown message", "<ISO18626Message xmlns='http://illtransactions.org/2013/iso18626' version='1.2'>"
                            "<teaParty/></ISO18626Message>",
         ErrorType::kUnrecognisedDataElement, "/ISO18626Message/teaParty: not an ISO 18626 message", ""},
        {"other namespace", Replace(ram, "http://illtransactions.org/2013/iso18626", "urn:other"),
         ErrorType::kBadlyFormedMessage, "in namespace urn:other", ""},
        {"not XML", "{\"request\": {}}", ErrorType::kBadlyFormedMessage, "not well-formed XML", ""},
        {"truncated", request.substr(0, request.size() / 2), ErrorType::kBadlyFormedMessage, "not well-formed XML", ""},
        {"XML bomb", "<?xml version='1.0'?><!DOCTYPE m [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;'>]>"
                     "<ISO18626Message version='1.2'>&b;</ISO18626Message>",
         ErrorType::kBadlyFormedMessage, "declares a DTD or entities", ""},
        {"invalid UTF-8", Replace(ram, ">Cancel<", ">Cancel</ill:action><ill:note>\xff\xfe<"),
         ErrorType::kBadlyFormedMessage, "not valid UTF-8", ""},
        {"too deep", Nested(40), ErrorType::kBadlyFormedMessage, "nested deeper than 32", ""},
        {"too large", "<ISO18626Message version='1.2'><request>" + std::string(kMaxMessageBytes, ' ') +
                          "</request></ISO18626Message>",
         ErrorType::kBadlyFormedMessage, "larger than", ""},
        {"no version", Replace(ram, " ill:version=\"1.2\"", ""), ErrorType::kBadlyFormedMessage,
         "@version: missing", "requestingAgencyMessage"},
    };
    const Time received = At("2026-12-05T12:00:00Z"), now = At("2026-12-05T12:00:01Z");
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto parsed = Parse(c.xml);
        ASSERT_TRUE(std::holds_alternative<ParseError>(parsed));
        const auto& failure = std::get<ParseError>(parsed);
        EXPECT_EQ(ToString(failure.error.type), std::string(ToString(c.type))) << failure.error.value;
        EXPECT_NE(failure.error.value.find(c.value), std::string::npos) << failure.error.value;
        EXPECT_EQ(failure.kind, c.kind);
        auto confirmation = ConfirmationOf(failure, received, now);
        ASSERT_EQ(confirmation.has_value(), !c.kind.empty());
        if (!confirmation) continue;
        const std::string xml = Write(*confirmation);
        ExpectValid(xml);
        EXPECT_NE(xml.find("<ill:messageStatus>ERROR</ill:messageStatus>"), std::string::npos) << xml;
        EXPECT_NE(xml.find(fmt::format("<ill:errorType>{}</ill:errorType>", ToString(c.type))), std::string::npos)
            << xml;
        // The transaction is named whenever its header could be read.
        if (failure.requesting_agency) {
            EXPECT_NE(xml.find("<ill:agencyIdValue>NL-0000000201</ill:agencyIdValue>"), std::string::npos) << xml;
        }
    }
    // The header came before the fault: the confirmation names the request.
    auto late = std::get<ParseError>(Parse(Replace(sam, ">Loaned<", ">Sleeping<")));
    EXPECT_EQ(late.requesting_agency_request_id, "NL-GE-POI:r-000123");
    EXPECT_EQ(late.reason, ReasonForMessage::kStatusChange);
    auto answer = Write(*ConfirmationOf(late, received, now));
    EXPECT_NE(answer.find("<ill:requestingAgencyRequestId>NL-GE-POI:r-000123</ill:requestingAgencyRequestId>"),
              std::string::npos)
        << answer;
    EXPECT_NE(answer.find("<ill:reasonForMessage>StatusChange</ill:reasonForMessage>"), std::string::npos) << answer;
}

TEST(Iso18626, ConfirmationsOfGoodMessagesEchoTheirTransaction) {
    const Time received = At("2026-12-05T12:00:00Z"), now = At("2026-12-05T12:00:01Z");
    for (const auto& message : EveryMessage()) {
        if (message.index() % 2 == 1) continue;  // confirmations are not confirmed
        for (const auto& error : {std::optional<ErrorData>{},
                                  std::optional<ErrorData>{ErrorData{ErrorType::kUnrecognisedDataValue, "x"}}}) {
            auto c = ConfirmationOf(message, received, now, error);
            EXPECT_EQ(c.index(), message.index() + 1);
            const std::string xml = Write(c);
            ExpectValid(xml);
            EXPECT_NE(xml.find("<ill:requestingAgencyRequestId>NL-GE-POI:r-000123<"), std::string::npos) << xml;
            EXPECT_NE(xml.find(error ? ">ERROR<" : ">OK<"), std::string::npos) << xml;
            EXPECT_NE(xml.find("<ill:timestampReceived>2026-12-05T12:00:00Z<"), std::string::npos) << xml;
        }
    }
    EXPECT_THROW(ConfirmationOf(EveryMessage()[1], received, now), std::logic_error);
}

TEST(Iso18626, TimesAreReadInEveryFormSeenAndWrittenInUtc) {
    EXPECT_EQ(FormatTime(At("2026-12-05T10:00:00Z")), "2026-12-05T10:00:00Z");
    EXPECT_EQ(FormatTime(At("2026-12-05T10:00:00")), "2026-12-05T10:00:00Z") << "no offset: UTC";
    EXPECT_EQ(FormatTime(At("2026-12-05T11:30:00+01:30")), "2026-12-05T10:00:00Z");
    EXPECT_EQ(FormatTime(At("2026-12-05T00:30:00+0100")), "2026-12-04T23:30:00Z");
    EXPECT_EQ(FormatTime(At("2026-12-31T23:00:00-02:00")), "2027-01-01T01:00:00Z");
    EXPECT_EQ(FormatTime(At("2026-12-05T10:00:00.5Z")), "2026-12-05T10:00:00.500000Z");
    EXPECT_EQ(FormatTime(At("2026-12-05T10:00:00.123456789Z")), "2026-12-05T10:00:00.123456Z");
    for (const char* bad : {"", "2026-12-05", "2026-13-05T10:00:00Z", "2026-02-30T10:00:00Z", "2026-12-05T24:00:00Z",
                            "2026-12-05T10:00:00.Z", "2026-12-05T10:00:00.1234567890Z", "2026-12-05T10:00:00+1",
                            "2026-12-05T10:00:00+15:00", "2026-12-05 10:00:00Z", "2026-12-05T10:00:00ZZ"})
        EXPECT_FALSE(ParseTime(bad)) << bad;
}

}  // namespace
}  // namespace iblsync::protocols::iso18626
