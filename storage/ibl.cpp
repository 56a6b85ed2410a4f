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

void AddEvent(pqxx::work& tx, long long request, const char* direction, std::string_view kind,
              const std::string& what, const iso::Header& h, const std::string& identity, const std::string& state,
              std::string_view body) {
    tx.exec_params("INSERT INTO ibl_event (request, direction, kind, what, sent_at, identity, state_after, body) "
                   "VALUES ($1, $2, $3, $4, $5::timestamptz, $6, $7, $8)",
                   request, std::string(direction), std::string(kind), what, iso::FormatTime(h.timestamp), identity,
                   state, std::string(body));
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
    AddEvent(tx, out.request, "in", "request", "", m.header, identity, state, body);
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
    AddEvent(tx, id, "in", "supplyingAgencyMessage", what, m.header, identity, out.state, body);
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
    AddEvent(tx, id, "in", "requestingAgencyMessage", what, m.header, identity, out.state, body);
    return out;
}

constexpr const char* kOpenStates =
    "('RetryPossible', 'Unfilled', 'CopyCompleted', 'LoanCompleted', 'CompletedWithoutReturn', 'Cancelled')";

// The columns IblRequestView is read from.
std::string ViewColumns() {
    auto time = [](const char* col) {
        return fmt::format("coalesce(to_char({} AT TIME ZONE 'UTC', '{}'), '')", col, detail::kIsoUtc);
    };
    return fmt::format(
        "id, request_id, role, requesting_agency, supplying_agency, state, cancel_pending, renew_pending, received, "
        "shipped_return, conditional, service_type, coalesce(title, ''), coalesce(author, ''), coalesce(isbn, ''), "
        "coalesce(patron_ref, ''), coalesce(pickup, ''), coalesce(work_id, 0), array_to_string(rota, ','), "
        "rota_index, {}, {}, {}",
        time("due_date"), time("created_at"), time("updated_at"));
}

IblRequestView ViewOf(const pqxx::row& r) {
    IblRequestView v;
    int i = 0;
    v.task = r[i++].as<long long>();
    v.request_id = r[i++].as<std::string>();
    v.role = r[i++].as<std::string>();
    v.requester = r[i++].as<std::string>();
    v.lender = r[i++].as<std::string>();
    v.state = r[i++].as<std::string>();
    v.cancel_pending = r[i++].as<bool>();
    v.renew_pending = r[i++].as<bool>();
    v.received = r[i++].as<bool>();
    v.shipped_return = r[i++].as<bool>();
    v.conditional = r[i++].as<bool>();
    v.service_type = r[i++].as<std::string>();
    v.title = r[i++].as<std::string>();
    v.author = r[i++].as<std::string>();
    v.isbn = r[i++].as<std::string>();
    v.patron_ref = r[i++].as<std::string>();
    v.pickup = r[i++].as<std::string>();
    v.work_id = r[i++].as<long long>();
    const auto rota = r[i++].as<std::string>();
    for (std::size_t at = 0; at < rota.size();) {
        auto comma = rota.find(',', at);
        if (comma == std::string::npos) comma = rota.size();
        v.rota.push_back(rota.substr(at, comma - at));
        at = comma + 1;
    }
    v.rota_index = r[i++].as<int>();
    v.due_date = r[i++].as<std::string>();
    v.created_at = r[i++].as<std::string>();
    v.updated_at = r[i++].as<std::string>();
    return v;
}

IblRequestView ViewById(pqxx::work& tx, long long id) {
    return ViewOf(tx.exec_params1("SELECT " + ViewColumns() + " FROM ibl_request WHERE id = $1", id));
}


// The ISO 18626 status a state reports (Sent has none: RequestReceived).
iso::Status StatusOf(ibl::State s) {
    if (s == ibl::State::kSent) return iso::Status::kRequestReceived;
    return static_cast<iso::Status>(static_cast<int>(s) - 1);
}

// An answer or action refused, with its reason, or for the other side being
// remote; nothing is written then.
template <class Result>
Result Refuse(AnswerStatus status, std::string why = {}) {
    Result r;
    r.status = status;
    r.why = std::move(why);
    return r;
}

