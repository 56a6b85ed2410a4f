#include "daemon/harvester.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <ctime>
#include <deque>
#include <random>

#include <openssl/evp.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/http_client.hpp"
#include "daemon/log.hpp"
#include "daemon/spawn.hpp"
#include "protocols/catalogue_record.hpp"
#include "protocols/holdings.hpp"
#include "protocols/marcxml.hpp"
#include "protocols/oai_client.hpp"
#include "protocols/sru_client.hpp"
#include "storage/database.hpp"

namespace iblsync::daemon {

namespace sru = protocols::sru;
// A page fetched, with its SRU envelope read. It never throws (a failure is
// kept in `error`), so that waiting for it together with the database work
// cannot cancel that work half-way.
struct FetchedPage {
    long long start = 0;
    std::optional<HttpAnswer> answer;
    std::string error;  // the request failed
    std::optional<Result<sru::Page>> page;
    // Set by Check, once per page: what keeps it from being applied ("" when
    // nothing does), whether that may pass by itself, and where the next
    // page starts (nullopt after the last) when nothing is wrong.
    std::string problem;
    bool transient = true;
    std::optional<long long> after;
};

namespace {
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

// Records applied in one transaction at most when pages wait: see Harvest.
constexpr long long kBatchRecords = 1000;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
net::awaitable<FetchedPage> FetchPage(const sru::HttpUrl* url, std::string target, long long start,
                                      std::chrono::seconds timeout, std::uint64_t max_bytes, HttpAbort* abort,
                                      const HttpHeaders* headers, HttpSession* session) {
    FetchedPage out;
    out.start = start;
    try {
        out.answer = co_await HttpGet(*url, target, timeout, max_bytes, abort, headers, session);
        out.page = sru::ParsePage(out.answer->body);
    } catch (const std::exception& e) {
        out.error = e.what();
    }
    co_return out;
}
#pragma GCC diagnostic pop

std::string Problem(const FetchedPage& f, const std::string& name, const std::string& url, bool* transient,
                    std::optional<long long>* after) {
    *transient = true;
    if (!f.answer || !f.page) return f.error.empty() ? "no answer" : f.error;
    const auto& page = *f.page;
    if (f.answer->status != 200 && (!page || page->diagnostics.empty())) {
        *transient = f.answer->status >= 500 || f.answer->status == 429 || f.answer->status == 408;
        return fmt::format("HTTP {} from {}{}", f.answer->status, url,
                           f.answer->status == 401 || f.answer->status == 403
                               ? fmt::format(" (check harvest.username and harvest.password of {})", name)
                               : "");
    }
    // A proxy's error page, a truncated answer: usually passes.
    if (!page) return fmt::format("not an SRU response from {}: {}", url, page.error());
    if (!page->diagnostics.empty()) {
        const auto& d = page->diagnostics.front();
        *transient = d.Transient();
        return fmt::format("SRU diagnostic {} {}{}", d.uri, d.message, d.details.empty() ? "" : " (" + d.details + ")");
    }
    auto next = sru::NextStart(*page, f.start);
    if (!next) {
        *transient = false;
        return next.error();
    }
    *after = next.value();
    return "";
}

// Fills the page's problem, transient and after.
void Check(FetchedPage* f, const HarvestSource& config) {
    f->problem = Problem(*f, config.name, config.url, &f->transient, &f->after);
}

}  // namespace

// One connection to a source, kept for the pages of a run, and what aborts
// the GET in flight on it.
struct Lane {
    HttpSession session;
    HttpAbort abort;
    bool busy = false;
};

struct Harvester::Source {
    HarvestSource config;
    sru::HttpUrl url;
    net::steady_timer timer;
    // config.concurrency connections; the first carries the page a run
    // waits for, all of them the pages fetched ahead.
    std::vector<std::unique_ptr<Lane>> lanes;
    HttpHeaders headers;  // with the source's credentials, if any
    bool paused = false;
    bool looping = false;  // Loop has been started
    int failures_in_row = 0;
    long long records = 0, failures = 0;  // since start
    long long pages = 0, transactions = 0;  // applied since start
    double last_success_unix = 0;         // 0: never
    std::string last_error;
    std::mt19937_64 random{std::random_device{}()};  // backoff jitter
    Source(net::io_context& ioc, HarvestSource c, sru::HttpUrl u)
        : config(std::move(c)), url(std::move(u)), timer(ioc) {
        for (int i = 0; i < std::max(1, config.concurrency); ++i) lanes.push_back(std::make_unique<Lane>());
    }
    void Abort() {
        for (auto& l : lanes) l->abort.Abort();
    }
    void Close() {  // the next attempt starts afresh
        for (auto& l : lanes) l->session.Close();
    }
};

// The pages of a run, fetched by FetchPages while the ones before them are
// applied: `ready` holds them in order, checked, for Harvest to take.
struct Harvester::Fetcher {
    std::deque<FetchedPage> ready;
    bool running = false;  // FetchPages has not returned yet
    bool stop = false;     // Harvest asks it to stop asking
    net::steady_timer have;  // Harvest waits on it: a page is ready, or FetchPages returned
    net::steady_timer wake;  // FetchPages waits on it: a page came in, room was made, or stop
    explicit Fetcher(net::io_context& ioc) : have(ioc), wake(ioc) {}
};

Harvester::Harvester(net::io_context& ioc, storage::Database& db, DbExecutor& exec, std::function<void()> changed)
    : ioc_(ioc), db_(db), exec_(exec), changed_(std::move(changed)) {}
Harvester::~Harvester() = default;

void Harvester::Start(std::vector<HarvestSource> sources) { Add(std::move(sources)); }

void Harvester::Add(std::vector<HarvestSource> sources) {
    bool added = false;
    for (auto& c : sources) {
        auto url = sru::ParseHttpUrl(c.url);  // checked when the config was read
        if (!url || sources_.contains(c.name) || stopping_) continue;
        added = true;
        const std::string name = c.name;
        auto source = std::make_unique<Source>(ioc_, std::move(c), std::move(url).value());
        if (!source->config.username.empty()) {
            const std::string plain = source->config.username + ":" + source->config.password;
            std::string b64(4 * ((plain.size() + 2) / 3) + 1, '\0');
            const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                          reinterpret_cast<const unsigned char*>(plain.data()),
                                          static_cast<int>(plain.size()));
            b64.resize(static_cast<std::size_t>(n));
            source->headers.authorization = "Basic " + b64;
        }
        sources_.emplace(name, std::move(source));
    }
    if (!added) return;
    if (syncing_)
        resync_ = true;
    else
        net::co_spawn(ioc_, Sync(), LogFailure{"harvest"});
}

