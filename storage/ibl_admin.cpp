#include "storage/ibl_admin.hpp"

#include <algorithm>
#include <optional>
#include <tuple>

#include <fmt/format.h>

#include <pqxx/pqxx>

#include "protocols/ibl_state.hpp"
#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/ibl_view.hpp"
#include "storage/detail/sql.hpp"

namespace iblsync::storage {

namespace {

std::string Time(const char* column) {
    return fmt::format("coalesce(to_char({} AT TIME ZONE 'UTC', '{}'), '')", column, detail::kIsoUtc);
}

}  // namespace

std::vector<IblListRow> ListIblRequests(Database& db, const IblListFilter& f) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl list");
        const std::string where = fmt::format(
            "r.superseded_by IS NULL AND ($1 = '' OR r.requesting_agency = $1 OR r.supplying_agency = $1) AND "
            "($2 = 'all' OR r.state = $2 OR ($2 = 'open' AND (r.state NOT IN {} OR r.answer_by IS NOT NULL)))",
            detail::kIblClosedStates);
        auto rows = tx.exec_params(
            fmt::format("SELECT {}, (SELECT count(*) FROM ibl_outbox o WHERE o.request = r.id AND "
                        "o.delivered_at IS NULL AND o.refused IS NULL), "
                        "coalesce((SELECT o.last_error FROM ibl_outbox o WHERE o.request = r.id AND "
                        "o.delivered_at IS NULL AND o.refused IS NULL ORDER BY o.event LIMIT 1), '') "
                        "FROM ibl_request r WHERE {} ORDER BY r.updated_at DESC, r.id DESC LIMIT $3",
                        detail::IblViewColumns(), where),
            f.library, f.state, f.limit);
        std::vector<IblListRow> out;
        for (const auto& row : rows) {
            IblListRow l;
            l.request = detail::IblViewOf(row);
            l.unsent = row[static_cast<int>(row.size()) - 2].as<int>();
            l.last_error = row[static_cast<int>(row.size()) - 1].as<std::string>();
            out.push_back(std::move(l));
        }
        return out;
    });
}

std::vector<IblTransaction> ShowIblRequest(Database& db, const std::string& id) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl show");
        // A task number names one row; its request id names the rest.
        std::string request_id = id;
        if (!id.empty() && id.find_first_not_of("0123456789") == std::string::npos && id.size() < 18) {
            auto r = tx.exec_params("SELECT request_id FROM ibl_request WHERE id = $1", std::stoll(id));
            if (!r.empty()) request_id = r[0][0].as<std::string>();
        }
        std::vector<IblTransaction> out;
        for (const auto& row : tx.exec_params(
                 fmt::format("SELECT {}, coalesce((SELECT n.supplying_agency FROM ibl_request n "
                             "WHERE n.id = ibl_request.superseded_by), '') FROM ibl_request WHERE request_id = $1 "
                             "ORDER BY id",
                             detail::IblViewColumns()),
                 request_id)) {
            IblTransaction t;
            t.request = detail::IblViewOf(row);
            t.superseded_by = row[static_cast<int>(row.size()) - 1].as<std::string>();
            for (const auto& e : tx.exec_params(
                     fmt::format("SELECT e.id, e.direction, e.kind, e.what, e.state_after, {}, "
                                 "CASE WHEN o.event IS NULL THEN '' WHEN o.delivered_at IS NOT NULL THEN 'delivered' "
                                 "WHEN o.refused IS NOT NULL THEN 'refused' ELSE 'unsent' END, "
                                 "coalesce(o.attempts, 0), coalesce(o.refused, o.last_error, '') "
                                 "FROM ibl_event e LEFT JOIN ibl_outbox o ON o.event = e.id "
                                 "WHERE e.request = $1 ORDER BY e.id",
                                 Time("e.at")),
                     t.request.task)) {
                IblEventView v;
                v.id = e[0].as<long long>();
                v.direction = e[1].as<std::string>();
                v.kind = e[2].as<std::string>();
                v.what = e[3].as<std::string>();
                v.state_after = e[4].as<std::string>();
                v.at = e[5].as<std::string>();
                v.delivery = e[6].as<std::string>();
                v.attempts = e[7].as<int>();
                v.error = e[8].as<std::string>();
                t.events.push_back(std::move(v));
            }
            out.push_back(std::move(t));
        }
        return out;
    });
}

