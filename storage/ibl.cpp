#include "storage/ibl.hpp"

#include <algorithm>

#include <fmt/format.h>

#include <pqxx/pqxx>

#include "protocols/ibl_state.hpp"
#include "protocols/isil.hpp"
#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/ibl_view.hpp"
#include "storage/detail/sql.hpp"

namespace iblsync::storage {

namespace iso = protocols::iso18626;
namespace ibl = protocols::ibl;

namespace detail {

// The columns IblRequestView is read from.
std::string IblViewColumns() {
    auto time = [](const char* col) {
        return fmt::format("coalesce(to_char({} AT TIME ZONE 'UTC', '{}'), '')", col, detail::kIsoUtc);
    };
    return fmt::format(
        "id, request_id, role, requesting_agency, supplying_agency, state, cancel_pending, renew_pending, received, "
        "shipped_return, conditional, service_type, coalesce(title, ''), coalesce(author, ''), coalesce(isbn, ''), "
        "coalesce(patron_ref, ''), coalesce(pickup, ''), coalesce(work_id, 0), array_to_string(rota, ','), "
        "rota_index, {}, {}, {}, {}, coalesce(offered_cost, ''), coalesce(loan_condition, ''), "
        "coalesce(item_id, '')",
        time("due_date"), time("created_at"), time("updated_at"), time("answer_by"));
}

IblRequestView IblViewOf(const pqxx::row& r) {
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
    v.answer_by = r[i++].as<std::string>();
    v.offered_cost = r[i++].as<std::string>();
    v.loan_condition = r[i++].as<std::string>();
    v.item_id = r[i++].as<std::string>();
    return v;
}

}  // namespace detail

namespace {

using detail::IblViewColumns;
using detail::IblViewOf;

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
    "SELECT id, state, cancel_pending, renew_pending, received, shipped_return, conditional, "
    "superseded_by IS NOT NULL AS superseded FROM ibl_request "
    "WHERE role = $1 AND requesting_agency = $2 AND request_id = $3 AND supplying_agency = $4 FOR UPDATE";

// Every change to a transaction takes this lock on its request first (both
// roles, every lender), so that two changes to one request (a lender's
// answer and the requester's action, the deadline sweep and a late answer)
// wait for each other instead of locking rows in opposite orders.
void LockRequest(pqxx::work& tx, const std::string& requesting_agency, const std::string& request_id) {
    detail::ExecPrepared(tx, "ibl_lock_request",
                         "SELECT pg_advisory_xact_lock(hashtextextended('iblsync.iblreq:' || $1 || '|' || $2, 0))",
                         requesting_agency, request_id);
}

bool SeenBefore(pqxx::work& tx, long long request, const std::string& identity) {
    return !detail::ExecPrepared(tx, "ibl_seen",
                                 "SELECT 1 FROM ibl_event WHERE request = $1 AND direction = 'in' AND identity = $2",
                                 request, identity)
                .empty();
}

long long AddEvent(pqxx::work& tx, long long request, const char* direction, std::string_view kind,
                   const std::string& what, const iso::Header& h, const std::string& identity,
                   const std::string& state, std::string_view body) {
    return tx
        .exec_params1("INSERT INTO ibl_event (request, direction, kind, what, sent_at, identity, state_after, body) "
                      "VALUES ($1, $2, $3, $4, $5::timestamptz, $6, $7, $8) RETURNING id",
                      request, std::string(direction), std::string(kind), what, iso::FormatTime(h.timestamp),
                      identity, state, std::string(body))[0]
        .as<long long>();
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
                                                const std::string& sender, const IblSettings& settings) {
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
    // A POI node this node exchanges IBL with ([[ibl_peer]]) speaks for its
    // own libraries: one that the national node's feed has not brought here
    // yet is registered as that node's, rather than refused.
    if (theirs != sender && !KnownLibrary(tx, theirs) &&
        std::find(settings.peer_nodes.begin(), settings.peer_nodes.end(), sender) != settings.peer_nodes.end()) {
        tx.exec_params("INSERT INTO library (isil, name, poi) VALUES ($1, $1, $2) ON CONFLICT (isil) DO NOTHING",
                       theirs, sender);
        tx.exec_params("INSERT INTO audit_log (library, actor, action, detail) VALUES ($1, $2, 'library.add', $3)",
                       theirs, "ibl:" + sender, fmt::format("poi={} (named in an ISO 18626 message)", sender));
    }
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
                           const std::string& sender, const IblSettings& settings) {
    auto parties = PartiesOf(tx, m.header, true, sender, settings);
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


IblRequestView ViewById(pqxx::work& tx, long long id) {
    return IblViewOf(tx.exec_params1("SELECT " + IblViewColumns() + " FROM ibl_request WHERE id = $1", id));
}


// The ISO 18626 status a state reports (Sent has none: RequestReceived).
iso::Status StatusOf(ibl::State s) {
    if (s == ibl::State::kSent) return iso::Status::kRequestReceived;
    return static_cast<iso::Status>(static_cast<int>(s) - 1);
}

// An answer or action refused, with its reason; nothing is written then.
template <class Result>
Result Refuse(AnswerStatus status, std::string why = {}) {
    Result r;
    r.status = status;
    r.why = std::move(why);
    return r;
}

iso::Time Now() { return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()); }

// SQL: whether the library `column` names is closed today (Dutch day).
std::string Closed(const std::string& column) {
    return fmt::format("EXISTS (SELECT 1 FROM ibl_closure c WHERE c.library = {} AND "
                       "(now() AT TIME ZONE 'Europe/Amsterdam')::date BETWEEN c.starts AND c.ends)",
                       column);
}

std::string Array(const std::vector<std::string>& v) {
    detail::ArrayLiteral a;
    for (const auto& s : v) a.Add(s);
    return a.Done();
}

// The works a new request names: by ISBN, or by one record of the catalogue.
pqxx::result WorksOf(pqxx::transaction_base& tx, const NewIblRequest& in) {
    if (!in.isbn.empty())
        return tx.exec_params(
            "SELECT DISTINCT rw.work_id FROM record_key k JOIN record_work rw ON rw.record_id = k.record_id "
            "WHERE k.khash = hashtextextended($1, 0) AND k.key = $1 ORDER BY 1",
            "isbn:" + in.isbn);
    return tx.exec_params(
        "SELECT rw.work_id FROM bib_record b JOIN record_work rw ON rw.record_id = b.id "
        "WHERE b.library = $1 AND b.local_id = $2 AND NOT b.deleted",
        in.record_library, in.record_id);
}

// The lenders for works `work_array`, in the rota's order: libraries with
// a copy available, enabled, not closed, not excluded, not found without
// a copy when asked live, not over max_open_per_lender; this node's own
// first, then those of the other POI nodes it sends IBL requests to (their
// availability followed through the national node); within each, the
// fewest open requests from this node, then the one asked longest ago.
// Each with one of its records that has the copy, and whether the copy's
// state here is older than confirm_after_minutes.
pqxx::result LenderRows(pqxx::transaction_base& tx, const std::string& work_array, const NewIblRequest& in,
                        const IblSettings& settings) {
    std::vector<std::string> skipped = settings.excluded_lenders;
    skipped.insert(skipped.end(), in.unavailable.begin(), in.unavailable.end());
    return tx.exec_params(
        fmt::format(
            "SELECT * FROM (SELECT h.library, (coalesce(l.poi, me.isil) <> me.isil) AS remote, "
            "coalesce(l.poi, '') AS node, min(b.local_id) AS record_id, "
            "max(h.updated_at) < now() - make_interval(mins => $6) AND $6 > 0 AS stale, "
            "(SELECT count(*) FROM ibl_request r WHERE r.role = 'requester' AND r.supplying_agency = h.library "
            "  AND r.superseded_by IS NULL AND r.state NOT IN {0}) AS open, "
            "(SELECT max(r.created_at) FROM ibl_request r WHERE r.role = 'requester' "
            "  AND r.supplying_agency = h.library) AS last "
            "FROM record_work rw JOIN holding h ON h.record_id = rw.record_id JOIN bib_record b ON b.id = h.record_id "
            "JOIN library l ON l.isil = h.library, (SELECT isil FROM node_identity) me "
            "WHERE rw.work_id = ANY($1::bigint[]) AND h.status = 'available' AND h.library <> $2 AND l.enabled "
            "AND (coalesce(l.poi, me.isil) = me.isil OR l.poi = ANY($3::text[])) "
            "AND NOT (h.library = ANY($4::text[])) AND NOT {1} "
            "AND coalesce(b.material_type, 'book') NOT IN ('ebook', 'electronic') "
            "AND NOT EXISTS (SELECT 1 FROM ibl_not_lent n WHERE n.library = h.library "
            "  AND n.material_type = coalesce(b.material_type, 'book')) "
            "GROUP BY h.library, l.poi, me.isil) c "
            "WHERE $5 <= 0 OR c.open < $5 ORDER BY remote, open, last NULLS FIRST, library",
            detail::kIblClosedStates, Closed("h.library")),
        work_array, in.library, Array(settings.peer_nodes), Array(skipped), settings.max_open_per_lender,
        settings.confirm_after_minutes);
}

// Where a message for `agency` goes: empty when this node serves the
// library (the message is delivered in the same transaction), else the
// ISIL of the POI node that does (the message goes through the outbox).
std::string NodeFor(pqxx::work& tx, const std::string& agency) {
    auto r = detail::ExecPrepared(tx, "ibl_node_for",
                                  "SELECT coalesce(poi, me.isil) FROM library, (SELECT isil FROM node_identity) me "
                                  "WHERE library.isil = $1 AND coalesce(poi, me.isil) <> me.isil",
                                  agency);
    return r.empty() ? std::string() : r[0][0].as<std::string>();
}

// Queues an outgoing message (its ibl_event row) for the node that serves `agency`.
void Queue(pqxx::work& tx, long long event, long long request, const std::string& node, const std::string& agency) {
    detail::ExecPrepared(tx, "ibl_queue", "INSERT INTO ibl_outbox (event, request, node, agency) VALUES ($1, $2, $3, $4)",
                         event, request, node, agency);
}

// Accounting: a transaction that ended with the item back (loan) or lost is
// recorded once, with the tariff in force now.
void RecordCharge(pqxx::work& tx, long long row, ibl::State state, const IblSettings& settings) {
    if (state != ibl::State::kLoanCompleted && state != ibl::State::kCompletedWithoutReturn) return;
    const std::string kind = state == ibl::State::kLoanCompleted ? "loan" : "lost";
    auto r = tx.exec_params1(
        "SELECT q.requesting_agency, q.request_id, q.supplying_agency, "
        "coalesce((SELECT province FROM library WHERE isil = q.requesting_agency), ''), "
        "coalesce((SELECT province FROM library WHERE isil = q.supplying_agency), '') FROM ibl_request q "
        "WHERE q.id = $1",
        row);
    const std::string to = r[3].as<std::string>(), from = r[4].as<std::string>();
    const IblSettings::Tariff* best = nullptr;
    int best_score = -1;
    for (const auto& t : settings.tariffs) {
        if (t.kind != kind || (t.from != "*" && t.from != from) || (t.to != "*" && t.to != to)) continue;
        const int score = (t.from != "*" ? 2 : 0) + (t.to != "*" ? 1 : 0);
        if (score > best_score) best = &t, best_score = score;
    }
    tx.exec_params("INSERT INTO ibl_charge (requesting_agency, request_id, supplying_agency, kind, requester_province, "
                   "lender_province, amount, tariff) VALUES ($1, $2, $3, $4, NULLIF($5, ''), NULLIF($6, ''), "
                   "$7::numeric / 100, $8) ON CONFLICT DO NOTHING",
                   r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(), kind, to, from,
                   best ? best->cents : 0LL, best ? best->label : std::string("none"));
}

// The cost and loan conditions a supplier's message names, kept on its row.
void SaveTerms(pqxx::work& tx, long long row, const iso::SupplyingAgencyMessage& m) {
    const auto& cost = m.message_info.offered_costs;
    const auto& condition = m.delivery_info ? m.delivery_info->loan_condition : std::nullopt;
    const std::string item = m.delivery_info ? m.delivery_info->item_id : std::string();
    if (!cost && !condition && item.empty()) return;
    tx.exec_params("UPDATE ibl_request SET offered_cost = coalesce(NULLIF($2, ''), offered_cost), "
                   "loan_condition = coalesce(NULLIF($3, ''), loan_condition), "
                   "item_id = coalesce(NULLIF($4, ''), item_id) WHERE id = $1",
                   row, cost ? fmt::format("{} {}", cost->amount, cost->currency.value) : std::string(),
                   condition ? condition->value : std::string(), item.substr(0, 100));
}

// A message is about to reach the requester's side: the outcome there.
struct Taken {
    bool allowed = true;
    std::string why;
    bool about_reason = false;  // refused for its reasonForMessage (a Cancel or Renew answer not asked for)
    std::string state;          // the requester's transaction after it
    std::string next_lender;    // set when an Unfilled sent the request on to the next lender
};

// A request as it goes out to a lender.
struct Outgoing {
    std::string requester, lender, request_id, title, isbn, patron_ref, pickup, note;
};

// Writes the ISO 18626 request on the requester's row (out) and delivers
// it: to a lender of this node in the same transaction (the lender's row
// and the same document coming in), to a lender of another node through
// the outbox. The lender has `answer_within_minutes` to answer.
void SendToLender(pqxx::work& tx, long long requester_row, const Outgoing& o, const IblSettings& settings) {
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
    const long long event = AddEvent(tx, requester_row, "out", "request", "", m.header, identity, state, body);
    if (settings.answer_within_minutes > 0)
        tx.exec_params("UPDATE ibl_request SET answer_by = now() + make_interval(mins => $2) WHERE id = $1",
                       requester_row, settings.answer_within_minutes);
    if (const auto node = NodeFor(tx, o.lender); !node.empty()) {
        Queue(tx, event, requester_row, node, o.lender);
        return;
    }
    auto theirs = tx.exec_params1(
        "INSERT INTO ibl_request (role, requesting_agency, request_id, supplying_agency, state, service_type, "
        "title, isbn, patron_ref, pickup) "
        "VALUES ('supplier', $1, $2, $3, $4, 'Loan', NULLIF($5, ''), NULLIF($6, ''), $7, NULLIF($8, '')) "
        "RETURNING id",
        o.requester, o.request_id, o.lender, state, o.title, o.isbn, o.patron_ref, o.pickup);
    AddEvent(tx, theirs[0].as<long long>(), "in", "request", "", m.header, identity, state, body);
}

// Moves a request on to the next lender of its rota: a new transaction
// under the same request id, which the old one points to. Returns the next
// lender, or empty when the rota has none left (nothing is written then).
std::string MoveOn(pqxx::work& tx, long long row, const IblSettings& settings) {
    // The next lender of the rota that may be asked now: enabled, not
    // closed, not excluded since the rota was made.
    auto r = tx.exec_params1(
        fmt::format("SELECT coalesce(n.lender, ''), coalesce(n.at, 0), q.requesting_agency, q.request_id, "
                    "coalesce(q.title, ''), coalesce(q.isbn, ''), coalesce(q.patron_ref, ''), coalesce(q.pickup, '') "
                    "FROM ibl_request q LEFT JOIN LATERAL ("
                    "  SELECT q.rota[i] AS lender, i - 1 AS at FROM generate_subscripts(q.rota, 1) i "
                    "  JOIN library l ON l.isil = q.rota[i] "
                    "  WHERE i >= q.rota_index + 2 AND l.enabled AND NOT (q.rota[i] = ANY($2::text[])) AND NOT {} "
                    "  ORDER BY i LIMIT 1) n ON true WHERE q.id = $1",
                    Closed("q.rota[i]")),
        row, Array(settings.excluded_lenders));
    const std::string next = r[0].as<std::string>();
    if (next.empty()) return next;
    auto created = tx.exec_params1(
        "INSERT INTO ibl_request (role, requesting_agency, request_id, supplying_agency, state, service_type, title, "
        "author, isbn, patron_ref, pickup, work_id, rota, rota_index) "
        "SELECT 'requester', requesting_agency, request_id, $2, 'Sent', service_type, title, author, isbn, "
        "patron_ref, pickup, work_id, rota, $3 FROM ibl_request WHERE id = $1 RETURNING id",
        row, next, r[1].as<int>());
    const long long fresh = created[0].as<long long>();
    tx.exec_params("UPDATE ibl_request SET superseded_by = $2, answer_by = NULL, updated_at = now() WHERE id = $1",
                   row, fresh);
    SendToLender(tx, fresh,
                 Outgoing{r[2].as<std::string>(), next, r[3].as<std::string>(), r[4].as<std::string>(),
                          r[5].as<std::string>(), r[6].as<std::string>(), r[7].as<std::string>(), ""},
                 settings);
    return next;
}

ibl::SupplierEvent EventOf(const iso::SupplyingAgencyMessage& m) {
    ibl::SupplierEvent e;
    e.reason = m.message_info.reason;
    e.status = m.status_info.status;
    e.answer = m.message_info.answer_yes_no;
    e.conditions = m.message_info.offered_costs.has_value() ||
                   (m.delivery_info && m.delivery_info->loan_condition.has_value());
    return e;
}

// The requester's side takes a supplier's message, from a lender of this
// node or over ISO 18626: `row` is its transaction, locked (kFindRequest's
// columns). An Unfilled while the rota has lenders left does not end the
// request: that transaction ends, and the request goes on to the next
// lender in a new one. A RetryPossible is passed over at its retry date.
Taken RequesterTakes(pqxx::work& tx, const pqxx::row& row, const iso::SupplyingAgencyMessage& m,
                     std::string_view body, const std::string& identity, const std::string& what,
                     const IblSettings& settings) {
    const long long id = row["id"].as<long long>();
    Taken out;
    auto verdict = ibl::OnSupplierMessage(TransactionOf(row), EventOf(m));
    if (!verdict.allowed) {
        out.allowed = false;
        out.why = verdict.why;
        out.about_reason = m.message_info.reason == iso::ReasonForMessage::kRenewResponse ||
                           m.message_info.reason == iso::ReasonForMessage::kCancelResponse;
        return out;
    }
    out.state = ibl::ToString(verdict.next.state);
    SaveTransaction(tx, id, verdict.next, m.header.supplying_agency_request_id,
                    m.status_info.due_date ? iso::FormatTime(*m.status_info.due_date) : std::string());
    // A transaction the request has moved on from takes what its lender
    // says, but does not move the request again.
    const bool superseded = row["superseded"].as<bool>();
    // The lender answered (its state moved on from Sent): no deadline,
    // unless it asks to be tried again later.
    if (verdict.next.state == ibl::State::kRetryPossible && !superseded) {
        tx.exec_params("UPDATE ibl_request SET answer_by = $2::timestamptz WHERE id = $1", id,
                       m.message_info.retry_after ? iso::FormatTime(*m.message_info.retry_after)
                                                  : iso::FormatTime(m.header.timestamp));
    } else if (verdict.next.state != ibl::State::kSent || superseded) {
        tx.exec_params("UPDATE ibl_request SET answer_by = NULL WHERE id = $1", id);
    }
    SaveTerms(tx, id, m);
    RecordCharge(tx, id, verdict.next.state, settings);
    AddEvent(tx, id, "in", "supplyingAgencyMessage", what, m.header, identity, out.state, body);
    if (verdict.next.state == ibl::State::kUnfilled && !superseded) {
        out.next_lender = MoveOn(tx, id, settings);
        if (!out.next_lender.empty()) out.state = ibl::ToString(ibl::State::kSent);
    }
    return out;
}

// The supplier's side takes a requester's message: `row` is its
// transaction, locked (kFindRequest's columns).
Taken SupplierTakes(pqxx::work& tx, const pqxx::row& row, const iso::RequestingAgencyMessage& m,
                    std::string_view body, const std::string& identity, const std::string& what) {
    Taken out;
    auto verdict = ibl::OnRequesterAction(TransactionOf(row), m.action);
    if (!verdict.allowed) {
        out.allowed = false;
        out.why = verdict.why;
        return out;
    }
    const long long id = row["id"].as<long long>();
    out.state = ibl::ToString(verdict.next.state);
    SaveTransaction(tx, id, verdict.next, "", "");
    AddEvent(tx, id, "in", "requestingAgencyMessage", what, m.header, identity, out.state, body);
    return out;
}

// Sends a requestingAgencyMessage from the requester's transaction `row`:
// to the lender's row here, or through the outbox. Returns the lender's
// state after it ("" when it went to another node), or why it was refused.
std::variant<std::string, Taken> SendToSupplier(pqxx::work& tx, long long row, const iso::RequestingAgencyMessage& m,
                                                const ibl::Transaction& next) {
    const std::string requester = m.header.requesting_agency.value, lender = m.header.supplying_agency.value;
    const std::string what = iso::ToString(m.action);
    const std::string body = iso::Write(m);
    const std::string identity = IdentityOf(m.header, "requestingAgencyMessage", what);
    std::string lender_state;
    const auto node = NodeFor(tx, lender);
    if (node.empty()) {
        auto theirs = detail::ExecPrepared(tx, "ibl_find_request", kFindRequest, std::string("supplier"), requester,
                                           m.header.requesting_agency_request_id, lender);
        if (theirs.empty()) {
            Taken refused;
            refused.allowed = false;
            refused.why = "the lender has no such request";
            return refused;
        }
        auto taken = SupplierTakes(tx, theirs[0], m, body, identity, what);
        if (!taken.allowed) {
            taken.why = "the lender's side does not allow it: " + taken.why;
            return taken;
        }
        lender_state = taken.state;
    }
    SaveTransaction(tx, row, next, "", "");
    const long long event = AddEvent(tx, row, "out", "requestingAgencyMessage", what, m.header, identity,
                                     ibl::ToString(next.state), body);
    if (!node.empty()) Queue(tx, event, row, node, lender);
    return lender_state;
}

// A rejection of a request this node sent ends that transaction as an
// Unfilled would, on the requester's row `row`: the request moves on to the
// next lender, or ends when there is none.
std::string EndAndMoveOn(pqxx::work& tx, long long row, const std::string& why, const std::string& identity,
                         const IblSettings& settings) {
    tx.exec_params("UPDATE ibl_request SET state = 'Unfilled', answer_by = NULL, updated_at = now() WHERE id = $1",
                   row);
    iso::Header h;
    h.timestamp = Now();
    AddEvent(tx, row, "in", "refusal", why, h, identity, "Unfilled", why);
    return MoveOn(tx, row, settings);
}

// A supplyingAgencyMessage: the supplier of a request this node's library sent.
InboundOutcome TakeSupplierMessage(pqxx::work& tx, const iso::SupplyingAgencyMessage& m, std::string_view body,
                                   const std::string& sender, const IblSettings& settings) {
    auto parties = PartiesOf(tx, m.header, false, sender, settings);
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
    auto taken = RequesterTakes(tx, found.at(0), m, body, identity, what, settings);
    if (!taken.allowed)
        return Refused(Error(taken.about_reason ? iso::ErrorType::kUnsupportedReasonForMessageType
                                                : iso::ErrorType::kUnrecognisedDataValue,
                             fmt::format("{}: {}", taken.about_reason ? "reasonForMessage" : "status", taken.why)));
    out.state = taken.state;
    return out;
}

// A requestingAgencyMessage: the requester of a request this node's library supplies.
InboundOutcome TakeRequesterMessage(pqxx::work& tx, const iso::RequestingAgencyMessage& m, std::string_view body,
                                    const std::string& sender, const IblSettings& settings) {
    auto parties = PartiesOf(tx, m.header, true, sender, settings);
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
    auto taken = SupplierTakes(tx, found.at(0), m, body, identity, what);
    if (!taken.allowed) return Refused(BadValue(fmt::format("action: {}", taken.why)));
    out.state = taken.state;
    return out;
}

}  // namespace

CreateResult CreateIblRequest(Database& db, const NewIblRequest& in, const IblSettings& settings) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl create");
        CreateResult out;
        // One request at a time per library and patron, so that two equal
        // requests sent at once cannot both pass the duplicate check.
        tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('iblsync.ibl:' || $1 || '|' || $2, 0))",
                       in.library, in.patron_ref);
        const pqxx::result works = WorksOf(tx, in);
        if (works.empty()) {
            out.status = CreateStatus::kUnknownWork;
            return out;
        }
        detail::ArrayLiteral work_ids;
        for (const auto& w : works) work_ids.Add(w[0].as<long long>());
        const std::string work_array = work_ids.Done();
        auto dup = tx.exec_params(fmt::format("SELECT id FROM ibl_request WHERE role = 'requester' AND "
                                              "requesting_agency = $1 AND patron_ref = $2 AND superseded_by IS NULL "
                                              "AND work_id = ANY($3::bigint[]) "
                                              "AND (state NOT IN {} OR answer_by IS NOT NULL) "
                                              "ORDER BY id LIMIT 1",
                                              detail::kIblClosedStates),
                                  in.library, in.patron_ref, work_array);
        if (!dup.empty()) {
            out.status = CreateStatus::kDuplicate;
            out.request = ViewById(tx, dup[0][0].as<long long>());
            return out;
        }
        // Limits on what one library, or one patron of it, has open.
        for (const bool per_patron : {true, false}) {
            const int max = per_patron ? settings.max_open_per_patron : settings.max_open_per_library;
            if (max <= 0) continue;
            const long long open = tx.exec_params1(
                fmt::format("SELECT count(*) FROM ibl_request WHERE role = 'requester' AND requesting_agency = $1 "
                            "AND superseded_by IS NULL AND (state NOT IN {} OR answer_by IS NOT NULL) "
                            "AND ($2 = '' OR patron_ref = $2)",
                            detail::kIblClosedStates),
                in.library, per_patron ? in.patron_ref : std::string())[0].as<long long>();
            if (open >= max) {
                out.status = CreateStatus::kLimit;
                out.why = per_patron ? fmt::format("patron_ref {} has {} open requests; this node allows {} "
                                                   "([ibl] max_open_per_patron)",
                                                   in.patron_ref, open, max)
                                     : fmt::format("{} has {} open requests; this node allows {} "
                                                   "([ibl] max_open_per_library)",
                                                   in.library, open, max);
                return out;
            }
        }
        std::vector<std::string> chosen;
        for (const auto& l : LenderRows(tx, work_array, in, settings)) chosen.push_back(l["library"].as<std::string>());
        // The lender of last resort comes last, copy or not, if it may be asked.
        const auto& last = settings.last_resort;
        if (!last.empty() && last != in.library && std::find(chosen.begin(), chosen.end(), last) == chosen.end() &&
            !tx.exec_params(fmt::format("SELECT 1 FROM library WHERE isil = $1 AND enabled AND NOT {}",
                                        Closed("$1")),
                            last)
                 .empty())
            chosen.push_back(last);
        if (chosen.empty()) {
            out.status = CreateStatus::kNoLender;
            return out;
        }
        detail::ArrayLiteral rota;
        for (const auto& l : chosen) rota.Add(l);
        const std::string lender = chosen.front();
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

        SendToLender(tx, id, Outgoing{in.library, lender, request_id, title, isbn, in.patron_ref, in.pickup, in.note},
                     settings);
        out.request = ViewById(tx, id);
        tx.commit();
        return out;
    });
}