void Harvester::Stop() {
    stopping_ = true;
    for (auto& [name, s] : sources_) {
        s->timer.cancel();
        s->Abort();
    }
}

bool Harvester::Wake(const std::string& name) {
    auto it = sources_.find(name);
    if (it == sources_.end()) return false;
    it->second->timer.cancel();
    return true;
}

void Harvester::SetPaused(const std::string& name, bool paused) {
    auto it = sources_.find(name);
    if (it == sources_.end()) return;
    it->second->paused = paused;
    it->second->timer.cancel();
}

void Harvester::Render(protocols::PrometheusText& out) const {
    if (sources_.empty()) return;
    out.Family("iblsync_harvest_failing", "gauge", "1 while a harvest source's pages fail.");
    for (const auto& [name, s] : sources_)
        out.Sample("iblsync_harvest_failing", {{"source", name}}, s->failures_in_row > 0 ? 1 : 0);
    out.Family("iblsync_harvest_failures_in_row", "gauge", "Failed attempts since the source's last good page.");
    for (const auto& [name, s] : sources_)
        out.Sample("iblsync_harvest_failures_in_row", {{"source", name}}, s->failures_in_row);
    out.Family("iblsync_harvest_records_total", "counter", "Records applied from the source since start.");
    for (const auto& [name, s] : sources_)
        out.Sample("iblsync_harvest_records_total", {{"source", name}}, static_cast<double>(s->records));
    out.Family("iblsync_harvest_pages_total", "counter", "Pages applied from the source since start.");
    for (const auto& [name, s] : sources_)
        out.Sample("iblsync_harvest_pages_total", {{"source", name}}, static_cast<double>(s->pages));
    out.Family("iblsync_harvest_transactions_total", "counter",
               "Transactions that applied the pages since start (pages that wait go in together).");
    for (const auto& [name, s] : sources_)
        out.Sample("iblsync_harvest_transactions_total", {{"source", name}}, static_cast<double>(s->transactions));
    out.Family("iblsync_harvest_failures_total", "counter", "Failed page attempts since start.");
    for (const auto& [name, s] : sources_)
        out.Sample("iblsync_harvest_failures_total", {{"source", name}}, static_cast<double>(s->failures));
    out.Family("iblsync_harvest_last_success_timestamp_seconds", "gauge",
               "Unix time the source's last run completed; 0 if never. Lag: time() - this.");
    for (const auto& [name, s] : sources_)
        out.Sample("iblsync_harvest_last_success_timestamp_seconds", {{"source", name}}, s->last_success_unix);
}

bool Harvester::Has(const std::string& name) const { return sources_.count(name) > 0; }

int Harvester::Failing() const {
    return static_cast<int>(std::count_if(sources_.begin(), sources_.end(),
                                          [](const auto& kv) { return kv.second->failures_in_row > 0; }));
}

net::awaitable<void> Harvester::Sleep(Source& s, std::chrono::milliseconds d) {
    if (stopping_) co_return;
    s.timer.expires_after(d);
    co_await s.timer.async_wait(kTuple);
}

