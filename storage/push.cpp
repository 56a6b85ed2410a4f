#include "storage/push.hpp"

#include <map>
#include <set>

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/holding_rows.hpp"
#include "storage/detail/sql.hpp"
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

// The rows every committed write carries besides its data, in one round
// trip: the audit row, the library's push counter and, when the client sent
// an Idempotency-Key, the answer to give a retry.
void Record(pqxx::work& tx, const std::string& lib, const WriteContext& ctx, const StoredAnswer& answer,
            long long first_seq, long long last_seq, const std::string& detail) {
    detail::ExecPrepared(
        tx, "push_record_rows",
        "WITH audit AS ("
        "  INSERT INTO audit_log (library, token_id, actor, action, detail, first_seq, last_seq)"
        "  VALUES ($1, $2, $3, $4, $5, NULLIF($6, 0), NULLIF($7, 0))),"
        " pushed AS ("
        "  INSERT INTO library_push AS p (library, pushes, last_push_at) VALUES ($1, 1, now())"
        "  ON CONFLICT (library) DO UPDATE SET pushes = p.pushes + 1, last_push_at = now())"
        " INSERT INTO idempotency_key (library, key, request_hash, status, content_type, body)"
        " SELECT $1, $8, $9, $10, $11, $12 WHERE $8 <> ''",
        lib, ctx.token_id, fmt::format("token:{}", ctx.token_id), ctx.action, detail, first_seq, last_seq,
        ctx.idempotency_key, ctx.request_hash, answer.status, answer.content_type, answer.body);
}

// Batches go in as array parameters, not by COPY into temporary tables: a
// transaction that touches any temporary table makes PostgreSQL empty every
// ON COMMIT DELETE ROWS table of the session at commit (the merge's scratch
// tables among them), which cost 6-30 ms per commit on this machine.
using detail::ArrayLiteral;

