#include "storage/oai.hpp"

#include <map>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/holding_rows.hpp"
#include "storage/detail/sql.hpp"

namespace iblsync::storage {

namespace {

using protocols::oai::SetKind;

constexpr const char* kEntryColumns =
    "i.seq, extract(epoch FROM date_trunc('second', i.stamp))::bigint, i.library, i.local_id,"
    " coalesce(l.province, ''), coalesce(l.poi, ''), b.id, b.deleted";

// The WHERE clause of a list and its parameters ($1, $2, ... in order).
struct Filter {
    std::string where = "true";
    std::vector<std::string> params;
    void Add(const std::string& clause_with_placeholder, std::string value) {
        params.push_back(std::move(value));
        where += " AND " + fmt::format(fmt::runtime(clause_with_placeholder), params.size());
    }
};

Filter FilterOf(const OaiListRequest& r) {
    Filter f;
    if (r.from >= 0) f.Add("i.stamp >= to_timestamp(${}::bigint)", std::to_string(r.from));
    // Stamps keep their fractions; a datestamp shows the whole second.
    if (r.until >= 0) f.Add("i.stamp < to_timestamp(${}::bigint + 1)", std::to_string(r.until));
    switch (r.set.kind) {
        case SetKind::kNone: break;
        case SetKind::kLibrary:
            if (!r.set.value.empty()) f.Add("i.library = ${}", r.set.value);
            break;
        case SetKind::kProvince:
            if (r.set.value.empty()) f.where += " AND l.province IS NOT NULL";
            else f.Add("l.province = ${}", r.set.value);
            break;
        case SetKind::kPoi:
            if (r.set.value.empty()) f.where += " AND l.poi IS NOT NULL";
            else f.Add("l.poi = ${}", r.set.value);
            break;
    }
    if (!r.excluded.empty()) {
        detail::ArrayLiteral libs;
        for (const auto& e : r.excluded) libs.Add(e);
        f.Add("NOT (i.library = ANY(${}::text[]))", libs.Done());
    }
    return f;
}

OaiEntry EntryFrom(const pqxx::row& r) {
    OaiEntry e;
    e.position = r[0].as<long long>();
    e.datestamp = r[1].as<long long>();
    e.library = r[2].as<std::string>();
    e.local_id = r[3].as<std::string>();
    e.province = r[4].as<std::string>();
    e.poi = r[5].as<std::string>();
    e.deleted = r[7].as<bool>();
    return e;
}

// The content and copies of the live entries, whose bib_record ids are in
// `ids` (in entry order).
void FillContent(pqxx::transaction_base& tx, std::vector<OaiEntry>& entries, const std::vector<long long>& ids) {
    detail::ArrayLiteral live;
    std::map<long long, std::size_t> at;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].deleted) continue;
        live.Add(ids[i]);
        at[ids[i]] = i;
    }
    if (at.empty()) return;
    for (const auto& r : tx.exec_params("SELECT id, format, raw FROM bib_record WHERE id = ANY($1::bigint[])",
                                        live.Done())) {
        auto& e = entries[at[r[0].as<long long>()]];
        e.format = r[1].as<std::string>();
        e.raw = r[2].as<std::string>();
    }
    for (const auto& r :
         tx.exec_params(fmt::format("SELECT h.record_id, {} FROM holding h WHERE h.record_id = ANY($1::bigint[])"
                                    " ORDER BY h.record_id, h.barcode",
                                    detail::HoldingColumns("h")),
                        live.Done()))
        entries[at[r[0].as<long long>()]].holdings.push_back(detail::HoldingFrom(r, 1));
}

}  // namespace