std::vector<IblLibraryStats> IblMonthStats(Database& db, const std::string& month) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl stats");
        // The month's bounds in Dutch time; everything is read from ibl_event.
        // A request is "requested" when its first lender was asked; "supplied"
        // when a lender's Loaned reached it (a shipment, not a renewal);
        // "unfilled" when its last transaction ended Unfilled.
        auto rows = tx.exec_params(
            "WITH m AS (SELECT ($1 || '-01')::timestamp AT TIME ZONE 'Europe/Amsterdam' AS lo, "
            "                  (($1 || '-01')::date + interval '1 month')::timestamp AT TIME ZONE 'Europe/Amsterdam' AS hi), "
            "ev AS (SELECT e.*, r.role, r.requesting_agency, r.supplying_agency, r.request_id, r.rota_index, "
            "              r.superseded_by FROM ibl_event e JOIN ibl_request r ON r.id = e.request, m "
            "       WHERE e.at >= m.lo AND e.at < m.hi), "
            "asked AS (SELECT requesting_agency AS library, count(*) AS n FROM ev WHERE role = 'requester' "
            "          AND direction = 'out' AND kind = 'request' AND rota_index = 0 GROUP BY 1), "
            "shipped AS (SELECT ev.requesting_agency AS library, count(*) AS n, "
            "            avg(extract(epoch FROM ev.at - (SELECT min(f.created_at) FROM ibl_request f "
            "                WHERE f.role = 'requester' AND f.requesting_agency = ev.requesting_agency "
            "                AND f.request_id = ev.request_id))) / 3600.0 AS hours "
            "            FROM ev WHERE role = 'requester' AND direction = 'in' AND state_after = 'Loaned' "
            "            AND what IN ('RequestResponse Loaned', 'StatusChange Loaned') GROUP BY 1), "
            "unfilled AS (SELECT requesting_agency AS library, count(*) AS n FROM ev WHERE role = 'requester' "
            "            AND direction = 'in' AND state_after = 'Unfilled' AND superseded_by IS NULL GROUP BY 1), "
            "tasks AS (SELECT supplying_agency AS library, count(*) AS n FROM ev WHERE role = 'supplier' "
            "          AND direction = 'in' AND kind = 'request' GROUP BY 1), "
            "lent AS (SELECT supplying_agency AS library, count(*) AS n FROM ev WHERE role = 'supplier' "
            "         AND direction = 'out' AND state_after = 'Loaned' "
            "         AND what IN ('RequestResponse Loaned', 'StatusChange Loaned') GROUP BY 1), "
            "declined AS (SELECT supplying_agency AS library, count(*) AS n FROM ev WHERE role = 'supplier' "
            "         AND direction = 'out' AND state_after = 'Unfilled' GROUP BY 1), "
            "libs AS (SELECT library FROM asked UNION SELECT library FROM shipped UNION SELECT library FROM unfilled "
            "         UNION SELECT library FROM tasks UNION SELECT library FROM lent UNION SELECT library FROM declined) "
            "SELECT libs.library, coalesce(l.province, ''), coalesce(asked.n, 0), coalesce(shipped.n, 0), "
            "coalesce(unfilled.n, 0), coalesce(shipped.hours, 0), coalesce(tasks.n, 0), coalesce(lent.n, 0), "
            "coalesce(declined.n, 0) FROM libs LEFT JOIN library l ON l.isil = libs.library "
            "LEFT JOIN asked USING (library) LEFT JOIN shipped USING (library) LEFT JOIN unfilled USING (library) "
            "LEFT JOIN tasks USING (library) LEFT JOIN lent USING (library) LEFT JOIN declined USING (library) "
            "ORDER BY 2, 1",
            month);
        std::vector<IblLibraryStats> out;
        for (const auto& r : rows) {
            IblLibraryStats s;
            s.library = r[0].as<std::string>();
            s.province = r[1].as<std::string>();
            s.requested = r[2].as<long long>();
            s.supplied = r[3].as<long long>();
            s.unfilled = r[4].as<long long>();
            s.mean_hours_to_supply = r[5].as<double>();
            s.asked = r[6].as<long long>();
            s.lent = r[7].as<long long>();
            s.declined = r[8].as<long long>();
            out.push_back(std::move(s));
        }
        return out;
    });
}

