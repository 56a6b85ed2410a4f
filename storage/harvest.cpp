#include "storage/harvest.hpp"

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/merge.hpp"
#include "storage/detail/sql.hpp"
#include "storage/detail/write.hpp"

namespace iblsync::storage {
namespace {

using detail::kIsoUtc;

// A run is known by its start time, to the microsecond, as text that
// compares equal after a round trip through timestamptz.
std::string RunId(const char* column) {
    return fmt::format("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'", column);
}

}  // namespace

void SyncHarvestSources(Database& db, const std::vector<HarvestSourceSpec>& sources) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "harvest sources");
        detail::ArrayLiteral names;
        for (const auto& s : sources) {
            names.Add(s.name);
            // A source that now points elsewhere starts over: its cursor
            // and what it has seen belong to the old place.
            constexpr const char* kSame =
                "(h.library, h.url, h.protocol) = (EXCLUDED.library, EXCLUDED.url, EXCLUDED.protocol)";
            tx.exec_params(fmt::format(
                               "INSERT INTO harvest_source AS h (name, library, url, protocol) VALUES ($1, $2, $3, $4)"
                               " ON CONFLICT (name) DO UPDATE SET configured = true, library = EXCLUDED.library,"
                               "  url = EXCLUDED.url, protocol = EXCLUDED.protocol,"
                               "  run_kind = CASE WHEN {0} THEN h.run_kind END,"
                               "  last_success_at = CASE WHEN {0} THEN h.last_success_at END,"
                               "  last_run_from = CASE WHEN {0} THEN h.last_run_from END,"
                               "  oai_token = CASE WHEN {0} THEN h.oai_token END,"
                               "  oai_from = CASE WHEN {0} THEN h.oai_from END,"
                               "  oai_run_latest = CASE WHEN {0} THEN h.oai_run_latest END,"
                               "  oai_latest = CASE WHEN {0} THEN h.oai_latest END",
                               kSame),
                           s.name, s.library, s.url, s.protocol);
        }
        tx.exec_params("UPDATE harvest_source SET configured = false WHERE NOT (name = ANY($1::text[]))", names.Done());
        tx.commit();
        return 0;
    });
}

std::optional<HarvestRun> StartOrResumeRun(Database& db, const std::string& source, const RunPolicy& policy,
                                           std::chrono::seconds* due_in) {
    return db.Pool().With([&](pqxx::connection& c) -> std::optional<HarvestRun> {
        pqxx::work tx(c, "harvest run");
        auto rows = tx.exec_params(
            "SELECT h.run_kind, h.next_position, " + RunId("h.run_started_at") +
                ", to_char(h.run_since AT TIME ZONE 'UTC', $2), h.paused,"
            // seconds until the next run is due (<= 0: due now)
            " CASE WHEN h.last_success_at IS NULL OR h.full_requested OR h.run_requested THEN 0"
            "  ELSE extract(epoch FROM (h.last_run_from + make_interval(secs => $3::float8)) - now()) END,"
            " h.full_requested OR h.last_success_at IS NULL OR NOT $4::boolean"
            "  OR ($5::float8 > 0 AND (h.last_full_at IS NULL"
            "   OR h.last_full_at + make_interval(secs => $5::float8) <= now())),"
            " coalesce(l.holdings_mapping, ''),"
            " to_char(h.last_run_from AT TIME ZONE 'UTC', $2),"
            " h.protocol = 'oai' AND h.oai_latest IS NULL, coalesce(h.oai_token, ''), coalesce(h.oai_from, ''),"
            " coalesce(h.oai_run_latest, '')"
            " FROM harvest_source h LEFT JOIN library l ON l.isil = h.library WHERE h.name = $1 FOR UPDATE OF h",
            source, kIsoUtc, static_cast<double>(policy.interval.count()), policy.incremental_possible,
            static_cast<double>(policy.full_interval.count()));
        if (rows.empty()) throw DatabaseError(fmt::format("harvest source {} does not exist", source));
        const auto row = rows[0];
        if (due_in) *due_in = std::chrono::seconds(0);
        if (row[4].as<bool>()) {
            if (due_in) *due_in = policy.interval;
            return std::nullopt;
        }
        HarvestRun run;
        run.holdings_mapping = row[7].as<std::string>();
        if (!row[0].is_null()) {
            run.kind = row[0].as<std::string>() == "full" ? RunKind::kFull : RunKind::kIncremental;
            run.next_position = row[1].as<long long>();
            run.started_at = row[2].as<std::string>();
            run.since = row[3].is_null() ? "" : row[3].as<std::string>();
            run.oai_token = row[10].as<std::string>();
            run.oai_from = row[11].as<std::string>();
            run.oai_run_latest = row[12].as<std::string>();
            run.resumed = true;
            return run;
        }
        const double wait = row[5].as<double>();
        if (wait > 0) {
            if (due_in) *due_in = std::chrono::seconds(static_cast<long long>(wait) + 1);
            return std::nullopt;
        }
        // An OAI-PMH source goes on from a datestamp; without one yet, in full.
        run.kind = row[6].as<bool>() || row[9].as<bool>() ? RunKind::kFull : RunKind::kIncremental;
        run.since = run.kind == RunKind::kIncremental && !row[8].is_null() ? row[8].as<std::string>() : "";
        auto started = tx.exec_params1(
            "UPDATE harvest_source SET run_kind = $2, run_started_at = clock_timestamp(),"
            " run_since = CASE WHEN $2 = 'incremental' THEN last_run_from END, next_position = 1, run_total = NULL,"
            " run_records = 0, run_rejected = 0, run_requested = false, full_requested = false,"
            " oai_token = NULL, oai_run_latest = NULL,"
            " oai_from = CASE WHEN $2 = 'incremental' THEN oai_latest END"
            " WHERE name = $1 RETURNING " + RunId("run_started_at") + ", coalesce(oai_from, '')",
            source, run.kind == RunKind::kFull ? "full" : "incremental");
        run.started_at = started[0].as<std::string>();
        run.oai_from = started[1].as<std::string>();
        tx.exec_params("DELETE FROM harvest_seen WHERE source = $1", source);
        tx.commit();
        return run;
    });
}

