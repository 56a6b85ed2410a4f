#include "daemon/file_drop.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/log.hpp"
#include "protocols/holdings.hpp"
#include "storage/catalogue_import.hpp"
#include "storage/errors.hpp"
#include "storage/file_drop.hpp"
#include "storage/record_files.hpp"

namespace iblsync::daemon {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

// How many rejected records a report lists; the rest are counted.
constexpr std::size_t kReportNotes = 1000;

// A load cut off by Stop().
struct Stopped {};

// Files the directory holds that are not exports: hidden files, files still
// being written under a temporary name, our own reports.
bool Ignored(const std::string& name) {
    auto ends = [&](const char* tail) {
        const std::size_t n = std::strlen(tail);
        return name.size() >= n && name.compare(name.size() - n, n, tail) == 0;
    };
    return name.empty() || name.front() == '.' || ends(".part") || ends(".tmp") || ends("~") || ends(".report");
}

std::string UtcNow() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// Where a file goes in done/ or failed/: its own name, or with .2, .3 ...
// when a file of that name went there before.
fs::path Destination(const fs::path& dir, const std::string& name) {
    fs::path p = dir / name;
    for (int n = 2; fs::exists(p) || fs::exists(p.string() + ".report"); ++n) p = dir / fmt::format("{}.{}", name, n);
    return p;
}

struct Report {
    std::string outcome;  // "loaded", "loaded before (found again after a restart)", "failed: ..."
    storage::RecordFileCounts counts;
    storage::ImportSummary summary;
    bool summarised = false;
    double seconds = 0;
    std::vector<storage::RecordNote> notes;
    long long notes_left_out = 0;
};

// Moves the file to `dir` and writes its report beside it. The report is
// written first under a temporary name, so that a report never describes a
// file that is not there yet.
std::string Settle(const fs::path& file, const fs::path& dir, const FileDrop& drop, const Report& r) {
    const fs::path to = Destination(dir, file.filename().string());
    const std::string tmp = to.string() + ".report.tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << fmt::format("file        {}\ndrop        {} (library {}, mode {})\noutcome     {}\nat          {}\n",
                           file.filename().string(), drop.name, drop.library, drop.full ? "full" : "incremental",
                           r.outcome, UtcNow());
        out << fmt::format("records     {} read, {} rejected, {} with warnings\n", r.counts.records, r.counts.rejected,
                           r.counts.warnings);
        if (r.summarised) {
            const auto& s = r.summary;
            out << fmt::format(
                "new         {}\nchanged     {}\nunchanged   {}\ndeleted     {}\nduplicates  {} (the last occurrence "
                "counts)\ncopies      {} new, {} changed, {} deleted\nworks       {} new, {} merged\n",
                s.inserted, s.updated, s.unchanged, s.deleted, s.duplicates, s.holdings_inserted, s.holdings_updated,
                s.holdings_deleted, s.works_created, s.works_merged);
            if (s.first_seq) out << fmt::format("change log  {} .. {}\n", s.first_seq, s.last_seq);
            out << fmt::format("seconds     {:.1f}\n", r.seconds);
        }
        if (!r.notes.empty()) {
            out << "\n# byte offset\trecord number\treason\n";
            for (const auto& n : r.notes)
                out << n.offset << '\t' << n.index << '\t' << (n.warning ? "warning (record kept): " : "") << n.text
                    << '\n';
            if (r.notes_left_out) out << fmt::format("# {} more not listed\n", r.notes_left_out);
        }
        out.flush();
        if (!out) return fmt::format("cannot write {}: {}", tmp, std::strerror(errno));
    }
    std::error_code ec;
    fs::rename(file, to, ec);
    if (ec) return fmt::format("cannot move {} to {}: {}", file.string(), to.string(), ec.message());
    fs::rename(tmp, to.string() + ".report", ec);
    if (ec) return fmt::format("cannot rename {}: {}", tmp, ec.message());
    return {};
}

// Failures after which the same file may well load: the database went away,
// or the transaction lost a conflict (40xxx: serialization, deadlock).
bool Transient(const storage::DatabaseError& e) {
    return dynamic_cast<const storage::DatabaseUnavailable*>(&e) != nullptr || e.sqlstate().rfind("40", 0) == 0 ||
           e.sqlstate().rfind("57", 0) == 0 || e.sqlstate().rfind("53", 0) == 0;
}

}  // namespace