AnswerResult AnswerIblTask(Database& db, const std::string& lender, long long task, const TaskAnswer& answer,
                           const IblSettings& settings) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl answer");
        AnswerResult out;
        auto key = tx.exec_params("SELECT requesting_agency, request_id FROM ibl_request "
                                  "WHERE id = $1 AND role = 'supplier' AND supplying_agency = $2",
                                  task, lender);
        if (key.empty()) {
            out.status = AnswerStatus::kUnknownTask;
            return out;
        }
        LockRequest(tx, key[0][0].as<std::string>(), key[0][1].as<std::string>());
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
            case LenderAnswer::kExpectToSupply: m.status_info.status = iso::Status::kExpectToSupply; break;
            case LenderAnswer::kWillSupply:
                m.status_info.status = iso::Status::kWillSupply;
                if (!answer.cost.empty()) m.message_info.offered_costs = iso::Costs{{"EUR", ""}, answer.cost};
                break;
            case LenderAnswer::kUnfilled:
                m.status_info.status = iso::Status::kUnfilled;
                m.message_info.reason_unfilled = iso::Code{answer.reason.empty() ? "NotAvailable" : answer.reason, ""};
                break;
            case LenderAnswer::kRetryPossible:
                m.status_info.status = iso::Status::kRetryPossible;
                m.message_info.reason_retry = iso::Code{answer.reason.empty() ? "NotCurrentAvailableForILL"
                                                                              : answer.reason,
                                                        ""};
                if (!answer.retry_after.empty())
                    m.message_info.retry_after = iso::ParseTime(answer.retry_after + "T00:00:00Z");
                break;
            case LenderAnswer::kOverdue: m.status_info.status = iso::Status::kOverdue; break;
            case LenderAnswer::kRecalled:
                m.status_info.status = iso::Status::kRecalled;
                if (!answer.due_date.empty()) m.status_info.due_date = iso::ParseTime(answer.due_date + "T23:59:59Z");
                break;
            case LenderAnswer::kShipped: {
                m.status_info.status = iso::Status::kLoaned;
                // A due date is a day: 23:59:59Z, as ISO 18626 says.
                m.status_info.due_date = iso::ParseTime(answer.due_date + "T23:59:59Z");
                iso::DeliveryInfo d;
                d.date_sent = m.header.timestamp;
                if (!answer.conditions.empty()) d.loan_condition = iso::Code{answer.conditions, ""};
                d.item_id = answer.item_barcode;
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
        auto verdict = ibl::OnSupplierMessage(now, EventOf(m));
        if (!verdict.allowed) return Refuse<AnswerResult>(AnswerStatus::kNotAllowed, verdict.why);
        const std::string what =
            fmt::format("{} {}", iso::ToString(m.message_info.reason), iso::ToString(m.status_info.status));
        const std::string body = iso::Write(m);
        const std::string identity = IdentityOf(m.header, "supplyingAgencyMessage", what);
        const auto node = NodeFor(tx, requester);
        if (node.empty()) {
            // The requester's side is here: it takes the message now, or
            // the answer is refused rather than splitting the two sides.
            auto theirs = detail::ExecPrepared(tx, "ibl_find_request", kFindRequest, std::string("requester"),
                                               requester, request_id, lender);
            if (theirs.empty())
                return Refuse<AnswerResult>(AnswerStatus::kNotAllowed, "the requester has no such request");
            auto taken = RequesterTakes(tx, theirs[0], m, body, identity, what, settings);
            if (!taken.allowed)
                return Refuse<AnswerResult>(AnswerStatus::kNotAllowed,
                                            "the requester's side does not allow it: " + taken.why);
            out.requester_state = taken.state;
            out.next_lender = taken.next_lender;
        }
        const std::string due = m.status_info.due_date ? iso::FormatTime(*m.status_info.due_date) : std::string();
        SaveTransaction(tx, task, verdict.next, "", due);
        SaveTerms(tx, task, m);
        RecordCharge(tx, task, verdict.next.state, settings);
        const long long event = AddEvent(tx, task, "out", "supplyingAgencyMessage", what, m.header, identity,
                                         ibl::ToString(verdict.next.state), body);
        if (!node.empty()) Queue(tx, event, task, node, requester);
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
        LockRequest(tx, library, request_id);
        // The request's current transaction; for what concerns an item on
        // loan, the transaction that has it (a lender passed over may have
        // shipped all the same).
        const bool about_loan = action == RequesterAction::kReceived || action == RequesterAction::kRenew ||
                                action == RequesterAction::kShippedReturn;
        auto mine = tx.exec_params(
            fmt::format("SELECT id, state, cancel_pending, renew_pending, received, shipped_return, conditional, "
                        "supplying_agency FROM ibl_request WHERE role = 'requester' AND requesting_agency = $1 "
                        "AND request_id = $2 ORDER BY {} LIMIT 1 FOR UPDATE",
                        about_loan ? detail::kIblRequesterRowOrder : "(superseded_by IS NULL) DESC, id DESC"),
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
            case RequesterAction::kAcceptConditions:
                // Only a request with conditions to accept: a Notification
                // would be allowed in any state.
                if (!TransactionOf(mine[0]).conditional)
                    return Refuse<ActionResult>(AnswerStatus::kNotAllowed, "the lender asked for nothing to accept");
                m.action = iso::Action::kNotification;
                if (m.note.empty()) m.note = "Conditions accepted.";
                break;
        }
        auto verdict = ibl::OnRequesterAction(TransactionOf(mine[0]), m.action);
        if (!verdict.allowed) return Refuse<ActionResult>(AnswerStatus::kNotAllowed, verdict.why);
        auto sent = SendToSupplier(tx, row, m, verdict.next);
        if (auto* refused = std::get_if<Taken>(&sent)) return Refuse<ActionResult>(AnswerStatus::kNotAllowed, refused->why);
        out.lender_state = std::get<std::string>(sent);
        // A request being cancelled is not passed on at its deadline.
        if (action == RequesterAction::kCancel)
            tx.exec_params("UPDATE ibl_request SET answer_by = NULL WHERE id = $1", row);
        out.request = ViewById(tx, row);
        tx.commit();
        return out;
    });
}

