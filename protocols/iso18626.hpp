#pragma once
// ISO 18626 (interlibrary loan transactions) messages: the six messages of
// the v1.2 schema as values, read leniently and written strictly.
//
// Read: any namespace prefix (or none), versions 1.0, 1.1 and 1.2 (told
// apart by the root's version attribute, qualified or not), empty optional
// elements taken as absent, a missing multipleItemRequestId, timestamps
// with "+0000" offsets or up to 9 fractional digits. What cannot be read
// gives a ParseError with the ISO 18626 error type that the confirmation
// must carry, and whatever of the header could be read, so that the
// confirmation can name the transaction.
//
// Written: version 1.2, prefix "ill", elements in schema order, timestamps
// in UTC; the output validates against ISO-18626-v1_2.xsd (tests check it
// with xmllint).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace iblsync::protocols::iso18626 {

inline constexpr std::string_view kNamespace = "http://illtransactions.org/2013/iso18626";

enum class Status {
    kRequestReceived, kExpectToSupply, kWillSupply, kLoaned, kOverdue, kRecalled, kRetryPossible,
    kUnfilled, kCopyCompleted, kLoanCompleted, kCompletedWithoutReturn, kCancelled
};
enum class Action { kStatusRequest, kReceived, kCancel, kRenew, kShippedReturn, kShippedForward, kNotification };
enum class ReasonForMessage {
    kRequestResponse, kStatusRequestResponse, kRenewResponse, kCancelResponse, kStatusChange, kNotification
};
enum class ErrorType {
    kUnsupportedActionType, kUnsupportedReasonForMessageType, kUnrecognisedDataElement, kUnrecognisedDataValue,
    kBadlyFormedMessage
};
enum class RequestType { kNew, kRetry, kReminder };
enum class RequestSubType { kBookingRequest, kMultipleItemRequest, kPatronRequest, kTransferRequest,
                            kSupplyingLibrarysChoice };
enum class ServiceType { kCopy, kLoan, kCopyOrLoan };

const char* ToString(Status s);
const char* ToString(Action a);
const char* ToString(ReasonForMessage r);
const char* ToString(ErrorType e);
const char* ToString(RequestType t);
const char* ToString(RequestSubType t);
const char* ToString(ServiceType t);
std::optional<Status> StatusFrom(std::string_view s);
std::optional<Action> ActionFrom(std::string_view s);
std::optional<ReasonForMessage> ReasonFrom(std::string_view s);

// Timestamps to the microsecond, in UTC.
using Time = std::chrono::sys_time<std::chrono::microseconds>;
// xs:dateTime and what real systems send instead ("+0000", 9 fractional
// digits, no offset = UTC). nullopt if it is no time at all.
std::optional<Time> ParseTime(std::string_view text);
std::string FormatTime(Time t);  // 2026-12-05T10:00:00Z, or with .ffffff when there are microseconds

// type_schemeValuePair: an open code list value and, optionally, its list.
struct Code {
    std::string value;
    std::string scheme;
    bool operator==(const Code&) const = default;
};

// type_agencyId; in this network the type is ISIL and the value an ISIL.
struct AgencyId {
    Code type;
    std::string value;
    static AgencyId Isil(std::string isil) { return {{"ISIL", ""}, std::move(isil)}; }
    bool operator==(const AgencyId&) const = default;
};

struct Costs {
    Code currency;
    std::string amount;  // xs:decimal as written ("12.50")
    bool operator==(const Costs&) const = default;
};

struct PhysicalAddress {
    std::string line1, line2, locality, postal_code;
    std::optional<Code> region, country;
    bool operator==(const PhysicalAddress&) const = default;
};
struct ElectronicAddress {
    Code type;
    std::string data;
    bool operator==(const ElectronicAddress&) const = default;
};
// An address is one or the other.
using Address = std::variant<ElectronicAddress, PhysicalAddress>;

