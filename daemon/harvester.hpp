#pragma once
// SRU and OAI-PMH harvesting: one coroutine per [[harvest]] source pages
// through the source's result set or list and applies every page, with its cursor, in one
// transaction (storage/harvest.hpp); pages that arrived while the ones
// before them were applied go into one transaction together. A failing page
// is retried with exponential backoff and jitter until it succeeds; a source
// never has more than one request of ours open.

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "daemon/config.hpp"
#include "daemon/db_executor.hpp"
#include "protocols/prometheus.hpp"
#include "protocols/sru_client.hpp"
#include "storage/errors.hpp"
#include "storage/harvest.hpp"

namespace iblsync::daemon {

struct FetchedPage;

class Harvester {
public:
    // `changed` is called when a source starts or stops failing.
    Harvester(net::io_context& ioc, storage::Database& db, DbExecutor& exec, std::function<void()> changed);
    ~Harvester();

    // Starts the sources' coroutines (once the database is reachable, the
    // config's sources are written to harvest_source first).
    void Start(std::vector<HarvestSource> sources);
    // Sources a reload added (names not yet harvested), started as at Start.
    void Add(std::vector<HarvestSource> sources);
    // No new pages; a page in flight is abandoned (its transaction never
    // started or rolls back), so the next start resumes at it.
    void Stop();
    // Ends a source's wait (iblctl sync run|resume). False if not configured.
    bool Wake(const std::string& name);
    // A paused source stops after the page in hand (its run stays where it
    // is); iblctl sync pause|resume, after writing it to the database.
    void SetPaused(const std::string& name, bool paused);
    bool Has(const std::string& name) const;

    // Failing sources now (errors since their last good page), for STATUS.
    int Failing() const;
    int Count() const { return static_cast<int>(sources_.size()); }

    // Per source: failing (0/1), failures in a row, records applied and
    // failures since start, and the Unix time of the last completed run
    // (read from the database at start, so alerts on time() - it survive
    // restarts).
    void Render(protocols::PrometheusText& out) const;

private:
    struct Source;
    net::awaitable<void> Sync();
    net::awaitable<void> Loop(Source& s);
    net::awaitable<void> Harvest(Source& s, const storage::HarvestRun& run);
    // An OAI-PMH source's run: one ListRecords page after the other, each
    // applied with the resumption token of the next.
    net::awaitable<void> HarvestOai(Source& s, const storage::HarvestRun& run);
    struct Fetcher;
    net::awaitable<void> FetchPages(Source* s, const protocols::sru::PageRequest* base, long long from, Fetcher* f,
                                    std::size_t max_pages, std::chrono::seconds timeout);
    net::awaitable<void> StopFetching(Fetcher* f);
    net::awaitable<void> Sleep(Source& s, std::chrono::milliseconds d);
    static std::string DatabaseFailure(const Source& s, const storage::DatabaseError& e, bool* transient,
                                       bool* reread_run);
    static void Finished(Source& s, bool full, long long records, long long rejected,
                         const storage::PageApplied& applied, long long deleted);
    net::awaitable<void> Backoff(Source& s, std::string error, bool transient,
                                 std::optional<std::chrono::seconds> wait = std::nullopt);
    void Failed(Source& s, const std::string& error, bool transient);
    void Healthy(Source& s);

    net::io_context& ioc_;
    storage::Database& db_;
    DbExecutor& exec_;
    std::function<void()> changed_;
    std::map<std::string, std::unique_ptr<Source>> sources_;
    bool stopping_ = false;
    bool syncing_ = false, resync_ = false;  // Sync is running; it must go round again
};

}  // namespace iblsync::daemon
