#include <openssl/evp.h>

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "storage/detail/copy_writer.hpp"
#include "storage/detail/merge.hpp"

namespace iblsync::storage::detail {
namespace {

// Session-local scratch tables. Temporary tables live as long as the
// connection; ON COMMIT DELETE ROWS empties them at every commit, so a
// pooled connection creates them once instead of once per write.
constexpr const char* kScratchTables[] = {
    // op: n = new (already in bib_record, id given), u = upsert (content
    // here), k = unchanged (checksum only), d = delete. born: a later
    // occurrence of a record that this load created (its 'n' row is gone).
    "CREATE TEMP TABLE import_stage ("
    " ord bigint NOT NULL, op \"char\" NOT NULL, local_id text NOT NULL, id bigint, format text NOT NULL,"
    // lz4: pglz would make compressing the staged copy the dearest step.
    " raw text COMPRESSION lz4 NOT NULL, checksum text NOT NULL,"
    " title text, title_key text, author_key text, pub_year integer, language text, material_type text,"
    " isbns text[], issns text[], oclc text[], ppn text[], s_title text, s_creator text, s_subject text,"
    " s_publisher text, keys text[],"
    // holdings: the record lists all its copies. grp: MergeOptions::grouped.
    " holdings boolean NOT NULL, grp bigint, born boolean NOT NULL DEFAULT false)"
    " ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE import_grp_remap (grp bigint PRIMARY KEY, root bigint NOT NULL) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE import_hold_stage (ord bigint NOT NULL, barcode text NOT NULL, branch text, shelfmark text,"
    " status text NOT NULL, due_date date, changed_at timestamptz) ON COMMIT DELETE ROWS",
    // One row per staged record (and, with `full`, per record deleted for
    // being absent): change is insert, update, delete, none, absent or stale.
    "CREATE TEMP TABLE import_rec ("
    " ord bigint, local_id text NOT NULL, id bigint, change text NOT NULL, version integer,"
    " holdings boolean NOT NULL, old_work bigint, op \"char\", born boolean, grp bigint) ON COMMIT DELETE ROWS",
    "CREATE INDEX import_rec_ord ON import_rec (ord)",
    "CREATE INDEX import_rec_id ON import_rec (id)",
    "CREATE TEMP TABLE import_dup (local_id text, keep bigint, born boolean) ON COMMIT DELETE ROWS",
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

// Up to this many staged rows a merge is "small" (see `keyed` in Merge).
// The write path's batches, harvest pages and feed pages are far below it;
// a bulk load's merges far above it.
constexpr double kKeyedMergeRows = 5000;

const std::vector<std::string> kBibColumns{"id",        "library",    "local_id", "format",       "raw",
                                           "checksum",  "title",      "title_key", "author_key",  "pub_year",
                                           "language",  "material_type", "isbns",  "issns",       "oclc",
                                           "ppn",       "s_title",    "s_creator", "s_subject",   "s_publisher"};
const std::vector<std::string> kStageColumns{"ord",        "op",          "local_id", "id",       "format",
                                             "raw",        "checksum",    "title",    "title_key", "author_key",
                                             "pub_year",   "language",    "material_type", "isbns", "issns",
                                             "oclc",       "ppn",         "s_title",  "s_creator", "s_subject",
                                             "s_publisher", "keys",       "holdings", "grp"};
const std::vector<std::string> kHoldingColumns{"id",     "record_id", "library",  "branch",           "shelfmark",
                                              "barcode", "status",   "due_date", "source_changed_at"};
const std::vector<std::string> kLogColumns{"seq",       "entity",    "op",      "library",
                                          "local_id",  "entity_id", "version", "record_local_id"};
const std::vector<std::string> kChangedColumns{"id", "barcode", "record_id", "op", "version"};
const std::vector<std::string> kHoldColumns{"ord", "barcode", "branch", "shelfmark", "status", "due_date", "changed_at"};


}  // namespace

std::string RecordChecksum(const std::string& raw) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(raw.data(), raw.size(), digest, &len, EVP_md5(), nullptr);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(2 * len, '0');
    for (unsigned int i = 0; i < len; ++i) {
        out[2 * i] = kHex[digest[i] >> 4];
        out[2 * i + 1] = kHex[digest[i] & 15];
    }
    return out;
}

struct Stager::Row {
    long long ord;
    char op;
    protocols::CatalogueRecord record;
    std::string checksum;
    std::vector<bool> direct;  // per copy of a new record: written straight into holding
    long long group = -1;
};

LoadSpools::LoadSpools()
    : holding("holding", kHoldingColumns),
      stage("import_stage", kStageColumns),
      hold_stage("import_hold_stage", kHoldColumns),
      direct_log("change_log", kLogColumns) {
    direct.log = &direct_log;
}

void LoadSpools::Replay(pqxx::work& tx) {
    // One table at a time, the biggest first.
    holding.Replay(tx);
    stage.Replay(tx);
    hold_stage.Replay(tx);
}

Stager::Stager(pqxx::work& tx, std::string library, LoadSpools* spools)
    : tx_(tx), library_(std::move(library)), spools_(spools) {}
Stager::~Stager() = default;

std::unique_ptr<CopyWriter> Stager::Open(CopySpool LoadSpools::*which, const char* table,
                                         const std::vector<std::string>& columns) {
    if (spools_) return std::make_unique<CopyWriter>(spools_->*which);
    return std::make_unique<CopyWriter>(tx_, table, columns);
}

std::size_t Stager::PendingRecords() const { return rows_.size(); }

void Stager::AddNew(long long ord, protocols::CatalogueRecord record, std::string checksum,
                    std::vector<bool> direct_copies, long long group) {
    pending_bytes_ += record.raw.size() + 256;
    ++new_rows_;
    for (bool d : direct_copies) direct_copies_ += d;
    direct_copies.resize(record.holdings.size(), false);
    rows_.push_back({ord, 'n', std::move(record), std::move(checksum), std::move(direct_copies), group});
}

void Stager::AddUpsert(long long ord, protocols::CatalogueRecord record, std::string checksum, long long group) {
    pending_bytes_ += record.raw.size() + 256;
    rows_.push_back({ord, 'u', std::move(record), std::move(checksum), {}, group});
}

void Stager::AddUnchanged(long long ord, const protocols::CatalogueRecord& record, std::string checksum) {
    protocols::CatalogueRecord slim;  // what the merge reads of an unchanged record
    slim.local_id = record.local_id;
    slim.format = record.format;
    slim.holdings_given = record.holdings_given;
    slim.holdings = record.holdings;
    pending_bytes_ += 256;
    rows_.push_back({ord, 'k', std::move(slim), std::move(checksum), {}, -1});
}

void Stager::AddDelete(long long ord, const std::string& local_id) {
    protocols::CatalogueRecord r;
    r.local_id = local_id;
    pending_bytes_ += 64;
    rows_.push_back({ord, 'd', std::move(r), std::string(), {}, -1});
}

void Stager::Flush() {
    if (rows_.empty()) return;
    std::vector<long long> ids;
    if (new_rows_ > 0) {
        auto r = tx_.exec_params(
            // The sequence is looked up once, not once per row.
            "SELECT nextval(s) FROM CAST(pg_get_serial_sequence('bib_record', 'id') AS regclass) s,"
            " generate_series(1, $1)",
            static_cast<long long>(new_rows_));
        ids.reserve(r.size());
        for (const auto& row : r) ids.push_back(row[0].as<long long>());
        CopyWriter bib(tx_, "bib_record", kBibColumns);
        std::size_t next = 0;
        for (const auto& row : rows_) {
            if (row.op != 'n') continue;
            const auto& r = row.record;
            bib.Int(ids[next++]).Text(library_).Text(r.local_id).Text(r.format).Text(r.raw).Text(row.checksum);
            bib.Nullable(r.title).Nullable(r.title_key).Nullable(r.author_key);
            if (r.year > 0) bib.Int(r.year);
            else bib.Null();
            bib.Nullable(r.language).Nullable(r.material_type);
            bib.TextArray(r.isbns).TextArray(r.issns).TextArray(r.oclc).TextArray(r.ppn);
            bib.Nullable(r.search.title).Nullable(r.search.creator).Nullable(r.search.subject);
            bib.Nullable(r.search.publisher);
            bib.EndLine();
        }
        bib.Complete();
    }
    static const std::vector<std::string> kNone;
    std::size_t staged_copies = 0;
    {
        auto stage_out = Open(&LoadSpools::stage, "import_stage", kStageColumns);
        CopyWriter& stage = *stage_out;
        std::size_t next = 0;
        for (const auto& row : rows_) {
            const auto& r = row.record;
            const bool content = row.op == 'u';
            stage.Int(row.ord).Text(std::string_view(&row.op, 1)).Text(r.local_id);
            if (row.op == 'n') stage.Int(ids[next++]);
            else stage.Null();
            stage.Text(r.format).Text(content ? std::string_view(r.raw) : std::string_view()).Text(row.checksum);
            if (content) {
                stage.Text(r.title).Text(r.title_key).Text(r.author_key).Int(r.year).Text(r.language);
                stage.Text(r.material_type).TextArray(r.isbns).TextArray(r.issns).TextArray(r.oclc).TextArray(r.ppn);
                stage.Text(r.search.title).Text(r.search.creator).Text(r.search.subject).Text(r.search.publisher);
            } else {
                stage.Null().Null().Null().Null().Null().Null().Null().Null().Null().Null();
                stage.Null().Null().Null().Null();
            }
            stage.TextArray(row.op == 'u' || row.op == 'n' ? r.match_keys : kNone);
            const bool holdings = r.holdings_given && row.op != 'd';
            stage.Bool(holdings);
            if (row.group >= 0) stage.Int(row.group);
            else stage.Null();
            stage.EndLine();
            if (holdings) staged_copies += r.holdings.size() - static_cast<std::size_t>(std::count(row.direct.begin(), row.direct.end(), true));
        }
        stage.Complete();
    }
    if (direct_copies_ > 0) {
        // Copies of new records with barcodes new to the library: written
        // as they are, and noted for the change log like merged ones.
        auto r = tx_.exec_params(
            "SELECT nextval(s) FROM CAST(pg_get_serial_sequence('holding', 'id') AS regclass) s,"
            " generate_series(1, $1)",
            static_cast<long long>(direct_copies_));
        std::vector<long long> hold_ids;
        hold_ids.reserve(r.size());
        for (const auto& row : r) hold_ids.push_back(row[0].as<long long>());
        std::size_t next_hold = 0, next_rec = 0;
        {
            auto hold_out = Open(&LoadSpools::holding, "holding", kHoldingColumns);
            CopyWriter& hold = *hold_out;
            // Spooled, their change_log lines go along (the merge adds seq).
            std::optional<CopyWriter> log;
            if (spools_) log.emplace(spools_->direct_log);
            for (const auto& row : rows_) {
                if (row.op != 'n') continue;
                const long long record_id = ids[next_rec++];
                for (std::size_t i = 0; i < row.record.holdings.size(); ++i) {
                    if (!row.direct[i]) continue;
                    const auto& h = row.record.holdings[i];
                    const long long hold_id = hold_ids[next_hold++];
                    hold.Int(hold_id).Int(record_id).Text(library_).Nullable(h.branch);
                    hold.Nullable(h.shelfmark).Text(h.barcode).Text(protocols::ToString(h.status));
                    hold.Nullable(h.due_date).Nullable(h.changed_at).EndLine();
                    if (log) {
                        log->Text("holding").Text("insert").Text(library_).Text(h.barcode);
                        log->Int(hold_id).Int(1).Text(row.record.local_id).EndLine();
                    }
                }
            }
            hold.Complete();
            if (log) log->Complete();
        }
        if (spools_) {
            // The merge finds these copies by their id range instead: ids
            // a session takes from a sequence only grow.
            auto& d = spools_->direct;
            const auto [lo, hi] = std::minmax_element(hold_ids.begin(), hold_ids.end());
            if (d.count == 0 || *lo < d.first_id) d.first_id = *lo;
            if (d.count == 0 || *hi > d.last_id) d.last_id = *hi;
            d.count += static_cast<long long>(hold_ids.size());
        } else {
            next_hold = next_rec = 0;
            CopyWriter changed(tx_, "import_hchanged", kChangedColumns);
            for (const auto& row : rows_) {
                if (row.op != 'n') continue;
                const long long record_id = ids[next_rec++];
                for (std::size_t i = 0; i < row.record.holdings.size(); ++i) {
                    if (!row.direct[i]) continue;
                    changed.Int(hold_ids[next_hold++]).Text(row.record.holdings[i].barcode).Int(record_id);
                    changed.Text("insert").Int(1).EndLine();
                }
            }
            changed.Complete();
        }
    }
    if (staged_copies > 0) {
        auto hold_out = Open(&LoadSpools::hold_stage, "import_hold_stage", kHoldColumns);
        CopyWriter& hold = *hold_out;
        for (const auto& row : rows_) {
            if (!row.record.holdings_given || row.op == 'd') continue;
            for (std::size_t i = 0; i < row.record.holdings.size(); ++i) {
                if (!row.direct.empty() && row.direct[i]) continue;
                const auto& h = row.record.holdings[i];
                hold.Int(row.ord).Text(h.barcode).Nullable(h.branch).Nullable(h.shelfmark);
                hold.Text(protocols::ToString(h.status)).Nullable(h.due_date).Nullable(h.changed_at).EndLine();
            }
        }
        hold.Complete();
    }
    rows_.clear();
    new_rows_ = 0;
    direct_copies_ = 0;
    pending_bytes_ = 0;
}

void PrepareStage(pqxx::work& tx) {
    if (tx.exec1("SELECT to_regclass('pg_temp.import_stage') IS NULL")[0].as<bool>())
        for (const char* sql : kScratchTables) tx.exec0(sql);
}

void ClearStage(pqxx::work& tx) {
    std::string tables;
    for (std::string_view sql : kScratchTables) {
        constexpr std::string_view kCreate = "CREATE TEMP TABLE ";
        if (sql.substr(0, kCreate.size()) != kCreate) continue;  // an index
        sql.remove_prefix(kCreate.size());
        tables += (tables.empty() ? "" : ", ") + std::string(sql.substr(0, sql.find(' ')));
    }
    tx.exec0("TRUNCATE " + tables);
}

MergeCounts Merge(pqxx::work& tx, const std::string& lib, const MergeOptions& options) {
    MergeCounts c;
    const bool full = options.full;
    // The catalogue-wide write lock, held to the commit. Works are shared by
    // all libraries: without it, two loads would each create a work for the
    // same ISBN from snapshots that cannot see each other. It also hands out
    // change_log numbers in commit order, so they are gap-free.
    long long last = tx.exec1("SELECT last_seq FROM change_counter FOR UPDATE")[0].as<long long>();
    // The scratch tables are analysed whatever their size: unanalysed, the
    // planner assumes a few pages of rows and joins them to bib_record,
    // record_work and holding by reading those whole (tens of ms a page at
    // 100,000 records, growing with the catalogue); analysed, a small batch
    // goes by index. An ANALYZE of a small temporary table takes well under
    // a millisecond.
    tx.exec0("ANALYZE import_stage (ord, op, local_id)");
    // A small merge (a push batch, a harvest page, a feed page) looks the
    // stored rows up by key, whatever the statistics say. The statistics of
    // a library that grows fast (its first harvest) say it holds nothing
    // until autovacuum analyses it again; a join planned on them read all
    // of the library's records and copies for every page, so that a page
    // cost more the further a harvest got (83 ms of a 100-record page at
    // 10,000 records, in the delete of copies alone). A large merge (a bulk
    // load) keeps the joins, which read the library once.
    const bool keyed =
        tx.exec1("SELECT reltuples FROM pg_class WHERE oid = 'pg_temp.import_stage'::regclass")[0].as<double>() <=
        kKeyedMergeRows;
    // The last occurrence of a local id counts. If an earlier one was
    // written as new, the kept one is 'born': still an insert, of its content.
    if (options.may_repeat &&
        tx.exec0("INSERT INTO import_dup SELECT local_id, max(ord), bool_or(op = 'n') FROM import_stage"
                 " GROUP BY local_id HAVING count(*) > 1")
                .affected_rows() > 0) {
        c.duplicates = tx.exec0(
                             "DELETE FROM import_stage s USING import_dup d"
                             " WHERE s.local_id = d.local_id AND s.ord <> d.keep")
                           .affected_rows();
        tx.exec0("UPDATE import_stage s SET born = true FROM import_dup d WHERE s.ord = d.keep AND d.born");
    }

    // What each staged row does. Rows of new records were written already;
    // the others are classified against what is stored. Records that become
    // new here get their id now, so that their work is known before the row
    // is written (written once, not twice).
    tx.exec0(
        "INSERT INTO import_rec (ord, local_id, id, change, version, holdings, old_work, op, born, grp)"
        " SELECT s.ord, s.local_id, s.id, 'insert', 1, s.holdings, NULL, s.op, false, coalesce(m.root, s.grp)"
        " FROM import_stage s LEFT JOIN import_grp_remap m ON m.grp = s.grp WHERE s.op = 'n'");
    tx.exec_params0(
        "INSERT INTO import_rec (ord, local_id, id, change, version, holdings, old_work, op, born, grp)"
        " SELECT s.ord, s.local_id,"
        "  CASE WHEN b.id IS NOT NULL THEN b.id WHEN s.op = 'u' THEN nextval($2::regclass) END,"
        "  ch.change,"
        "  CASE WHEN ch.change = 'insert' THEN 1 WHEN ch.change IN ('update', 'delete') THEN b.version + 1"
        "   ELSE b.version END,"
        "  s.op <> 'd' AND s.holdings, w.work_id, s.op, s.born, coalesce(m.root, s.grp)"
        " FROM import_stage s" +
            std::string(keyed ? " LEFT JOIN LATERAL (SELECT b.id, b.version, b.deleted, b.checksum FROM bib_record b"
                                "  WHERE b.library = $1 AND b.local_id = s.local_id LIMIT 1) b ON true"
                              : " LEFT JOIN bib_record b ON b.library = $1 AND b.local_id = s.local_id") +
            " LEFT JOIN import_grp_remap m ON m.grp = s.grp" +
            (keyed ? " LEFT JOIN LATERAL (SELECT w.work_id FROM record_work w WHERE w.record_id = b.id LIMIT 1) w"
                     "  ON true"
                   : " LEFT JOIN record_work w ON w.record_id = b.id") +
        " CROSS JOIN LATERAL (SELECT CASE"
        "  WHEN s.op = 'd' THEN CASE WHEN b.id IS NOT NULL AND NOT b.deleted THEN 'delete' ELSE 'absent' END"
        "  WHEN s.born THEN 'insert'"
        "  WHEN b.id IS NULL THEN CASE WHEN s.op = 'k' THEN 'stale' ELSE 'insert' END"
        "  WHEN s.op = 'k' THEN CASE WHEN b.deleted OR b.checksum <> s.checksum THEN 'stale' ELSE 'none' END"
        "  WHEN b.deleted OR b.checksum <> s.checksum THEN 'update' ELSE 'none' END) ch(change)"
        " WHERE s.op <> 'n'",
        lib, tx.exec1("SELECT pg_get_serial_sequence('bib_record', 'id')")[0].as<std::string>());
    if (full) {
        tx.exec_params0(
            "INSERT INTO import_rec (ord, local_id, id, change, version, holdings, old_work, op, born)"
            " SELECT NULL, b.local_id, b.id, 'delete', b.version + 1, false, w.work_id, 'd', false FROM bib_record b"
            " LEFT JOIN record_work w ON w.record_id = b.id"
            " WHERE b.library = $1 AND NOT b.deleted"
            "  AND NOT EXISTS (SELECT 1 FROM import_stage s WHERE s.local_id = b.local_id)",
            lib);
    }
    tx.exec0("ANALYZE import_rec");
    auto counts = tx.exec1(
        "SELECT count(*) FILTER (WHERE change = 'insert'), count(*) FILTER (WHERE change = 'update'),"
        " count(*) FILTER (WHERE change = 'none'), count(*) FILTER (WHERE change = 'delete'),"
        " count(*) FILTER (WHERE change = 'absent'), count(*) FILTER (WHERE holdings),"
        " count(*) FILTER (WHERE change = 'stale'),"
        " count(*) FILTER (WHERE change = 'insert' AND op = 'u' AND NOT born) FROM import_rec");
    c.inserted = counts[0].as<long long>();
    c.updated = counts[1].as<long long>();
    c.unchanged = counts[2].as<long long>();
    c.deleted = counts[3].as<long long>();
    c.absent = counts[4].as<long long>();
    const long long with_holdings = counts[5].as<long long>();
    // The loader said "unchanged" of a record that is not as it thought:
    // only a broken loader can cause it, and the content is not here.
    if (counts[6].as<long long>() > 0)
        throw std::logic_error("the loader staged records as unchanged that differ from the stored ones");
    const long long inserted_from_stage = counts[7].as<long long>();

    if (c.inserted + c.updated + c.deleted > 0) {
        auto works = AssignWorks(tx, options.grouped);
        c.works_created = works.created;
        c.works_merged = works.merged;
        c.records_moved = works.moved;
    }
    if (inserted_from_stage > 0)
        tx.exec_params0(
            "INSERT INTO bib_record (id, library, local_id, format, raw, checksum, title, title_key, author_key,"
            " pub_year, language, material_type, isbns, issns, oclc, ppn, s_title, s_creator, s_subject, s_publisher)"
            " SELECT r.id, $1, s.local_id, s.format, s.raw, s.checksum, NULLIF(s.title, ''), NULLIF(s.title_key, ''),"
            "  NULLIF(s.author_key, ''), NULLIF(s.pub_year, 0), NULLIF(s.language, ''), NULLIF(s.material_type, ''),"
            "  s.isbns, s.issns, s.oclc, s.ppn, NULLIF(s.s_title, ''), NULLIF(s.s_creator, ''),"
            "  NULLIF(s.s_subject, ''), NULLIF(s.s_publisher, '')"
            " FROM import_rec r JOIN import_stage s ON s.ord = r.ord"
            " WHERE r.change = 'insert' AND r.op = 'u' AND NOT r.born",
            lib);
    if (c.updated > 0 || c.duplicates > 0)
        // Updates, and records created by this load whose later occurrence differs.
        tx.exec0(
            "UPDATE bib_record b SET format = s.format, raw = s.raw, checksum = s.checksum,"
            " title = NULLIF(s.title, ''), title_key = NULLIF(s.title_key, ''), author_key = NULLIF(s.author_key, ''),"
            " pub_year = NULLIF(s.pub_year, 0), language = NULLIF(s.language, ''),"
            " material_type = NULLIF(s.material_type, ''), isbns = s.isbns, issns = s.issns, oclc = s.oclc,"
            " ppn = s.ppn, s_title = NULLIF(s.s_title, ''), s_creator = NULLIF(s.s_creator, ''),"
            " s_subject = NULLIF(s.s_subject, ''), s_publisher = NULLIF(s.s_publisher, ''),"
            " version = r.version, deleted = false, updated_at = now()"
            " FROM import_rec r JOIN import_stage s ON s.ord = r.ord"
            " WHERE b.id = r.id AND (r.change = 'update' OR (r.born AND b.checksum <> s.checksum))");
    if (c.deleted > 0)
        tx.exec0(
            "UPDATE bib_record b SET deleted = true, version = r.version, updated_at = now()"
            " FROM import_rec r WHERE r.change = 'delete' AND b.id = r.id");

    // Which work each record is in. A deleted record is in none.
    if (c.inserted > 0)
        tx.exec0(
            "INSERT INTO record_work (record_id, work_id) SELECT l.record_id, coalesce(n.work_id, l.label)"
            " FROM dd_label l LEFT JOIN dd_new n ON n.label = l.label"
            // dd_label holds inserts and updates only; without updates, no join.
            + std::string(c.updated > 0 ? " WHERE l.record_id IN (SELECT id FROM import_rec WHERE change = 'insert')" : ""));
    if (c.updated > 0)
        tx.exec0(
            "INSERT INTO record_work AS w (record_id, work_id) SELECT r.id, coalesce(n.work_id, l.label)"
            " FROM import_rec r JOIN dd_label l ON l.record_id = r.id LEFT JOIN dd_new n ON n.label = l.label"
            " WHERE r.change = 'update'"
            " ON CONFLICT (record_id) DO UPDATE SET work_id = EXCLUDED.work_id WHERE w.work_id <> EXCLUDED.work_id");
    if (c.deleted > 0)
        tx.exec0("DELETE FROM record_work w USING import_rec r WHERE r.change = 'delete' AND w.record_id = r.id");
    if (c.works_merged + c.records_moved + c.deleted > 0)
        // Works left without any record: merged away, left by their only
        // record, or whose records were all deleted.
        // By id: as "w.id IN (...) OR w.id IN (...)" it read the whole work
        // table (68 ms at 100,000 works).
        tx.exec0(
            "DELETE FROM work w WHERE w.id = ANY (ARRAY(SELECT from_work FROM dd_merge UNION SELECT from_work FROM dd_moved"
            "  UNION SELECT old_work FROM import_rec WHERE change = 'delete' AND old_work IS NOT NULL))"
            " AND NOT EXISTS (SELECT 1 FROM record_work r WHERE r.work_id = w.id)");

    // Copies. A record that lists its copies replaces them all; a deleted
    // record takes its copies with it.
    if (with_holdings > 0) {
        tx.exec0(
            "INSERT INTO import_hold_in"
            " SELECT DISTINCT ON (h.barcode) r.id, h.barcode, h.branch, h.shelfmark, h.status, h.due_date, h.changed_at"
            " FROM import_rec r JOIN import_hold_stage h ON h.ord = r.ord"
            " WHERE r.holdings ORDER BY h.barcode, r.ord DESC");
        // Without statistics the planner takes a temp table for tiny and
        // probes it row by row: quadratic on a large load.
        tx.exec0("ANALYZE import_hold_in");
        // An update older than what is stored (by the library system's own
        // clock) is ignored: the last writer wins per copy. Copies that
        // exist are updated, the others inserted; no other writer of this
        // library runs meanwhile (its lock), so the two steps cannot race.
        if (keyed) {
            // One statement, driven by the (library, barcode) key: inserted
            // copies come back at version 1, updated ones above it.
            tx.exec_params0(
                "WITH ch AS ("
                " INSERT INTO holding AS h (record_id, library, branch, shelfmark, barcode, status, due_date,"
                "  source_changed_at)"
                " SELECT i.record_id, $1, i.branch, i.shelfmark, i.barcode, i.status, i.due_date, i.changed_at"
                " FROM import_hold_in i"
                " ON CONFLICT (library, barcode) DO UPDATE SET record_id = EXCLUDED.record_id,"
                "  branch = EXCLUDED.branch,"
                "  shelfmark = EXCLUDED.shelfmark, status = EXCLUDED.status, due_date = EXCLUDED.due_date,"
                "  source_changed_at = coalesce(EXCLUDED.source_changed_at, h.source_changed_at),"
                "  version = h.version + 1, updated_at = now()"
                " WHERE (h.record_id, h.branch, h.shelfmark, h.status, h.due_date)"
                "   IS DISTINCT FROM (EXCLUDED.record_id, EXCLUDED.branch, EXCLUDED.shelfmark, EXCLUDED.status,"
                "    EXCLUDED.due_date)"
                "  AND (EXCLUDED.source_changed_at IS NULL OR h.source_changed_at IS NULL"
                "   OR EXCLUDED.source_changed_at >= h.source_changed_at)"
                " RETURNING h.id, h.barcode, h.record_id, h.version)"
                "INSERT INTO import_hchanged SELECT id, barcode, record_id,"
                " CASE WHEN version = 1 THEN 'insert' ELSE 'update' END, version FROM ch",
                lib);
        } else {
            tx.exec_params0(
                "WITH up AS ("
                " UPDATE holding h SET record_id = i.record_id, branch = i.branch, shelfmark = i.shelfmark,"
                "  status = i.status, due_date = i.due_date,"
                "  source_changed_at = coalesce(i.changed_at, h.source_changed_at),"
                "  version = h.version + 1, updated_at = now()"
                " FROM import_hold_in i WHERE h.library = $1 AND h.barcode = i.barcode"
                "  AND (h.record_id, h.branch, h.shelfmark, h.status, h.due_date)"
                "   IS DISTINCT FROM (i.record_id, i.branch, i.shelfmark, i.status, i.due_date)"
                "  AND (i.changed_at IS NULL OR h.source_changed_at IS NULL OR i.changed_at >= h.source_changed_at)"
                " RETURNING h.id, h.barcode, h.record_id, h.version)"
                "INSERT INTO import_hchanged SELECT id, barcode, record_id, 'update', version FROM up",
                lib);
            tx.exec_params0(
                "WITH ins AS ("
                " INSERT INTO holding (record_id, library, branch, shelfmark, barcode, status, due_date,"
                "  source_changed_at)"
                " SELECT i.record_id, $1, i.branch, i.shelfmark, i.barcode, i.status, i.due_date, i.changed_at"
                " FROM import_hold_in i"
                " WHERE NOT EXISTS (SELECT 1 FROM holding h WHERE h.library = $1 AND h.barcode = i.barcode)"
                " RETURNING id, barcode, record_id, version)"
                "INSERT INTO import_hchanged SELECT id, barcode, record_id, 'insert', version FROM ins",
            lib);
        }
    }
    if (with_holdings > 0 || c.deleted > 0)
        tx.exec0(
            "WITH gone AS ("
            " DELETE FROM holding h USING import_rec r"
            // A record new to the catalogue had no copies to lose, unless an
            // earlier occurrence in this load wrote some (born). A copy is
            // always of its record's library: "h.library = $1" would add
            // nothing but a plan that reads all of the library's copies.
            " WHERE h.record_id = r.id AND (r.change <> 'insert' OR r.born)"
            "  AND (r.change = 'delete'"
            "   OR (r.holdings AND NOT EXISTS (SELECT 1 FROM import_hold_in i WHERE i.barcode = h.barcode)))"
            " RETURNING h.id, h.barcode, h.record_id, h.version)"
            "INSERT INTO import_hchanged SELECT id, barcode, record_id, 'delete', version + 1 FROM gone");
    auto direct = options.direct_copies;
    if (direct.count > 0 && c.duplicates > 0) {
        // Copies written directly that a later occurrence of their record
        // dropped again never existed outside this load: no log rows.
        const long long dropped =
            tx.exec_params0("DELETE FROM import_hchanged WHERE op = 'delete' AND id BETWEEN $1 AND $2",
                            direct.first_id, direct.last_id)
                .affected_rows();
        direct.count -= dropped;
    }
    auto hcounts = tx.exec1(
        "SELECT count(*) FILTER (WHERE op = 'insert'), count(*) FILTER (WHERE op = 'update'),"
        " count(*) FILTER (WHERE op = 'delete') FROM import_hchanged");
    c.holdings_inserted = hcounts[0].as<long long>() + direct.count;
    c.holdings_updated = hcounts[1].as<long long>();
    c.holdings_deleted = hcounts[2].as<long long>();

    if (c.inserted + c.updated + c.deleted + c.holdings_inserted + c.holdings_updated + c.holdings_deleted > 0) {
        // Records in the order they came, then their copies. A copy's
        // parent is always a record of this merge: its copies came with it,
        // or went with it.
        long long n = tx.exec_params0(
                            "INSERT INTO change_log (seq, entity, op, library, local_id, entity_id, version)"
                            " SELECT $1 + row_number() OVER (ORDER BY ord NULLS LAST, local_id), 'record', change, $2,"
                            "  local_id, id, version FROM import_rec WHERE change IN ('insert', 'update', 'delete')",
                            last, lib)
                          .affected_rows();
        // Copies written straight into holding by the load (see
        // DirectCopies), in id order, as the load wrote them: if a later
        // record of the load took one over, import_hchanged adds an update
        // row after this one. Without repeated records none was deleted
        // again, so the loader's lines are the log.
        const bool as_written = direct.count > 0 && direct.log && c.duplicates == 0;
        if (as_written) {
            const long long written = direct.log->Replay(tx, last + n + 1);
            if (written != direct.count)
                throw std::logic_error(fmt::format("the load wrote {} copies directly but logged {}",
                                                   direct.count, written));
            n += written;
        } else if (direct.count > 0) {
            // As they are now (a repeated record may have dropped some).
            // Only this load writes the library's copies (its lock), and
            // any other session's ids in the range are of other libraries.
            const long long written =
                tx.exec_params0(
                      "INSERT INTO change_log (seq, entity, op, library, local_id, entity_id, version, record_local_id)"
                      " SELECT $1 + row_number() OVER (ORDER BY h.id), 'holding', 'insert', $2, h.barcode, h.id, 1,"
                      "  r.local_id FROM holding h JOIN import_rec r ON r.id = h.record_id"
                      " WHERE h.id BETWEEN $3 AND $4 AND h.library = $2",
                      last + n, lib, direct.first_id, direct.last_id)
                    .affected_rows();
            if (written != direct.count)
                throw std::logic_error(fmt::format("the load wrote {} copies directly but {} are in its id range",
                                                   direct.count, written));
            n += written;
        }
        n += tx.exec_params0(
                   "INSERT INTO change_log (seq, entity, op, library, local_id, entity_id, version, record_local_id)"
                   " SELECT $1 + row_number() OVER (), 'holding', h.op, $2, h.barcode, h.id, h.version, r.local_id"
                   " FROM import_hchanged h JOIN import_rec r ON r.id = h.record_id",
                   last + n, lib)
                 .affected_rows();
        tx.exec_params0("UPDATE change_counter SET last_seq = $1", last + n);
        c.first_seq = last + 1;
        c.last_seq = last + n;
    }
    return c;
}

}  // namespace iblsync::storage::detail