struct Header {
    AgencyId supplying_agency;
    AgencyId requesting_agency;
    std::string multiple_item_request_id;  // empty when the sender left it out
    Time timestamp{};
    std::string requesting_agency_request_id;
    std::string supplying_agency_request_id;  // empty: none
    std::string account_id, security_code;    // requestingAgencyAuthentication, empty: none
    bool operator==(const Header&) const = default;
};

struct ConfirmationHeader {
    std::optional<AgencyId> supplying_agency;
    std::optional<AgencyId> requesting_agency;
    Time timestamp{};
    std::string requesting_agency_request_id;  // empty: none
    std::string multiple_item_request_id;      // empty: none
    Time timestamp_received{};
    bool ok = true;  // messageStatus OK / ERROR
    bool operator==(const ConfirmationHeader&) const = default;
};

struct ErrorData {
    ErrorType type = ErrorType::kBadlyFormedMessage;
    std::string value;
    bool operator==(const ErrorData&) const = default;
};

struct ItemId {  // bibliographicItemId: ISBN, ISSN, ISMN ...
    std::string identifier;
    Code code;
    bool operator==(const ItemId&) const = default;
};
struct RecordId {  // bibliographicRecordId: a record number in a catalogue
    Code code;
    std::string identifier;
    bool operator==(const RecordId&) const = default;
};

struct BibliographicInfo {
    std::string supplier_unique_record_id, title, author, subtitle, series_title, edition, title_of_component,
        author_of_component, volume, issue, pages_requested, estimated_no_pages;
    std::vector<ItemId> item_ids;
    std::string sponsor, information_source;
    std::vector<RecordId> record_ids;
    bool operator==(const BibliographicInfo&) const = default;
};

struct PublicationInfo {
    std::string publisher;
    std::optional<Code> publication_type;
    std::string publication_date, place_of_publication;
    bool operator==(const PublicationInfo&) const = default;
};

struct ServiceInfo {
    std::optional<RequestType> request_type;
    std::vector<RequestSubType> request_sub_types;  // at most 3
    std::string requesting_agency_previous_request_id;
    ServiceType service_type = ServiceType::kLoan;
    std::optional<Code> service_level, preferred_format;
    std::optional<Time> need_before_date;
    std::optional<Code> copyright_compliance;
    std::optional<bool> any_edition;
    std::optional<Time> start_date, end_date;
    std::string note;
    bool operator==(const ServiceInfo&) const = default;
};

struct SupplierInfo {
    std::optional<long long> sort_order;
    std::optional<AgencyId> supplier_code;
    std::string supplier_description;
    std::optional<RecordId> record_id;
    std::string call_number, summary_holdings, availability_note;
    bool operator==(const SupplierInfo&) const = default;
};

struct RequestedDeliveryInfo {
    std::optional<long long> sort_order;
    std::optional<Address> address;
    bool operator==(const RequestedDeliveryInfo&) const = default;
};

struct RequestingAgencyInfo {
    std::string name, contact_name;
    std::vector<Address> addresses;
    bool operator==(const RequestingAgencyInfo&) const = default;
};

// This network sends only the opaque patron reference (patronId); the other
// fields are read so that a message that has them can be answered, and are
// never stored.
struct PatronInfo {
    std::string patron_id, surname, given_name;
    std::optional<Code> patron_type;
    std::optional<bool> send_to_patron;
    std::vector<Address> addresses;
    bool operator==(const PatronInfo&) const = default;
};

struct BillingInfo {
    std::optional<Code> payment_method;
    std::optional<Costs> maximum_costs;
    std::optional<Code> billing_method;
    std::string billing_name;
    std::optional<Address> address;
    bool operator==(const BillingInfo&) const = default;
};

struct Request {
    Header header;
    BibliographicInfo bibliographic_info;
    std::optional<PublicationInfo> publication_info;
    std::optional<ServiceInfo> service_info;
    std::vector<SupplierInfo> supplier_info;
    std::vector<RequestedDeliveryInfo> requested_delivery_info;
    std::optional<RequestingAgencyInfo> requesting_agency_info;
    std::optional<PatronInfo> patron_info;
    std::optional<BillingInfo> billing_info;
    bool operator==(const Request&) const = default;
};