// Once the database takes them, the sources are written to harvest_source
// (all of them: the table marks the others unconfigured); then each source
// not yet running gets its loop. One Sync at a time: a reload's Add while
// one runs makes it go round again with the new source.
net::awaitable<void> Harvester::Sync() {
    syncing_ = true;
    net::steady_timer wait(ioc_);
    for (int attempt = 0; !stopping_;) {
        std::vector<storage::HarvestSourceSpec> specs;
        for (const auto& [name, s] : sources_)
            specs.push_back({name, s->config.library, s->config.url, s->config.protocol});
        try {
            auto statuses = co_await exec_.Run([&] {
                storage::SyncHarvestSources(db_, specs);
                return storage::HarvestStatuses(db_);
            });
            const double now = static_cast<double>(std::time(nullptr));
            for (const auto& st : statuses)
                if (auto it = sources_.find(st.name); it != sources_.end() && st.seconds_since_success >= 0)
                    it->second->last_success_unix = now - static_cast<double>(st.seconds_since_success);
            for (const auto& spec : specs)
                if (auto& s = sources_.at(spec.name); !stopping_ && !std::exchange(s->looping, true))
                    net::co_spawn(ioc_, Loop(*s), LogFailure{"harvest source"});
            if (!std::exchange(resync_, false)) break;
            continue;
        } catch (const storage::DatabaseError& e) {
            if (attempt++ == 0)
                spdlog::warn("harvest sources not registered yet error={} action=\"retrying\"", Quote(e.what()));
        }
        wait.expires_after(std::chrono::seconds(2));
        co_await wait.async_wait(kTuple);
    }
    syncing_ = false;
}

void Harvester::Failed(Source& s, const std::string& error, bool transient) {
    const bool news = s.failures_in_row == 0;
    ++s.failures_in_row;
    ++s.failures;
    // Logged when the source starts failing and when the reason changes,
    // not at every retry.
    if (news || error != s.last_error)
        spdlog::warn("harvest failing source={} library={} error={} transient={} action=\"retrying with backoff\"",
                     s.config.name, s.config.library, Quote(error), transient);
    s.last_error = error;
    if (news && changed_) changed_();
}

void Harvester::Healthy(Source& s) {
    if (s.failures_in_row == 0) return;
    spdlog::info("harvest recovered source={} library={} after_failures={}", s.config.name, s.config.library,
                 s.failures_in_row);
    s.failures_in_row = 0;
    s.last_error.clear();
    if (changed_) changed_();
}

namespace {
std::string RegisterHint(const std::string& library) {
    return fmt::format(" (register it: iblctl library add {} ...)", library);
}
}  // namespace

// A run's failure in the database, in words for the operator. A library
// that is not registered is not transient, and the run is asked for again
// once it is (the run then takes the holdings mapping stored with it).
std::string Harvester::DatabaseFailure(const Source& s, const storage::DatabaseError& e, bool* transient,
                                       bool* reread_run) {
    const bool unregistered = e.sqlstate() == "IBL01";
    *transient = !unregistered;
    *reread_run = unregistered;
    return fmt::format("database: {}{}", e.what(), unregistered ? RegisterHint(s.config.library) : "");
}

// A run that came to its end: logged, with deletions a full run held back.
void Harvester::Finished(Source& s, bool full, long long records, long long rejected,
                         const storage::PageApplied& applied, long long deleted) {
    s.last_success_unix = static_cast<double>(std::time(nullptr));
    if (applied.deletions_refused)
        spdlog::error("harvest deletions held back source={} library={} would_delete={} live={} "
                      "max_delete_percent={} action=\"check the source; iblctl sync run {} --full "
                      "--allow-deletions applies them\"",
                      s.config.name, s.config.library, applied.would_delete, applied.live_before,
                      s.config.max_delete_percent, s.config.name);
    spdlog::info("harvest finished source={} library={} kind={} records={} rejected={} deleted={}", s.config.name,
                 s.config.library, full ? "full" : "incremental", records, rejected, deleted);
}

// A failed attempt: counted, logged when news, kept in the database, and
// waited out. Exponential backoff from 1 s to retry_max_seconds; a
// permanent failure starts at a quarter of the cap. Jitter: 50-100% of it.
// `wait`, when given, replaces the backoff.
net::awaitable<void> Harvester::Backoff(Source& s, std::string error, bool transient,
                                        std::optional<std::chrono::seconds> wait) {
    Failed(s, error, transient);
    try {
        co_await exec_.Run([&] {
            storage::RecordHarvestFailure(db_, s.config.name, error);
            return 0;
        });
    } catch (const storage::DatabaseError&) {
        // The database being down is the monitor's news; the retry tries again.
    }
    if (wait) {
        co_await Sleep(s, *wait);
        co_return;
    }
    const double cap = s.config.retry_max_seconds;
    double delay = std::min(cap, std::pow(2.0, std::min(s.failures_in_row - 1, 20)));
    if (!transient) delay = std::max(delay, cap / 4);
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    co_await Sleep(s, std::chrono::milliseconds(static_cast<long long>(delay * jitter(s.random) * 1000)));
}