// The other side of a transaction at this node, locked; empty when that
// side is a library of another node (`other` is its ISIL).
pqxx::result LocalCounterpart(pqxx::work& tx, const char* role, const std::string& requester,
                              const std::string& request_id, const std::string& lender, const std::string& other) {
    auto row = detail::ExecPrepared(tx, "ibl_find_request", kFindRequest, std::string(role), requester, request_id,
                                    lender);
    if (!row.empty() && !OwnLibrary(tx, other)) return {};
    return row;
}

// A request as it goes out to a lender of this node.
struct Outgoing {
    std::string requester, lender, request_id, title, isbn, patron_ref, pickup, note;
};

iso::Time Now() { return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()); }

// Writes the ISO 18626 request on the requester's row (out) and delivers it
// to the lender, a library of this node, in the same transaction: the
// lender's row and the same document coming in.
void SendToLocalLender(pqxx::work& tx, long long requester_row, const Outgoing& o) {
    iso::Request m;
    m.header.requesting_agency = iso::AgencyId::Isil(o.requester);
    m.header.supplying_agency = iso::AgencyId::Isil(o.lender);
    m.header.requesting_agency_request_id = o.request_id;
    m.header.timestamp = Now();
    m.bibliographic_info.title = o.title;
    if (!o.isbn.empty()) m.bibliographic_info.item_ids.push_back({o.isbn, {"ISBN", ""}});
    iso::ServiceInfo service;
    service.service_type = iso::ServiceType::kLoan;
    service.note = o.note;
    m.service_info = service;
    iso::PatronInfo patron;
    patron.patron_id = o.patron_ref;
    m.patron_info = patron;
    const std::string body = iso::Write(m);
    const std::string identity = IdentityOf(m.header, "request", "");
    const std::string state = ibl::ToString(ibl::State::kSent);
    AddEvent(tx, requester_row, "out", "request", "", m.header, identity, state, body);
    auto theirs = tx.exec_params1(
        "INSERT INTO ibl_request (role, requesting_agency, request_id, supplying_agency, state, service_type, "
        "title, isbn, patron_ref, pickup) "
        "VALUES ('supplier', $1, $2, $3, $4, 'Loan', NULLIF($5, ''), NULLIF($6, ''), $7, NULLIF($8, '')) "
        "RETURNING id",
        o.requester, o.request_id, o.lender, state, o.title, o.isbn, o.patron_ref, o.pickup);
    AddEvent(tx, theirs[0].as<long long>(), "in", "request", "", m.header, identity, state, body);
}

}  // namespace