std::vector<IblOutgoingMessage> DueIblMessages(Database& db, int limit) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl due");
        // The oldest message of each request not yet confirmed, if it is due.
        auto rows = tx.exec_params(
            "SELECT o.event, o.request, o.node, o.agency, o.attempts, e.kind, e.body FROM ibl_outbox o "
            "JOIN ibl_event e ON e.id = o.event "
            "WHERE o.delivered_at IS NULL AND o.refused IS NULL AND o.next_at <= now() "
            "AND NOT EXISTS (SELECT 1 FROM ibl_outbox p WHERE p.request = o.request AND p.event < o.event "
            "  AND p.delivered_at IS NULL AND p.refused IS NULL) "
            "ORDER BY o.next_at, o.event LIMIT $1",
            limit);
        std::vector<IblOutgoingMessage> out;
        for (const auto& r : rows)
            out.push_back({r[0].as<long long>(), r[1].as<long long>(), r[2].as<std::string>(), r[3].as<std::string>(),
                           r[5].as<std::string>(), r[6].as<std::string>(), r[4].as<int>()});
        return out;
    });
}

void IblMessageDelivered(Database& db, long long event) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl delivered");
        tx.exec_params("UPDATE ibl_outbox SET delivered_at = now(), attempts = attempts + 1 WHERE event = $1", event);
        tx.commit();
    });
}