net::awaitable<void> Harvester::Loop(Source& s) {
    storage::RunPolicy policy;
    policy.interval = std::chrono::minutes(s.config.interval_minutes);
    policy.full_interval = std::chrono::hours(s.config.full_interval_hours);
    const bool oai = s.config.protocol == "oai";
    policy.incremental_possible = oai || !s.config.incremental_query.empty();
    while (!stopping_) {
        std::chrono::seconds due_in{0};
        std::optional<storage::HarvestRun> run;
        bool unreadable = false;
        try {
            run = co_await exec_.Run([&] { return storage::StartOrResumeRun(db_, s.config.name, policy, &due_in); });
        } catch (const storage::DatabaseError& e) {
            spdlog::debug("harvest cannot read its state source={} error={}", s.config.name, Quote(e.what()));
            unreadable = true;
        }
        if (unreadable) {
            co_await Sleep(s, std::chrono::seconds(2));
            continue;
        }
        if (!run) {
            // Asked again at least every minute: pause, resume and run
            // requests may come from another process (iblctl on a second
            // node of the same database is not expected, but costs nothing).
            co_await Sleep(s, std::min<std::chrono::milliseconds>(due_in, std::chrono::seconds(60)));
            continue;
        }
        if (run->holdings_mapping.empty()) {
            // Not registered yet. Harvesting now would read the copies with
            // no mapping, and keep doing so after the library is registered
            // mid-run: wait for it instead.
            const std::string error = fmt::format("database: library {} is not registered{}", s.config.library,
                                                  RegisterHint(s.config.library));
            co_await Backoff(s, error, false, std::chrono::seconds(std::min(2, s.config.retry_max_seconds)));
            continue;
        }
        spdlog::info("harvest {} source={} library={} kind={} position={}", run->resumed ? "resumed" : "started",
                     s.config.name, s.config.library, run->kind == storage::RunKind::kFull ? "full" : "incremental",
                     run->next_position);
        if (oai) co_await HarvestOai(s, *run);
        else co_await Harvest(s, *run);
    }
}