struct FileDrops::Drop {
    FileDrop config;
    bool paused = false;
    Clock::time_point next_scan{};
    int failures_in_row = 0;
    long long files_loaded = 0, files_failed = 0, records = 0, failures = 0;  // since start
    double last_success_unix = 0;
    std::string last_error;
    // The failure is the drop's (directory, library, database), not a
    // file's: it ends when the cause does, not only with the next good file.
    bool drop_failure = false;
};

FileDrops::FileDrops(storage::Database& db, std::string conninfo, std::function<void()> changed)
    : db_(db), conninfo_(std::move(conninfo)), changed_(std::move(changed)) {}

FileDrops::~FileDrops() {
    Stop();
    Join();
}

void FileDrops::Start(std::vector<FileDrop> drops) {
    for (auto& d : drops) {
        const std::string name = d.name;
        auto drop = std::make_unique<Drop>();
        drop->config = std::move(d);
        drops_.emplace(name, std::move(drop));
    }
    if (!drops_.empty()) thread_ = std::thread([this] { Loop(); });
}

void FileDrops::Stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
}

void FileDrops::Join() {
    if (thread_.joinable()) thread_.join();
}

bool FileDrops::Has(const std::string& name) const { return drops_.count(name) > 0; }

void FileDrops::Wake(const std::string& name) {
    auto it = drops_.find(name);
    if (it == drops_.end()) return;
    {
        std::lock_guard lock(mu_);
        it->second->next_scan = Clock::time_point{};
        wake_ = true;
    }
    cv_.notify_all();
}

void FileDrops::SetPaused(const std::string& name, bool paused) {
    auto it = drops_.find(name);
    if (it == drops_.end()) return;
    {
        std::lock_guard lock(mu_);
        it->second->paused = paused;
        it->second->next_scan = Clock::time_point{};
        wake_ = true;
    }
    cv_.notify_all();
}

int FileDrops::Failing() const {
    std::lock_guard lock(mu_);
    return static_cast<int>(
        std::count_if(drops_.begin(), drops_.end(), [](const auto& kv) { return kv.second->failures_in_row > 0; }));
}

void FileDrops::Render(protocols::PrometheusText& out) const {
    if (drops_.empty()) return;
    std::lock_guard lock(mu_);
    out.Family("iblsync_drop_failing", "gauge", "1 while a drop directory cannot be loaded or its last file failed.");
    for (const auto& [name, d] : drops_) out.Sample("iblsync_drop_failing", {{"drop", name}}, d->failures_in_row > 0 ? 1 : 0);
    out.Family("iblsync_drop_files_total", "counter", "Files taken from the drop directory since start, by outcome.");
    for (const auto& [name, d] : drops_) {
        out.Sample("iblsync_drop_files_total", {{"drop", name}, {"outcome", "loaded"}},
                   static_cast<double>(d->files_loaded));
        out.Sample("iblsync_drop_files_total", {{"drop", name}, {"outcome", "failed"}},
                   static_cast<double>(d->files_failed));
    }
    out.Family("iblsync_drop_records_total", "counter", "Records loaded from the drop's files since start.");
    for (const auto& [name, d] : drops_)
        out.Sample("iblsync_drop_records_total", {{"drop", name}}, static_cast<double>(d->records));
    out.Family("iblsync_drop_last_success_timestamp_seconds", "gauge",
               "Unix time the drop's last file was loaded, since start; 0 if none.");
    for (const auto& [name, d] : drops_)
        out.Sample("iblsync_drop_last_success_timestamp_seconds", {{"drop", name}}, d->last_success_unix);
}

void FileDrops::Failed(Drop& d, const std::string& error, bool drop_failure) {
    d.drop_failure = drop_failure;
    bool news;
    {
        std::lock_guard lock(mu_);
        news = d.failures_in_row == 0;
        ++d.failures_in_row;
        ++d.failures;
    }
    // Once when the drop starts failing and when the reason changes.
    if (news || error != d.last_error)
        spdlog::warn("drop failing drop={} library={} error={}", d.config.name, d.config.library, Quote(error));
    d.last_error = error;
    if (news && changed_) changed_();
}

void FileDrops::Healthy(Drop& d) {
    int was;
    {
        std::lock_guard lock(mu_);
        was = d.failures_in_row;
        d.failures_in_row = 0;
    }
    d.drop_failure = false;
    if (was == 0) return;
    spdlog::info("drop recovered drop={} library={} after_failures={}", d.config.name, d.config.library, was);
    d.last_error.clear();
    if (changed_) changed_();
}