struct MessageInfo {
    ReasonForMessage reason = ReasonForMessage::kStatusChange;
    std::optional<bool> answer_yes_no;
    std::string note;
    std::optional<Code> reason_unfilled, reason_retry;
    std::optional<Costs> offered_costs;
    std::optional<Time> retry_after, retry_before;
    bool operator==(const MessageInfo&) const = default;
};

struct StatusInfo {
    Status status = Status::kRequestReceived;
    std::optional<Time> expected_delivery_date, due_date;
    Time last_change{};
    bool operator==(const StatusInfo&) const = default;
};

struct DeliveryInfo {
    Time date_sent{};
    std::string item_id;
    std::optional<Code> sent_via;
    std::optional<bool> sent_to_patron;
    std::optional<Code> loan_condition, delivered_format;
    std::optional<Costs> delivery_costs;
    bool operator==(const DeliveryInfo&) const = default;
};

struct ReturnInfo {
    std::optional<AgencyId> return_agency;
    std::string name;
    std::optional<PhysicalAddress> address;
    bool operator==(const ReturnInfo&) const = default;
};

struct SupplyingAgencyMessage {
    Header header;
    MessageInfo message_info;
    StatusInfo status_info;
    std::optional<DeliveryInfo> delivery_info;
    std::optional<ReturnInfo> return_info;
    bool operator==(const SupplyingAgencyMessage&) const = default;
};

struct RequestingAgencyMessage {
    Header header;
    Action action = Action::kStatusRequest;
    std::string note;
    bool operator==(const RequestingAgencyMessage&) const = default;
};

struct RequestConfirmation {
    ConfirmationHeader header;
    std::optional<ErrorData> error;
    bool operator==(const RequestConfirmation&) const = default;
};
struct SupplyingAgencyMessageConfirmation {
    ConfirmationHeader header;
    std::optional<ReasonForMessage> reason;
    std::optional<ErrorData> error;
    bool operator==(const SupplyingAgencyMessageConfirmation&) const = default;
};
struct RequestingAgencyMessageConfirmation {
    ConfirmationHeader header;
    std::optional<Action> action;
    std::optional<ErrorData> error;
    bool operator==(const RequestingAgencyMessageConfirmation&) const = default;
};

using Message = std::variant<Request, RequestConfirmation, SupplyingAgencyMessage, SupplyingAgencyMessageConfirmation,
                             RequestingAgencyMessage, RequestingAgencyMessageConfirmation>;

enum class Version { k1_0, k1_1, k1_2 };

struct Parsed {
    Version version = Version::k1_2;
    Message message;
};

// Why a message could not be read, as its confirmation must say. `kind`
// is the message's element name when the root was readable ("request",
// "supplyingAgencyMessage" ...), else empty: without it no confirmation
// can be made, and the transport answers 400. `header` is whatever of the
// header could be read.
struct ParseError {
    ErrorData error;
    std::string kind;
    std::optional<AgencyId> supplying_agency, requesting_agency;
    std::string requesting_agency_request_id, multiple_item_request_id;
    std::optional<Action> action;                  // of a requestingAgencyMessage, if readable
    std::optional<ReasonForMessage> reason;        // of a supplyingAgencyMessage, if readable
};

inline constexpr std::size_t kMaxMessageBytes = 1 << 20;  // a message is a few kB; 1 MiB is generous
inline constexpr std::size_t kMaxDepth = 32;

std::variant<Parsed, ParseError> Parse(std::string_view xml);

// The message as a v1.2 document.
std::string Write(const Message& message);

// The confirmation that answers a message: OK with the message's header,
// or ERROR with `error`. `received` is when it came in, `now` is the
// confirmation's own timestamp.
Message ConfirmationOf(const Message& message, Time received, Time now, std::optional<ErrorData> error = {});
// The ERROR confirmation for a message that could not be read; nullopt
// when its kind is unknown (no confirmation exists for it).
std::optional<Message> ConfirmationOf(const ParseError& failure, Time received, Time now);

}  // namespace iblsync::protocols::iso18626