CreateResult CreateIblRequest(Database& db, const NewIblRequest& in) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl create");
        CreateResult out;
        // One request at a time per library and patron, so that two equal
        // requests sent at once cannot both pass the duplicate check.
        tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('iblsync.ibl:' || $1 || '|' || $2, 0))",
                       in.library, in.patron_ref);
        pqxx::result works;
        if (!in.isbn.empty()) {
            const std::string key = "isbn:" + in.isbn;
            works = tx.exec_params(
                "SELECT DISTINCT rw.work_id FROM record_key k JOIN record_work rw ON rw.record_id = k.record_id "
                "WHERE k.khash = hashtextextended($1, 0) AND k.key = $1 ORDER BY 1",
                key);
        } else {
            works = tx.exec_params(
                "SELECT rw.work_id FROM bib_record b JOIN record_work rw ON rw.record_id = b.id "
                "WHERE b.library = $1 AND b.local_id = $2 AND NOT b.deleted",
                in.record_library, in.record_id);
        }
        if (works.empty()) {
            out.status = CreateStatus::kUnknownWork;
            return out;
        }
        detail::ArrayLiteral work_ids;
        for (const auto& w : works) work_ids.Add(w[0].as<long long>());
        const std::string work_array = work_ids.Done();
        auto dup = tx.exec_params(fmt::format("SELECT id FROM ibl_request WHERE role = 'requester' AND "
                                              "requesting_agency = $1 AND patron_ref = $2 AND "
                                              "work_id = ANY($3::bigint[]) AND state NOT IN {} ORDER BY id LIMIT 1",
                                              kOpenStates),
                                  in.library, in.patron_ref, work_array);
        if (!dup.empty()) {
            out.status = CreateStatus::kDuplicate;
            out.request = ViewById(tx, dup[0][0].as<long long>());
            return out;
        }
        auto lenders = tx.exec_params(
            fmt::format(
                "SELECT h.library, "
                "(SELECT count(*) FROM ibl_request r WHERE r.role = 'requester' AND r.supplying_agency = h.library "
                "  AND r.state NOT IN {0}) AS open, "
                "(SELECT max(r.created_at) FROM ibl_request r WHERE r.role = 'requester' "
                "  AND r.supplying_agency = h.library) AS last "
                "FROM record_work rw JOIN holding h ON h.record_id = rw.record_id "
                "JOIN library l ON l.isil = h.library "
                "WHERE rw.work_id = ANY($1::bigint[]) AND h.status = 'available' AND h.library <> $2 AND l.enabled "
                "AND coalesce(l.poi, (SELECT isil FROM node_identity)) = (SELECT isil FROM node_identity) "
                "GROUP BY h.library ORDER BY 2, 3 NULLS FIRST, 1",
                kOpenStates),
            work_array, in.library);
        if (lenders.empty()) {
            out.status = CreateStatus::kNoLender;
            return out;
        }
        detail::ArrayLiteral rota;
        for (const auto& l : lenders) rota.Add(l[0].as<std::string>());
        const std::string lender = lenders[0][0].as<std::string>();
        // What the request is for, as the catalogue has it.
        auto about = tx.exec_params1(
            "SELECT coalesce(b.title, ''), coalesce(b.isbns[1], '') FROM record_work rw "
            "JOIN bib_record b ON b.id = rw.record_id WHERE rw.work_id = $1 AND NOT b.deleted "
            "ORDER BY (b.title IS NULL), b.id LIMIT 1",
            works[0][0].as<long long>());
        const std::string title = about[0].as<std::string>();
        const std::string isbn = in.isbn.empty() ? about[1].as<std::string>() : in.isbn;
        const std::string state = ibl::ToString(ibl::State::kSent);
        auto mine = tx.exec_params1(
            "INSERT INTO ibl_request (role, requesting_agency, request_id, supplying_agency, state, service_type, "
            "title, isbn, patron_ref, pickup, work_id, rota) "
            "VALUES ('requester', $1, 'IBL-' || nextval('ibl_request_number'), $2, $3, 'Loan', NULLIF($4, ''), "
            "NULLIF($5, ''), $6, NULLIF($7, ''), $8, $9::text[]) RETURNING id, request_id",
            in.library, lender, state, title, isbn, in.patron_ref, in.pickup, works[0][0].as<long long>(),
            rota.Done());
        const long long id = mine[0].as<long long>();
        const std::string request_id = mine[1].as<std::string>();

        SendToLocalLender(tx, id, Outgoing{in.library, lender, request_id, title, isbn, in.patron_ref, in.pickup,
                                           in.note});
        out.request = ViewById(tx, id);
        tx.commit();
        return out;
    });
}