void IblMessageFailed(Database& db, long long event, const std::string& error, int retry_in_seconds) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl failed");
        tx.exec_params("UPDATE ibl_outbox SET attempts = attempts + 1, last_error = $2, last_error_at = now(), "
                       "next_at = now() + make_interval(secs => $3) WHERE event = $1",
                       event, error.substr(0, 1000), retry_in_seconds);
        tx.commit();
    });
}

std::string IblMessageRefused(Database& db, long long event, const std::string& error, const IblSettings& settings) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl refused");
        auto key = tx.exec_params("SELECT q.requesting_agency, q.request_id FROM ibl_outbox o "
                                  "JOIN ibl_request q ON q.id = o.request WHERE o.event = $1",
                                  event);
        if (key.empty()) return std::string();
        LockRequest(tx, key[0][0].as<std::string>(), key[0][1].as<std::string>());
        auto r = tx.exec_params(
            "UPDATE ibl_outbox o SET refused = $2, attempts = attempts + 1, last_error_at = now() FROM ibl_event e "
            "WHERE o.event = $1 AND e.id = o.event AND o.refused IS NULL AND o.delivered_at IS NULL "
            "RETURNING e.kind, e.what, o.request",
            event, error.substr(0, 1000));
        if (r.empty()) return std::string();
        const std::string kind = r[0][0].as<std::string>(), what = r[0][1].as<std::string>();
        const long long row = r[0][2].as<long long>();
        auto q = tx.exec_params1("SELECT role, state, cancel_pending, superseded_by IS NULL FROM ibl_request "
                                 "WHERE id = $1 FOR UPDATE",
                                 row);
        const std::string identity = fmt::format("refusal|{}", event);
        std::string next;
        iso::Header h;
        h.timestamp = Now();
        if (kind == "request" && q[0].as<std::string>() == "requester" && q[1].as<std::string>() == "Sent" &&
            !q[2].as<bool>() && q[3].as<bool>()) {
            // A request its lender's node would not take: that lender is
            // passed over, as if it had answered Unfilled.
            next = EndAndMoveOn(tx, row, "lender's node refused the request: " + error, identity, settings);
        } else if (kind == "requestingAgencyMessage" && (what == "Cancel" || what == "Renew")) {
            // A Cancel or Renew the lender's node would not take gets no
            // answer: it is no longer waited for.
            tx.exec_params(fmt::format("UPDATE ibl_request SET {} = false, updated_at = now() WHERE id = $1",
                                       what == "Cancel" ? "cancel_pending" : "renew_pending"),
                           row);
            AddEvent(tx, row, "in", "refusal", what + " refused: " + error, h, identity, q[1].as<std::string>(),
                     error);
        } else {
            AddEvent(tx, row, "in", "refusal", what + " refused: " + error, h, identity, q[1].as<std::string>(),
                     error);
        }
        tx.commit();
        return next;
    });
}