void FileDrops::Loop() {
    // The drops' rows first (paused survives a restart); until the database
    // answers, nothing is loaded.
    for (;;) {
        try {
            std::vector<storage::FileDropSpec> specs;
            for (const auto& [name, d] : drops_) specs.push_back({name, d->config.library, d->config.directory});
            storage::SyncFileDrops(db_, specs);
            for (const auto& s : storage::FileDropStatuses(db_)) {
                auto it = drops_.find(s.name);
                if (it == drops_.end()) continue;
                std::lock_guard lock(mu_);
                it->second->paused = s.paused;
            }
            break;
        } catch (const storage::DatabaseError& e) {
            spdlog::debug("drops cannot read their state error={}", Quote(e.what()));
        }
        std::unique_lock lock(mu_);
        if (cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; })) return;
    }
    for (;;) {
        Clock::time_point next = Clock::now() + std::chrono::hours(1);
        for (auto& [name, d] : drops_) {
            {
                std::lock_guard lock(mu_);
                if (stopping_) return;
                if (d->paused || Clock::now() < d->next_scan) {
                    if (!d->paused) next = std::min(next, d->next_scan);
                    continue;
                }
            }
            try {
                Scan(*d);
            } catch (const Stopped&) {
                return;
            } catch (const std::exception& e) {
                Failed(*d, e.what(), true);
            }
            std::lock_guard lock(mu_);
            d->next_scan = Clock::now() + std::chrono::seconds(d->config.poll_seconds);
            next = std::min(next, d->next_scan);
        }
        std::unique_lock lock(mu_);
        cv_.wait_until(lock, next, [&] { return stopping_ || wake_; });
        wake_ = false;
        if (stopping_) return;
    }
}

void FileDrops::Scan(Drop& d) {
    const fs::path dir(d.config.directory);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        const std::string why = fmt::format("directory {} does not exist (create it, writable by the daemon's user)",
                                            dir.string());
        storage::RecordDropError(db_, d.config.name, why);
        Failed(d, why, true);
        return;
    }
    for (const char* sub : {"done", "failed"}) {
        fs::create_directory(dir / sub, ec);
        if (ec) {
            const std::string why = fmt::format("cannot make {}: {}", (dir / sub).string(), ec.message());
            storage::RecordDropError(db_, d.config.name, why);
            Failed(d, why, true);
            return;
        }
    }
    // The files that have not changed for settle_seconds, oldest first.
    struct Candidate {
        long long mtime, size;
        std::string name;
        bool operator<(const Candidate& o) const { return std::tie(mtime, name) < std::tie(o.mtime, o.name); }
    };
    std::vector<Candidate> ready;
    const long long now = static_cast<long long>(std::time(nullptr));
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (Ignored(name)) continue;
        struct stat st{};
        if (::stat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (now - st.st_mtime < d.config.settle_seconds) continue;
        ready.push_back({static_cast<long long>(st.st_mtime), static_cast<long long>(st.st_size), name});
    }
    if (ec) throw std::runtime_error(fmt::format("cannot list {}: {}", dir.string(), ec.message()));
    if (ready.empty() && d.drop_failure) {
        storage::ClearDropError(db_, d.config.name);
        Healthy(d);
    }
    std::sort(ready.begin(), ready.end());
    for (const auto& c : ready) {
        {
            std::lock_guard lock(mu_);
            if (stopping_) throw Stopped{};
            if (d.paused) return;
        }
        if (!Take(d, c.name, c.size, c.mtime)) return;
    }
}