net::awaitable<void> Harvester::Harvest(Source& s, const storage::HarvestRun& run) {
    const bool full = run.kind == storage::RunKind::kFull;
    auto mapping = protocols::ParseHoldingsMapping(run.holdings_mapping);
    if (!mapping) mapping = protocols::ParseHoldingsMapping("none");  // as the push API does
    sru::PageRequest req;
    req.version = s.config.version;
    req.record_schema = s.config.record_schema;
    req.maximum = s.config.page_size;
    req.query = full ? s.config.query : sru::QueryWithSince(s.config.incremental_query, run.since);
    long long start = run.next_position;
    spdlog::debug("harvest query source={} query={}", s.config.name, Quote(req.query));
    long long records = 0, rejected_total = 0;
    const auto timeout = std::chrono::seconds(s.config.timeout_seconds);
    // Pages are fetched (FetchPages) while the ones before them are
    // applied: the source and the database work at the same time, and the
    // harvest goes at the pace of the slower of the two. Fetching does not
    // wait for a transaction to end, so the source is never left idle
    // between them. Pages that came in meanwhile are applied together, up
    // to kBatchRecords in one transaction: when the database is the slower
    // side, the cost of a transaction (its merge statements and its durable
    // commit) is shared by more records. Fetching runs at most max_ahead
    // pages ahead of what was applied.
    Fetcher fetcher(ioc_);
    const std::size_t max_ahead =
        static_cast<std::size_t>(std::max<long long>(2, kBatchRecords / std::max(1, s.config.page_size)));
    // Turns a page's records into changes; the rejected ones are counted and logged.
    auto collect = [&](const sru::Page& page, long long at, std::vector<storage::RecordChange>* changes) {
        long long rejected = 0;
        std::string first_reason;
        for (const auto& rec : page.records) {
            std::string reason;
            if (rec.diagnostic) {
                reason = fmt::format("surrogate diagnostic {} {}", rec.diagnostic->uri, rec.diagnostic->details);
            } else if (auto marc = protocols::marc::ParseMarcXmlRecord(rec.data); !marc) {
                reason = marc.error();
            } else if (auto described = protocols::DescribeRecord(marc.value(), mapping.value(), s.config.library);
                       !described) {
                reason = described.error();
            } else {
                changes->push_back(storage::RecordChange::Upsert(std::move(described).value()));
                continue;
            }
            ++rejected;
            if (first_reason.empty())
                first_reason = fmt::format("record {}: {}", rec.position ? rec.position : at + rejected, reason);
        }
        if (rejected > 0)
            spdlog::info("harvest rejected records source={} position={} rejected={} first={}", s.config.name, at,
                         rejected, Quote(first_reason));
        return rejected;
    };
    while (!stopping_ && !s.paused) {
        std::string error;
        bool transient = true, reread_run = false;
        try {
            const auto fetch_start = std::chrono::steady_clock::now();
            if (!fetcher.running && (fetcher.ready.empty() || fetcher.ready.front().start != start)) {
                fetcher.ready.clear();
                fetcher.stop = false;
                fetcher.running = true;
                net::co_spawn(ioc_, FetchPages(&s, &req, start, &fetcher, max_ahead, timeout), net::detached);
            }
            while (fetcher.ready.empty() && fetcher.running) {
                fetcher.have.expires_at(net::steady_timer::time_point::max());
                co_await fetcher.have.async_wait(kTuple);
            }
            if (stopping_ || s.paused) break;
            if (fetcher.ready.empty() || fetcher.ready.front().start != start)
                throw HttpFailure(fmt::format("the page at {} did not come", start));  // asked again after a wait
            FetchedPage first = std::move(fetcher.ready.front());
            fetcher.ready.pop_front();
            fetcher.wake.cancel();  // room for one more
            const auto fetched = std::chrono::steady_clock::now();
            transient = first.transient;
            if (!first.problem.empty()) throw HttpFailure(first.problem);
            std::optional<long long> after = first.after;
            // The pages that came in meanwhile, as far as they are good: a
            // bad one stays first in line and fails by itself next time.
            std::vector<FetchedPage> batch;
            long long total = (*first.page)->number_of_records;
            std::size_t in_batch = (*first.page)->records.size();
            batch.push_back(std::move(first));
            auto& ahead = fetcher.ready;
            while (after && !ahead.empty() && ahead.front().start == *after &&
                   in_batch < static_cast<std::size_t>(kBatchRecords)) {
                if (!ahead.front().problem.empty()) break;
                in_batch += (*ahead.front().page)->records.size();
                total = (*ahead.front().page)->number_of_records;
                after = ahead.front().after;
                batch.push_back(std::move(ahead.front()));
                ahead.pop_front();
            }
            fetcher.wake.cancel();
            const int pages = static_cast<int>(batch.size());
            std::vector<storage::RecordChange> changes;
            long long rejected = 0;
            double parse_ms = 0;
            // The records are read on the database's thread, inside the same
            // wait as the transaction: the source is asked for the next
            // pages meanwhile and does not wait for the parsing either.
            auto apply = [&] {
                const auto began = std::chrono::steady_clock::now();
                changes.clear();  // as if new, should this ever run twice
                rejected = 0;
                for (const auto& f : batch) rejected += collect(**f.page, f.start, &changes);
                parse_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began).count();
                return storage::ApplyHarvestPage(db_, s.config.name, run.started_at, start, changes, rejected, total,
                                                 after, s.config.max_delete_percent);
            };
            const auto parsed = std::chrono::steady_clock::now();
            storage::PageApplied applied = co_await exec_.Run(apply);
            auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
            spdlog::debug(
                "harvest page source={} start={} pages={} records={} fetch_ms={:.1f} parse_ms={:.1f} apply_ms={:.1f}",
                s.config.name, start, pages, changes.size(), ms(fetch_start, fetched), parse_ms,
                ms(parsed, std::chrono::steady_clock::now()) - parse_ms);
            Healthy(s);
            records += static_cast<long long>(changes.size());
            s.records += static_cast<long long>(changes.size());
            s.pages += pages;
            ++s.transactions;
            rejected_total += rejected;
            if (!after) {
                Finished(s, full, records, rejected_total, applied, applied.deleted_absent);
                break;
            }
            start = *after;
            continue;
        } catch (const HttpFailure& e) {
            error = e.what();
        } catch (const storage::HarvestConflict& e) {
            spdlog::warn("harvest run moved on source={} error={} action=\"asking for the run again\"",
                         s.config.name, Quote(e.what()));
            break;
        } catch (const storage::DatabaseError& e) {
            error = DatabaseFailure(s, e, &transient, &reread_run);
        }
        if (stopping_ || s.paused) break;
        co_await StopFetching(&fetcher);
        fetcher.ready.clear();
        s.Close();
        co_await Backoff(s, error, transient);
        if (reread_run) break;
    }
    // The pages asked for are waited for: their slots live in FetchPages'
    // frame, and this frame holds the request it reads.
    co_await StopFetching(&fetcher);
}

net::awaitable<void> Harvester::StopFetching(Fetcher* f) {
    f->stop = true;
    f->wake.cancel();
    while (f->running) {
        f->have.expires_at(net::steady_timer::time_point::max());
        co_await f->have.async_wait(kTuple);
    }
}

namespace {
// A page asked for ahead, filled in when its answer is there.
struct Slot {
    long long start = 0;
    Lane* lane = nullptr;
    bool stale = false;  // asked for on a guess that proved wrong: dropped when it comes
    std::optional<FetchedPage> page;
};

// Fetches one page into its slot on its lane, then wakes the waiter.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
net::awaitable<void> FetchInto(Slot* slot, const sru::HttpUrl* url, std::string target, std::chrono::seconds timeout,
                               std::uint64_t max_bytes, const HttpHeaders* headers, net::steady_timer* wake) {
    auto page = co_await FetchPage(url, std::move(target), slot->start, timeout, max_bytes, &slot->lane->abort,
                                   headers, &slot->lane->session);
    slot->page = std::move(page);
    slot->lane->busy = false;
    wake->cancel();
}
#pragma GCC diagnostic pop
}  // namespace