long long PassOverSilentLenders(Database& db, const IblSettings& settings) {
    auto due = db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl deadlines");
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& r : tx.exec("SELECT requesting_agency, request_id FROM ibl_request "
                                     "WHERE role = 'requester' AND answer_by <= now() ORDER BY answer_by LIMIT 100"))
            out.emplace_back(r[0].as<std::string>(), r[1].as<std::string>());
        return out;
    });
    long long moved = 0;
    // One transaction per request, under the request's lock, so that one
    // that fails does not hold back the others.
    for (const auto& [agency, request_id] : due) {
        moved += db.Pool().With([&](pqxx::connection& c) {
            pqxx::work tx(c, "ibl deadline");
            LockRequest(tx, agency, request_id);
            auto rows = tx.exec_params(
                "SELECT id, state, cancel_pending, renew_pending, received, shipped_return, conditional, "
                "supplying_agency, to_char(answer_by AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS due, "
                "superseded_by IS NULL AND state IN ('Sent', 'RetryPossible') AND NOT cancel_pending AS live, "
                "rota[rota_index + 2] IS NOT NULL AS more FROM ibl_request "
                "WHERE role = 'requester' AND requesting_agency = $1 AND request_id = $2 AND answer_by <= now() "
                "FOR UPDATE",
                agency, request_id);
            int n = 0;
            for (const auto& row : rows) {
                const long long id = row["id"].as<long long>();
                // The deadline is looked at once: after it the request has
                // moved on, or has nobody left to ask (the lender keeps it and
                // may still answer), or no longer waits for an answer.
                tx.exec_params("UPDATE ibl_request SET answer_by = NULL WHERE id = $1", id);
                if (!row["live"].as<bool>() || !row["more"].as<bool>()) continue;
                if (row["state"].as<std::string>() == "Sent") {
                    // The silent lender is told not to supply any more.
                    iso::RequestingAgencyMessage m;
                    m.header.requesting_agency = iso::AgencyId::Isil(agency);
                    m.header.supplying_agency = iso::AgencyId::Isil(row["supplying_agency"].as<std::string>());
                    m.header.requesting_agency_request_id = request_id;
                    m.header.timestamp = Now();
                    m.action = iso::Action::kCancel;
                    m.note = fmt::format("No answer by {}; the request went to another library.",
                                         row["due"].as<std::string>());
                    auto verdict = ibl::OnRequesterAction(TransactionOf(row), m.action);
                    if (verdict.allowed) (void)SendToSupplier(tx, id, m, verdict.next);
                }
                if (!MoveOn(tx, id, settings).empty()) ++n;
            }
            tx.commit();
            return n;
        });
    }
    return moved;
}