OaiList ListOaiEntries(Database& db, const OaiListRequest& request) {
    return db.Pool().With([&](pqxx::connection& c) {
        // One snapshot for the page, its content and the count.
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c, "oai-list");
        // A page reads a few hundred rows by index; the planner still chose
        // a parallel plan at 1,000,000 items, whose workers took 39 of the
        // page's 60 ms to start (EXPLAIN ANALYZE).
        tx.exec0("SET LOCAL max_parallel_workers_per_gather = 0");
        Filter f = FilterOf(request);
        const std::string from =
            " FROM oai_item i JOIN bib_record b ON b.library = i.library AND b.local_id = i.local_id"
            " JOIN library l ON l.isil = i.library WHERE ";
        auto params = f.params;
        params.push_back(std::to_string(request.after));
        params.push_back(std::to_string(request.limit + 1));
        const auto rows = tx.exec_params(
            fmt::format("SELECT {}{}{} AND i.seq > ${}::bigint ORDER BY i.seq LIMIT ${}::bigint", kEntryColumns,
                        from, f.where, params.size() - 1, params.size()),
            pqxx::prepare::make_dynamic_params(params));
        OaiList out;
        std::vector<long long> ids;
        for (const auto& r : rows) {
            if (out.entries.size() == static_cast<std::size_t>(request.limit)) {
                out.more = true;
                break;
            }
            out.entries.push_back(EntryFrom(r));
            ids.push_back(r[6].as<long long>());
        }
        if (request.content) FillContent(tx, out.entries, ids);
        if (request.count) {
            if (!out.more) {
                out.count = static_cast<long long>(out.entries.size());
            } else {
                // The whole list's count is worth the workers.
                tx.exec0("SET LOCAL max_parallel_workers_per_gather TO DEFAULT");
                auto count_params = f.params;
                count_params.push_back(std::to_string(request.after));
                out.count = tx.exec_params1(fmt::format("SELECT count(*){}{} AND i.seq > ${}::bigint", from, f.where,
                                                        count_params.size()),
                                            pqxx::prepare::make_dynamic_params(count_params))[0]
                                .as<long long>();
            }
        }
        tx.commit();
        return out;
    });
}

std::optional<OaiEntry> ReadOaiEntry(Database& db, const std::string& library, const std::string& local_id,
                                     const std::vector<std::string>& excluded) {
    return db.Pool().With([&](pqxx::connection& c) -> std::optional<OaiEntry> {
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c, "oai-get");
        for (const auto& e : excluded)
            if (e == library) return std::nullopt;
        const auto rows = tx.exec_params(
            fmt::format("SELECT {} FROM oai_item i JOIN bib_record b ON b.library = i.library AND b.local_id = "
                        "i.local_id JOIN library l ON l.isil = i.library WHERE i.library = $1 AND i.local_id = $2",
                        kEntryColumns),
            library, local_id);
        if (rows.empty()) return std::nullopt;
        std::vector<OaiEntry> entries{EntryFrom(rows[0])};
        FillContent(tx, entries, {rows[0][6].as<long long>()});
        tx.commit();
        return std::move(entries.front());
    });
}

OaiRepositoryFacts ReadOaiRepositoryFacts(Database& db, const std::vector<std::string>& excluded) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c, "oai-facts");
        detail::ArrayLiteral out_libs;
        for (const auto& e : excluded) out_libs.Add(e);
        OaiRepositoryFacts facts;
        facts.earliest = tx.exec1("SELECT extract(epoch FROM date_trunc('second', coalesce("
                                  " (SELECT min(stamp) FROM oai_item), now())))::bigint")[0]
                             .as<long long>();
        // Libraries with at least one record; EXISTS reads one index entry each.
        for (const auto& r : tx.exec_params(
                 "SELECT l.isil, l.name, coalesce(l.province, ''), coalesce(l.poi, '') FROM library l"
                 " WHERE EXISTS (SELECT 1 FROM oai_item i WHERE i.library = l.isil)"
                 " AND NOT (l.isil = ANY($1::text[])) ORDER BY l.isil",
                 out_libs.Done()))
            facts.libraries.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                                       r[3].as<std::string>()});
        if (!facts.libraries.empty()) {
            auto r = tx.exec_params("SELECT local_id FROM oai_item WHERE library = $1 ORDER BY seq LIMIT 1",
                                    facts.libraries.front().isil);
            if (!r.empty()) {
                facts.sample_library = facts.libraries.front().isil;
                facts.sample_local_id = r[0][0].as<std::string>();
            }
        }
        tx.commit();
        return facts;
    });
}

}  // namespace iblsync::storage
