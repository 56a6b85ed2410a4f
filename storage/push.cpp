#include "storage/push.hpp"

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/copy_writer.hpp"
#include "storage/detail/write.hpp"

namespace iblsync::storage {
namespace {

constexpr const char* kUtc = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

// A key used before: the first answer (same request) or a refusal.
template <class T>
std::optional<Written<T>> Replay(pqxx::work& tx, const std::string& lib, const WriteContext& ctx) {
    if (ctx.idempotency_key.empty()) return std::nullopt;
    auto r = tx.exec_params("SELECT request_hash, status, content_type, body FROM idempotency_key"
                            " WHERE library = $1 AND key = $2",
                            lib, ctx.idempotency_key);
    if (r.empty()) return std::nullopt;
    Written<T> w;
    if (r[0][0].as<std::string>() != ctx.request_hash) {
        w.status = WriteStatus::kKeyReused;
        return w;
    }
    w.status = WriteStatus::kReplayed;
    w.answer = {r[0][1].as<int>(), r[0][2].as<std::string>(), r[0][3].as<std::string>()};
    return w;
}

// The rows every committed write carries besides its data.
void Record(pqxx::work& tx, const std::string& lib, const WriteContext& ctx, const StoredAnswer& answer,
            long long first_seq, long long last_seq, const std::string& detail) {
    if (!ctx.idempotency_key.empty())
        tx.exec_params0(
            "INSERT INTO idempotency_key (library, key, request_hash, status, content_type, body)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            lib, ctx.idempotency_key, ctx.request_hash, answer.status, answer.content_type, answer.body);
    tx.exec_params0(
        "INSERT INTO audit_log (library, token_id, actor, action, detail, first_seq, last_seq)"
        " VALUES ($1, $2, $3, $4, $5, NULLIF($6, 0), NULLIF($7, 0))",
        lib, ctx.token_id, fmt::format("token:{}", ctx.token_id), ctx.action, detail, first_seq, last_seq);
    tx.exec_params0(
        "INSERT INTO library_push AS p (library, pushes, last_push_at) VALUES ($1, 1, now())"
        " ON CONFLICT (library) DO UPDATE SET pushes = p.pushes + 1, last_push_at = now()",
        lib);
}

void PrepareAvailability(pqxx::work& tx) {
    if (tx.exec1("SELECT to_regclass('pg_temp.avail_in') IS NULL")[0].as<bool>()) {
        tx.exec0(
            "CREATE TEMP TABLE avail_in (pos integer NOT NULL, barcode text, item_id bigint, status text NOT NULL,"
            " due_date date, changed_at timestamptz) ON COMMIT DELETE ROWS");
        tx.exec0(
            "CREATE TEMP TABLE avail_out (pos integer NOT NULL, outcome text NOT NULL, item_id bigint,"
            " barcode text, version integer, stored_changed_at text) ON COMMIT DELETE ROWS");
    }
}

AvailabilityOutcome OutcomeFrom(const std::string& s) {
    if (s == "updated") return AvailabilityOutcome::kUpdated;
    if (s == "unchanged") return AvailabilityOutcome::kUnchanged;
    if (s == "stale") return AvailabilityOutcome::kStale;
    if (s == "superseded") return AvailabilityOutcome::kSuperseded;
    return AvailabilityOutcome::kNotFound;
}

std::vector<std::string> TextArray(const pqxx::field& f) {
    std::vector<std::string> out;
    auto parser = f.as_array();
    for (auto item = parser.get_next(); item.first != pqxx::array_parser::done; item = parser.get_next())
        if (item.first == pqxx::array_parser::string_value) out.push_back(item.second);
    return out;
}

std::string Str(const pqxx::field& f) { return f.is_null() ? std::string() : f.as<std::string>(); }

StoredHolding HoldingFrom(const pqxx::row& r, int at) {
    StoredHolding h;
    h.id = r[at].as<long long>();
    h.library = Str(r[at + 1]);
    h.barcode = Str(r[at + 2]);
    h.branch = Str(r[at + 3]);
    h.shelfmark = Str(r[at + 4]);
    h.status = Str(r[at + 5]);
    h.due_date = Str(r[at + 6]);
    h.changed_at = Str(r[at + 7]);
    h.updated_at = Str(r[at + 8]);
    h.version = r[at + 9].as<int>();
    return h;
}

std::string HoldingColumns(const char* h) {
    return fmt::format(
        "{0}.id, {0}.library, {0}.barcode, {0}.branch, {0}.shelfmark, {0}.status, to_char({0}.due_date, 'YYYY-MM-DD'),"
        " to_char({0}.source_changed_at AT TIME ZONE 'UTC', {1}), to_char({0}.updated_at AT TIME ZONE 'UTC', {1}),"
        " {0}.version",
        h, kUtc);
}

std::vector<StoredRecord> RecordsFrom(pqxx::transaction_base& tx, const pqxx::result& rows);

template <class... Args>
std::vector<StoredRecord> ReadRecords(pqxx::transaction_base& tx, const std::string& where, Args&&... args) {
    const pqxx::result rows = tx.exec_params(
        fmt::format("SELECT b.id, b.library, b.local_id, b.format, b.raw, b.checksum, coalesce(b.title, ''),"
                    " coalesce(b.material_type, ''), to_char(b.updated_at AT TIME ZONE 'UTC', {}),"
                    " coalesce(b.pub_year, 0), b.version, b.deleted, coalesce(w.work_id, 0),"
                    " b.isbns, b.issns, b.oclc, b.ppn"
                    " FROM bib_record b LEFT JOIN record_work w ON w.record_id = b.id WHERE {} ORDER BY b.library, b.local_id",
                    kUtc, where),
        std::forward<Args>(args)...);
    return RecordsFrom(tx, rows);
}

std::vector<StoredRecord> RecordsFrom(pqxx::transaction_base& tx, const pqxx::result& rows) {
    std::vector<StoredRecord> out;
    for (const auto& r : rows) {
        StoredRecord s;
        s.id = r[0].as<long long>();
        s.library = r[1].as<std::string>();
        s.local_id = r[2].as<std::string>();
        s.format = r[3].as<std::string>();
        s.raw = r[4].as<std::string>();
        s.checksum = r[5].as<std::string>();
        s.title = r[6].as<std::string>();
        s.material_type = r[7].as<std::string>();
        s.updated_at = r[8].as<std::string>();
        s.pub_year = r[9].as<int>();
        s.version = r[10].as<int>();
        s.deleted = r[11].as<bool>();
        s.work_id = r[12].as<long long>();
        s.isbns = TextArray(r[13]);
        s.issns = TextArray(r[14]);
        s.oclc = TextArray(r[15]);
        s.ppn = TextArray(r[16]);
        out.push_back(std::move(s));
    }
    for (auto& s : out) {
        for (const auto& h : tx.exec_params(
                 fmt::format("SELECT {} FROM holding h WHERE h.record_id = $1 ORDER BY h.barcode", HoldingColumns("h")),
                 s.id))
            s.holdings.push_back(HoldingFrom(h, 0));
        for (auto& h : s.holdings) h.record_local_id = s.local_id;
    }
    return out;
}

}  // namespace

const char* ToString(AvailabilityOutcome o) {
    switch (o) {
        case AvailabilityOutcome::kUpdated: return "updated";
        case AvailabilityOutcome::kUnchanged: return "unchanged";
        case AvailabilityOutcome::kStale: return "stale";
        case AvailabilityOutcome::kNotFound: return "not_found";
        case AvailabilityOutcome::kSuperseded: return "superseded";
    }
    return "not_found";
}

Written<BatchResult> PushRecords(Database& db, const std::string& lib, const std::vector<RecordChange>& changes,
                                 const WriteContext& ctx, const RecordPrecondition& pre,
                                 const Render<BatchResult>& render) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "pushrecords");
        detail::LockLibrary(tx, lib);
        if (auto replay = Replay<BatchResult>(tx, lib, ctx)) return *replay;
        Written<BatchResult> w;
        if ((pre.if_match || pre.if_none_match) && changes.size() == 1) {
            auto r = tx.exec_params("SELECT version FROM bib_record WHERE library = $1 AND local_id = $2 AND NOT deleted",
                                    lib, changes[0].record.local_id);
            const int current = r.empty() ? 0 : r[0][0].as<int>();
            const bool holds = pre.if_none_match ? current == 0
                                                 : current != 0 && (*pre.if_match == 0 || *pre.if_match == current);
            if (!holds) {
                w.status = WriteStatus::kPreconditionFailed;
                w.current_version = current;
                return w;
            }
        }
        w.result = detail::ApplyChanges(tx, lib, changes);
        bool failed = false;
        w.answer = render(w.result, failed);
        if (failed) {
            w.status = WriteStatus::kRolledBack;
            return w;  // the transaction is rolled back as it goes out of scope
        }
        const auto& s = w.result.summary;
        Record(tx, lib, ctx, w.answer, s.first_seq, s.last_seq,
               fmt::format("records={} inserted={} updated={} deleted={} copies_changed={}", changes.size(), s.inserted,
                           s.updated, s.deleted, s.holdings_inserted + s.holdings_updated + s.holdings_deleted));
        tx.commit();
        return w;
    });
}