std::vector<LenderToConfirm> IblLendersToConfirm(Database& db, const NewIblRequest& in, const IblSettings& settings) {
    if (settings.confirm_after_minutes <= 0) return {};
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl confirm");
        std::vector<LenderToConfirm> out;
        const auto works = WorksOf(tx, in);
        if (works.empty()) return out;
        detail::ArrayLiteral ids;
        for (const auto& w : works) ids.Add(w[0].as<long long>());
        int looked = 0;
        for (const auto& l : LenderRows(tx, ids.Done(), in, settings)) {
            if (++looked > 3) break;  // the first few are the ones that matter; the rest moves on if need be
            if (l["remote"].as<bool>() && l["stale"].as<bool>())
                out.push_back({l["library"].as<std::string>(), l["node"].as<std::string>(),
                               l["record_id"].as<std::string>()});
        }
        return out;
    });
}

std::optional<std::string> IblRequester(Database& db, const std::string& request_id) {
    return db.Pool().With([&](pqxx::connection& c) -> std::optional<std::string> {
        pqxx::read_transaction tx(c, "ibl requester");
        auto r = tx.exec_params("SELECT requesting_agency FROM ibl_request WHERE role = 'requester' AND "
                                "request_id = $1 ORDER BY id LIMIT 1",
                                request_id);
        if (r.empty()) return std::nullopt;
        return r[0][0].as<std::string>();
    });
}

