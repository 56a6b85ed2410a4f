#include "storage/detail/works.hpp"

#include <fmt/format.h>

namespace iblsync::storage::detail {
namespace {

// Labels >= kNew stand for works not yet created; any real work id sorts first.
constexpr long long kNew = 1'000'000'000'000'000LL;

}  // namespace

WorkChanges AssignWorks(pqxx::work& tx) {
    WorkChanges out;
    // The match keys of every changed, live record.
    tx.exec0(
        "CREATE TEMP TABLE dd_key ON COMMIT DROP AS "
        "SELECT b.id AS record_id, k.kind, k.val FROM bib_record b "
        "JOIN import_changed c ON c.id = b.id AND c.op <> 'delete' "
        "CROSS JOIN LATERAL ("
        " SELECT 'isbn', x FROM unnest(b.isbns) x UNION ALL SELECT 'issn', x FROM unnest(b.issns) x"
        " UNION ALL SELECT 'oclc', x FROM unnest(b.oclc) x UNION ALL SELECT 'ppn', x FROM unnest(b.ppn) x"
        // Material type is part of the key: a book and its audiobook or DVD of
        // the same year are different things to lend.
        " UNION ALL SELECT 'tay', b.title_key || '|' || b.author_key || '|' || b.pub_year || '|' || b.material_type"
        "  WHERE b.title_key <> '' AND b.author_key <> '' AND b.pub_year IS NOT NULL AND b.material_type IS NOT NULL"
        ") k(kind, val)");
    tx.exec0("CREATE INDEX ON dd_key (kind, val)");
    tx.exec0("CREATE INDEX ON dd_key (record_id)");
    tx.exec0("ANALYZE dd_key");
    // The changed records' old keys go; what is left in record_key belongs to
    // other records, so one join finds the works they share a key with.
    tx.exec0("DELETE FROM record_key WHERE record_id IN (SELECT id FROM import_changed)");
    long long keys = tx.exec1("SELECT count(*) FROM dd_key")[0].as<long long>();
    if (keys > 10000) tx.exec0("ANALYZE record_key");  // large loads: let the planner pick hash joins
    tx.exec0(
        "CREATE TEMP TABLE dd_existing ON COMMIT DROP AS "
        "SELECT DISTINCT k.record_id, o.work_id FROM dd_key k "
        "JOIN record_key rk ON rk.kind = k.kind AND rk.val = k.val "
        "JOIN bib_record o ON o.id = rk.record_id "
        "WHERE NOT o.deleted AND o.work_id IS NOT NULL");
    tx.exec0("INSERT INTO record_key (kind, val, record_id) SELECT DISTINCT kind, val, record_id FROM dd_key");
    // Start: a work found through other records, else the record's own work,
    // else a new one of its own.
    tx.exec_params0(
        "CREATE TEMP TABLE dd_label ON COMMIT DROP AS "
        "SELECT c.id AS record_id, coalesce((SELECT min(e.work_id) FROM dd_existing e WHERE e.record_id = c.id),"
        " b.work_id, $1 + c.id) AS label "
        "FROM import_changed c JOIN bib_record b ON b.id = c.id WHERE c.op <> 'delete'",
        kNew);
    tx.exec0("CREATE INDEX ON dd_label (record_id)");
    // Spread the smallest label over records that share a key, until stable.
    for (int round = 0; round < 100; ++round) {
        auto r = tx.exec0(
            "WITH m AS ("
            " SELECT k1.record_id, min(l.label) AS label FROM dd_key k1"
            " JOIN dd_key k2 ON k2.kind = k1.kind AND k2.val = k1.val"
            " JOIN dd_label l ON l.record_id = k2.record_id GROUP BY k1.record_id) "
            "UPDATE dd_label d SET label = m.label FROM m WHERE m.record_id = d.record_id AND m.label < d.label");
        if (r.affected_rows() == 0) break;
    }
    // Works that a component touched through other records merge into its label.
    tx.exec0(
        "CREATE TEMP TABLE dd_merge ON COMMIT DROP AS "
        "SELECT DISTINCT e.work_id AS from_work, l.label AS to_work FROM dd_existing e "
        "JOIN dd_label l ON l.record_id = e.record_id WHERE e.work_id <> l.label");
    // New works for components that found none.
    tx.exec_params0(
        "CREATE TEMP TABLE dd_new ON COMMIT DROP AS "
        "SELECT label, nextval(pg_get_serial_sequence('work', 'id')) AS work_id "
        "FROM (SELECT DISTINCT label FROM dd_label WHERE label >= $1) s",
        kNew);
    out.created = tx.exec0("INSERT INTO work (id) SELECT work_id FROM dd_new").affected_rows();
    tx.exec0("UPDATE dd_label d SET label = n.work_id FROM dd_new n WHERE d.label = n.label");
    tx.exec0(
        "INSERT INTO work_event (kind, record_id, to_work) "
        "SELECT 'create', min(d.record_id), d.label FROM dd_label d JOIN dd_new n ON n.work_id = d.label GROUP BY d.label");
    out.merged = tx.exec1("SELECT count(DISTINCT from_work) FROM dd_merge")[0].as<long long>();
    tx.exec0("UPDATE bib_record b SET work_id = m.to_work FROM dd_merge m WHERE b.work_id = m.from_work");
    tx.exec0("INSERT INTO work_event (kind, from_work, to_work) SELECT 'merge', from_work, to_work FROM dd_merge");
    // Records that had a work and now belong to another one.
    tx.exec0(
        "CREATE TEMP TABLE dd_moved ON COMMIT DROP AS "
        "SELECT b.id AS record_id, b.work_id AS from_work, d.label AS to_work FROM bib_record b "
        "JOIN dd_label d ON d.record_id = b.id WHERE b.work_id IS NOT NULL AND b.work_id <> d.label");
    out.moved = tx.exec0(
                      "INSERT INTO work_event (kind, record_id, from_work, to_work) "
                      "SELECT 'move', record_id, from_work, to_work FROM dd_moved")
                    .affected_rows();
    tx.exec0(
        "UPDATE bib_record b SET work_id = d.label FROM dd_label d "
        "WHERE d.record_id = b.id AND b.work_id IS DISTINCT FROM d.label");
    // Works left without any record: merged away, or their only record moved.
    tx.exec0(
        "DELETE FROM work w WHERE (w.id IN (SELECT from_work FROM dd_merge) OR w.id IN (SELECT from_work FROM dd_moved))"
        " AND NOT EXISTS (SELECT 1 FROM bib_record b WHERE b.work_id = w.id)");
    return out;
}

}  // namespace iblsync::storage::detail