AnswerResult AnswerIblTask(Database& db, const std::string& lender, long long task, const TaskAnswer& answer) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl answer");
        AnswerResult out;
        auto mine = tx.exec_params(
            "SELECT id, state, cancel_pending, renew_pending, received, shipped_return, conditional, "
            "requesting_agency, request_id FROM ibl_request "
            "WHERE id = $1 AND role = 'supplier' AND supplying_agency = $2 FOR UPDATE",
            task, lender);
        if (mine.empty()) {
            out.status = AnswerStatus::kUnknownTask;
            return out;
        }
        const auto& row = mine[0];
        const std::string requester = row["requesting_agency"].as<std::string>();
        const std::string request_id = row["request_id"].as<std::string>();
        const ibl::Transaction now = TransactionOf(row);

        // The message ISO 18626 has for the answer.
        iso::SupplyingAgencyMessage m;
        m.header.requesting_agency = iso::AgencyId::Isil(requester);
        m.header.supplying_agency = iso::AgencyId::Isil(lender);
        m.header.requesting_agency_request_id = request_id;
        m.header.timestamp = Now();
        const bool first_answer = now.state == ibl::State::kSent;
        m.message_info.reason =
            first_answer ? iso::ReasonForMessage::kRequestResponse : iso::ReasonForMessage::kStatusChange;
        m.message_info.note = answer.note;
        m.status_info.last_change = m.header.timestamp;
        switch (answer.answer) {
            case LenderAnswer::kWillSupply: m.status_info.status = iso::Status::kWillSupply; break;
            case LenderAnswer::kUnfilled:
                m.status_info.status = iso::Status::kUnfilled;
                m.message_info.reason_unfilled = iso::Code{answer.reason.empty() ? "NotAvailable" : answer.reason, ""};
                break;
            case LenderAnswer::kShipped: {
                m.status_info.status = iso::Status::kLoaned;
                // A due date is a day: 23:59:59Z, as ISO 18626 says.
                m.status_info.due_date = iso::ParseTime(answer.due_date + "T23:59:59Z");
                iso::DeliveryInfo d;
                d.date_sent = m.header.timestamp;
                m.delivery_info = d;
                break;
            }
            case LenderAnswer::kReturned: m.status_info.status = iso::Status::kLoanCompleted; break;
            case LenderAnswer::kCancelAccepted:
            case LenderAnswer::kCancelRefused:
                m.message_info.reason = iso::ReasonForMessage::kCancelResponse;
                m.message_info.answer_yes_no = answer.answer == LenderAnswer::kCancelAccepted;
                // Refused: the status stays, and a request not yet answered has been received.
                m.status_info.status = answer.answer == LenderAnswer::kCancelAccepted ? iso::Status::kCancelled
                                       : first_answer ? iso::Status::kRequestReceived
                                                      : StatusOf(now.state);
                break;
            case LenderAnswer::kRenewGranted:
                m.message_info.reason = iso::ReasonForMessage::kRenewResponse;
                m.message_info.answer_yes_no = true;
                m.status_info.status = iso::Status::kLoaned;
                m.status_info.due_date = iso::ParseTime(answer.due_date + "T23:59:59Z");
                break;
            case LenderAnswer::kRenewRefused:
                m.message_info.reason = iso::ReasonForMessage::kRenewResponse;
                m.message_info.answer_yes_no = false;
                m.status_info.status = StatusOf(now.state);
                break;
        }
        ibl::SupplierEvent e;
        e.reason = m.message_info.reason;
        e.status = m.status_info.status;
        e.answer = m.message_info.answer_yes_no;
        auto verdict = ibl::OnSupplierMessage(now, e);
        if (!verdict.allowed) return Refuse<AnswerResult>(AnswerStatus::kNotAllowed, verdict.why);
        // The requester's side: a library of this node, with this lender now.
        auto theirs = LocalCounterpart(tx, "requester", requester, request_id, lender, requester);
        if (theirs.empty()) return Refuse<AnswerResult>(AnswerStatus::kRemotePeer);
        const long long requester_row = theirs[0]["id"].as<long long>();
        auto on_their_side = ibl::OnSupplierMessage(TransactionOf(theirs[0]), e);
        if (!on_their_side.allowed)  // the two sides disagree: refuse rather than split them further
            return Refuse<AnswerResult>(AnswerStatus::kNotAllowed,
                                        "the requester's side does not allow it: " + on_their_side.why);
        const std::string what = fmt::format("{} {}", iso::ToString(e.reason), iso::ToString(e.status));
        const std::string body = iso::Write(m);
        const std::string identity = IdentityOf(m.header, "supplyingAgencyMessage", what);
        const std::string due = m.status_info.due_date ? iso::FormatTime(*m.status_info.due_date) : std::string();
        const std::string lender_state = ibl::ToString(verdict.next.state);
        SaveTransaction(tx, task, verdict.next, "", due);
        AddEvent(tx, task, "out", "supplyingAgencyMessage", what, m.header, identity, lender_state, body);

        // An Unfilled with lenders left in the rota: the request goes on to
        // the next one, and the requester is not told the request ended.
        auto rota = tx.exec_params1("SELECT rota_index, coalesce(rota[rota_index + 2], ''), coalesce(title, ''), "
                                    "coalesce(isbn, ''), coalesce(patron_ref, ''), coalesce(pickup, '') "
                                    "FROM ibl_request WHERE id = $1",
                                    requester_row);
        const std::string next = rota[1].as<std::string>();
        if (answer.answer == LenderAnswer::kUnfilled && !next.empty()) {
            AddEvent(tx, requester_row, "in", "supplyingAgencyMessage", what, m.header, identity, "Sent", body);
            tx.exec_params("UPDATE ibl_request SET supplying_agency = $2, rota_index = rota_index + 1, state = 'Sent', "
                           "cancel_pending = false, renew_pending = false, received = false, shipped_return = false, "
                           "conditional = false, supplier_request_id = NULL, due_date = NULL, updated_at = now() "
                           "WHERE id = $1",
                           requester_row, next);
            SendToLocalLender(tx, requester_row,
                              Outgoing{requester, next, request_id, rota[2].as<std::string>(),
                                       rota[3].as<std::string>(), rota[4].as<std::string>(),
                                       rota[5].as<std::string>(), ""});
            out.next_lender = next;
            out.requester_state = "Sent";
        } else {
            out.requester_state = ibl::ToString(on_their_side.next.state);
            SaveTransaction(tx, requester_row, on_their_side.next, "", due);
            AddEvent(tx, requester_row, "in", "supplyingAgencyMessage", what, m.header, identity,
                     out.requester_state, body);
        }
        out.task = ViewById(tx, task);
        tx.commit();
        return out;
    });
}