Written<AvailabilityBatch> PushAvailability(Database& db, const std::string& lib,
                                            const std::vector<AvailabilityUpdate>& updates, const WriteContext& ctx,
                                            const Render<AvailabilityBatch>& render) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "pushavailability");
        detail::LockLibrary(tx, lib);
        if (auto replay = Replay<AvailabilityBatch>(tx, lib, ctx)) return *replay;
        PrepareAvailability(tx);
        {
            detail::CopyWriter in(tx, "avail_in", {"pos", "barcode", "item_id", "status", "due_date", "changed_at"});
            for (std::size_t i = 0; i < updates.size(); ++i) {
                const auto& u = updates[i];
                in.Int(static_cast<long long>(i)).Nullable(u.barcode);
                if (u.item_id > 0) in.Int(u.item_id);
                else in.Null();
                in.Text(protocols::ToString(u.status)).Nullable(u.due_date).Nullable(u.changed_at).EndLine();
            }
            in.Complete();
        }
        // Each entry finds its copy; for a copy named more than once the
        // entry with the latest changed_at counts (entries without one come
        // first), among equals the last. Then: stale if older than what is
        // stored, unchanged if the copy is like this already.
        tx.exec_params0(
            "INSERT INTO avail_out (pos, outcome, item_id, barcode, version, stored_changed_at)"
            " WITH found AS ("
            "  SELECT i.*, h.id AS hid, h.barcode AS hbarcode, h.version AS hversion, h.status AS hstatus,"
            "   h.due_date AS hdue, h.source_changed_at AS hchanged,"
            "   row_number() OVER (PARTITION BY h.id ORDER BY i.changed_at DESC NULLS LAST, i.pos DESC) AS rank"
            // Two lookups, each by its own index (a CASE in the join
            // condition hid both and scanned the library's copies per entry).
            "  FROM avail_in i LEFT JOIN LATERAL ("
            "   SELECT * FROM holding x WHERE x.id = i.item_id AND x.library = $1"
            "   UNION ALL SELECT * FROM holding x WHERE i.item_id IS NULL AND x.library = $1 AND x.barcode = i.barcode"
            "  ) h ON true)"
            " SELECT pos,"
            "  CASE WHEN hid IS NULL THEN 'not_found' WHEN rank > 1 THEN 'superseded'"
            "   WHEN changed_at IS NOT NULL AND hchanged IS NOT NULL AND changed_at < hchanged THEN 'stale'"
            "   WHEN (status, due_date) IS NOT DISTINCT FROM (hstatus, hdue) THEN 'unchanged'"
            "   ELSE 'updated' END,"
            "  hid, hbarcode, hversion,"
            "  CASE WHEN changed_at < hchanged THEN to_char(hchanged AT TIME ZONE 'UTC', " +
                std::string(kUtc) +
                ") END"
                " FROM found",
            lib);
        // Unchanged copies still learn a newer change time, so that an older
        // update arriving later is recognised as stale.
        tx.exec_params0(
            "UPDATE holding h SET source_changed_at = i.changed_at FROM avail_out o JOIN avail_in i ON i.pos = o.pos"
            " WHERE o.outcome = 'unchanged' AND h.id = o.item_id AND h.library = $1 AND i.changed_at IS NOT NULL"
            "  AND (h.source_changed_at IS NULL OR i.changed_at > h.source_changed_at)",
            lib);
        auto updated = tx.exec_params(
            "WITH up AS ("
            " UPDATE holding h SET status = i.status, due_date = i.due_date,"
            "  source_changed_at = coalesce(i.changed_at, h.source_changed_at), version = h.version + 1,"
            "  updated_at = now()"
            " FROM avail_out o JOIN avail_in i ON i.pos = o.pos"
            " WHERE o.outcome = 'updated' AND h.id = o.item_id AND h.library = $1"
            " RETURNING h.id, h.version, h.barcode, h.record_id)"
            " UPDATE avail_out o SET version = up.version FROM up WHERE o.item_id = up.id AND o.outcome = 'updated'"
            " RETURNING up.id",
            lib);
        Written<AvailabilityBatch> w;
        auto& b = w.result;
        b.items.resize(updates.size());
        for (const auto& r : tx.exec("SELECT pos, outcome, coalesce(item_id, 0), coalesce(barcode, ''),"
                                     " coalesce(version, 0), coalesce(stored_changed_at, '') FROM avail_out")) {
            auto& item = b.items.at(r[0].as<std::size_t>());
            item.outcome = OutcomeFrom(r[1].as<std::string>());
            item.item_id = r[2].as<long long>();
            item.barcode = r[3].as<std::string>();
            item.version = r[4].as<int>();
            item.stored_changed_at = r[5].as<std::string>();
            switch (item.outcome) {
                case AvailabilityOutcome::kUpdated: ++b.updated; break;
                case AvailabilityOutcome::kUnchanged: ++b.unchanged; break;
                case AvailabilityOutcome::kStale: ++b.stale; break;
                case AvailabilityOutcome::kNotFound: ++b.not_found; break;
                case AvailabilityOutcome::kSuperseded: ++b.superseded; break;
            }
        }
        if (!updated.empty()) {
            // The catalogue-wide counter, taken as late as possible: it
            // serialises every writer from here to the commit, which is what
            // keeps change_log numbers gap-free and in commit order.
            const long long last = tx.exec1("SELECT last_seq FROM change_counter FOR UPDATE")[0].as<long long>();
            const auto n = tx.exec_params0(
                                 "INSERT INTO change_log (seq, entity, op, library, local_id, entity_id, version, record_local_id)"
                                 " SELECT $1 + row_number() OVER (ORDER BY o.pos), 'holding', 'update', $2, h.barcode, h.id,"
                                 "  h.version, b.local_id"
                                 " FROM avail_out o JOIN holding h ON h.id = o.item_id JOIN bib_record b ON b.id = h.record_id"
                                 " WHERE o.outcome = 'updated'",
                                 last, lib)
                               .affected_rows();
            tx.exec_params0("UPDATE change_counter SET last_seq = $1", last + static_cast<long long>(n));
            b.first_seq = last + 1;
            b.last_seq = last + static_cast<long long>(n);
        }
        bool failed = false;
        w.answer = render(b, failed);
        if (failed) {
            w.status = WriteStatus::kRolledBack;
            return w;
        }
        Record(tx, lib, ctx, w.answer, b.first_seq, b.last_seq,
               fmt::format("updates={} updated={} unchanged={} stale={} not_found={}", updates.size(), b.updated,
                           b.unchanged, b.stale, b.not_found));
        tx.commit();
        return w;
    });
}

