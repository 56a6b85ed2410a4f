#pragma once
// The state of SRU harvesting: which run each source is in and where its
// cursor stands. Every page is applied through the catalogue's incremental
// path in one transaction together with the cursor, so a crash or a lost
// connection repeats at most the page that was not committed, and repeating
// a page changes nothing (the merge is idempotent by checksum).

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "storage/catalogue_writer.hpp"

namespace iblsync::storage {

class Database;

struct HarvestSourceSpec {  // what the config says about a source
    std::string name;
    std::string library;
    std::string url;
    std::string protocol = "sru";  // or "oai"
};

// Makes harvest_source agree with the config: new sources are added,
// changed ones take the new library/URL/protocol (a change of any starts
// over with a full run), and sources no longer configured are marked so
// (their state is kept for `iblctl sync status`).
void SyncHarvestSources(Database& db, const std::vector<HarvestSourceSpec>& sources);

enum class RunKind { kFull, kIncremental };

struct HarvestRun {
    RunKind kind = RunKind::kFull;
    long long next_position = 1;
    std::string started_at;       // identifies the run (ISO 8601, microseconds)
    std::string since;            // incremental: ISO 8601 UTC lower bound ("2026-12-05T14:03:00Z")
    std::string holdings_mapping; // the library's (library.holdings_mapping); "" if none
    bool resumed = false;         // the run was in progress already
    // OAI-PMH: the token that asks for page next_position ("" for the
    // list's first request), the list's `from` ("" for none; a new
    // incremental run's is the latest datestamp of the runs before), and
    // the latest datestamp this run applied so far.
    std::string oai_token, oai_from, oai_run_latest;
};

struct RunPolicy {
    std::chrono::seconds interval{3600};      // between the starts of runs
    std::chrono::seconds full_interval{0};    // a full run at least this often; 0: only the first and on request
    bool incremental_possible = false;        // the source has an incremental query (OAI-PMH: a datestamp to go on from)
};

// The run to work on now: the one in progress, or a new one if the last
// success is `interval` ago (full if the source never completed one, if one
// was requested, if full_interval has passed, or if no incremental query is
// configured). nullopt if nothing is due or the source is paused; `due_in`
// then says when to ask again.
std::optional<HarvestRun> StartOrResumeRun(Database& db, const std::string& source, const RunPolicy& policy,
                                           std::chrono::seconds* due_in);

struct PageApplied {
    ImportSummary summary;     // of this page (and of the deletions, on the last page of a full run)
    long long deleted_absent = 0;
    bool deletions_refused = false;  // a full run that would delete too much; see max_delete_percent
    long long would_delete = 0, live_before = 0;
};

// Applies one page of run `run_started_at` whose first record was at
// `start`: the records, the cursor (`next`, or the end of the run if
// nullopt) and, on the last page of a full run, the deletion of the
// library's live records that the run never saw, unless that would delete
// more than `max_delete_percent` of them (then nothing is deleted and the
// result says so). Throws HarvestConflict if the cursor is not where the
// caller thinks (another harvester moved it), DatabaseError with IBL01 if
// the library is not registered.
// OAI-PMH pages carry this too: the token of the page after (with `next`,
// which is then start + 1) and the page's latest datestamp.
struct OaiPageCursor {
    std::string next_token;
    std::string latest_datestamp;  // "" if the page had none
};
PageApplied ApplyHarvestPage(Database& db, const std::string& source, const std::string& run_started_at,
                             long long start, const std::vector<RecordChange>& changes, long long rejected,
                             long long total, std::optional<long long> next, int max_delete_percent,
                             const OaiPageCursor* oai = nullptr);

// An OAI-PMH repository refused the run's resumption token (expired, or
// forgotten in a restart): the run's list is asked for again from `from`
// (the latest datestamp the run applied, or the run's own `from`), at the
// same page. False if the run moved on meanwhile.
bool RestartOaiList(Database& db, const std::string& source, const std::string& run_started_at, long long position,
                    const std::string& from);

// Counts a failure of the source (kept until the next page succeeds).
void RecordHarvestFailure(Database& db, const std::string& source, const std::string& error);

// `iblctl sync run SOURCE [--full [--allow-deletions]]`, pause, resume.
// False if there is no such source.
bool RequestHarvest(Database& db, const std::string& source, bool full, bool allow_mass_delete = false);
bool PauseHarvest(Database& db, const std::string& source, bool paused);

struct HarvestStatus {
    std::string name, library, url, protocol;
    std::string oai_latest;  // OAI-PMH: where the next incremental run starts
    bool configured = true, paused = false;
    std::string state;  // idle, running, failing, paused
    std::string run_kind;
    long long next_position = 0, run_total = 0, run_records = 0;
    std::string last_success_at, last_error, last_error_at;
    long long records_total = 0, errors_total = 0;
    int errors_in_row = 0;
    long long seconds_since_success = -1;  // -1: never succeeded
};
std::vector<HarvestStatus> HarvestStatuses(Database& db);

}  // namespace iblsync::storage
