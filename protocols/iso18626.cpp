#include "protocols/iso18626.hpp"

#include <algorithm>
#include <array>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <pugixml.hpp>

#include "protocols/utf8.hpp"
#include "protocols/xml_limits.hpp"
#include "protocols/xml_names.hpp"

namespace iblsync::protocols::iso18626 {
namespace {

template <class E, std::size_t N>
struct Names {
    std::array<const char*, N> names;
    const char* Of(E e) const { return names[static_cast<std::size_t>(e)]; }
    std::optional<E> From(std::string_view s) const {
        for (std::size_t i = 0; i < N; ++i)
            if (s == names[i]) return static_cast<E>(i);
        return std::nullopt;
    }
};

constexpr Names<Status, 12> kStatus{{"RequestReceived", "ExpectToSupply", "WillSupply", "Loaned", "Overdue",
                                     "Recalled", "RetryPossible", "Unfilled", "CopyCompleted", "LoanCompleted",
                                     "CompletedWithoutReturn", "Cancelled"}};
constexpr Names<Action, 7> kAction{
    {"StatusRequest", "Received", "Cancel", "Renew", "ShippedReturn", "ShippedForward", "Notification"}};
constexpr Names<ReasonForMessage, 6> kReason{{"RequestResponse", "StatusRequestResponse", "RenewResponse",
                                              "CancelResponse", "StatusChange", "Notification"}};
constexpr Names<ErrorType, 5> kErrorType{{"UnsupportedActionType", "UnsupportedReasonForMessageType",
                                          "UnrecognisedDataElement", "UnrecognisedDataValue", "BadlyFormedMessage"}};
constexpr Names<RequestType, 3> kRequestType{{"New", "Retry", "Reminder"}};
constexpr Names<RequestSubType, 5> kRequestSubType{
    {"BookingRequest", "MultipleItemRequest", "PatronRequest", "TransferRequest", "SupplyingLibrarysChoice"}};
// The message elements, in the order of the Message variant's alternatives.
constexpr const char* kKinds[] = {"request",
                                  "requestConfirmation",
                                  "supplyingAgencyMessage",
                                  "supplyingAgencyMessageConfirmation",
                                  "requestingAgencyMessage",
                                  "requestingAgencyMessageConfirmation"};
static_assert(std::size(kKinds) == std::variant_size_v<Message>);

constexpr Names<ServiceType, 3> kServiceType{{"Copy", "Loan", "CopyOrLoan"}};

// ---- time -----------------------------------------------------------------

bool Digits(std::string_view s, std::size_t at, std::size_t n, int* out) {
    if (at + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

// ---- reading ----------------------------------------------------------------

// What the reader throws; Parse turns it into a ParseError.
struct Bad {
    ErrorType type;
    std::string value;
};

[[noreturn]] void Throw(ErrorType type, std::string value) { throw Bad{type, std::move(value)}; }

std::string_view Local(const pugi::xml_node& n) { return LocalName(n.name()); }
std::string_view LocalAttr(const pugi::xml_attribute& a) { return LocalName(a.name()); }

std::string Trimmed(const char* text) {
    std::string_view s = text;
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return "";
    return std::string(s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1));
}

// One element's children, taken by local name; Done() refuses any that was
// not taken (an element the schema does not have there).
class Reader {
public:
    Reader(pugi::xml_node node, std::string path) : node_(node), path_(std::move(path)) {
        for (auto c : node_.children()) {
            if (c.type() == pugi::node_element) children_.push_back({c, false});
            else if (c.type() == pugi::node_pcdata && !Trimmed(c.value()).empty())
                Throw(ErrorType::kBadlyFormedMessage, fmt::format("{}: text where elements belong", path_));
        }
    }
    const std::string& path() const { return path_; }
    std::string Path(std::string_view name) const { return fmt::format("{}/{}", path_, name); }

    // The next child of that name (in document order); empty ones (no
    // text, no elements) count as absent, as real senders write them.
    std::optional<pugi::xml_node> Take(std::string_view name) {
        for (auto& [c, taken] : children_) {
            if (taken || Local(c) != name) continue;
            taken = true;
            if (!HasElement(c) && Trimmed(c.child_value()).empty()) continue;
            return c;
        }
        return std::nullopt;
    }
    std::vector<pugi::xml_node> TakeAll(std::string_view name) {
        std::vector<pugi::xml_node> out;
        while (auto c = Take(name)) out.push_back(*c);
        return out;
    }
    pugi::xml_node Need(std::string_view name) {
        auto c = Take(name);
        if (!c) Throw(ErrorType::kBadlyFormedMessage, fmt::format("{}: missing", Path(name)));
        return *c;
    }
    std::string Text(std::string_view name) {
        auto c = Take(name);
        return c ? Trimmed(c->child_value()) : std::string();
    }
    std::string NeedText(std::string_view name) {
        std::string t = Trimmed(Need(name).child_value());
        if (t.empty()) Throw(ErrorType::kBadlyFormedMessage, fmt::format("{}: empty", Path(name)));
        return t;
    }
    void Done() const {
        for (const auto& [c, taken] : children_)
            if (!taken)
                Throw(ErrorType::kUnrecognisedDataElement, fmt::format("{}: not known here", Path(Local(c))));
    }

private:
    static bool HasElement(const pugi::xml_node& n) {
        for (auto c : n.children())
            if (c.type() == pugi::node_element) return true;
        return false;
    }
    pugi::xml_node node_;
    std::string path_;
    std::vector<std::pair<pugi::xml_node, bool>> children_;
};

std::optional<Time> TimeOf(Reader& r, std::string_view name) {
    auto text = r.Text(name);
    if (text.empty()) return std::nullopt;
    auto t = ParseTime(text);
    if (!t) Throw(ErrorType::kUnrecognisedDataValue, fmt::format("{}: not a date and time: {}", r.Path(name), text));
    return t;
}
Time NeedTime(Reader& r, std::string_view name) {
    auto t = TimeOf(r, name);
    if (!t) Throw(ErrorType::kBadlyFormedMessage, fmt::format("{}: missing", r.Path(name)));
    return *t;
}

template <class E, std::size_t N>
std::optional<E> EnumOf(Reader& r, std::string_view name, const Names<E, N>& names,
                        ErrorType unknown = ErrorType::kUnrecognisedDataValue) {
    auto text = r.Text(name);
    if (text.empty()) return std::nullopt;
    auto e = names.From(text);
    if (!e) Throw(unknown, fmt::format("{}: {}", r.Path(name), text));
    return e;
}

std::optional<bool> YesNoOf(Reader& r, std::string_view name) {
    auto text = r.Text(name);
    if (text.empty()) return std::nullopt;
    if (text == "Y") return true;
    if (text == "N") return false;
    Throw(ErrorType::kUnrecognisedDataValue, fmt::format("{}: {} (Y or N)", r.Path(name), text));
}

std::optional<long long> IntegerOf(Reader& r, std::string_view name) {
    auto text = r.Text(name);
    if (text.empty()) return std::nullopt;
    try {
        std::size_t used = 0;
        long long v = std::stoll(text, &used);
        if (used == text.size()) return v;
    } catch (const std::exception&) {
    }
    Throw(ErrorType::kUnrecognisedDataValue, fmt::format("{}: not an integer: {}", r.Path(name), text));
}

Code CodeFrom(const pugi::xml_node& n, const std::string& path) {
    Code c;
    for (auto a : n.attributes())
        if (LocalAttr(a) == "scheme") c.scheme = Trimmed(a.value());
    for (auto child : n.children())
        if (child.type() == pugi::node_element)
            Throw(ErrorType::kUnrecognisedDataElement, fmt::format("{}/{}: not known here", path, Local(child)));
    c.value = Trimmed(n.child_value());
    return c;
}
std::optional<Code> CodeOf(Reader& r, std::string_view name) {
    auto n = r.Take(name);
    if (!n) return std::nullopt;
    auto c = CodeFrom(*n, r.Path(name));
    if (c.value.empty()) return std::nullopt;
    return c;
}
Code NeedCode(Reader& r, std::string_view name) {
    auto c = CodeOf(r, name);
    if (!c) Throw(ErrorType::kBadlyFormedMessage, fmt::format("{}: missing", r.Path(name)));
    return *c;
}

AgencyId AgencyFrom(const pugi::xml_node& n, const std::string& path) {
    Reader r(n, path);
    AgencyId a;
    a.type = NeedCode(r, "agencyIdType");
    a.value = r.NeedText("agencyIdValue");
    r.Done();
    return a;
}
std::optional<AgencyId> AgencyOf(Reader& r, std::string_view name) {
    auto n = r.Take(name);
    if (!n) return std::nullopt;
    return AgencyFrom(*n, r.Path(name));
}

std::optional<Costs> CostsOf(Reader& parent, std::string_view name) {
    auto n = parent.Take(name);
    if (!n) return std::nullopt;
    Reader r(*n, parent.Path(name));
    Costs c;
    c.currency = NeedCode(r, "currencyCode");
    c.amount = r.NeedText("monetaryValue");
    const bool decimal = std::all_of(c.amount.begin(), c.amount.end(),
                                     [](char ch) { return (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'; }) &&
                         std::count(c.amount.begin(), c.amount.end(), '.') <= 1;
    if (!decimal)
        Throw(ErrorType::kUnrecognisedDataValue,
              fmt::format("{}: not a decimal: {}", r.Path("monetaryValue"), c.amount));
    r.Done();
    return c;
}

PhysicalAddress PhysicalFrom(const pugi::xml_node& n, const std::string& path) {
    Reader r(n, path);
    PhysicalAddress a;
    a.line1 = r.Text("line1");
    a.line2 = r.Text("line2");
    a.locality = r.Text("locality");
    a.postal_code = r.Text("postalCode");
    a.region = CodeOf(r, "region");
    a.country = CodeOf(r, "country");
    r.Done();
    return a;
}

Address AddressFrom(const pugi::xml_node& n, const std::string& path) {
    Reader r(n, path);
    std::optional<Address> out;
    if (auto e = r.Take("electronicAddress")) {
        Reader er(*e, r.Path("electronicAddress"));
        ElectronicAddress ea;
        ea.type = NeedCode(er, "electronicAddressType");
        ea.data = er.NeedText("electronicAddressData");
        er.Done();
        out = ea;
    }
    if (auto p = r.Take("physicalAddress")) {
        if (out)
            Throw(ErrorType::kBadlyFormedMessage, fmt::format("{}: both an electronic and a physical address", path));
        out = PhysicalFrom(*p, r.Path("physicalAddress"));
    }
    r.Done();
    if (!out) Throw(ErrorType::kBadlyFormedMessage, fmt::format("{}: empty", path));
    return *out;
}

Header HeaderFrom(Reader& parent, ParseError* partial) {
    Reader r(parent.Need("header"), parent.Path("header"));
    Header h;
    // Read in the order a confirmation needs them, so that a later error
    // still leaves the ids for it.
    partial->supplying_agency = AgencyOf(r, "supplyingAgencyId");
    partial->requesting_agency = AgencyOf(r, "requestingAgencyId");
    if (!partial->supplying_agency) Throw(ErrorType::kBadlyFormedMessage, r.Path("supplyingAgencyId") + ": missing");
    if (!partial->requesting_agency) Throw(ErrorType::kBadlyFormedMessage, r.Path("requestingAgencyId") + ": missing");
    h.supplying_agency = *partial->supplying_agency;
    h.requesting_agency = *partial->requesting_agency;
    h.requesting_agency_request_id = r.Text("requestingAgencyRequestId");
    partial->requesting_agency_request_id = h.requesting_agency_request_id;
    h.multiple_item_request_id = r.Text("multipleItemRequestId");
    partial->multiple_item_request_id = h.multiple_item_request_id;
    if (h.requesting_agency_request_id.empty())
        Throw(ErrorType::kUnrecognisedDataValue, r.Path("requestingAgencyRequestId") + ": cannot be empty");
    h.timestamp = NeedTime(r, "timestamp");
    h.supplying_agency_request_id = r.Text("supplyingAgencyRequestId");
    if (auto auth = r.Take("requestingAgencyAuthentication")) {
        Reader ar(*auth, r.Path("requestingAgencyAuthentication"));
        h.account_id = ar.Text("accountId");
        h.security_code = ar.Text("securityCode");
        ar.Done();
    }
    r.Done();
    return h;
}

ConfirmationHeader ConfirmationHeaderFrom(Reader& parent, ParseError* partial) {
    Reader r(parent.Need("confirmationHeader"), parent.Path("confirmationHeader"));
    ConfirmationHeader h;
    h.supplying_agency = AgencyOf(r, "supplyingAgencyId");
    h.requesting_agency = AgencyOf(r, "requestingAgencyId");
    partial->supplying_agency = h.supplying_agency;
    partial->requesting_agency = h.requesting_agency;
    h.timestamp = NeedTime(r, "timestamp");
    h.requesting_agency_request_id = r.Text("requestingAgencyRequestId");
    h.multiple_item_request_id = r.Text("multipleItemRequestId");
    h.timestamp_received = NeedTime(r, "timestampReceived");
    const std::string status = r.NeedText("messageStatus");
    if (status != "OK" && status != "ERROR")
        Throw(ErrorType::kUnrecognisedDataValue, fmt::format("{}: {}", r.Path("messageStatus"), status));
    h.ok = status == "OK";
    r.Done();
    return h;
}

std::optional<ErrorData> ErrorDataOf(Reader& parent) {
    auto n = parent.Take("errorData");
    if (!n) return std::nullopt;
    Reader r(*n, parent.Path("errorData"));
    ErrorData e;
    auto type = EnumOf(r, "errorType", kErrorType);
    if (!type) Throw(ErrorType::kBadlyFormedMessage, r.Path("errorType") + ": missing");
    e.type = *type;
    e.value = r.Text("errorValue");
    r.Done();
    return e;
}

RecordId RecordIdFrom(const pugi::xml_node& n, const std::string& path) {
    Reader r(n, path);
    RecordId id;
    id.code = NeedCode(r, "bibliographicRecordIdentifierCode");
    id.identifier = r.NeedText("bibliographicRecordIdentifier");
    r.Done();
    return id;
}

BibliographicInfo BibliographicFrom(Reader& parent) {
    Reader r(parent.Need("bibliographicInfo"), parent.Path("bibliographicInfo"));
    BibliographicInfo b;
    b.supplier_unique_record_id = r.Text("supplierUniqueRecordId");
    b.title = r.Text("title");
    b.author = r.Text("author");
    b.subtitle = r.Text("subtitle");
    b.series_title = r.Text("seriesTitle");
    b.edition = r.Text("edition");
    b.title_of_component = r.Text("titleOfComponent");
    b.author_of_component = r.Text("authorOfComponent");
    b.volume = r.Text("volume");
    b.issue = r.Text("issue");
    b.pages_requested = r.Text("pagesRequested");
    b.estimated_no_pages = r.Text("estimatedNoPages");
    for (auto n : r.TakeAll("bibliographicItemId")) {
        Reader ir(n, r.Path("bibliographicItemId"));
        ItemId id;
        id.identifier = ir.NeedText("bibliographicItemIdentifier");
        id.code = NeedCode(ir, "bibliographicItemIdentifierCode");
        ir.Done();
        b.item_ids.push_back(std::move(id));
    }
    b.sponsor = r.Text("sponsor");
    b.information_source = r.Text("informationSource");
    for (auto n : r.TakeAll("bibliographicRecordId"))
        b.record_ids.push_back(RecordIdFrom(n, r.Path("bibliographicRecordId")));
    r.Done();
    return b;
}

Request RequestFrom(Reader& r, ParseError* partial) {
    Request q;
    q.header = HeaderFrom(r, partial);
    q.bibliographic_info = BibliographicFrom(r);
    if (auto n = r.Take("publicationInfo")) {
        Reader pr(*n, r.Path("publicationInfo"));
        PublicationInfo p;
        p.publisher = pr.Text("publisher");
        p.publication_type = CodeOf(pr, "publicationType");
        p.publication_date = pr.Text("publicationDate");
        p.place_of_publication = pr.Text("placeOfPublication");
        pr.Done();
        q.publication_info = p;
    }
    if (auto n = r.Take("serviceInfo")) {
        Reader sr(*n, r.Path("serviceInfo"));
        ServiceInfo s;
        s.request_type = EnumOf(sr, "requestType", kRequestType);
        for (auto sub : sr.TakeAll("requestSubType")) {
            auto v = kRequestSubType.From(Trimmed(sub.child_value()));
            if (!v)
                Throw(ErrorType::kUnrecognisedDataValue,
                      fmt::format("{}: {}", sr.Path("requestSubType"), Trimmed(sub.child_value())));
            s.request_sub_types.push_back(*v);
        }
        if (s.request_sub_types.size() > 3)
            Throw(ErrorType::kBadlyFormedMessage, sr.Path("requestSubType") + ": more than 3");
        s.requesting_agency_previous_request_id = sr.Text("requestingAgencyPreviousRequestId");
        auto type = EnumOf(sr, "serviceType", kServiceType);
        if (!type) Throw(ErrorType::kBadlyFormedMessage, sr.Path("serviceType") + ": missing");
        s.service_type = *type;
        s.service_level = CodeOf(sr, "serviceLevel");
        s.preferred_format = CodeOf(sr, "preferredFormat");
        s.need_before_date = TimeOf(sr, "needBeforeDate");
        s.copyright_compliance = CodeOf(sr, "copyrightCompliance");
        s.any_edition = YesNoOf(sr, "anyEdition");
        s.start_date = TimeOf(sr, "startDate");
        s.end_date = TimeOf(sr, "endDate");
        s.note = sr.Text("note");
        sr.Done();
        q.service_info = s;
    }
    for (auto n : r.TakeAll("supplierInfo")) {
        Reader sr(n, r.Path("supplierInfo"));
        SupplierInfo s;
        s.sort_order = IntegerOf(sr, "sortOrder");
        s.supplier_code = AgencyOf(sr, "supplierCode");
        s.supplier_description = sr.Text("supplierDescription");
        if (auto id = sr.Take("bibliographicRecordId"))
            s.record_id = RecordIdFrom(*id, sr.Path("bibliographicRecordId"));
        s.call_number = sr.Text("callNumber");
        s.summary_holdings = sr.Text("summaryHoldings");
        s.availability_note = sr.Text("availabilityNote");
        sr.Done();
        q.supplier_info.push_back(std::move(s));
    }
    for (auto n : r.TakeAll("requestedDeliveryInfo")) {
        Reader dr(n, r.Path("requestedDeliveryInfo"));
        RequestedDeliveryInfo d;
        d.sort_order = IntegerOf(dr, "sortOrder");
        if (auto a = dr.Take("address")) d.address = AddressFrom(*a, dr.Path("address"));
        dr.Done();
        q.requested_delivery_info.push_back(std::move(d));
    }
    if (auto n = r.Take("requestingAgencyInfo")) {
        Reader ar(*n, r.Path("requestingAgencyInfo"));
        RequestingAgencyInfo a;
        a.name = ar.Text("name");
        a.contact_name = ar.Text("contactName");
        for (auto addr : ar.TakeAll("address")) a.addresses.push_back(AddressFrom(addr, ar.Path("address")));
        ar.Done();
        q.requesting_agency_info = a;
    }
    if (auto n = r.Take("patronInfo")) {
        Reader pr(*n, r.Path("patronInfo"));
        PatronInfo p;
        p.patron_id = pr.Text("patronId");
        p.surname = pr.Text("surname");
        p.given_name = pr.Text("givenName");
        p.patron_type = CodeOf(pr, "patronType");
        p.send_to_patron = YesNoOf(pr, "sendToPatron");
        for (auto addr : pr.TakeAll("address")) p.addresses.push_back(AddressFrom(addr, pr.Path("address")));
        pr.Done();
        q.patron_info = p;
    }
    if (auto n = r.Take("billingInfo")) {
        Reader br(*n, r.Path("billingInfo"));
        BillingInfo b;
        b.payment_method = CodeOf(br, "paymentMethod");
        b.maximum_costs = CostsOf(br, "maximumCosts");
        b.billing_method = CodeOf(br, "billingMethod");
        b.billing_name = br.Text("billingName");
        if (auto a = br.Take("address")) b.address = AddressFrom(*a, br.Path("address"));
        br.Done();
        q.billing_info = b;
    }
    return q;
}

SupplyingAgencyMessage SupplyingFrom(Reader& r, ParseError* partial) {
    SupplyingAgencyMessage m;
    m.header = HeaderFrom(r, partial);
    {
        Reader mr(r.Need("messageInfo"), r.Path("messageInfo"));
        auto reason = EnumOf(mr, "reasonForMessage", kReason, ErrorType::kUnsupportedReasonForMessageType);
        if (!reason) Throw(ErrorType::kBadlyFormedMessage, mr.Path("reasonForMessage") + ": missing");
        m.message_info.reason = *reason;
        partial->reason = reason;
        m.message_info.answer_yes_no = YesNoOf(mr, "answerYesNo");
        m.message_info.note = mr.Text("note");
        m.message_info.reason_unfilled = CodeOf(mr, "reasonUnfilled");
        m.message_info.reason_retry = CodeOf(mr, "reasonRetry");
        m.message_info.offered_costs = CostsOf(mr, "offeredCosts");
        m.message_info.retry_after = TimeOf(mr, "retryAfter");
        m.message_info.retry_before = TimeOf(mr, "retryBefore");
        mr.Done();
    }
    {
        Reader sr(r.Need("statusInfo"), r.Path("statusInfo"));
        auto status = EnumOf(sr, "status", kStatus);
        if (!status) Throw(ErrorType::kBadlyFormedMessage, sr.Path("status") + ": missing");
        m.status_info.status = *status;
        m.status_info.expected_delivery_date = TimeOf(sr, "expectedDeliveryDate");
        m.status_info.due_date = TimeOf(sr, "dueDate");
        m.status_info.last_change = NeedTime(sr, "lastChange");
        sr.Done();
    }
    if (auto n = r.Take("deliveryInfo")) {
        Reader dr(*n, r.Path("deliveryInfo"));
        DeliveryInfo d;
        d.date_sent = NeedTime(dr, "dateSent");
        d.item_id = dr.Text("itemId");
        d.sent_via = CodeOf(dr, "sentVia");
        auto sent = dr.Text("sentToPatron");
        if (sent == "true" || sent == "1") d.sent_to_patron = true;
        else if (sent == "false" || sent == "0") d.sent_to_patron = false;
        else if (!sent.empty())
            Throw(ErrorType::kUnrecognisedDataValue, fmt::format("{}: {}", dr.Path("sentToPatron"), sent));
        d.loan_condition = CodeOf(dr, "loanCondition");
        d.delivered_format = CodeOf(dr, "deliveredFormat");
        d.delivery_costs = CostsOf(dr, "deliveryCosts");
        dr.Done();
        m.delivery_info = d;
    }
    if (auto n = r.Take("returnInfo")) {
        Reader rr(*n, r.Path("returnInfo"));
        ReturnInfo ri;
        ri.return_agency = AgencyOf(rr, "returnAgencyId");
        ri.name = rr.Text("name");
        if (auto p = rr.Take("physicalAddress")) ri.address = PhysicalFrom(*p, rr.Path("physicalAddress"));
        rr.Done();
        m.return_info = ri;
    }
    return m;
}

Message MessageFrom(pugi::xml_node body, ParseError* partial) {
    const std::string kind(Local(body));
    Reader r(body, "/ISO18626Message/" + kind);
    Message out;
    if (kind == "request") {
        out = RequestFrom(r, partial);
    } else if (kind == "supplyingAgencyMessage") {
        out = SupplyingFrom(r, partial);
    } else if (kind == "requestingAgencyMessage") {
        RequestingAgencyMessage m;
        m.header = HeaderFrom(r, partial);
        auto action = EnumOf(r, "action", kAction, ErrorType::kUnsupportedActionType);
        if (!action) Throw(ErrorType::kBadlyFormedMessage, r.Path("action") + ": missing");
        m.action = *action;
        partial->action = action;
        m.note = r.Text("note");
        out = m;
    } else if (kind == "requestConfirmation") {
        RequestConfirmation c;
        c.header = ConfirmationHeaderFrom(r, partial);
        c.error = ErrorDataOf(r);
        out = c;
    } else if (kind == "supplyingAgencyMessageConfirmation") {
        SupplyingAgencyMessageConfirmation c;
        c.header = ConfirmationHeaderFrom(r, partial);
        c.reason = EnumOf(r, "reasonForMessage", kReason, ErrorType::kUnsupportedReasonForMessageType);
        c.error = ErrorDataOf(r);
        out = c;
    } else {  // requestingAgencyMessageConfirmation
        RequestingAgencyMessageConfirmation c;
        c.header = ConfirmationHeaderFrom(r, partial);
        c.action = EnumOf(r, "action", kAction, ErrorType::kUnsupportedActionType);
        c.error = ErrorDataOf(r);
        out = c;
    }
    r.Done();
    return out;
}


// The namespace a prefix is bound to where `n` is, "" if none.
std::string NamespaceOf(pugi::xml_node n) {
    std::string_view name = n.name();
    auto colon = name.find(':');
    const std::string attr =
        colon == std::string_view::npos ? "xmlns" : "xmlns:" + std::string(name.substr(0, colon));
    for (auto p = n; p; p = p.parent())
        if (auto a = p.attribute(attr.c_str())) return a.value();
    return "";
}

// ---- writing ----------------------------------------------------------------

class Writer {
public:
    explicit Writer(pugi::xml_node node) : node_(node) {}
    Writer Child(const char* name) { return Writer(node_.append_child(Qualified(name).c_str())); }
    void Text(const char* name, const std::string& value) {
        node_.append_child(Qualified(name).c_str()).text().set(value.c_str());
    }
    void Optional(const char* name, const std::string& value) {
        if (!value.empty()) Text(name, value);
    }
    void Time(const char* name, const iso18626::Time& t) { Text(name, FormatTime(t)); }
    void Time(const char* name, const std::optional<iso18626::Time>& t) {
        if (t) Text(name, FormatTime(*t));
    }
    void Code(const char* name, const iso18626::Code& c) {
        auto n = node_.append_child(Qualified(name).c_str());
        if (!c.scheme.empty()) n.append_attribute("ill:scheme").set_value(c.scheme.c_str());
        n.text().set(c.value.c_str());
    }
    void Code(const char* name, const std::optional<iso18626::Code>& c) {
        if (c) Code(name, *c);
    }
    void YesNo(const char* name, const std::optional<bool>& v) {
        if (v) Text(name, *v ? "Y" : "N");
    }
    void Agency(const char* name, const AgencyId& a) {
        auto w = Child(name);
        w.Code("agencyIdType", a.type);
        w.Text("agencyIdValue", a.value);
    }
    void Costs(const char* name, const std::optional<iso18626::Costs>& c) {
        if (!c) return;
        auto w = Child(name);
        w.Code("currencyCode", c->currency);
        w.Text("monetaryValue", c->amount);
    }
    void Physical(const char* name, const PhysicalAddress& a) {
        auto w = Child(name);
        w.Optional("line1", a.line1);
        w.Optional("line2", a.line2);
        w.Optional("locality", a.locality);
        w.Optional("postalCode", a.postal_code);
        w.Code("region", a.region);
        w.Code("country", a.country);
    }
    void Addr(const Address& a) {
        auto w = Child("address");
        if (auto* e = std::get_if<ElectronicAddress>(&a)) {
            auto ew = w.Child("electronicAddress");
            ew.Code("electronicAddressType", e->type);
            ew.Text("electronicAddressData", e->data);
        } else {
            w.Physical("physicalAddress", std::get<PhysicalAddress>(a));
        }
    }
    void RecordIdentifier(const RecordId& id) {
        auto w = Child("bibliographicRecordId");
        w.Code("bibliographicRecordIdentifierCode", id.code);
        w.Text("bibliographicRecordIdentifier", id.identifier);
    }

private:
    static std::string Qualified(const char* name) { return std::string("ill:") + name; }
    pugi::xml_node node_;
};

void WriteHeader(Writer& parent, const Header& h) {
    auto w = parent.Child("header");
    w.Agency("supplyingAgencyId", h.supplying_agency);
    w.Agency("requestingAgencyId", h.requesting_agency);
    w.Text("multipleItemRequestId", h.multiple_item_request_id);  // required by v1.2, may be empty
    w.Time("timestamp", h.timestamp);
    w.Text("requestingAgencyRequestId", h.requesting_agency_request_id);
    w.Optional("supplyingAgencyRequestId", h.supplying_agency_request_id);
    if (!h.account_id.empty() || !h.security_code.empty()) {
        auto a = w.Child("requestingAgencyAuthentication");
        a.Optional("accountId", h.account_id);
        a.Optional("securityCode", h.security_code);
    }
}

void WriteConfirmationHeader(Writer& parent, const ConfirmationHeader& h) {
    auto w = parent.Child("confirmationHeader");
    if (h.supplying_agency) w.Agency("supplyingAgencyId", *h.supplying_agency);
    if (h.requesting_agency) w.Agency("requestingAgencyId", *h.requesting_agency);
    w.Time("timestamp", h.timestamp);
    w.Optional("requestingAgencyRequestId", h.requesting_agency_request_id);
    w.Optional("multipleItemRequestId", h.multiple_item_request_id);
    w.Time("timestampReceived", h.timestamp_received);
    w.Text("messageStatus", h.ok ? "OK" : "ERROR");
}

void WriteError(Writer& parent, const std::optional<ErrorData>& e) {
    if (!e) return;
    auto w = parent.Child("errorData");
    w.Text("errorType", ToString(e->type));
    w.Optional("errorValue", e->value);
}

void WriteBody(Writer& w, const Request& q) {
    WriteHeader(w, q.header);
    {
        const auto& b = q.bibliographic_info;
        auto bw = w.Child("bibliographicInfo");
        bw.Optional("supplierUniqueRecordId", b.supplier_unique_record_id);
        bw.Optional("title", b.title);
        bw.Optional("author", b.author);
        bw.Optional("subtitle", b.subtitle);
        bw.Optional("seriesTitle", b.series_title);
        bw.Optional("edition", b.edition);
        bw.Optional("titleOfComponent", b.title_of_component);
        bw.Optional("authorOfComponent", b.author_of_component);
        bw.Optional("volume", b.volume);
        bw.Optional("issue", b.issue);
        bw.Optional("pagesRequested", b.pages_requested);
        bw.Optional("estimatedNoPages", b.estimated_no_pages);
        for (const auto& id : b.item_ids) {
            auto iw = bw.Child("bibliographicItemId");
            iw.Text("bibliographicItemIdentifier", id.identifier);
            iw.Code("bibliographicItemIdentifierCode", id.code);
        }
        bw.Optional("sponsor", b.sponsor);
        bw.Optional("informationSource", b.information_source);
        for (const auto& id : b.record_ids) bw.RecordIdentifier(id);
    }
    if (const auto& p = q.publication_info) {
        auto pw = w.Child("publicationInfo");
        pw.Optional("publisher", p->publisher);
        pw.Code("publicationType", p->publication_type);
        pw.Optional("publicationDate", p->publication_date);
        pw.Optional("placeOfPublication", p->place_of_publication);
    }
    if (const auto& s = q.service_info) {
        auto sw = w.Child("serviceInfo");
        if (s->request_type) sw.Text("requestType", ToString(*s->request_type));
        for (auto sub : s->request_sub_types) sw.Text("requestSubType", ToString(sub));
        sw.Optional("requestingAgencyPreviousRequestId", s->requesting_agency_previous_request_id);
        sw.Text("serviceType", ToString(s->service_type));
        sw.Code("serviceLevel", s->service_level);
        sw.Code("preferredFormat", s->preferred_format);
        sw.Time("needBeforeDate", s->need_before_date);
        sw.Code("copyrightCompliance", s->copyright_compliance);
        sw.YesNo("anyEdition", s->any_edition);
        sw.Time("startDate", s->start_date);
        sw.Time("endDate", s->end_date);
        sw.Optional("note", s->note);
    }
    for (const auto& s : q.supplier_info) {
        auto sw = w.Child("supplierInfo");
        if (s.sort_order) sw.Text("sortOrder", std::to_string(*s.sort_order));
        if (s.supplier_code) sw.Agency("supplierCode", *s.supplier_code);
        sw.Optional("supplierDescription", s.supplier_description);
        if (s.record_id) sw.RecordIdentifier(*s.record_id);
        sw.Optional("callNumber", s.call_number);
        sw.Optional("summaryHoldings", s.summary_holdings);
        sw.Optional("availabilityNote", s.availability_note);
    }
    for (const auto& d : q.requested_delivery_info) {
        auto dw = w.Child("requestedDeliveryInfo");
        if (d.sort_order) dw.Text("sortOrder", std::to_string(*d.sort_order));
        if (d.address) dw.Addr(*d.address);
    }
    if (const auto& a = q.requesting_agency_info) {
        auto aw = w.Child("requestingAgencyInfo");
        aw.Optional("name", a->name);
        aw.Optional("contactName", a->contact_name);
        for (const auto& addr : a->addresses) aw.Addr(addr);
    }
    if (const auto& p = q.patron_info) {
        auto pw = w.Child("patronInfo");
        pw.Optional("patronId", p->patron_id);
        pw.Optional("surname", p->surname);
        pw.Optional("givenName", p->given_name);
        pw.Code("patronType", p->patron_type);
        pw.YesNo("sendToPatron", p->send_to_patron);
        for (const auto& addr : p->addresses) pw.Addr(addr);
    }
    if (const auto& b = q.billing_info) {
        auto bw = w.Child("billingInfo");
        bw.Code("paymentMethod", b->payment_method);
        bw.Costs("maximumCosts", b->maximum_costs);
        bw.Code("billingMethod", b->billing_method);
        bw.Optional("billingName", b->billing_name);
        if (b->address) bw.Addr(*b->address);
    }
}

void WriteBody(Writer& w, const SupplyingAgencyMessage& m) {
    WriteHeader(w, m.header);
    {
        const auto& i = m.message_info;
        auto mw = w.Child("messageInfo");
        mw.Text("reasonForMessage", ToString(i.reason));
        mw.YesNo("answerYesNo", i.answer_yes_no);
        mw.Optional("note", i.note);
        mw.Code("reasonUnfilled", i.reason_unfilled);
        mw.Code("reasonRetry", i.reason_retry);
        mw.Costs("offeredCosts", i.offered_costs);
        mw.Time("retryAfter", i.retry_after);
        mw.Time("retryBefore", i.retry_before);
    }
    {
        const auto& s = m.status_info;
        auto sw = w.Child("statusInfo");
        sw.Text("status", ToString(s.status));
        sw.Time("expectedDeliveryDate", s.expected_delivery_date);
        sw.Time("dueDate", s.due_date);
        sw.Time("lastChange", s.last_change);
    }
    if (const auto& d = m.delivery_info) {
        auto dw = w.Child("deliveryInfo");
        dw.Time("dateSent", d->date_sent);
        dw.Optional("itemId", d->item_id);
        dw.Code("sentVia", d->sent_via);
        if (d->sent_to_patron) dw.Text("sentToPatron", *d->sent_to_patron ? "true" : "false");
        dw.Code("loanCondition", d->loan_condition);
        dw.Code("deliveredFormat", d->delivered_format);
        dw.Costs("deliveryCosts", d->delivery_costs);
    }
    if (const auto& r = m.return_info) {
        auto rw = w.Child("returnInfo");
        if (r->return_agency) rw.Agency("returnAgencyId", *r->return_agency);
        rw.Optional("name", r->name);
        if (r->address) rw.Physical("physicalAddress", *r->address);
    }
}

void WriteBody(Writer& w, const RequestingAgencyMessage& m) {
    WriteHeader(w, m.header);
    w.Text("action", ToString(m.action));
    w.Optional("note", m.note);
}
void WriteBody(Writer& w, const RequestConfirmation& c) {
    WriteConfirmationHeader(w, c.header);
    WriteError(w, c.error);
}
void WriteBody(Writer& w, const SupplyingAgencyMessageConfirmation& c) {
    WriteConfirmationHeader(w, c.header);
    if (c.reason) w.Text("reasonForMessage", ToString(*c.reason));
    WriteError(w, c.error);
}
void WriteBody(Writer& w, const RequestingAgencyMessageConfirmation& c) {
    WriteConfirmationHeader(w, c.header);
    if (c.action) w.Text("action", ToString(*c.action));
    WriteError(w, c.error);
}

const char* KindOf(const Message& m) { return kKinds[m.index()]; }

ConfirmationHeader ConfirmationHeaderFor(const std::optional<AgencyId>& supplying,
                                         const std::optional<AgencyId>& requesting, const std::string& request_id,
                                         const std::string& multiple_item_request_id, Time received, Time now,
                                         bool ok) {
    ConfirmationHeader h;
    h.supplying_agency = supplying;
    h.requesting_agency = requesting;
    h.timestamp = now;
    h.requesting_agency_request_id = request_id;
    h.multiple_item_request_id = multiple_item_request_id;
    h.timestamp_received = received;
    h.ok = ok;
    return h;
}

}  // namespace

const char* ToString(Status s) { return kStatus.Of(s); }
const char* ToString(Action a) { return kAction.Of(a); }
const char* ToString(ReasonForMessage r) { return kReason.Of(r); }
const char* ToString(ErrorType e) { return kErrorType.Of(e); }
const char* ToString(RequestType t) { return kRequestType.Of(t); }
const char* ToString(RequestSubType t) { return kRequestSubType.Of(t); }
const char* ToString(ServiceType t) { return kServiceType.Of(t); }
std::optional<Status> StatusFrom(std::string_view s) { return kStatus.From(s); }
std::optional<Action> ActionFrom(std::string_view s) { return kAction.From(s); }
std::optional<ReasonForMessage> ReasonFrom(std::string_view s) { return kReason.From(s); }

std::optional<Time> ParseTime(std::string_view s) {
    // YYYY-MM-DDThh:mm:ss[.f{1,9}][Z|(+|-)hh:mm|(+|-)hhmm]
    int year, month, day, hour, minute, second;
    if (s.size() < 19 || !Digits(s, 0, 4, &year) || s[4] != '-' || !Digits(s, 5, 2, &month) || s[7] != '-' ||
        !Digits(s, 8, 2, &day) || s[10] != 'T' || !Digits(s, 11, 2, &hour) || s[13] != ':' ||
        !Digits(s, 14, 2, &minute) || s[16] != ':' || !Digits(s, 17, 2, &second))
        return std::nullopt;
    std::size_t at = 19;
    long long micros = 0;
    if (at < s.size() && s[at] == '.') {
        std::size_t digits = 0;
        for (++at; at < s.size() && s[at] >= '0' && s[at] <= '9'; ++at, ++digits)
            if (digits < 6) micros = micros * 10 + (s[at] - '0');
        if (digits == 0 || digits > 9) return std::nullopt;
        for (std::size_t d = digits; d < 6; ++d) micros *= 10;
    }
    int offset_minutes = 0;
    if (at < s.size()) {
        if (s[at] == 'Z' && at + 1 == s.size()) {
        } else if (s[at] == '+' || s[at] == '-') {
            int oh, om;
            const auto rest = s.size() - at - 1;
            if (rest == 5 && Digits(s, at + 1, 2, &oh) && s[at + 3] == ':' && Digits(s, at + 4, 2, &om)) {
            } else if (rest == 4 && Digits(s, at + 1, 2, &oh) && Digits(s, at + 3, 2, &om)) {
            } else {
                return std::nullopt;
            }
            if (oh > 14 || om > 59) return std::nullopt;
            offset_minutes = (oh * 60 + om) * (s[at] == '-' ? -1 : 1);
        } else {
            return std::nullopt;
        }
    }
    using namespace std::chrono;
    const year_month_day ymd{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                             std::chrono::day(static_cast<unsigned>(day))};
    // 24:00:00 and leap seconds are refused: no real system sends them here.
    if (!ymd.ok() || hour > 23 || minute > 59 || second > 59) return std::nullopt;
    return Time{sys_days(ymd).time_since_epoch() + hours(hour) + minutes(minute - offset_minutes) +
                seconds(second) + microseconds(micros)};
}

std::string FormatTime(Time t) {
    using namespace std::chrono;
    const auto days = floor<std::chrono::days>(t);
    const year_month_day ymd{days};
    const hh_mm_ss hms{t - days};
    std::string out = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", static_cast<int>(ymd.year()),
                                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                                  hms.hours().count(), hms.minutes().count(), hms.seconds().count());
    if (hms.subseconds().count() != 0) out += fmt::format(".{:06}", hms.subseconds().count());
    return out + "Z";
}

std::variant<Parsed, ParseError> Parse(std::string_view xml) {
    ParseError failure;
    auto fail = [&](ErrorType type, std::string value) {
        failure.error = {type, std::move(value)};
        return failure;
    };
    if (xml.size() > kMaxMessageBytes)
        return fail(ErrorType::kBadlyFormedMessage,
                    fmt::format("the message is larger than {} bytes", kMaxMessageBytes));
    if (!IsValidUtf8(xml)) return fail(ErrorType::kBadlyFormedMessage, "the message is not valid UTF-8");
    if (xml.find("<!DOCTYPE") != std::string_view::npos || xml.find("<!ENTITY") != std::string_view::npos)
        return fail(ErrorType::kBadlyFormedMessage, "the message declares a DTD or entities; refused");
    pugi::xml_document doc;
    const auto loaded =
        doc.load_buffer(xml.data(), xml.size(), pugi::parse_default & ~pugi::parse_doctype, pugi::encoding_utf8);
    if (!loaded)
        return fail(ErrorType::kBadlyFormedMessage,
                    fmt::format("not well-formed XML: {} at byte {}", loaded.description(), loaded.offset));
    auto root = doc.document_element();
    if (!root || Local(root) != "ISO18626Message")
        return fail(ErrorType::kBadlyFormedMessage,
                    fmt::format("expected ISO18626Message, got <{}>", root ? root.name() : ""));
    const std::string ns = NamespaceOf(root);
    if (!ns.empty() && ns != kNamespace)
        return fail(ErrorType::kBadlyFormedMessage,
                    fmt::format("ISO18626Message in namespace {}, not {}", ns, kNamespace));
    if (ElementDepth(root, kMaxDepth) > kMaxDepth)
        return fail(ErrorType::kBadlyFormedMessage, fmt::format("elements nested deeper than {}", kMaxDepth));
    // The one message inside.
    pugi::xml_node body;
    for (auto c : root.children()) {
        if (c.type() != pugi::node_element) continue;
        if (body) return fail(ErrorType::kBadlyFormedMessage, "more than one message in ISO18626Message");
        body = c;
    }
    if (!body) return fail(ErrorType::kBadlyFormedMessage, "ISO18626Message holds no message");
    const std::string kind(Local(body));
    if (std::find(std::begin(kKinds), std::end(kKinds), kind) == std::end(kKinds))
        return fail(ErrorType::kUnrecognisedDataElement,
                    fmt::format("/ISO18626Message/{}: not an ISO 18626 message", kind));
    failure.kind = kind;
    Parsed out;
    std::string version;
    for (auto a : root.attributes())
        if (LocalAttr(a) == "version") version = Trimmed(a.value());
    if (version == "1.0") out.version = Version::k1_0;
    else if (version == "1.1") out.version = Version::k1_1;
    else if (version == "1.2" || version == "v1_2_2017") out.version = Version::k1_2;
    else if (version.empty()) return fail(ErrorType::kBadlyFormedMessage, "/ISO18626Message/@version: missing");
    try {
        out.message = MessageFrom(body, &failure);
    } catch (const Bad& bad) {
        return fail(bad.type, bad.value);
    }
    // Known after the header: a version this codec does not read (the 2021
    // schema is not compatible with 1.x) is refused by value.
    if (version != "1.0" && version != "1.1" && version != "1.2" && version != "v1_2_2017")
        return fail(ErrorType::kUnrecognisedDataValue,
                    fmt::format("/ISO18626Message/@version: {} (1.0, 1.1 and 1.2 are read)", version));
    return out;
}

std::string Write(const Message& message) {
    pugi::xml_document doc;
    auto decl = doc.append_child(pugi::node_declaration);
    decl.append_attribute("version").set_value("1.0");
    decl.append_attribute("encoding").set_value("UTF-8");
    auto root = doc.append_child("ill:ISO18626Message");
    root.append_attribute("xmlns:ill").set_value(std::string(kNamespace).c_str());
    root.append_attribute("ill:version").set_value("1.2");
    Writer body(root.append_child((std::string("ill:") + KindOf(message)).c_str()));
    std::visit([&](const auto& m) { WriteBody(body, m); }, message);
    std::ostringstream out;
    doc.save(out, "", pugi::format_raw, pugi::encoding_utf8);
    return out.str();
}

Message ConfirmationOf(const Message& message, Time received, Time now, std::optional<ErrorData> error) {
    const bool ok = !error.has_value();
    if (const auto* q = std::get_if<Request>(&message)) {
        const auto& h = q->header;
        return RequestConfirmation{ConfirmationHeaderFor(h.supplying_agency, h.requesting_agency,
                                                         h.requesting_agency_request_id, h.multiple_item_request_id,
                                                         received, now, ok),
                                   std::move(error)};
    }
    if (const auto* m = std::get_if<SupplyingAgencyMessage>(&message)) {
        const auto& h = m->header;
        return SupplyingAgencyMessageConfirmation{
            ConfirmationHeaderFor(h.supplying_agency, h.requesting_agency, h.requesting_agency_request_id,
                                  h.multiple_item_request_id, received, now, ok),
            m->message_info.reason, std::move(error)};
    }
    if (const auto* m = std::get_if<RequestingAgencyMessage>(&message)) {
        const auto& h = m->header;
        return RequestingAgencyMessageConfirmation{
            ConfirmationHeaderFor(h.supplying_agency, h.requesting_agency, h.requesting_agency_request_id,
                                  h.multiple_item_request_id, received, now, ok),
            m->action, std::move(error)};
    }
    // A confirmation is not confirmed.
    throw std::logic_error("a confirmation has no confirmation");
}

std::optional<Message> ConfirmationOf(const ParseError& f, Time received, Time now) {
    auto header = ConfirmationHeaderFor(f.supplying_agency, f.requesting_agency, f.requesting_agency_request_id,
                                        f.multiple_item_request_id, received, now, false);
    if (f.kind == "request") return RequestConfirmation{header, f.error};
    if (f.kind == "supplyingAgencyMessage") return SupplyingAgencyMessageConfirmation{header, f.reason, f.error};
    if (f.kind == "requestingAgencyMessage") return RequestingAgencyMessageConfirmation{header, f.action, f.error};
    return std::nullopt;
}

}  // namespace iblsync::protocols::iso18626