std::optional<StoredRecord> ReadRecord(Database& db, const std::string& lib, const std::string& local_id) {
    return db.Pool().With([&](pqxx::connection& c) -> std::optional<StoredRecord> {
        pqxx::read_transaction tx(c, "readrecord");
        auto r = ReadRecords(tx, "b.library = $1 AND b.local_id = $2", lib, local_id);
        if (r.empty()) return std::nullopt;
        return r[0];
    });
}

std::vector<StoredRecord> ReadWork(Database& db, long long work_id) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "readwork");
        return ReadRecords(tx, "w.work_id = $1 AND NOT b.deleted", work_id);
    });
}

ChangePage ReadChanges(Database& db, long long since, int limit) {
    return db.Pool().With([&](pqxx::connection& c) {
        // One snapshot: the head and the page agree.
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c, "readchanges");
        ChangePage page;
        auto head = tx.exec1(
            "SELECT c.last_seq, coalesce((SELECT min(seq) FROM change_log), c.last_seq + 1) FROM change_counter c");
        page.head = head[0].as<long long>();
        page.oldest = head[1].as<long long>();
        auto rows = tx.exec_params(
            fmt::format("SELECT c.seq, to_char(c.changed_at AT TIME ZONE 'UTC', {}), c.entity, c.op, c.library,"
                        " c.local_id, coalesce(c.record_local_id, ''), c.entity_id, coalesce(c.version, 0),"
                        " h.id IS NOT NULL, {}"
                        " FROM change_log c LEFT JOIN holding h ON c.entity = 'holding' AND h.id = c.entity_id"
                        " WHERE c.seq > $1 ORDER BY c.seq LIMIT $2",
                        kUtc, HoldingColumns("h")),
            since, limit);
        for (const auto& r : rows) {
            Change ch;
            ch.seq = r[0].as<long long>();
            ch.changed_at = r[1].as<std::string>();
            ch.entity = r[2].as<std::string>();
            ch.op = r[3].as<std::string>();
            ch.library = r[4].as<std::string>();
            ch.local_id = r[5].as<std::string>();
            ch.record_local_id = r[6].as<std::string>();
            ch.entity_id = r[7].as<long long>();
            ch.version = r[8].as<int>();
            if (r[9].as<bool>()) {
                ch.holding = HoldingFrom(r, 10);
                ch.holding->record_local_id = ch.record_local_id;
            }
            page.changes.push_back(std::move(ch));
        }
        return page;
    });
}

long long ChangeHead(Database& db) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "changehead");
        return tx.exec1("SELECT last_seq FROM change_counter")[0].as<long long>();
    });
}

}  // namespace iblsync::storage