std::optional<std::string> OrNull(const std::string& s) {
    return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

// Judges every entry of an availability batch and writes the copies, in one
// statement. Each entry finds its copy (by item id or barcode, each through
// its own index); for a copy named more than once the entry with the latest
// changed_at counts (entries without one come first), among equals the
// last. Then: stale if older than what is stored, unchanged if the copy is
// like this already. Unchanged copies still learn a newer change time, so
// that an older update arriving later is recognised as stale.
const std::string kJudgeAvailability =
    "WITH i AS ("
    "  SELECT * FROM unnest($2::int[], $3::text[], $4::bigint[], $5::text[], $6::date[], $7::timestamptz[])"
    "   AS i(pos, barcode, item_id, status, due_date, changed_at)),"
    " found AS ("
    "  SELECT i.*, h.id AS hid, h.barcode AS hbarcode, h.version AS hversion, h.status AS hstatus,"
    "   h.due_date AS hdue, h.source_changed_at AS hchanged, h.record_id AS hrecord,"
    "   row_number() OVER (PARTITION BY h.id ORDER BY i.changed_at DESC NULLS LAST, i.pos DESC) AS rank"
    "  FROM i LEFT JOIN LATERAL ("
    "   SELECT * FROM holding x WHERE x.id = i.item_id AND x.library = $1"
    "   UNION ALL SELECT * FROM holding x WHERE i.item_id IS NULL AND x.library = $1 AND x.barcode = i.barcode"
    "  ) h ON true),"
    " judged AS ("
    "  SELECT *, CASE WHEN hid IS NULL THEN 'not_found' WHEN rank > 1 THEN 'superseded'"
    "   WHEN changed_at IS NOT NULL AND hchanged IS NOT NULL AND changed_at < hchanged THEN 'stale'"
    "   WHEN (status, due_date) IS NOT DISTINCT FROM (hstatus, hdue) THEN 'unchanged'"
    "   ELSE 'updated' END AS outcome FROM found),"
    " touched AS ("
    "  UPDATE holding h SET source_changed_at = j.changed_at FROM judged j"
    "  WHERE j.outcome = 'unchanged' AND h.id = j.hid AND j.changed_at IS NOT NULL"
    "   AND (h.source_changed_at IS NULL OR j.changed_at > h.source_changed_at)),"
    " up AS ("
    "  UPDATE holding h SET status = j.status, due_date = j.due_date,"
    "   source_changed_at = coalesce(j.changed_at, h.source_changed_at), version = h.version + 1, updated_at = now()"
    "  FROM judged j WHERE j.outcome = 'updated' AND h.id = j.hid"
    "  RETURNING h.id, h.version)"
    " SELECT j.pos, j.outcome, coalesce(j.hid, 0), coalesce(j.hbarcode, ''), coalesce(up.version, j.hversion, 0),"
    "  coalesce(CASE WHEN j.changed_at < j.hchanged THEN to_char(j.hchanged AT TIME ZONE 'UTC', " +
    std::string(kUtc) +
    ") END, ''),"
    "  coalesce(b.local_id, '')"
    " FROM judged j LEFT JOIN up ON j.outcome = 'updated' AND up.id = j.hid"
    " LEFT JOIN bib_record b ON j.outcome = 'updated' AND b.id = j.hrecord"
    " ORDER BY j.pos";

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

using detail::HoldingColumns;
using detail::HoldingFrom;
using detail::Str;

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
        ArrayLiteral pos, barcodes, item_ids, statuses, due_dates, changed_ats;
        for (std::size_t i = 0; i < updates.size(); ++i) {
            const auto& u = updates[i];
            pos.Add(static_cast<long long>(i));
            barcodes.Add(OrNull(u.barcode));
            item_ids.Add(u.item_id > 0 ? std::optional<std::string>(std::to_string(u.item_id)) : std::nullopt);
            statuses.Add(std::string(protocols::ToString(u.status)));
            due_dates.Add(OrNull(u.due_date));
            changed_ats.Add(OrNull(u.changed_at));
        }
        const auto judged =
            detail::ExecPrepared(tx, "push_availability", kJudgeAvailability.c_str(), lib, pos.Done(), barcodes.Done(),
                                 item_ids.Done(), statuses.Done(), due_dates.Done(), changed_ats.Done());
        Written<AvailabilityBatch> w;
        auto& b = w.result;
        b.items.resize(updates.size());
        ArrayLiteral log_ids, log_barcodes, log_versions, log_records;
        for (const auto& r : judged) {
            auto& item = b.items.at(r[0].as<std::size_t>());
            item.outcome = OutcomeFrom(r[1].as<std::string>());
            item.item_id = r[2].as<long long>();
            item.barcode = r[3].as<std::string>();
            item.version = r[4].as<int>();
            item.stored_changed_at = r[5].as<std::string>();
            switch (item.outcome) {
                case AvailabilityOutcome::kUpdated:
                    ++b.updated;
                    log_ids.Add(item.item_id);
                    log_barcodes.Add(item.barcode);
                    log_versions.Add(item.version);
                    log_records.Add(r[6].as<std::string>());
                    break;
                case AvailabilityOutcome::kUnchanged: ++b.unchanged; break;
                case AvailabilityOutcome::kStale: ++b.stale; break;
                case AvailabilityOutcome::kNotFound: ++b.not_found; break;
                case AvailabilityOutcome::kSuperseded: ++b.superseded; break;
            }
        }
        if (b.updated > 0) {
            // The catalogue-wide counter, taken as late as possible: its row
            // lock serialises every writer from here to the commit, which is
            // what keeps change_log numbers gap-free and in commit order.
            const long long base =
                detail::ExecPrepared(
                    tx, "push_availability_log",
                    "WITH c AS (UPDATE change_counter SET last_seq = last_seq + $2 RETURNING last_seq - $2 AS base),"
                    " logged AS ("
                    "  INSERT INTO change_log (seq, entity, op, library, local_id, entity_id, version, record_local_id)"
                    "  SELECT c.base + u.n, 'holding', 'update', $1, u.barcode, u.id, u.version, u.record_local_id"
                    "  FROM c, unnest($3::bigint[], $4::text[], $5::int[], $6::text[]) WITH ORDINALITY"
                    "   AS u(id, barcode, version, record_local_id, n))"
                    " SELECT base FROM c",
                    lib, b.updated, log_ids.Done(), log_barcodes.Done(), log_versions.Done(), log_records.Done())
                    .at(0)[0]
                    .as<long long>();
            b.first_seq = base + 1;
            b.last_seq = base + b.updated;
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

namespace {

// The current state of the records a page touches, with all their copies,
// and their libraries: read in the page's snapshot.
void EmbedStates(pqxx::transaction_base& tx, ChangePage& page) {
    detail::ArrayLiteral libs, ids, record_ids;
    std::set<std::pair<std::string, std::string>> wanted;  // record changes: reported even if gone
    for (const auto& ch : page.changes) {
        if (ch.entity == "record") {
            libs.Add(ch.library);
            ids.Add(ch.local_id);
            wanted.emplace(ch.library, ch.local_id);
        } else {
            if (!ch.record_local_id.empty()) libs.Add(ch.library), ids.Add(ch.record_local_id);
            if (ch.holding_record_id > 0) record_ids.Add(ch.holding_record_id);
        }
    }
    // One id list, looked up by key: "(library, local_id) IN (...) OR id =
    // ANY(...)" cannot use the indexes together and read bib_record whole
    // for every page of the feed.
    const auto rows = tx.exec_params(
        "SELECT b.id, b.library, b.local_id, b.format, b.raw, b.deleted FROM bib_record b"
        " WHERE b.id IN (SELECT k.id FROM unnest($1::text[], $2::text[]) u(library, local_id)"
        "  JOIN bib_record k ON k.library = u.library AND k.local_id = u.local_id"
        "  UNION SELECT unnest($3::bigint[]))"
        " ORDER BY b.library, b.local_id",
        libs.Done(), ids.Done(), record_ids.Done());
    std::map<long long, std::size_t> at;
    detail::ArrayLiteral live;
    for (const auto& r : rows) {
        StoredRecord s;
        s.id = r[0].as<long long>();
        s.library = r[1].as<std::string>();
        s.local_id = r[2].as<std::string>();
        s.deleted = r[5].as<bool>();
        if (!s.deleted) {
            s.format = r[3].as<std::string>();
            s.raw = r[4].as<std::string>();
            live.Add(s.id);
        }
        wanted.erase({s.library, s.local_id});
        at[s.id] = page.states.size();
        page.states.push_back(std::move(s));
    }
    for (const auto& [lib, id] : wanted) {  // never stored here: gone for the reader too
        StoredRecord s;
        s.library = lib;
        s.local_id = id;
        s.deleted = true;
        page.states.push_back(std::move(s));
    }
    for (const auto& r : tx.exec_params(fmt::format("SELECT h.record_id, {} FROM holding h WHERE h.record_id ="
                                                    " ANY($1::bigint[]) ORDER BY h.record_id, h.barcode",
                                                    HoldingColumns("h")),
                                        live.Done())) {
        auto& s = page.states[at.at(r[0].as<long long>())];
        s.holdings.push_back(HoldingFrom(r, 1));
        s.holdings.back().record_local_id = s.local_id;
    }
    detail::ArrayLiteral isils;
    std::set<std::string> seen;
    for (const auto& s : page.states)
        if (seen.insert(s.library).second) isils.Add(s.library);
    for (const auto& r : tx.exec_params(
             "SELECT l.isil, l.name, coalesce(l.province, ''), coalesce(l.poi, (SELECT isil FROM node_identity), '')"
             " FROM library l WHERE l.isil = ANY($1::text[]) ORDER BY l.isil",
             isils.Done()))
        page.libraries.push_back(
            {r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(), r[3].as<std::string>()});
}

}  // namespace

ChangePage ReadChanges(Database& db, long long since, int limit, const ChangeFilter& filter) {
    return db.Pool().With([&](pqxx::connection& c) {
        // One snapshot: the head and the page agree.
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c, "readchanges");
        ChangePage page;
        const auto bounds = detail::ReadFeedBounds(tx);
        page.head = bounds.head;
        page.oldest = bounds.oldest;
        const bool filtered = !filter.origin.empty() || !filter.exclude_origin.empty();
        // A library without a POI is served by this node itself.
        const char* served_by = "coalesce(l.poi, (SELECT isil FROM node_identity))";
        const std::string sql = fmt::format(
            "SELECT c.seq, to_char(c.changed_at AT TIME ZONE 'UTC', {}), c.entity, c.op, c.library,"
            " c.local_id, coalesce(c.record_local_id, ''), c.entity_id, coalesce(c.version, 0),"
            " h.id IS NOT NULL, coalesce(h.record_id, 0), {}"
            " FROM change_log c LEFT JOIN holding h ON c.entity = 'holding' AND h.id = c.entity_id{}"
            " WHERE c.seq > $1{} ORDER BY c.seq LIMIT $2",
            kUtc, HoldingColumns("h"), filtered ? " JOIN library l ON l.isil = c.library" : "",
            filtered ? fmt::format(" AND ($3 = '' OR {0} = $3) AND ($4 = '' OR {0} <> $4)", served_by) : "");
        const auto rows = filtered ? tx.exec_params(sql, since, limit, filter.origin, filter.exclude_origin)
                                   : tx.exec_params(sql, since, limit);
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
            ch.holding_record_id = r[10].as<long long>();
            if (r[9].as<bool>()) {
                ch.holding = HoldingFrom(r, 11);
                ch.holding->record_local_id = ch.record_local_id;
            }
            page.changes.push_back(std::move(ch));
        }
        // A page that is not full read everything up to the head.
        page.next_since = static_cast<int>(page.changes.size()) == limit ? page.changes.back().seq
                                                                         : std::max(since, page.head);
        if (filter.embed) EmbedStates(tx, page);
        return page;
    });
}

