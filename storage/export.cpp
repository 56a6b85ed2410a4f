#include "storage/export.hpp"

#include <map>

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/detail/errors.hpp"
#include "storage/detail/holding_rows.hpp"
#include "storage/detail/sql.hpp"
#include "storage/errors.hpp"

namespace iblsync::storage {

namespace {
constexpr int kBatch = 1000;
}

ExportSummary ExportRecords(const std::string& conninfo, const ExportFilter& filter,
                            const std::function<void(const ExportedRecord&)>& each) {
    return detail::Translated([&] {
        pqxx::connection c(conninfo);
        // One snapshot for the head and every batch. Not read-only: the
        // incremental export collects its record ids in a temporary table.
        pqxx::transaction<pqxx::repeatable_read> tx(c, "export");
        ExportSummary out;
        const auto bounds = detail::ReadFeedBounds(tx);
        out.head = bounds.head;
        const long long oldest = bounds.oldest;
        std::string from;
        if (filter.since >= 0) {
            if (filter.since > out.head)
                throw DatabaseError(fmt::format("--since {} is beyond this node's last change ({}): a cursor from "
                                                "another node or an older copy of the database",
                                                filter.since, out.head),
                                    "IBL03");
            if (filter.since + 1 < oldest)
                throw DatabaseError(fmt::format("changes after {} are no longer kept (the oldest kept is {}); make "
                                                "a full export (without --since)",
                                                filter.since, oldest),
                                    "IBL03");
            tx.exec_params0(
                "CREATE TEMP TABLE export_id ON COMMIT DROP AS"
                " SELECT b.id FROM change_log c JOIN bib_record b ON b.library = c.library"
                "  AND b.local_id = CASE WHEN c.entity = 'record' THEN c.local_id ELSE c.record_local_id END"
                "  WHERE c.seq > $1 AND ($2 = '' OR c.library = $2)"
                " UNION SELECT h.record_id FROM change_log c JOIN holding h ON c.entity = 'holding'"
                "  AND h.id = c.entity_id WHERE c.seq > $1 AND ($2 = '' OR c.library = $2)",
                filter.since, filter.library);
            from = "bib_record b JOIN export_id e ON e.id = b.id WHERE true";
        } else {
            from = "bib_record b WHERE NOT b.deleted";
        }
        long long after = 0;
        for (;;) {
            const auto rows = tx.exec_params(
                fmt::format("SELECT b.id, b.library, b.local_id, b.format, b.raw, b.deleted FROM {}"
                            " AND ($1 = '' OR b.library = $1) AND b.id > $2 ORDER BY b.id LIMIT {}",
                            from, kBatch),
                filter.library, after);
            if (rows.empty()) break;
            std::vector<ExportedRecord> batch;
            std::map<long long, std::size_t> at;
            detail::ArrayLiteral live;
            for (const auto& r : rows) {
                ExportedRecord e;
                after = r[0].as<long long>();
                e.library = r[1].as<std::string>();
                e.local_id = r[2].as<std::string>();
                e.deleted = r[5].as<bool>();
                if (!e.deleted) {
                    e.format = r[3].as<std::string>();
                    e.raw = r[4].as<std::string>();
                    live.Add(after);
                    at[after] = batch.size();
                }
                batch.push_back(std::move(e));
            }
            for (const auto& r : tx.exec_params(fmt::format("SELECT h.record_id, {} FROM holding h WHERE h.record_id"
                                                            " = ANY($1::bigint[]) ORDER BY h.record_id, h.barcode",
                                                            detail::HoldingColumns("h")),
                                                live.Done()))
                batch[at.at(r[0].as<long long>())].holdings.push_back(detail::HoldingFrom(r, 1));
            for (const auto& e : batch) {
                ++out.records;
                if (e.deleted) ++out.deleted;
                out.copies += static_cast<long long>(e.holdings.size());
                each(e);
            }
        }
        return out;
    });
}

}  // namespace iblsync::storage