PageApplied ApplyHarvestPage(Database& db, const std::string& source, const std::string& run_started_at,
                             long long start, const std::vector<RecordChange>& changes, long long rejected,
                             long long total, std::optional<long long> next, int max_delete_percent,
                             const OaiPageCursor* oai) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "harvest page");
        auto rows = tx.exec_params(
            "SELECT library, run_kind, allow_mass_delete FROM harvest_source WHERE name = $1"
            " AND run_started_at = $2::timestamptz AND next_position = $3 FOR UPDATE",
            source, run_started_at, start);
        if (rows.empty())
            throw HarvestConflict(fmt::format("harvest source {} is no longer at position {} of run {}", source,
                                              start, run_started_at));
        const std::string library = rows[0][0].as<std::string>();
        const bool full = rows[0][1].as<std::string>() == "full";
        const bool allow_mass_delete = rows[0][2].as<bool>();
        detail::LockLibrary(tx, library);
        PageApplied out;
        if (!changes.empty()) out.summary = detail::ApplyChanges(tx, library, changes).summary;
        else detail::RequireLibrary(tx, library);
        if (full && !changes.empty()) {
            detail::ArrayLiteral ids;
            for (const auto& ch : changes) ids.Add(ch.record.local_id);
            tx.exec_params(
                "INSERT INTO harvest_seen (source, local_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                source, ids.Done());
        }
        if (oai)
            tx.exec_params(
                "UPDATE harvest_source SET oai_token = NULLIF($2, ''),"
                " oai_run_latest = NULLIF(greatest(coalesce(oai_run_latest, ''), $3), '') WHERE name = $1",
                source, next ? oai->next_token : std::string(), oai->latest_datestamp);
        if (next) {
            tx.exec_params(
                "UPDATE harvest_source SET next_position = $2, run_total = $3, run_records = run_records + $4,"
                " run_rejected = run_rejected + $5, records_total = records_total + $4, last_page_at = now(),"
                " errors_in_row = 0 WHERE name = $1",
                source, *next, total, static_cast<long long>(changes.size()), rejected);
            tx.commit();
            return out;
        }
        if (full) {
            // The run saw the whole source: what it did not see is gone,
            // unless that is so much of the library that a broken source
            // (an empty result, a wrong query) is the likelier cause.
            // As a set difference (one hash over each side): as NOT EXISTS,
            // planned on the statistics of a library that was empty before
            // this run, it compared every record with every seen id (8.3 s
            // at 10,000 records).
            const auto unseen = tx.exec_params(
                "SELECT local_id FROM bib_record WHERE library = $2 AND NOT deleted"
                " EXCEPT SELECT local_id FROM harvest_seen WHERE source = $1",
                source, library);
            out.would_delete = static_cast<long long>(unseen.size());
            out.live_before =
                tx.exec_params1("SELECT count(*) FROM bib_record WHERE library = $1 AND NOT deleted", library)[0]
                    .as<long long>();
            if (out.would_delete > 0 && !allow_mass_delete &&
                out.would_delete * 100 > out.live_before * max_delete_percent) {
                out.deletions_refused = true;
            } else if (out.would_delete > 0) {
                std::vector<RecordChange> gone;
                for (const auto& r : unseen) gone.push_back(RecordChange::Delete(r[0].as<std::string>()));
                // The page's merge left its scratch rows; a second merge in
                // the same transaction must not see them (its new works would
                // be created twice).
                if (!changes.empty()) detail::ClearStage(tx);
                auto del = detail::ApplyChanges(tx, library, gone).summary;
                out.deleted_absent = del.deleted;
                out.summary.deleted += del.deleted;
                out.summary.holdings_deleted += del.holdings_deleted;
                if (out.summary.first_seq == 0) out.summary.first_seq = del.first_seq;
                if (del.last_seq) out.summary.last_seq = del.last_seq;
            }
            tx.exec_params("DELETE FROM harvest_seen WHERE source = $1", source);
        }
        tx.exec_params(
            "UPDATE harvest_source SET run_kind = NULL, next_position = NULL, run_total = $2,"
            " run_records = run_records + $3, run_rejected = run_rejected + $4, records_total = records_total + $3,"
            " last_page_at = now(), last_success_at = now(), last_run_from = run_started_at,"
            " last_full_at = CASE WHEN run_kind = 'full' THEN run_started_at ELSE last_full_at END,"
            " allow_mass_delete = allow_mass_delete AND run_kind <> 'full',"
            " oai_latest = NULLIF(greatest(coalesce(oai_latest, ''), coalesce(oai_run_latest, '')), ''),"
            " oai_token = NULL, oai_run_latest = NULL,"
            " errors_in_row = CASE WHEN $5 THEN errors_in_row + 1 ELSE 0 END,"
            " errors_total = errors_total + CASE WHEN $5 THEN 1 ELSE 0 END,"
            " last_error = CASE WHEN $5 THEN $6 ELSE last_error END,"
            " last_error_at = CASE WHEN $5 THEN now() ELSE last_error_at END"
            " WHERE name = $1",
            source, total, static_cast<long long>(changes.size()), rejected, out.deletions_refused,
            fmt::format("the full run would delete {} of the library's {} records; none deleted (more than {}%: "
                        "check the source, then run `iblctl sync run {} --full --allow-deletions`)",
                        out.would_delete, out.live_before, max_delete_percent, source));
        tx.commit();
        return out;
    });
}