long long ChangeHead(Database& db) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "changehead");
        return tx.exec1("SELECT last_seq FROM change_counter")[0].as<long long>();
    });
}

Pruned PruneRetained(Database& db, int keep_changes_days, int keep_idempotency_hours) {
    Pruned out;
    if (keep_changes_days > 0) {
        // change_log.changed_at is the writer's transaction start, which is
        // not in seq order; the cut stops at the first row that is still
        // young, so nothing after a kept row is removed.
        for (;;) {
            const long long n = db.Pool().With([&](pqxx::connection& c) {
                pqxx::work tx(c, "prunechanges");
                const auto r = tx.exec_params0(
                    "WITH head AS (SELECT seq, changed_at FROM change_log ORDER BY seq LIMIT 10000),"
                    " young AS (SELECT min(seq) AS seq FROM head WHERE changed_at >= now() - make_interval(days => $1))"
                    " DELETE FROM change_log c USING head"
                    " WHERE c.seq = head.seq AND head.seq < coalesce((SELECT seq FROM young), 9223372036854775807)",
                    keep_changes_days);
                tx.commit();
                return static_cast<long long>(r.affected_rows());
            });
            out.changes += n;
            if (n < 10000) break;
        }
    }
    out.idempotency_keys = db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "pruneidempotency");
        const auto r = tx.exec_params0(
            "DELETE FROM idempotency_key WHERE created_at < now() - make_interval(hours => $1)", keep_idempotency_hours);
        tx.commit();
        return static_cast<long long>(r.affected_rows());
    });
    return out;
}

namespace detail {

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

FeedBounds ReadFeedBounds(pqxx::transaction_base& tx) {
    auto r = tx.exec1(
        "SELECT c.last_seq, coalesce((SELECT min(seq) FROM change_log), c.last_seq + 1) FROM change_counter c");
    return {r[0].as<long long>(), r[1].as<long long>()};
}

std::string HoldingColumns(const char* h) {
    return fmt::format(
        "{0}.id, {0}.library, {0}.barcode, {0}.branch, {0}.shelfmark, {0}.status, to_char({0}.due_date, 'YYYY-MM-DD'),"
        " to_char({0}.source_changed_at AT TIME ZONE 'UTC', {1}), to_char({0}.updated_at AT TIME ZONE 'UTC', {1}),"
        " {0}.version",
        h, kUtc);
}

}  // namespace detail

}  // namespace iblsync::storage