ActionResult ActOnIblRequest(Database& db, const std::string& library, const std::string& request_id,
                             RequesterAction action, const std::string& note) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl action");
        ActionResult out;
        auto mine = tx.exec_params(
            "SELECT id, state, cancel_pending, renew_pending, received, shipped_return, conditional, "
            "supplying_agency FROM ibl_request WHERE role = 'requester' AND requesting_agency = $1 "
            "AND request_id = $2 ORDER BY id DESC LIMIT 1 FOR UPDATE",
            library, request_id);
        if (mine.empty()) {
            out.status = AnswerStatus::kUnknownTask;
            return out;
        }
        const long long row = mine[0]["id"].as<long long>();
        const std::string lender = mine[0]["supplying_agency"].as<std::string>();
        iso::RequestingAgencyMessage m;
        m.header.requesting_agency = iso::AgencyId::Isil(library);
        m.header.supplying_agency = iso::AgencyId::Isil(lender);
        m.header.requesting_agency_request_id = request_id;
        m.header.timestamp = Now();
        m.note = note;
        switch (action) {
            case RequesterAction::kReceived: m.action = iso::Action::kReceived; break;
            case RequesterAction::kShippedReturn: m.action = iso::Action::kShippedReturn; break;
            case RequesterAction::kCancel: m.action = iso::Action::kCancel; break;
            case RequesterAction::kRenew: m.action = iso::Action::kRenew; break;
        }
        auto verdict = ibl::OnRequesterAction(TransactionOf(mine[0]), m.action);
        if (!verdict.allowed) return Refuse<ActionResult>(AnswerStatus::kNotAllowed, verdict.why);
        auto theirs = LocalCounterpart(tx, "supplier", library, request_id, lender, lender);
        if (theirs.empty()) return Refuse<ActionResult>(AnswerStatus::kRemotePeer);
        const long long lender_row = theirs[0]["id"].as<long long>();
        auto on_their_side = ibl::OnRequesterAction(TransactionOf(theirs[0]), m.action);
        if (!on_their_side.allowed)
            return Refuse<ActionResult>(AnswerStatus::kNotAllowed,
                                        "the lender's side does not allow it: " + on_their_side.why);
        const std::string what = iso::ToString(m.action);
        const std::string body = iso::Write(m);
        const std::string identity = IdentityOf(m.header, "requestingAgencyMessage", what);
        SaveTransaction(tx, row, verdict.next, "", "");
        AddEvent(tx, row, "out", "requestingAgencyMessage", what, m.header, identity,
                 ibl::ToString(verdict.next.state), body);
        out.lender_state = ibl::ToString(on_their_side.next.state);
        SaveTransaction(tx, lender_row, on_their_side.next, "", "");
        AddEvent(tx, lender_row, "in", "requestingAgencyMessage", what, m.header, identity, out.lender_state, body);
        out.request = ViewById(tx, row);
        tx.commit();
        return out;
    });
}

