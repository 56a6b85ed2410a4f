#include "storage/ibl.hpp"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include "protocols/ibl_state.hpp"
#include "protocols/isil.hpp"
#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/sql.hpp"

namespace iblsync::storage {

namespace iso = protocols::iso18626;
namespace ibl = protocols::ibl;

namespace {

iso::ErrorData Error(iso::ErrorType type, std::string value) { return {type, std::move(value)}; }
iso::ErrorData BadValue(std::string value) { return Error(iso::ErrorType::kUnrecognisedDataValue, std::move(value)); }

// The ISIL an agency id names, canonical; an error if it names none.
std::variant<std::string, iso::ErrorData> IsilOf(const iso::AgencyId& a, const char* field) {
    std::string type = a.type.value;
    for (auto& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (type != "ISIL")
        return BadValue(fmt::format("{}: agencyIdType {} is not used in this network; send the ISIL", field,
                                    a.type.value.empty() ? "(empty)" : a.type.value));
    auto isil = protocols::NormalizeIsil(a.value);
    if (!isil) return BadValue(fmt::format("{}: {} is not an ISIL ({})", field, a.value, isil.error()));
    return std::move(isil).value();
}

// Which message this is, for telling a second delivery of it from a new one.
std::string IdentityOf(const iso::Header& h, std::string_view kind, std::string_view what) {
    return fmt::format("{}|{}|{}", kind, iso::FormatTime(h.timestamp), what);
}

// Whether the library is one this node serves itself (not one it knows of
// from another POI through the national node).
bool OwnLibrary(pqxx::work& tx, const std::string& isil) {
    return !detail::ExecPrepared(tx, "ibl_own_library",
                                 "SELECT 1 FROM library WHERE isil = $1 AND enabled "
                                 "AND coalesce(poi, (SELECT isil FROM node_identity)) = "
                                 "(SELECT isil FROM node_identity)",
                                 isil)
                .empty();
}

bool KnownLibrary(pqxx::work& tx, const std::string& isil) {
    return !detail::ExecPrepared(tx, "ibl_known_library", "SELECT 1 FROM library WHERE isil = $1", isil).empty();
}

ibl::Transaction TransactionOf(const pqxx::row& r) {
    ibl::Transaction t;
    t.state = ibl::StateFrom(r["state"].as<std::string>()).value_or(ibl::State::kSent);
    t.cancel_pending = r["cancel_pending"].as<bool>();
    t.renew_pending = r["renew_pending"].as<bool>();
    t.received = r["received"].as<bool>();
    t.shipped_return = r["shipped_return"].as<bool>();
    t.conditional = r["conditional"].as<bool>();
    return t;
}

constexpr const char* kFindRequest =
    "SELECT id, state, cancel_pending, renew_pending, received, shipped_return, conditional FROM ibl_request "
    "WHERE role = $1 AND requesting_agency = $2 AND request_id = $3 AND supplying_agency = $4 FOR UPDATE";

bool SeenBefore(pqxx::work& tx, long long request, const std::string& identity) {
    return !detail::ExecPrepared(tx, "ibl_seen",
                                 "SELECT 1 FROM ibl_event WHERE request = $1 AND direction = 'in' AND identity = $2",
                                 request, identity)
                .empty();
}

void AddEvent(pqxx::work& tx, long long request, std::string_view kind, const std::string& what,
              const iso::Header& h, const std::string& identity, const std::string& state, std::string_view body) {
    detail::ExecPrepared(tx, "ibl_event_in",
                         "INSERT INTO ibl_event (request, direction, kind, what, sent_at, identity, state_after, body) "
                         "VALUES ($1, 'in', $2, $3, $4::timestamptz, $5, $6, $7)",
                         request, std::string(kind), what, iso::FormatTime(h.timestamp), identity, state,
                         std::string(body));
}

void SaveTransaction(pqxx::work& tx, long long request, const ibl::Transaction& t,
                     const std::string& supplier_request_id, const std::string& due_date) {
    detail::ExecPrepared(tx, "ibl_save",
                         "UPDATE ibl_request SET state = $2, cancel_pending = $3, renew_pending = $4, received = $5, "
                         "shipped_return = $6, conditional = $7, "
                         "supplier_request_id = coalesce(supplier_request_id, NULLIF($8, '')), "
                         "due_date = coalesce(NULLIF($9, '')::timestamptz, due_date), updated_at = now() "
                         "WHERE id = $1",
                         request, std::string(ibl::ToString(t.state)), t.cancel_pending, t.renew_pending,
                         t.received, t.shipped_return, t.conditional, supplier_request_id, due_date);
}

// Both agencies of a header as ISILs, the one on this node's side first
// checked to be this node's own library.
struct Parties {
    std::string requester, supplier;
};
std::variant<Parties, iso::ErrorData> PartiesOf(pqxx::work& tx, const iso::Header& h, bool we_supply,
                                                const std::string& sender) {
    auto requester = IsilOf(h.requesting_agency, "requestingAgencyId");
    if (auto* e = std::get_if<iso::ErrorData>(&requester)) return *e;
    auto supplier = IsilOf(h.supplying_agency, "supplyingAgencyId");
    if (auto* e = std::get_if<iso::ErrorData>(&supplier)) return *e;
    Parties p{std::get<std::string>(requester), std::get<std::string>(supplier)};
    if (h.requesting_agency_request_id.empty()) return BadValue("requestingAgencyRequestId: cannot be empty");
    const auto& ours = we_supply ? p.supplier : p.requester;
    if (!OwnLibrary(tx, ours))
        return BadValue(fmt::format("{}: {} is not a library served by this node",
                                    we_supply ? "supplyingAgencyId" : "requestingAgencyId", ours));
    const auto& theirs = we_supply ? p.requester : p.supplier;
    if (!KnownLibrary(tx, theirs))
        return BadValue(fmt::format("{}: {} is not a library of this network",
                                    we_supply ? "requestingAgencyId" : "supplyingAgencyId", theirs));
    // The sending side speaks for itself or through its POI node.
    if (theirs != sender &&
        detail::ExecPrepared(tx, "ibl_speaks_for", "SELECT 1 FROM library WHERE isil = $1 AND poi = $2", theirs,
                             sender)
            .empty())
        return BadValue(fmt::format("{}: the token used belongs to {}, which does not send for {}",
                                    we_supply ? "requestingAgencyId" : "supplyingAgencyId", sender, theirs));
    return p;
}

InboundOutcome Refused(iso::ErrorData e) {
    InboundOutcome out;
    out.error = std::move(e);
    return out;
}

InboundOutcome TakeRequest(pqxx::work& tx, const iso::Request& m, std::string_view body,
                           const std::string& sender) {
    auto parties = PartiesOf(tx, m.header, true, sender);
    if (auto* e = std::get_if<iso::ErrorData>(&parties)) return Refused(*e);
    const auto& p = std::get<Parties>(parties);
    if (p.requester == p.supplier) return Refused(BadValue("supplyingAgencyId: a library cannot lend to itself"));
    const auto service = m.service_info ? m.service_info->service_type : iso::ServiceType::kLoan;
    if (service == iso::ServiceType::kCopy)
        return Refused(BadValue("serviceType: IBL in this network lends physical items; Copy is not offered"));
    if (m.service_info && m.service_info->request_type == iso::RequestType::kReminder)
        return Refused(BadValue("requestType: Reminder is not supported; send a requestingAgencyMessage "
                                "StatusRequest"));
    const std::string identity = IdentityOf(m.header, "request", "");
    std::string isbn;
    for (const auto& id : m.bibliographic_info.item_ids)
        if (id.code.value == "ISBN") {
            isbn = id.identifier;
            break;
        }
    const std::string state = ibl::ToString(ibl::State::kSent);
    auto row = detail::ExecPrepared(
        tx, "ibl_take_request",
        "INSERT INTO ibl_request (role, requesting_agency, request_id, supplying_agency, supplier_request_id, state, "
        "service_type, title, author, isbn, patron_ref) "
        "VALUES ('supplier', $1, $2, $3, NULLIF($4, ''), $5, $6, NULLIF($7, ''), NULLIF($8, ''), NULLIF($9, ''), "
        "NULLIF($10, '')) ON CONFLICT DO NOTHING RETURNING id",
        p.requester, m.header.requesting_agency_request_id, p.supplier, m.header.supplying_agency_request_id, state,
        std::string(iso::ToString(service)), m.bibliographic_info.title, m.bibliographic_info.author, isbn,
        m.patron_info ? m.patron_info->patron_id : std::string());
    InboundOutcome out;
    if (row.empty()) {
        auto existing = detail::ExecPrepared(tx, "ibl_find_request", kFindRequest, std::string("supplier"),
                                             p.requester, m.header.requesting_agency_request_id, p.supplier);
        const long long id = existing.at(0)["id"].as<long long>();
        if (!SeenBefore(tx, id, identity))
            return Refused(BadValue(fmt::format("requestingAgencyRequestId: {} already names a request of {} to {}",
                                                m.header.requesting_agency_request_id, p.requester, p.supplier)));
        out.duplicate = true;
        out.request = id;
        out.state = existing.at(0)["state"].as<std::string>();
        return out;
    }
    out.request = row.at(0)[0].as<long long>();
    out.state = state;
    AddEvent(tx, out.request, "request", "", m.header, identity, state, body);
    return out;
}

// A supplyingAgencyMessage: the supplier of a request this node's library sent.
InboundOutcome TakeSupplierMessage(pqxx::work& tx, const iso::SupplyingAgencyMessage& m, std::string_view body,
                                   const std::string& sender) {
    auto parties = PartiesOf(tx, m.header, false, sender);
    if (auto* e = std::get_if<iso::ErrorData>(&parties)) return Refused(*e);
    const auto& p = std::get<Parties>(parties);
    auto found = detail::ExecPrepared(tx, "ibl_find_request", kFindRequest, std::string("requester"), p.requester,
                                      m.header.requesting_agency_request_id, p.supplier);
    if (found.empty())
        return Refused(BadValue(fmt::format("requestingAgencyRequestId: {} did not send {} a request {}", p.requester,
                                            p.supplier, m.header.requesting_agency_request_id)));
    const long long id = found.at(0)["id"].as<long long>();
    const std::string what = fmt::format("{} {}", iso::ToString(m.message_info.reason),
                                         iso::ToString(m.status_info.status));
    const std::string identity = IdentityOf(m.header, "supplyingAgencyMessage", what);
    InboundOutcome out;
    out.request = id;
    if (SeenBefore(tx, id, identity)) {
        out.duplicate = true;
        out.state = found.at(0)["state"].as<std::string>();
        return out;
    }
    ibl::SupplierEvent e;
    e.reason = m.message_info.reason;
    e.status = m.status_info.status;
    e.answer = m.message_info.answer_yes_no;
    e.conditions = m.message_info.offered_costs.has_value() ||
                   (m.delivery_info && m.delivery_info->loan_condition.has_value());
    auto verdict = ibl::OnSupplierMessage(TransactionOf(found.at(0)), e);
    if (!verdict.allowed) {
        const bool about_reason = m.message_info.reason == iso::ReasonForMessage::kRenewResponse ||
                                  m.message_info.reason == iso::ReasonForMessage::kCancelResponse;
        return Refused(Error(about_reason ? iso::ErrorType::kUnsupportedReasonForMessageType
                                          : iso::ErrorType::kUnrecognisedDataValue,
                             fmt::format("{}: {}", about_reason ? "reasonForMessage" : "status", verdict.why)));
    }
    out.state = ibl::ToString(verdict.next.state);
    SaveTransaction(tx, id, verdict.next, m.header.supplying_agency_request_id,
                    m.status_info.due_date ? iso::FormatTime(*m.status_info.due_date) : std::string());
    AddEvent(tx, id, "supplyingAgencyMessage", what, m.header, identity, out.state, body);
    return out;
}

// A requestingAgencyMessage: the requester of a request this node's library supplies.
InboundOutcome TakeRequesterMessage(pqxx::work& tx, const iso::RequestingAgencyMessage& m, std::string_view body,
                                    const std::string& sender) {
    auto parties = PartiesOf(tx, m.header, true, sender);
    if (auto* e = std::get_if<iso::ErrorData>(&parties)) return Refused(*e);
    const auto& p = std::get<Parties>(parties);
    if (m.action == iso::Action::kShippedForward)
        return Refused(Error(iso::ErrorType::kUnsupportedActionType,
                             "action: ShippedForward is not used in this network; items go back to their lender"));
    auto found = detail::ExecPrepared(tx, "ibl_find_request", kFindRequest, std::string("supplier"), p.requester,
                                      m.header.requesting_agency_request_id, p.supplier);
    if (found.empty())
        return Refused(BadValue(fmt::format("requestingAgencyRequestId: {} has no request {} from {}", p.supplier,
                                            m.header.requesting_agency_request_id, p.requester)));
    const long long id = found.at(0)["id"].as<long long>();
    const std::string what = iso::ToString(m.action);
    const std::string identity = IdentityOf(m.header, "requestingAgencyMessage", what);
    InboundOutcome out;
    out.request = id;
    if (SeenBefore(tx, id, identity)) {
        out.duplicate = true;
        out.state = found.at(0)["state"].as<std::string>();
        return out;
    }
    auto verdict = ibl::OnRequesterAction(TransactionOf(found.at(0)), m.action);
    if (!verdict.allowed) return Refused(BadValue(fmt::format("action: {}", verdict.why)));
    out.state = ibl::ToString(verdict.next.state);
    SaveTransaction(tx, id, verdict.next, "", "");
    AddEvent(tx, id, "requestingAgencyMessage", what, m.header, identity, out.state, body);
    return out;
}

}  // namespace

InboundOutcome ApplyInbound(Database& db, const iso::Message& message, std::string_view body,
                            const std::string& sender) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl inbound");
        InboundOutcome out;
        if (const auto* r = std::get_if<iso::Request>(&message)) {
            out = TakeRequest(tx, *r, body, sender);
        } else if (const auto* s = std::get_if<iso::SupplyingAgencyMessage>(&message)) {
            out = TakeSupplierMessage(tx, *s, body, sender);
        } else if (const auto* q = std::get_if<iso::RequestingAgencyMessage>(&message)) {
            out = TakeRequesterMessage(tx, *q, body, sender);
        } else {
            out = Refused(BadValue("a confirmation answers a message this node sent; send it as the HTTP "
                                   "response to that message"));
        }
        // A refused or repeated message leaves the database as it was.
        if (!out.error && !out.duplicate) tx.commit();
        return out;
    });
}

}  // namespace iblsync::storage