RerouteResult RerouteIblRequest(Database& db, const std::string& request_id, const IblSettings& settings) {
    const auto agency = IblRequester(db, request_id);
    if (!agency) return Refuse<RerouteResult>(AnswerStatus::kUnknownTask);
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl reroute");
        LockRequest(tx, *agency, request_id);
        auto rows = tx.exec_params(
            "SELECT id, state, cancel_pending, renew_pending, received, shipped_return, conditional, supplying_agency, "
            "rota[rota_index + 2] IS NOT NULL AS more FROM ibl_request WHERE role = 'requester' "
            "AND requesting_agency = $1 AND request_id = $2 AND superseded_by IS NULL FOR UPDATE",
            *agency, request_id);
        if (rows.empty()) return Refuse<RerouteResult>(AnswerStatus::kUnknownTask);
        const auto& row = rows[0];
        const long long id = row["id"].as<long long>();
        const std::string state = row["state"].as<std::string>();
        RerouteResult out;
        out.from = row["supplying_agency"].as<std::string>();
        if (state != "Sent" && state != "RequestReceived" && state != "ExpectToSupply" && state != "WillSupply" &&
            state != "RetryPossible")
            return Refuse<RerouteResult>(AnswerStatus::kNotAllowed,
                                         fmt::format("the request is {} with {}; only one not yet shipped can go to "
                                                     "another lender",
                                                     state, out.from));
        if (row["cancel_pending"].as<bool>())
            return Refuse<RerouteResult>(AnswerStatus::kNotAllowed, "a cancel of the request is waiting for its answer");
        if (!row["more"].as<bool>())
            return Refuse<RerouteResult>(AnswerStatus::kNotAllowed,
                                         fmt::format("{} is the last lender with a copy; there is nobody else to ask",
                                                     out.from));
        if (state != "RetryPossible") {
            iso::RequestingAgencyMessage m;
            m.header.requesting_agency = iso::AgencyId::Isil(*agency);
            m.header.supplying_agency = iso::AgencyId::Isil(out.from);
            m.header.requesting_agency_request_id = request_id;
            m.header.timestamp = Now();
            m.action = iso::Action::kCancel;
            m.note = "The request went to another library.";
            auto verdict = ibl::OnRequesterAction(TransactionOf(row), m.action);
            if (verdict.allowed) (void)SendToSupplier(tx, id, m, verdict.next);
        }
        tx.exec_params("UPDATE ibl_request SET answer_by = NULL WHERE id = $1", id);
        out.to = MoveOn(tx, id, settings);
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
        // Finished: a closed state and no retry date ahead; or a
        // transaction the request moved on from, whatever its lender did.
        auto done = tx.exec_params(fmt::format("UPDATE ibl_request SET patron_ref = NULL, pickup = NULL "
                                               "WHERE ((state IN {} AND answer_by IS NULL) OR superseded_by IS NOT NULL) "
                                               "AND (patron_ref IS NOT NULL OR pickup IS NOT NULL) "
                                               "AND updated_at < now() - make_interval(days => $1) RETURNING id",
                                               detail::kIblClosedStates),
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
        auto r = tx.exec_params(fmt::format("SELECT {} FROM ibl_request WHERE role = 'requester' AND "
                                            "requesting_agency = $1 AND request_id = $2 ORDER BY {} LIMIT 1",
                                            IblViewColumns(), detail::kIblRequesterRowOrder),
                                library, request_id);
        if (r.empty()) return std::nullopt;
        return IblViewOf(r[0]);
    });
}

