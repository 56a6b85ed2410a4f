#pragma once
// Node-to-node sync: one coroutine per [[peer]] follows the peer's change
// feed (GET /v1/changes?embed=records, long-polling) and applies each page
// with its cursor in one transaction (storage/peer_sync.hpp). The national
// node asks each POI only for the libraries that POI serves; a POI asks the
// national node for everything except its own libraries. Failures are
// retried with backoff and jitter, logged once per state change.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "daemon/config.hpp"
#include "daemon/db_executor.hpp"
#include "protocols/prometheus.hpp"
#include "storage/peer_sync.hpp"

namespace iblsync::daemon {

class PeerSync {
public:
    // `changed`: a peer started or stopped failing. `committed`: a page was
    // applied (our own feed has new changes).
    PeerSync(net::io_context& ioc, storage::Database& db, DbExecutor& exec, std::function<void()> changed,
             std::function<void()> committed);
    ~PeerSync();

    void Start(const Config& config);
    void Stop();
    bool Has(const std::string& name) const;
    bool Wake(const std::string& name);
    void SetPaused(const std::string& name, bool paused);
    int Count() const { return static_cast<int>(peers_.size()); }
    int Failing() const;
    void Render(protocols::PrometheusText& out) const;

    struct Verified {
        std::string error;  // the peer could not be asked; nothing compared
        std::vector<protocols::feed::LibraryDigest> here, peer;
        std::vector<protocols::feed::Difference> differences;
        // For the first differing libraries: the local ids that differ.
        std::map<std::string, std::vector<std::string>> records;
        std::map<std::string, std::size_t> records_total;
        // follow = "availability": records are kept brief here, so their
        // checksums differ by design; compared are the records' presence
        // and the copies.
        bool brief = false;
    };
    // Compares this node's catalogue with the peer's (`origin`: only the
    // libraries a POI serves; `library`: only that one, record by record).
    net::awaitable<Verified> Verify(const std::string& name, const std::string& origin, const std::string& library);

private:
    struct Peer;
    net::awaitable<void> Register();
    net::awaitable<void> Loop(Peer& p);
    net::awaitable<void> Sleep(Peer& p, std::chrono::milliseconds d);
    void Failed(Peer& p, const std::string& error);
    void Healthy(Peer& p);

    net::io_context& ioc_;
    storage::Database& db_;
    DbExecutor& exec_;
    std::function<void()> changed_, committed_;
    std::string self_;
    bool aggregate_ = false;
    std::map<std::string, std::unique_ptr<Peer>> peers_;
    bool stopping_ = false;
};

}  // namespace iblsync::daemon
