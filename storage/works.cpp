#include <fmt/format.h>

#include "storage/detail/merge.hpp"

namespace iblsync::storage::detail {
namespace {

// Labels >= kNew stand for works not yet created; any real work id sorts first.
constexpr long long kNew = 1'000'000'000'000'000LL;

}  // namespace

WorkChanges AssignWorks(pqxx::work& tx, bool grouped) {
    WorkChanges out;
    // The match keys of every record being inserted or updated, as the
    // loader computed them (protocols::MatchKeys). The rows are written after
    // this, together with their work.
    // Records known to be new (op 'n') are always inserted and carry their
    // id: no join with import_rec for the bulk of a load.
    tx.exec0(
        "INSERT INTO dd_key SELECT s.id, hashtextextended(k, 0), k FROM import_stage s"
        " CROSS JOIN LATERAL unnest(s.keys) k WHERE s.op = 'n'");
    tx.exec0(
        "INSERT INTO dd_key SELECT r.id, hashtextextended(k, 0), k FROM import_rec r"
        " JOIN import_stage s ON s.ord = r.ord CROSS JOIN LATERAL unnest(s.keys) k"
        " WHERE s.op <> 'n' AND r.change IN ('insert', 'update')");
    const long long keys = tx.exec1("SELECT count(*) FROM dd_key")[0].as<long long>();
    if (keys > 0) tx.exec0("ANALYZE dd_key");  // whatever its size; see Merge()
    // The changed records' old keys go; what is left in record_key belongs to
    // other live records (a deleted record has no keys and no work), so one
    // join finds the works they share a key with.
    tx.exec0("DELETE FROM record_key WHERE record_id IN (SELECT id FROM import_rec WHERE change IN ('update', 'delete'))");
    if (keys > 10000) tx.exec0("ANALYZE record_key");  // large loads: let the planner pick hash joins
    tx.exec0(
        "INSERT INTO dd_existing SELECT DISTINCT k.record_id, o.work_id FROM dd_key k"
        " JOIN record_key rk ON rk.khash = k.khash AND rk.key = k.key"
        " JOIN record_work o ON o.record_id = rk.record_id");
    tx.exec0("INSERT INTO record_key (khash, key, record_id) SELECT khash, key, record_id FROM dd_key");
    // Only keys that two or more changed records share can join records of
    // this load (a grouping loader has joined those already), and two
    // changed records that reach the same existing work belong together even
    // if they share no key: the work is a key too.
    if (!grouped)
        tx.exec0(
            "INSERT INTO dd_link SELECT record_id, khash, key FROM dd_key"
            " WHERE khash IN (SELECT khash FROM dd_key GROUP BY khash HAVING count(*) > 1)");
    tx.exec0(
        "INSERT INTO dd_link SELECT record_id, -work_id, 'work:' || work_id FROM dd_existing"
        " WHERE work_id IN (SELECT work_id FROM dd_existing GROUP BY work_id HAVING count(*) > 1)");
    const long long links = tx.exec1("SELECT count(*) FROM dd_link")[0].as<long long>();
    if (links > 0) tx.exec0("ANALYZE dd_link");
    // Start: the smallest work found through other records; else the
    // record's own work, unless that work still has other live records it no
    // longer shares a key with (then it splits off into a new work); else a
    // new work of its own, or, grouped, of its group (even labels for
    // groups, odd for records, so the two never meet).
    tx.exec_params0(
        "INSERT INTO dd_label SELECT r.id, coalesce(e.work_id,"
        " CASE WHEN r.old_work IS NOT NULL AND NOT EXISTS ("
        "  SELECT 1 FROM record_work o WHERE o.work_id = r.old_work AND o.record_id <> r.id"
        "   AND NOT EXISTS (SELECT 1 FROM import_rec x WHERE x.id = o.record_id AND x.change IN ('update', 'delete')))"
        " THEN r.old_work END, $1 + CASE WHEN $2 AND r.grp IS NOT NULL THEN 2 * r.grp ELSE 2 * r.id + 1 END) "
        "FROM import_rec r LEFT JOIN (SELECT record_id, min(work_id) AS work_id FROM dd_existing GROUP BY record_id) e"
        " ON e.record_id = r.id WHERE r.change IN ('insert', 'update')",
        kNew, grouped);
    if (keys > 0) tx.exec0("ANALYZE dd_label");
    // Grouped, a group's records start with one new-work label (its
    // group), so only groups that reached a real work need the spreading.
    const bool spread_groups =
        grouped && tx.exec_params1("SELECT EXISTS (SELECT 1 FROM dd_label WHERE label < $1)", kNew)[0].as<bool>();
    // Spread the smallest label over records that share a key (or a group,
    // which stands for the keys its records share), until stable. Each round
    // takes labels at least one step further, so this ends.
    for (;;) {
        long long changed = 0;
        // Labels of new works never travel: links only join records that
        // reached a real work, so a group's smallest label is a real work
        // wherever any of its labels differs from the rest.
        if (spread_groups)
            changed += tx.exec_params0(
                             "UPDATE dd_label d SET label = g.label FROM import_rec r, ("
                             " SELECT r2.grp, min(l2.label) AS label FROM dd_label l2"
                             " JOIN import_rec r2 ON r2.id = l2.record_id WHERE l2.label < $1 AND r2.grp IS NOT NULL"
                             " GROUP BY r2.grp) g"
                             " WHERE r.id = d.record_id AND r.grp = g.grp AND d.label > g.label",
                             kNew)
                           .affected_rows();
        if (links > 0)
            changed += tx.exec0(
                             "WITH m AS ("
                             " SELECT k1.record_id, min(l.label) AS label FROM dd_link k1"
                             " JOIN dd_link k2 ON k2.khash = k1.khash AND k2.key = k1.key AND k2.record_id <> k1.record_id"
                             " JOIN dd_label l ON l.record_id = k2.record_id GROUP BY k1.record_id) "
                             "UPDATE dd_label d SET label = m.label FROM m WHERE m.record_id = d.record_id AND m.label < d.label")
                           .affected_rows();
        // Without links, one pass over the groups is the whole answer.
        if (changed == 0 || links == 0) break;
    }
    // Works that a component reached through other records merge into its label.
    tx.exec0(
        "INSERT INTO dd_merge SELECT DISTINCT e.work_id, l.label FROM dd_existing e "
        "JOIN dd_label l ON l.record_id = e.record_id WHERE e.work_id <> l.label");
    // New works for components that found none. Their records take the new
    // id through dd_new when they are written (merge.cpp joins it).
    tx.exec_params0(
        "INSERT INTO dd_new SELECT label, nextval(q) "
        "FROM (SELECT DISTINCT label FROM dd_label WHERE label >= $1) s,"
        " CAST(pg_get_serial_sequence('work', 'id') AS regclass) q",
        kNew);
    out.created = tx.exec0("INSERT INTO work (id) SELECT work_id FROM dd_new").affected_rows();
    out.merged = tx.exec1("SELECT count(DISTINCT from_work) FROM dd_merge")[0].as<long long>();
    if (out.merged > 0) {
        tx.exec0("UPDATE record_work w SET work_id = m.to_work FROM dd_merge m WHERE w.work_id = m.from_work");
        tx.exec0("INSERT INTO work_event (kind, from_work, to_work) SELECT 'merge', from_work, to_work FROM dd_merge");
    }
    // Records that had a work and now belong to another one, other than by
    // their whole work merging.
    tx.exec0(
        "INSERT INTO dd_moved SELECT r.id, r.old_work, coalesce(n.work_id, l.label) FROM import_rec r"
        " JOIN dd_label l ON l.record_id = r.id LEFT JOIN dd_new n ON n.label = l.label"
        " WHERE r.old_work IS NOT NULL AND r.old_work <> coalesce(n.work_id, l.label)"
        " AND NOT EXISTS (SELECT 1 FROM dd_merge m WHERE m.from_work = r.old_work AND m.to_work = l.label)");
    out.moved = tx.exec0(
                      "INSERT INTO work_event (kind, record_id, from_work, to_work) "
                      "SELECT 'move', record_id, from_work, to_work FROM dd_moved")
                    .affected_rows();
    return out;
}

}  // namespace iblsync::storage::detail
