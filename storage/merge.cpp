#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fmt/format.h>

#include "storage/detail/merge.hpp"

namespace iblsync::storage::detail {
namespace {

// Session-local scratch tables. Temporary tables live as long as the
// connection; ON COMMIT DELETE ROWS empties them at every commit, so a
// pooled connection creates them once instead of once per write.
constexpr const char* kScratchTables[] = {
    "CREATE TEMP TABLE import_stage ("
    " ord bigint NOT NULL, op \"char\" NOT NULL, local_id text NOT NULL, format text NOT NULL, raw text NOT NULL,"
    " title text, title_key text, author_key text, pub_year integer, language text, material_type text,"
    " isbns text[], issns text[], oclc text[], ppn text[], keys text[],"
    " holdings text NOT NULL)"  // JSON array of copies; '' = copies not given
    " ON COMMIT DELETE ROWS",
    // One row per staged record (and, with `full`, per record deleted for
    // being absent): change is insert, update, delete, none or absent.
    "CREATE TEMP TABLE import_rec ("
    " ord bigint, local_id text NOT NULL, id bigint, change text NOT NULL, version integer,"
    " holdings boolean NOT NULL, old_work bigint) ON COMMIT DELETE ROWS",
    "CREATE INDEX import_rec_ord ON import_rec (ord)",
    "CREATE INDEX import_rec_id ON import_rec (id)",
    "CREATE TEMP TABLE import_hold_in (record_id bigint, barcode text, branch text, shelfmark text, status text,"
    " due_date date, changed_at timestamptz) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE import_hchanged (id bigint, barcode text, record_id bigint, op text, version integer)"
    " ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE dd_key (record_id bigint, khash bigint, key text) ON COMMIT DELETE ROWS",
    // Keys shared by two or more changed records: the only ones that can
    // join records within the load, so the only ones label spreading reads.
    "CREATE TEMP TABLE dd_link (record_id bigint, khash bigint, key text) ON COMMIT DELETE ROWS",
    "CREATE INDEX dd_link_key ON dd_link (khash)",
    "CREATE INDEX dd_link_record ON dd_link (record_id)",
    "CREATE TEMP TABLE dd_existing (record_id bigint, work_id bigint) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE dd_label (record_id bigint, label bigint) ON COMMIT DELETE ROWS",
    "CREATE INDEX dd_label_record ON dd_label (record_id)",
    "CREATE TEMP TABLE dd_merge (from_work bigint, to_work bigint) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE dd_new (label bigint, work_id bigint) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE dd_moved (record_id bigint, from_work bigint, to_work bigint) ON COMMIT DELETE ROWS",
};

// A PostgreSQL array literal of text values: {"a","b\"c"}.
std::string ArrayLiteral(const std::vector<std::string>& values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) out += ',';
        out += '"';
        for (char c : values[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

std::string HoldingsJson(const protocols::CatalogueRecord& r) {
    if (!r.holdings_given) return {};
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    auto str = [&](const char* key, const std::string& v) {
        w.Key(key);
        w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    };
    w.StartArray();
    for (const auto& h : r.holdings) {
        w.StartObject();
        str("barcode", h.barcode);
        str("branch", h.branch);
        str("shelfmark", h.shelfmark);
        str("status", std::string(protocols::ToString(h.status)));
        str("due_date", h.due_date);
        str("changed_at", h.changed_at);
        w.EndObject();
    }
    w.EndArray();
    return std::string(buf.GetString(), buf.GetSize());
}

const std::vector<std::string> kStageColumns{"ord",        "op",          "local_id", "format",   "raw",
                                             "title",      "title_key",   "author_key", "pub_year", "language",
                                             "material_type", "isbns",    "issns",    "oclc",     "ppn",
                                             "keys",       "holdings"};

long long Count(pqxx::work& tx, const char* sql) { return tx.exec1(sql)[0].as<long long>(); }

}  // namespace

Stager::Stager(pqxx::work& tx) : stream_(std::make_unique<pqxx::stream_to>(tx, "import_stage", kStageColumns)) {}

Stager::~Stager() {
    if (!stream_) return;
    try {
        stream_->complete();
    } catch (...) {
        // Only reached when the transaction is being abandoned anyway.
    }
}

void Stager::Upsert(long long ord, const protocols::CatalogueRecord& r) {
    *stream_ << std::make_tuple(ord, "u", r.local_id, r.format, r.raw, r.title, r.title_key, r.author_key, r.year,
                                r.language, r.material_type, ArrayLiteral(r.isbns), ArrayLiteral(r.issns),
                                ArrayLiteral(r.oclc), ArrayLiteral(r.ppn), ArrayLiteral(r.match_keys), HoldingsJson(r));
}

void Stager::Delete(long long ord, const std::string& local_id) {
    static const std::string kEmpty;
    *stream_ << std::make_tuple(ord, "d", local_id, "marcxml", kEmpty, kEmpty, kEmpty, kEmpty, 0, kEmpty, kEmpty,
                                "{}", "{}", "{}", "{}", "{}", kEmpty);
}

void Stager::Complete() {
    stream_->complete();
    stream_.reset();
}

std::unique_ptr<Stager> BeginStage(pqxx::work& tx) {
    if (tx.exec1("SELECT to_regclass('pg_temp.import_stage') IS NULL")[0].as<bool>())
        for (const char* sql : kScratchTables) tx.exec0(sql);
    return std::make_unique<Stager>(tx);
}

MergeCounts Merge(pqxx::work& tx, const std::string& lib, bool full) {
    MergeCounts c;
    const long long staged = Count(tx, "SELECT count(*) FROM import_stage");
    // The last occurrence of a local id counts. Grouping only the keys keeps
    // this cheap when, as usual, there are no duplicates.
    c.duplicates = tx.exec0(
                         "DELETE FROM import_stage s USING (SELECT local_id, max(ord) AS keep FROM import_stage"
                         " GROUP BY local_id HAVING count(*) > 1) d WHERE s.local_id = d.local_id AND s.ord <> d.keep")
                       .affected_rows();

    // What each staged row does. New records get their id now, so that works
    // can be assigned before the row is written (written once, not twice).
    tx.exec_params0(
        "INSERT INTO import_rec (ord, local_id, id, change, version, holdings, old_work)"
        " SELECT s.ord, s.local_id,"
        "  CASE WHEN b.id IS NOT NULL THEN b.id WHEN s.op = 'u' THEN nextval(pg_get_serial_sequence('bib_record', 'id')) END,"
        "  ch.change,"
        "  CASE WHEN ch.change = 'insert' THEN 1 WHEN ch.change IN ('update', 'delete') THEN b.version + 1"
        "   ELSE b.version END,"
        "  s.op = 'u' AND s.holdings <> '', b.work_id"
        " FROM import_stage s LEFT JOIN bib_record b ON b.library = $1 AND b.local_id = s.local_id"
        " CROSS JOIN LATERAL (SELECT CASE"
        "  WHEN s.op = 'd' THEN CASE WHEN b.id IS NOT NULL AND NOT b.deleted THEN 'delete' ELSE 'absent' END"
        "  WHEN b.id IS NULL THEN 'insert'"
        "  WHEN b.deleted OR b.checksum <> md5(s.raw) THEN 'update' ELSE 'none' END) ch(change)",
        lib);
    if (full) {
        tx.exec_params0(
            "INSERT INTO import_rec (ord, local_id, id, change, version, holdings, old_work)"
            " SELECT NULL, b.local_id, b.id, 'delete', b.version + 1, false, b.work_id FROM bib_record b"
            " WHERE b.library = $1 AND NOT b.deleted"
            "  AND NOT EXISTS (SELECT 1 FROM import_stage s WHERE s.local_id = b.local_id)",
            lib);
    }
    if (staged > 5000) tx.exec0("ANALYZE import_rec");
    auto counts = tx.exec1(
        "SELECT count(*) FILTER (WHERE change = 'insert'), count(*) FILTER (WHERE change = 'update'),"
        " count(*) FILTER (WHERE change = 'none'), count(*) FILTER (WHERE change = 'delete'),"
        " count(*) FILTER (WHERE change = 'absent'), count(*) FILTER (WHERE holdings) FROM import_rec");
    c.inserted = counts[0].as<long long>();
    c.updated = counts[1].as<long long>();
    c.unchanged = counts[2].as<long long>();
    c.deleted = counts[3].as<long long>();
    c.absent = counts[4].as<long long>();
    const long long with_holdings = counts[5].as<long long>();

    if (c.inserted + c.updated + c.deleted > 0) {
        auto works = AssignWorks(tx);
        c.works_created = works.created;
        c.works_merged = works.merged;
        c.records_moved = works.moved;
    }
    if (c.inserted > 0)
        tx.exec_params0(
            "INSERT INTO bib_record (id, library, local_id, format, raw, checksum, title, title_key, author_key,"
            " pub_year, language, material_type, isbns, issns, oclc, ppn, search, work_id)"
            " SELECT r.id, $1, s.local_id, s.format, s.raw, md5(s.raw), NULLIF(s.title, ''), NULLIF(s.title_key, ''),"
            "  NULLIF(s.author_key, ''), NULLIF(s.pub_year, 0), NULLIF(s.language, ''), NULLIF(s.material_type, ''),"
            "  s.isbns, s.issns, s.oclc, s.ppn,"
            "  to_tsvector('simple', coalesce(s.title, '') || ' ' || coalesce(s.author_key, '')),"
            "  coalesce(n.work_id, l.label)"
            " FROM import_rec r JOIN import_stage s ON s.ord = r.ord JOIN dd_label l ON l.record_id = r.id"
            " LEFT JOIN dd_new n ON n.label = l.label"
            " WHERE r.change = 'insert'",
            lib);
    if (c.updated > 0)
        tx.exec0(
            "UPDATE bib_record b SET format = s.format, raw = s.raw, checksum = md5(s.raw),"
            " title = NULLIF(s.title, ''), title_key = NULLIF(s.title_key, ''), author_key = NULLIF(s.author_key, ''),"
            " pub_year = NULLIF(s.pub_year, 0), language = NULLIF(s.language, ''),"
            " material_type = NULLIF(s.material_type, ''), isbns = s.isbns, issns = s.issns, oclc = s.oclc,"
            " ppn = s.ppn, search = to_tsvector('simple', coalesce(s.title, '') || ' ' || coalesce(s.author_key, '')),"
            " work_id = coalesce(n.work_id, l.label), version = r.version, deleted = false, updated_at = now()"
            " FROM import_rec r JOIN import_stage s ON s.ord = r.ord JOIN dd_label l ON l.record_id = r.id"
            " LEFT JOIN dd_new n ON n.label = l.label"
            " WHERE r.change = 'update' AND b.id = r.id");
    if (c.deleted > 0)
        tx.exec0(
            "UPDATE bib_record b SET deleted = true, version = r.version, updated_at = now()"
            " FROM import_rec r WHERE r.change = 'delete' AND b.id = r.id");
    if (c.works_merged + c.records_moved > 0)
        // Works left without any record: merged away, or their only record moved.
        tx.exec0(
            "DELETE FROM work w WHERE (w.id IN (SELECT from_work FROM dd_merge) OR w.id IN (SELECT from_work FROM dd_moved))"
            " AND NOT EXISTS (SELECT 1 FROM bib_record b WHERE b.work_id = w.id)");

    // Copies. A record that lists its copies replaces them all; a deleted
    // record takes its copies with it.
    if (with_holdings > 0) {
        tx.exec0(
            "INSERT INTO import_hold_in"
            " SELECT DISTINCT ON (h.barcode) r.id, h.barcode, NULLIF(h.branch, ''), NULLIF(h.shelfmark, ''), h.status,"
            "  NULLIF(h.due_date, '')::date, NULLIF(h.changed_at, '')::timestamptz"
            " FROM import_rec r JOIN import_stage s ON s.ord = r.ord"
            " CROSS JOIN LATERAL jsonb_to_recordset(s.holdings::jsonb)"
            "  AS h(barcode text, branch text, shelfmark text, status text, due_date text, changed_at text)"
            " WHERE r.holdings ORDER BY h.barcode, r.ord DESC");
        // An update older than what is stored (by the library system's own
        // clock) is ignored: the last writer wins per copy.
        tx.exec_params0(
            "WITH up AS ("
            " INSERT INTO holding AS h (record_id, library, branch, shelfmark, barcode, status, due_date,"
            "  source_changed_at)"
            " SELECT record_id, $1, branch, shelfmark, barcode, status, due_date, changed_at FROM import_hold_in"
            " ON CONFLICT (library, barcode) DO UPDATE SET record_id = EXCLUDED.record_id, branch = EXCLUDED.branch,"
            "  shelfmark = EXCLUDED.shelfmark, status = EXCLUDED.status, due_date = EXCLUDED.due_date,"
            "  source_changed_at = coalesce(EXCLUDED.source_changed_at, h.source_changed_at),"
            "  version = h.version + 1, updated_at = now()"
            " WHERE (h.record_id, h.branch, h.shelfmark, h.status, h.due_date)"
            "   IS DISTINCT FROM (EXCLUDED.record_id, EXCLUDED.branch, EXCLUDED.shelfmark, EXCLUDED.status,"
            "   EXCLUDED.due_date)"
            "  AND (EXCLUDED.source_changed_at IS NULL OR h.source_changed_at IS NULL"
            "   OR EXCLUDED.source_changed_at >= h.source_changed_at)"
            " RETURNING h.id, h.barcode, h.record_id, h.version, (h.xmax = 0) AS fresh)"
            "INSERT INTO import_hchanged SELECT id, barcode, record_id, CASE WHEN fresh THEN 'insert' ELSE 'update' END,"
            " version FROM up",
            lib);
    }
    if (with_holdings > 0 || c.deleted > 0)
        tx.exec_params0(
            "WITH gone AS ("
            " DELETE FROM holding h USING import_rec r"
            " WHERE h.record_id = r.id AND h.library = $1"
            "  AND (r.change = 'delete'"
            "   OR (r.holdings AND NOT EXISTS (SELECT 1 FROM import_hold_in i WHERE i.barcode = h.barcode)))"
            " RETURNING h.id, h.barcode, h.record_id, h.version)"
            "INSERT INTO import_hchanged SELECT id, barcode, record_id, 'delete', version + 1 FROM gone",
            lib);
    auto hcounts = tx.exec1(
        "SELECT count(*) FILTER (WHERE op = 'insert'), count(*) FILTER (WHERE op = 'update'),"
        " count(*) FILTER (WHERE op = 'delete') FROM import_hchanged");
    c.holdings_inserted = hcounts[0].as<long long>();
    c.holdings_updated = hcounts[1].as<long long>();
    c.holdings_deleted = hcounts[2].as<long long>();

    if (c.inserted + c.updated + c.deleted + c.holdings_inserted + c.holdings_updated + c.holdings_deleted > 0) {
        // Taken last and held to commit: numbers are gap-free and in commit order.
        long long last = tx.exec1("SELECT last_seq FROM change_counter FOR UPDATE")[0].as<long long>();
        long long n = tx.exec_params0(
                            "INSERT INTO change_log (seq, entity, op, library, local_id, entity_id, version,"
                            " record_local_id)"
                            " SELECT $1 + row_number() OVER (ORDER BY grp, ord NULLS LAST, local_id), entity, op, $2,"
                            "  local_id, id, version, parent FROM ("
                            "  SELECT 0 AS grp, r.ord, 'record' AS entity, r.change AS op, r.local_id, r.id, r.version,"
                            "   NULL::text AS parent FROM import_rec r WHERE r.change IN ('insert', 'update', 'delete')"
                            "  UNION ALL"
                            "  SELECT 1, NULL, 'holding', h.op, h.barcode, h.id, h.version, b.local_id"
                            "   FROM import_hchanged h JOIN bib_record b ON b.id = h.record_id) x",
                            last, lib)
                          .affected_rows();
        tx.exec_params0("UPDATE change_counter SET last_seq = $1", last + n);
        c.first_seq = last + 1;
        c.last_seq = last + n;
    }
    return c;
}

}  // namespace iblsync::storage::detail