bool FileDrops::Take(Drop& d, const std::string& name, long long size, long long mtime) {
    const FileDrop& cfg = d.config;
    const fs::path dir(cfg.directory), file = dir / name;
    auto drop_error = [&](const std::string& why) {
        try {
            storage::RecordDropError(db_, cfg.name, why);
        } catch (const storage::DatabaseError&) {
        }
        Failed(d, why, true);
        return false;
    };
    Report report;
    try {
        if (storage::DropFileLoaded(db_, cfg.name, name, size, mtime)) {
            // Committed before the node stopped; only the move was missing.
            report.outcome = "loaded before the node restarted (found again; not loaded twice)";
            if (auto err = Settle(file, dir / "done", cfg, report); !err.empty()) return drop_error(err);
            spdlog::info("drop file was loaded before drop={} file={}", cfg.name, Quote(name));
            return true;
        }
        auto library = storage::FindLibrary(conninfo_, cfg.library);
        if (!library)
            return drop_error(fmt::format("library {} is not registered (register it: iblctl library add {} --name "
                                          "NAME --province NL-XX); {} waits in {}",
                                          cfg.library, cfg.library, name, cfg.directory));
        auto mapping = protocols::ParseHoldingsMapping(library->holdings_mapping);
        if (!mapping)
            return drop_error(fmt::format("the holdings mapping stored for {} is invalid ({}); store a valid one "
                                          "with iblctl import --holdings",
                                          cfg.library, mapping.error()));
        storage::ImportOptions options;
        options.library = cfg.library;
        options.full = cfg.full;
        options.max_delete_percent = cfg.max_delete_percent;
        const auto started = Clock::now();
        spdlog::info("drop file loading drop={} file={} bytes={}", cfg.name, Quote(name), size);
        storage::CatalogueImport load(conninfo_, options);
        storage::RecordFileSink sink;
        sink.add = [&](protocols::CatalogueRecord&& r) {
            if ((report.counts.records & 255) == 0) {
                std::lock_guard lock(mu_);
                if (stopping_) throw Stopped{};
            }
            load.Add(std::move(r));
        };
        sink.note = [&](const storage::RecordNote& n) {
            if (report.notes.size() < kReportNotes) report.notes.push_back(n);
            else ++report.notes_left_out;
        };
        std::string failure = storage::ReadRecordFile(file.string(), mapping.value(), cfg.library, sink, report.counts);
        if (failure.empty() && report.counts.records == 0)
            failure = report.counts.rejected ? "no record of the file could be read (see the reasons below)"
                                             : "the file holds no records";
        if (failure.empty()) {
            load.RecordAsDropFile({cfg.name, name, size, mtime, report.counts.records, report.counts.rejected});
            try {
                report.summary = load.Finish();
                report.summarised = true;
            } catch (const storage::DeletionsRefused& e) {
                failure = fmt::format("{}; if the library really lost that much, load the file with iblctl import "
                                      "--full",
                                      e.what());
            }
        }
        report.seconds = std::chrono::duration<double>(Clock::now() - started).count();
        if (!failure.empty()) {
            report.outcome = "failed: " + failure + "; nothing was loaded";
            storage::RecordDropFileFailed(db_, cfg.name, name, size, mtime, report.counts.records,
                                          report.counts.rejected, failure);
            if (auto err = Settle(file, dir / "failed", cfg, report); !err.empty()) return drop_error(err);
            {
                std::lock_guard lock(mu_);
                ++d.files_failed;
            }
            spdlog::warn("drop file failed drop={} file={} error={} action=\"moved to failed/ with a report\"",
                         cfg.name, Quote(name), Quote(failure));
            Failed(d, fmt::format("{}: {}", name, failure));
            return true;
        }
        report.outcome = "loaded";
        if (auto err = Settle(file, dir / "done", cfg, report); !err.empty()) return drop_error(err);
        {
            std::lock_guard lock(mu_);
            ++d.files_loaded;
            d.records += report.counts.records;
            d.last_success_unix = static_cast<double>(std::time(nullptr));
        }
        const auto& s = report.summary;
        spdlog::info("drop file loaded drop={} file={} records={} rejected={} new={} changed={} deleted={} "
                     "seconds={:.1f}",
                     cfg.name, Quote(name), report.counts.records, report.counts.rejected, s.inserted, s.updated,
                     s.deleted, report.seconds);
        Healthy(d);
        return true;
    } catch (const storage::DatabaseError& e) {
        if (Transient(e)) return drop_error(fmt::format("database: {}; {} is loaded again later", e.what(), name));
        // The database refused the content itself: the file would fail again.
        const std::string why = fmt::format("database refused the load: {}", e.what());
        try {
            storage::RecordDropFileFailed(db_, cfg.name, name, size, mtime, report.counts.records,
                                          report.counts.rejected, why);
        } catch (const storage::DatabaseError&) {
            return drop_error(why);
        }
        report.outcome = "failed: " + why + "; nothing was loaded";
        if (auto err = Settle(file, dir / "failed", cfg, report); !err.empty()) return drop_error(err);
        Failed(d, fmt::format("{}: {}", name, why));
        return true;
    }
}

}  // namespace iblsync::daemon
