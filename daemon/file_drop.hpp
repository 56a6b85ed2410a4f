#pragma once
// File drops: per [[drop]] table a directory where a library's system leaves
// periodic exports. Each file that has stopped changing is loaded like
// `iblctl import` (one transaction; with mode = "full" the file is the whole
// catalogue), then moved to done/ or failed/ with a report beside it
// (<file>.report). Loads run on a thread of their own, one file at a time, so
// a large export never holds up the event loop or the database pool.
//
// Nothing is lost or loaded twice: a file leaves the directory only after
// its load committed, and the load records the file (name, size, mtime) in
// its own transaction, so a node stopped in between finds the file again on
// restart, sees it was loaded and only moves it. A load cut off (kill -9,
// database gone) rolls back and the file is loaded again.

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/config.hpp"
#include "protocols/prometheus.hpp"

namespace iblsync::storage {
class Database;
}

namespace iblsync::daemon {

class FileDrops {
public:
    // `changed` is called (from the drops' thread) when a drop starts or
    // stops failing.
    FileDrops(storage::Database& db, std::string conninfo, std::function<void()> changed);
    ~FileDrops();

    void Start(std::vector<FileDrop> drops);
    // Tells the thread to end; a load in progress is abandoned (rolled back)
    // and its file stays for the next start. Join() waits for it.
    void Stop();
    void Join();
    bool Has(const std::string& name) const;
    // Looks at the directory now (iblctl sync run).
    void Wake(const std::string& name);
    // iblctl sync pause|resume, after writing it to the database.
    void SetPaused(const std::string& name, bool paused);

    int Count() const { return static_cast<int>(drops_.size()); }
    int Failing() const;
    void Render(protocols::PrometheusText& out) const;

private:
    struct Drop;
    void Loop();
    void Scan(Drop& d);
    // Loads one file; false if the drop cannot go on now (the file stays).
    bool Take(Drop& d, const std::string& file, long long size, long long mtime);
    void Failed(Drop& d, const std::string& error, bool drop_failure = false);
    void Healthy(Drop& d);

    storage::Database& db_;
    std::string conninfo_;
    std::function<void()> changed_;
    std::map<std::string, std::unique_ptr<Drop>> drops_;
    mutable std::mutex mu_;  // guards the counters in Drop, paused, wake_, stopping_
    std::condition_variable cv_;
    bool stopping_ = false;
    bool wake_ = false;
    std::thread thread_;
};

}  // namespace iblsync::daemon