std::vector<IblMovement> IblManifest(Database& db, const std::string& date) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl manifest");
        // A shipment is the Loaned that answered the request (not a
        // renewal); a return is the requester's ShippedReturn. Sent by this
        // node's libraries ('out'), or coming in for them from a library of
        // another node ('in' from a library with another POI).
        auto rows = tx.exec_params(
            fmt::format(
                "WITH me AS (SELECT isil FROM node_identity), "
                "day AS (SELECT $1::date::timestamp AT TIME ZONE 'Europe/Amsterdam' AS lo, "
                "               ($1::date + 1)::timestamp AT TIME ZONE 'Europe/Amsterdam' AS hi), "
                "moves AS ("
                "  SELECT e.at, e.direction AS way, r.role, r.requesting_agency, r.request_id, r.supplying_agency, "
                "         coalesce(r.item_id, '') AS item, "
                "         CASE WHEN e.kind = 'supplyingAgencyMessage' THEN 'outbound' ELSE 'return' END AS dir "
                "  FROM ibl_event e JOIN ibl_request r ON r.id = e.request, day "
                "  WHERE e.at >= day.lo AND e.at < day.hi AND ("
                "    (e.kind = 'supplyingAgencyMessage' AND e.what IN ('RequestResponse Loaned', 'StatusChange Loaned') "
                "     AND ((r.role = 'supplier' AND e.direction = 'out') OR (r.role = 'requester' AND e.direction = 'in')))"
                "    OR (e.kind = 'requestingAgencyMessage' AND e.what = 'ShippedReturn' "
                "     AND ((r.role = 'requester' AND e.direction = 'out') OR (r.role = 'supplier' AND e.direction = 'in')))))"
                "SELECT m.at, m.dir, "
                "  CASE WHEN m.dir = 'outbound' THEN m.supplying_agency ELSE m.requesting_agency END AS src, "
                "  CASE WHEN m.dir = 'outbound' THEN m.requesting_agency ELSE m.supplying_agency END AS dst, "
                "  m.requesting_agency, m.request_id, m.item, m.way, "
                "  coalesce((SELECT l.poi FROM library l WHERE l.isil = "
                "    CASE WHEN m.dir = 'outbound' THEN m.requesting_agency ELSE m.supplying_agency END "
                "    AND l.poi <> me.isil), '') AS dst_poi, "
                "  coalesce((SELECT l.poi FROM library l WHERE l.isil = "
                "    CASE WHEN m.dir = 'outbound' THEN m.supplying_agency ELSE m.requesting_agency END "
                "    AND l.poi <> me.isil), '') AS src_poi, {} "
                "FROM moves m, me ORDER BY 1",
                Time("m.at")),
            date);
        std::vector<IblMovement> out;
        for (const auto& r : rows) {
            const std::string way = r[7].as<std::string>(), dst_poi = r[8].as<std::string>(),
                              src_poi = r[9].as<std::string>();
            // Sent here and received here: the out event is the one listed.
            if (way == "in" && src_poi.empty()) continue;
            IblMovement m;
            m.direction = r[1].as<std::string>();
            m.from = r[2].as<std::string>();
            m.to = r[3].as<std::string>();
            m.requester = r[4].as<std::string>();
            m.request_id = r[5].as<std::string>();
            m.item_barcode = r[6].as<std::string>();
            m.route = way == "in" ? "from " + src_poi : dst_poi.empty() ? "province" : "to " + dst_poi;
            m.slip = protocols::ibl::SlipCode(m.requester, m.request_id, m.direction == "outbound");
            m.at = r[10].as<std::string>();
            out.push_back(std::move(m));
        }
        std::stable_sort(out.begin(), out.end(), [](const IblMovement& a, const IblMovement& b) {
            return std::tie(a.route, a.to) < std::tie(b.route, b.to);
        });
        return out;
    });
}