std::vector<IblRequestView> IblInbox(Database& db, const std::string& library, long long* cursor) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl inbox");
        std::vector<IblRequestView> out;
        for (const auto& r : tx.exec_params(fmt::format("SELECT {} FROM ibl_request WHERE role = 'supplier' AND "
                                                        "supplying_agency = $1 AND state NOT IN {} ORDER BY id",
                                                        IblViewColumns(), detail::kIblClosedStates),
                                            library))
            out.push_back(IblViewOf(r));
        if (cursor) {
            detail::ArrayLiteral ids;
            for (const auto& t : out) ids.Add(t.task);
            *cursor = tx.exec_params1("SELECT coalesce(max(id), 0) FROM ibl_event WHERE request = ANY($1::bigint[])",
                                      ids.Done())[0]
                          .as<long long>();
        }
        return out;
    });
}

InboundOutcome ApplyInbound(Database& db, const iso::Message& message, std::string_view body,
                            const std::string& sender, const IblSettings& settings) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl inbound");
        InboundOutcome out;
        const iso::Header* h = nullptr;
        if (const auto* r = std::get_if<iso::Request>(&message)) h = &r->header;
        if (const auto* s = std::get_if<iso::SupplyingAgencyMessage>(&message)) h = &s->header;
        if (const auto* q = std::get_if<iso::RequestingAgencyMessage>(&message)) h = &q->header;
        if (h) {
            auto agency = IsilOf(h->requesting_agency, "requestingAgencyId");
            LockRequest(tx, std::holds_alternative<std::string>(agency) ? std::get<std::string>(agency)
                                                                        : h->requesting_agency.value,
                        h->requesting_agency_request_id);
        }
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
                out = TakeRequest(tx, kept, iso::Write(kept), sender, settings);
            } else {
                out = TakeRequest(tx, *r, body, sender, settings);
            }
        } else if (const auto* s = std::get_if<iso::SupplyingAgencyMessage>(&message)) {
            out = TakeSupplierMessage(tx, *s, body, sender, settings);
        } else if (const auto* q = std::get_if<iso::RequestingAgencyMessage>(&message)) {
            out = TakeRequesterMessage(tx, *q, body, sender, settings);
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