// Fetches the pages from `from` on into f->ready, at most `max_pages` in
// line (ready and asked for), until the last page, a bad one, or f->stop.
// With concurrency above 1, up to that many pages are asked for at once,
// each on its own connection: the source then always has the next page to
// work on, instead of waiting for us to read the one before and ask again.
// Where the pages after the first start is a guess (the page size on from
// there); a page shorter than asked for (a source that caps
// maximumRecords) proves it wrong, and the pages asked for on that guess
// are dropped and asked for again where they really start.
net::awaitable<void> Harvester::FetchPages(Source* s, const sru::PageRequest* base, long long from, Fetcher* f,
                                           std::size_t max_pages, std::chrono::seconds timeout) {
    // It must not throw (it runs detached): every failure is a page with
    // its problem. Every page asked for is waited for before it returns,
    // since the slots live in this frame.
    std::deque<std::unique_ptr<Slot>> flight;
    long long ask = from;     // where the next page to ask for starts (a guess after the first)
    long long expect = from;  // where the next page in `ready` must start
    long long step = std::max(1, s->config.page_size);  // records a page brings, as far as we know
    long long total = -1;                                // records in the result, once a page said so
    bool asking = from > 0;
    auto more = [&] { return asking && !f->stop && !stopping_ && !s->paused; };
    while (true) {
        // Nothing past numberOfRecords is asked for on a guess; the page
        // the last one pointed to always is (the main loop judges it).
        // At most `concurrency` pages are asked for and not yet taken in
        // order: a page that came back before the one ahead of it still
        // counts, so a slow first page (no total known yet) cannot let the
        // guesses run on past the end of the result.
        while (more() && ask > 0 && (total < 0 || ask <= total || (flight.empty() && ask == expect)) &&
               f->ready.size() + flight.size() < max_pages && flight.size() < s->lanes.size()) {
            Lane* lane = nullptr;
            for (auto& l : s->lanes)
                if (!l->busy) {
                    lane = l.get();
                    break;
                }
            if (!lane) break;
            std::string target;
            try {
                sru::PageRequest r = *base;
                r.start = ask;
                target = sru::PageTarget(s->url, r);
            } catch (const std::exception& e) {
                // Cannot even be asked for: a page that says why, in its place.
                FetchedPage bad;
                bad.start = ask;
                bad.error = e.what();
                bad.problem = e.what();
                bad.transient = false;
                if (flight.empty() && ask == expect) f->ready.push_back(std::move(bad));
                asking = false;
                break;
            }
            auto slot = std::make_unique<Slot>();
            slot->start = ask;
            slot->lane = lane;
            lane->busy = true;
            net::co_spawn(ioc_, FetchInto(slot.get(), &s->url, std::move(target), timeout, s->config.max_page_bytes,
                                          &s->headers, &f->wake),
                          net::detached);
            flight.push_back(std::move(slot));
            spdlog::debug("harvest ask source={} start={} expect={} total={} in_flight={} ready={}", s->config.name,
                          ask, expect, total, flight.size(), f->ready.size());
            ask += step;
        }
        if (flight.empty() && !more()) break;
        // Nothing else runs on this thread between a check and its wait, so
        // whatever would end the wait finds it to cancel.
        if (flight.empty() || !flight.front()->page) {
            f->wake.expires_at(net::steady_timer::time_point::max());
            co_await f->wake.async_wait(kTuple);
            continue;
        }
        const bool stale = flight.front()->stale;
        FetchedPage page = std::move(*flight.front()->page);
        flight.pop_front();
        if (!asking || f->stop || stale || page.start != expect) continue;  // not wanted any more, or a wrong guess
        try {
            Check(&page, s->config);
        } catch (const std::exception& e) {
            page.problem = e.what();
            page.transient = true;
        }
        const bool go_on = page.problem.empty() && page.after;
        if (page.page && *page.page) total = (**page.page).number_of_records;
        const long long start = page.start;
        const std::optional<long long> after = page.after;
        f->ready.push_back(std::move(page));
        f->have.cancel();
        if (!go_on) {
            asking = false;
            continue;
        }
        expect = *after;
        if (expect != start + step) {
            // The source's pages are not as long as we guessed: what was
            // asked for on that guess is dropped, and asked for again.
            step = std::max(1LL, expect - start);
            for (auto& fl : flight) fl->stale = true;
            ask = expect;
        }
    }
    f->running = false;
    f->have.cancel();
}

}  // namespace iblsync::daemon