namespace {

std::optional<IblSlip> SlipOf(pqxx::read_transaction& tx, const pqxx::result& r) {
    if (r.empty()) return std::nullopt;
    IblSlip s;
    s.request = detail::IblViewOf(r[0]);
    auto names = tx.exec_params("SELECT coalesce((SELECT name FROM library WHERE isil = $1), $1), "
                                "coalesce((SELECT name FROM library WHERE isil = $2), $2)",
                                s.request.lender, s.request.requester);
    s.lender_name = names[0][0].as<std::string>();
    s.requester_name = names[0][1].as<std::string>();
    s.outbound = protocols::ibl::SlipCode(s.request.requester, s.request.request_id, true);
    s.back = protocols::ibl::SlipCode(s.request.requester, s.request.request_id, false);
    return s;
}

}  // namespace

std::optional<IblSlip> IblSlipForTask(Database& db, const std::string& lender, long long task) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl slip");
        return SlipOf(tx, tx.exec_params(fmt::format("SELECT {} FROM ibl_request WHERE id = $1 AND role = 'supplier' "
                                                     "AND supplying_agency = $2",
                                                     detail::IblViewColumns()),
                                         task, lender));
    });
}

std::optional<IblSlip> IblSlipForRequest(Database& db, const std::string& requester, const std::string& request_id) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl slip");
        return SlipOf(tx, tx.exec_params(fmt::format("SELECT {} FROM ibl_request WHERE role = 'requester' AND "
                                                     "requesting_agency = $1 AND request_id = $2 ORDER BY {} "
                                                     "LIMIT 1",
                                                     detail::IblViewColumns(), detail::kIblRequesterRowOrder),
                                         requester, request_id));
    });
}

std::vector<IblInvoiceLine> IblInvoice(Database& db, const std::string& month) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl invoice");
        auto rows = tx.exec_params(
            fmt::format(
                "WITH m AS (SELECT ($1 || '-01')::timestamp AT TIME ZONE 'Europe/Amsterdam' AS lo, "
                "  (($1 || '-01')::date + interval '1 month')::timestamp AT TIME ZONE 'Europe/Amsterdam' AS hi), "
                "own AS (SELECT l.isil FROM library l, node_identity me "
                "  WHERE coalesce(l.poi, me.isil) = me.isil), "
                "c AS (SELECT ch.* FROM ibl_charge ch, m WHERE ch.completed_at >= m.lo AND ch.completed_at < m.hi) "
                "SELECT requesting_agency, 'pays', supplying_agency, requesting_agency, request_id, kind, tariff, {0}, "
                "  (amount * 100)::bigint FROM c WHERE requesting_agency IN (SELECT isil FROM own) "
                "UNION ALL "
                "SELECT supplying_agency, 'receives', requesting_agency, requesting_agency, request_id, kind, tariff, "
                "  {0}, (amount * 100)::bigint FROM c WHERE supplying_agency IN (SELECT isil FROM own) "
                "ORDER BY 1, 2, 8, 5",
                Time("completed_at")),
            month);
        std::vector<IblInvoiceLine> out;
        for (const auto& r : rows) {
            IblInvoiceLine l;
            l.library = r[0].as<std::string>();
            l.side = r[1].as<std::string>();
            l.counterpart = r[2].as<std::string>();
            l.requester = r[3].as<std::string>();
            l.request_id = r[4].as<std::string>();
            l.kind = r[5].as<std::string>();
            l.tariff = r[6].as<std::string>();
            l.completed_at = r[7].as<std::string>();
            l.cents = r[8].as<long long>();
            out.push_back(std::move(l));
        }
        return out;
    });
}

