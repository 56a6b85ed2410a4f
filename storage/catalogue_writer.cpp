#include "storage/catalogue_writer.hpp"

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/errors.hpp"
#include "storage/detail/merge.hpp"
#include "storage/detail/write.hpp"

namespace iblsync::storage {
namespace detail {

void LockLibrary(pqxx::work& tx, const std::string& lib) {
    // Serialises writers of one library (bulk loads take the same lock), so
    // that what the merge classified stays true until the commit.
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('iblsync.import:' || $1))", lib);
}

void RequireLibrary(pqxx::work& tx, const std::string& lib) {
    if (tx.exec_params("SELECT 1 FROM library WHERE isil = $1", lib).empty())
        throw DatabaseError(fmt::format("library {} is not registered", lib), "IBL01");
}

BatchResult ApplyChanges(pqxx::work& tx, const std::string& lib, const std::vector<RecordChange>& changes) {
    RequireLibrary(tx, lib);
    detail::PrepareStage(tx);
    detail::Stager stage(tx, lib);
    for (std::size_t i = 0; i < changes.size(); ++i) {
        const auto& c = changes[i];
        if (c.kind == RecordChange::Kind::kUpsert)
            stage.AddUpsert(static_cast<long long>(i), c.record, detail::RecordChecksum(c.record.raw));
        else stage.AddDelete(static_cast<long long>(i), c.record.local_id);
    }
    stage.Flush();
    auto m = detail::Merge(tx, lib, {});

    BatchResult out;
    out.records.resize(changes.size());
    for (std::size_t i = 0; i < changes.size(); ++i) {
        out.records[i].local_id = changes[i].record.local_id;
        out.records[i].outcome = RecordOutcome::kSuperseded;  // unless import_rec says otherwise
    }
    // Lookups by key rather than joins: the scratch tables have no
    // statistics, and a join planned for their default size read all of
    // bib_record and record_work, which cost 25 ms a batch at 100,000 records.
    auto rows = tx.exec(
        "SELECT r.ord, r.change, coalesce(r.id, 0),"
        " coalesce((SELECT b.version FROM bib_record b WHERE b.id = r.id), 0),"
        " coalesce((SELECT w.work_id FROM record_work w WHERE w.record_id = r.id), 0), coalesce(hc.n, 0)"
        " FROM import_rec r LEFT JOIN (SELECT record_id, count(*) AS n FROM import_hchanged GROUP BY record_id) hc"
        "  ON hc.record_id = r.id"
        " WHERE r.ord IS NOT NULL");
    for (const auto& row : rows) {
        auto ord = row[0].as<long long>();
        if (ord < 0 || static_cast<std::size_t>(ord) >= out.records.size()) continue;
        auto& rr = out.records[static_cast<std::size_t>(ord)];
        std::string change = row[1].as<std::string>();
        rr.outcome = change == "insert"   ? RecordOutcome::kInserted
                     : change == "update" ? RecordOutcome::kUpdated
                     : change == "delete" ? RecordOutcome::kDeleted
                     : change == "absent" ? RecordOutcome::kNotFound
                                          : RecordOutcome::kUnchanged;
        rr.record_id = row[2].as<long long>();
        rr.version = row[3].as<int>();
        rr.work_id = row[4].as<long long>();
        rr.holdings_changed = row[5].as<int>();
    }
    auto& s = out.summary;
    s.received = static_cast<long long>(changes.size());
    s.duplicates = m.duplicates;
    s.inserted = m.inserted;
    s.updated = m.updated;
    s.unchanged = m.unchanged;
    s.deleted = m.deleted;
    s.holdings_inserted = m.holdings_inserted;
    s.holdings_updated = m.holdings_updated;
    s.holdings_deleted = m.holdings_deleted;
    s.works_created = m.works_created;
    s.works_merged = m.works_merged;
    s.records_moved = m.records_moved;
    s.first_seq = m.first_seq;
    s.last_seq = m.last_seq;
    return out;
}

}  // namespace detail

namespace {

BatchResult Apply(pqxx::connection& conn, const std::string& lib, const std::vector<RecordChange>& changes) {
    pqxx::work tx(conn, "write");
    detail::LockLibrary(tx, lib);
    auto out = detail::ApplyChanges(tx, lib, changes);
    tx.commit();
    return out;
}

}  // namespace

const char* ToString(RecordOutcome o) {
    switch (o) {
        case RecordOutcome::kInserted: return "inserted";
        case RecordOutcome::kUpdated: return "updated";
        case RecordOutcome::kUnchanged: return "unchanged";
        case RecordOutcome::kDeleted: return "deleted";
        case RecordOutcome::kNotFound: return "not_found";
        case RecordOutcome::kSuperseded: return "superseded";
    }
    return "unchanged";
}

BatchResult ApplyRecordChanges(Database& db, const std::string& library, const std::vector<RecordChange>& changes) {
    return db.Pool().With([&](pqxx::connection& c) { return Apply(c, library, changes); });
}

BatchResult ApplyRecordChanges(const std::string& conninfo, const std::string& library,
                               const std::vector<RecordChange>& changes) {
    return detail::Translated([&] {
        pqxx::connection c(conninfo);
        return Apply(c, library, changes);
    });
}

}  // namespace iblsync::storage