namespace iblsync::daemon {
namespace {

namespace oai = protocols::oai;

// How long a repository that answered 503 asks us to wait: Retry-After in
// seconds (an HTTP date or nothing: a minute), within 1 s .. 1 h.
std::chrono::seconds RetryAfter(const std::string& header) {
    long long s = 60;
    if (!header.empty() && header.find_first_not_of("0123456789") == std::string::npos && header.size() < 8)
        s = std::stoll(header);
    return std::chrono::seconds(std::clamp<long long>(s, 1, 3600));
}

// The source asked us to wait (HTTP 503 with Retry-After): not a failure.
struct Busy {
    std::chrono::seconds wait;
};

// A page that cannot be applied, and whether that may pass by itself.
class SourceFailure : public std::runtime_error {
public:
    SourceFailure(std::string what, bool transient) : std::runtime_error(std::move(what)), transient(transient) {}
    bool transient;
};

}  // namespace

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {

// The next ListRecords page, asked for while the one before is applied:
// its token is known before then, so the repository and the database work
// at the same time instead of waiting for each other.
struct OaiAhead {
    std::string token;                 // the resumption token it asks with; "" if none asked
    bool running = false;              // the GET is in flight
    std::optional<HttpAnswer> answer;  // what came
    std::string failure;               // or why nothing came
    net::steady_timer done;            // cancelled when the GET ends
    explicit OaiAhead(net::io_context& ioc) : done(ioc) {}
};

// Runs detached, so it must not throw: a failure is kept for the run to
// report when it takes the page.
net::awaitable<void> FetchAhead(OaiAhead* ahead, const sru::HttpUrl* url, std::string target,
                                std::chrono::seconds timeout, std::uint64_t max_bytes, Lane* lane,
                                const HttpHeaders* headers) {
    try {
        ahead->answer = co_await HttpGet(*url, std::move(target), timeout, max_bytes, &lane->abort, headers,
                                         &lane->session);
    } catch (const std::exception& e) {
        ahead->failure = e.what();
    }
    ahead->running = false;
    ahead->done.cancel();
}

// Waits until no GET ahead is in flight (the lane is free again).
net::awaitable<void> WaitAhead(OaiAhead* ahead) {
    while (ahead->running) {
        ahead->done.expires_at(net::steady_timer::time_point::max());
        co_await ahead->done.async_wait(kTuple);
    }
}

}  // namespace

net::awaitable<void> Harvester::HarvestOai(Source& s, const storage::HarvestRun& run) {
    const bool full = run.kind == storage::RunKind::kFull;
    auto mapping = protocols::ParseHoldingsMapping(run.holdings_mapping);
    if (!mapping) mapping = protocols::ParseHoldingsMapping("none");
    const auto timeout = std::chrono::seconds(s.config.timeout_seconds);
    Lane& lane = *s.lanes.front();
    std::string token = run.oai_token, from = run.oai_from, latest = run.oai_run_latest;
    std::string granularity;  // from Identify, once per run
    long long page_no = run.next_position, records = 0, rejected_total = 0;
    OaiAhead ahead(ioc_);
    auto get = [&](std::string target) {
        return HttpGet(s.url, std::move(target), timeout, s.config.max_page_bytes, &lane.abort, &s.headers,
                       &lane.session);
    };
    // A repository's answer that is not a page: busy, or an HTTP error.
    auto check = [&](const HttpAnswer& a, const char* what) -> std::optional<Busy> {
        if (a.status == 503 && !a.retry_after.empty()) return Busy{RetryAfter(a.retry_after)};
        if (a.status != 200)
            throw SourceFailure(
                fmt::format("HTTP {} from {} ({}){}", a.status, s.config.url, what,
                            a.status == 401 || a.status == 403
                                ? fmt::format(" (check harvest.username and harvest.password of {})", s.config.name)
                                : ""),
                a.status >= 500 || a.status == 429 || a.status == 408);
        return std::nullopt;
    };
    while (!stopping_ && !s.paused) {
        std::string error;
        bool transient = true, reread_run = false;
        std::optional<Busy> busy;
        try {
            if (granularity.empty()) {
                auto answer = co_await get(oai::VerbTarget(s.url.path, "Identify"));
                busy = check(answer, "Identify");
                if (!busy) {
                    auto facts = oai::ParseIdentify(answer.body);
                    if (!facts)
                        throw SourceFailure(
                            fmt::format("not an OAI-PMH repository at {}: {}", s.config.url, facts.error()), false);
                    granularity = facts->granularity.empty() ? "YYYY-MM-DD" : facts->granularity;
                    spdlog::debug("harvest identify source={} repository={} granularity={} deleted_record={}",
                                  s.config.name, Quote(facts->repository_name), granularity, facts->deleted_record);
                    if (facts->deleted_record == "no" && !full)
                        spdlog::info("harvest source keeps no deletions source={} action=\"deleted records are only "
                                     "found by full runs (full_interval_hours)\"",
                                     s.config.name);
                }
            }
            if (!busy) {
                oai::ListRecordsRequest req;
                req.metadata_prefix = s.config.metadata_prefix;
                req.set = s.config.set;
                if (!token.empty()) req.resumption_token = token;
                else if (!from.empty()) req.from = oai::AtGranularity(from, granularity);
                // The page asked for ahead, if it is this one; else asked now.
                co_await WaitAhead(&ahead);
                const bool asked = !token.empty() && ahead.token == token;
                std::optional<HttpAnswer> came = std::exchange(ahead.answer, std::nullopt);
                const std::string failed = std::exchange(ahead.failure, {});
                ahead.token.clear();
                if (asked && !came) throw HttpFailure(failed);
                HttpAnswer answer;
                if (asked)
                    answer = std::move(*came);
                else
                    answer = co_await get(oai::ListRecordsTarget(s.url.path, req));
                busy = check(answer, "ListRecords");
                if (!busy) {
                    auto page = oai::ParseListRecords(answer.body);
                    if (!page)
                        throw SourceFailure(
                            fmt::format("not an OAI-PMH response from {}: {}", s.config.url, page.error()), true);
                    if (page->HasError("badResumptionToken") && !token.empty()) {
                        // Expired or forgotten: the list again, from what this
                        // run applied last (never from the very start).
                        const std::string again = latest.empty() ? from : latest;
                        const bool moved = !co_await exec_.Run([&] {
                            return storage::RestartOaiList(db_, s.config.name, run.started_at, page_no, again);
                        });
                        if (moved) break;
                        spdlog::warn("harvest resumption token refused source={} page={} action=\"asking for the "
                                     "list again from {}\"",
                                     s.config.name, page_no, again.empty() ? "its start" : again);
                        token.clear();
                        from = again;
                        continue;
                    }
                    if (!page->HasError("noRecordsMatch") && !page->errors.empty())
                        throw SourceFailure(
                            fmt::format("OAI-PMH error {} from {}: {}", page->errors.front().code, s.config.url,
                                        page->errors.front().message),
                            false);
                    std::optional<long long> next;
                    if (!page->resumption_token.empty()) next = page_no + 1;
                    storage::OaiPageCursor cursor{page->resumption_token, ""};
                    std::vector<storage::RecordChange> changes;
                    long long rejected = 0;
                    auto apply = [&] {
                        changes.clear();
                        rejected = 0;
                        std::string first_reason;
                        for (const auto& item : page->items) {
                            cursor.latest_datestamp = std::max(cursor.latest_datestamp, item.datestamp);
                            std::string reason;
                            if (item.deleted) {
                                auto local = oai::LocalIdOf(item.identifier);
                                if (local) {
                                    changes.push_back(storage::RecordChange::Delete(local.value()));
                                    continue;
                                }
                                reason = local.error();
                            } else if (auto described =
                                           oai::DescribeHarvested(item, mapping.value(), s.config.library);
                                       !described) {
                                reason = described.error();
                            } else {
                                changes.push_back(storage::RecordChange::Upsert(std::move(described).value()));
                                continue;
                            }
                            ++rejected;
                            if (first_reason.empty()) first_reason = fmt::format("{}: {}", item.identifier, reason);
                        }
                        if (rejected > 0)
                            spdlog::info("harvest rejected records source={} page={} rejected={} first={}",
                                         s.config.name, page_no, rejected, Quote(first_reason));
                        return storage::ApplyHarvestPage(db_, s.config.name, run.started_at, page_no, changes,
                                                         rejected, std::max<long long>(0, page->complete_list_size),
                                                         next, s.config.max_delete_percent, &cursor);
                    };
                    if (next && !stopping_ && !s.paused) {
                        oai::ListRecordsRequest more = req;
                        more.resumption_token = page->resumption_token;
                        ahead.token = page->resumption_token;
                        ahead.running = true;
                        net::co_spawn(ioc_,
                                      FetchAhead(&ahead, &s.url, oai::ListRecordsTarget(s.url.path, more), timeout,
                                                 s.config.max_page_bytes, &lane, &s.headers),
                                      net::detached);
                    }
                    storage::PageApplied applied = co_await exec_.Run(apply);
                    Healthy(s);
                    records += static_cast<long long>(changes.size());
                    s.records += static_cast<long long>(changes.size());
                    ++s.pages;
                    ++s.transactions;
                    rejected_total += rejected;
                    latest = std::max(latest, cursor.latest_datestamp);
                    if (!next) {
                        // Deleted headers count as well as what the full run did not see.
                        Finished(s, full, records, rejected_total, applied, applied.summary.deleted);
                        break;
                    }
                    token = page->resumption_token;
                    ++page_no;
                    continue;
                }
            }
        } catch (const SourceFailure& e) {
            error = e.what();
            transient = e.transient;
        } catch (const HttpFailure& e) {
            error = e.what();
        } catch (const storage::HarvestConflict& e) {
            spdlog::warn("harvest run moved on source={} error={} action=\"asking for the run again\"",
                         s.config.name, Quote(e.what()));
            break;
        } catch (const storage::DatabaseError& e) {
            error = DatabaseFailure(s, e, &transient, &reread_run);
        }
        if (stopping_ || s.paused) break;
        co_await WaitAhead(&ahead);  // a page asked ahead of one that failed is asked again with it
        ahead.token.clear();
        if (busy) {
            // OAI-PMH flow control: the repository says when to come back.
            spdlog::info("harvest source busy source={} retry_after_seconds={}", s.config.name, busy->wait.count());
            s.Close();
            co_await Sleep(s, busy->wait);
            continue;
        }
        s.Close();
        co_await Backoff(s, error, transient);
        if (reread_run) break;
    }
    co_await WaitAhead(&ahead);  // it uses the lane and this frame
}
#pragma GCC diagnostic pop

}  // namespace iblsync::daemon