bool RestartOaiList(Database& db, const std::string& source, const std::string& run_started_at, long long position,
                    const std::string& from) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "harvest restart");
        auto r = tx.exec_params(
            "UPDATE harvest_source SET oai_token = NULL, oai_from = NULLIF($4, '') WHERE name = $1"
            " AND run_started_at = $2::timestamptz AND next_position = $3",
            source, run_started_at, position, from);
        tx.commit();
        return r.affected_rows() > 0;
    });
}

void RecordHarvestFailure(Database& db, const std::string& source, const std::string& error) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "harvest failure");
        tx.exec_params(
            "UPDATE harvest_source SET errors_total = errors_total + 1, errors_in_row = errors_in_row + 1,"
            " last_error = left($2, 2000), last_error_at = now() WHERE name = $1",
            source, error);
        tx.commit();
        return 0;
    });
}

bool RequestHarvest(Database& db, const std::string& source, bool full, bool allow_mass_delete) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "harvest request");
        // A run in progress goes on; the one requested starts after it.
        auto r = tx.exec_params(
            "UPDATE harvest_source SET run_requested = true, full_requested = full_requested OR $2,"
            " allow_mass_delete = allow_mass_delete OR $3 WHERE name = $1",
            source, full, full && allow_mass_delete);
        tx.commit();
        return r.affected_rows() > 0;
    });
}

bool PauseHarvest(Database& db, const std::string& source, bool paused) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "harvest pause");
        auto r = tx.exec_params("UPDATE harvest_source SET paused = $2 WHERE name = $1", source, paused);
        tx.commit();
        return r.affected_rows() > 0;
    });
}

std::vector<HarvestStatus> HarvestStatuses(Database& db) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "harvest status");
        std::vector<HarvestStatus> out;
        for (const auto& r : tx.exec_params(
                 "SELECT name, library, url, protocol, coalesce(oai_latest, ''), configured, paused, coalesce(run_kind, ''), coalesce(next_position, 0),"
                 " coalesce(run_total, 0), run_records, coalesce(to_char(last_success_at AT TIME ZONE 'UTC', $1), ''),"
                 " coalesce(last_error, ''), coalesce(to_char(last_error_at AT TIME ZONE 'UTC', $1), ''),"
                 " records_total, errors_total, errors_in_row,"
                 " coalesce(extract(epoch FROM now() - last_success_at)::bigint, -1)"
                 " FROM harvest_source ORDER BY name",
                 kIsoUtc)) {
            HarvestStatus s;
            int i = 0;
            s.name = r[i++].as<std::string>();
            s.library = r[i++].as<std::string>();
            s.url = r[i++].as<std::string>();
            s.protocol = r[i++].as<std::string>();
            s.oai_latest = r[i++].as<std::string>();
            s.configured = r[i++].as<bool>();
            s.paused = r[i++].as<bool>();
            s.run_kind = r[i++].as<std::string>();
            s.next_position = r[i++].as<long long>();
            s.run_total = r[i++].as<long long>();
            s.run_records = r[i++].as<long long>();
            s.last_success_at = r[i++].as<std::string>();
            s.last_error = r[i++].as<std::string>();
            s.last_error_at = r[i++].as<std::string>();
            s.records_total = r[i++].as<long long>();
            s.errors_total = r[i++].as<long long>();
            s.errors_in_row = r[i++].as<int>();
            s.seconds_since_success = r[i++].as<long long>();
            s.state = s.paused ? "paused" : s.errors_in_row > 0 ? "failing" : !s.run_kind.empty() ? "running" : "idle";
            out.push_back(std::move(s));
        }
        return out;
    });
}

}  // namespace iblsync::storage