ClosureStatus AddIblClosure(Database& db, const IblClosure& closure) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl close");
        if (tx.exec_params("SELECT 1 FROM library WHERE isil = $1", closure.library).empty())
            return ClosureStatus::kUnknownLibrary;
        auto ok = tx.exec_params1("SELECT $1::date <= $2::date", closure.starts, closure.ends);
        if (!ok[0].as<bool>()) return ClosureStatus::kBadDates;
        tx.exec_params("INSERT INTO ibl_closure (library, starts, ends, reason) VALUES ($1, $2::date, $3::date, $4)",
                       closure.library, closure.starts, closure.ends, closure.reason);
        tx.commit();
        return ClosureStatus::kDone;
    });
}

std::vector<IblClosure> ListIblClosures(Database& db, const std::string& library) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl closures");
        std::vector<IblClosure> out;
        for (const auto& r : tx.exec_params(
                 "SELECT id, library, starts::text, ends::text, reason FROM ibl_closure "
                 "WHERE ends >= (now() AT TIME ZONE 'Europe/Amsterdam')::date AND ($1 = '' OR library = $1) "
                 "ORDER BY starts, library",
                 library))
            out.push_back({r[0].as<long long>(), r[1].as<std::string>(), r[2].as<std::string>(),
                           r[3].as<std::string>(), r[4].as<std::string>()});
        return out;
    });
}

long long ReopenIblLender(Database& db, const std::string& library) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl reopen");
        const std::string today = "(now() AT TIME ZONE 'Europe/Amsterdam')::date";
        auto gone = tx.exec_params(fmt::format("DELETE FROM ibl_closure WHERE library = $1 AND starts > {}", today),
                                   library);
        auto ended = tx.exec_params(fmt::format("UPDATE ibl_closure SET ends = {0} - 1 WHERE library = $1 AND "
                                                "starts <= {0} AND ends >= {0} AND starts <= {0} - 1",
                                                today),
                                    library);
        // A closure that began today is removed rather than ended before it began.
        auto today_only = tx.exec_params(
            fmt::format("DELETE FROM ibl_closure WHERE library = $1 AND starts = {0} AND ends >= {0}", today),
            library);
        tx.commit();
        return static_cast<long long>(gone.affected_rows() + ended.affected_rows() + today_only.affected_rows());
    });
}

bool SetIblNotLent(Database& db, const std::string& library, const std::vector<std::string>& types) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "ibl lends");
        if (tx.exec_params("SELECT 1 FROM library WHERE isil = $1", library).empty()) return false;
        tx.exec_params("DELETE FROM ibl_not_lent WHERE library = $1", library);
        for (const auto& t : types)
            tx.exec_params("INSERT INTO ibl_not_lent (library, material_type) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                           library, t);
        tx.commit();
        return true;
    });
}

std::vector<std::string> IblNotLent(Database& db, const std::string& library) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl lends");
        std::vector<std::string> out;
        for (const auto& r : tx.exec_params("SELECT material_type FROM ibl_not_lent WHERE library = $1 ORDER BY 1",
                                            library))
            out.push_back(r[0].as<std::string>());
        return out;
    });
}

IblGauges CountIblRequests(Database& db) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "ibl gauges");
        IblGauges g;
        for (const auto& r : tx.exec("SELECT role, state, count(*) FROM ibl_request WHERE superseded_by IS NULL "
                                     "GROUP BY 1, 2 ORDER BY 1, 2"))
            g.by_state.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<long long>()});
        auto o = tx.exec1("SELECT count(*) FILTER (WHERE delivered_at IS NULL AND refused IS NULL), "
                          "count(*) FILTER (WHERE refused IS NOT NULL) FROM ibl_outbox");
        g.unsent = o[0].as<long long>();
        g.refused = o[1].as<long long>();
        return g;
    });
}

}  // namespace iblsync::storage