long long AnonymiseIblRequests(Database& db, int after_days) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl anonymise");
        // Request documents here are all written by protocols/iso18626
        // (inbound ones stripped and written again), so the patron's
        // reference is always in <ill:patronId>.
        auto done = tx.exec_params(fmt::format("UPDATE ibl_request SET patron_ref = NULL, pickup = NULL "
                                               "WHERE state IN {} AND (patron_ref IS NOT NULL OR pickup IS NOT NULL) "
                                               "AND updated_at < now() - make_interval(days => $1) RETURNING id",
                                               kOpenStates),
                                   after_days);
        if (done.empty()) return 0LL;
        detail::ArrayLiteral ids;
        for (const auto& r : done) ids.Add(r[0].as<long long>());
        tx.exec_params("UPDATE ibl_event SET body = regexp_replace(body, '<ill:patronId>[^<]*</ill:patronId>', "
                       "'<ill:patronId>anonymised</ill:patronId>', 'g') "
                       "WHERE request = ANY($1::bigint[]) AND kind = 'request'",
                       ids.Done());
        tx.commit();
        return static_cast<long long>(done.size());
    });
}

std::optional<IblRequestView> GetIblRequest(Database& db, const std::string& library, const std::string& request_id) {
    return db.Pool().With([&](pqxx::connection& c) -> std::optional<IblRequestView> {
        pqxx::read_transaction tx(c, "ibl get");
        auto r = tx.exec_params("SELECT " + ViewColumns() +
                                    " FROM ibl_request WHERE role = 'requester' AND requesting_agency = $1 "
                                    "AND request_id = $2 ORDER BY id DESC LIMIT 1",
                                library, request_id);
        if (r.empty()) return std::nullopt;
        return ViewOf(r[0]);
    });
}

std::vector<IblRequestView> IblInbox(Database& db, const std::string& library) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl inbox");
        std::vector<IblRequestView> out;
        for (const auto& r : tx.exec_params(fmt::format("SELECT {} FROM ibl_request WHERE role = 'supplier' AND "
                                                        "supplying_agency = $1 AND state NOT IN {} ORDER BY id",
                                                        ViewColumns(), kOpenStates),
                                            library))
            out.push_back(ViewOf(r));
        return out;
    });
}

InboundOutcome ApplyInbound(Database& db, const iso::Message& message, std::string_view body,
                            const std::string& sender) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl inbound");
        InboundOutcome out;
        if (const auto* r = std::get_if<iso::Request>(&message)) {
            // Kept without what it says about the patron beyond the opaque
            // reference (a peer may send names and addresses): the request
            // as read, written again.
            if (r->patron_info && (!r->patron_info->surname.empty() || !r->patron_info->given_name.empty() ||
                                   !r->patron_info->addresses.empty() || r->patron_info->patron_type ||
                                   r->patron_info->send_to_patron)) {
                iso::Request kept = *r;
                kept.patron_info = iso::PatronInfo{};
                kept.patron_info->patron_id = r->patron_info->patron_id;
                out = TakeRequest(tx, kept, iso::Write(kept), sender);
            } else {
                out = TakeRequest(tx, *r, body, sender);
            }
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
