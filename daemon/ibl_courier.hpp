#pragma once
// Carries IBL messages to other POI nodes and keeps the requests' deadlines.
// Messages for libraries of another node are written to the outbox in the
// transaction that made them (storage/ibl.hpp); the courier POSTs each to
// the node's /iso18626 ([[ibl_peer]]) until the node confirms it, with
// backoff, in order per request. An ERROR confirmation is final. Every few
// seconds it also passes requests over to their next lender when the
// current one has not answered in time.

#include <functional>
#include <memory>
#include <optional>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "daemon/config.hpp"
#include "daemon/db_executor.hpp"
#include "protocols/prometheus.hpp"
#include "storage/ibl.hpp"

namespace iblsync::daemon {

class IblCourier {
public:
    IblCourier(net::io_context& ioc, storage::Database& db, DbExecutor& exec,
               std::function<std::shared_ptr<const Config>()> config);
    ~IblCourier();

    void Start();
    void Stop();
    // Something was queued: look at the outbox now rather than at the next
    // poll. Also calls the OnChange callback: an IBL change was committed.
    void Wake();
    // Called on the event loop after IBL changes here (long-polling inboxes look again).
    void OnChange(std::function<void()> f);
    // The settings the IBL storage functions take, from the current config.
    storage::IblSettings Settings() const;
    void Render(protocols::PrometheusText& out) const;
    // Asks the lender's node whether the library still has a copy of the
    // record on the shelf (GET /v1/libraries/{isil}/records/{id}/holdings
    // with the [[ibl_peer]] token, 3 s at most): true or false, or nullopt
    // when the node could not say (then the lender is asked all the same).
    net::awaitable<std::optional<bool>> StillOnShelf(const storage::LenderToConfirm* lender);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace iblsync::daemon
