#pragma once
// Control-socket commands for IBL (iblctl ibl ...): ibl.list, ibl.show,
// ibl.reroute, ibl.cancel and ibl.stats. Reroute and cancel are written to
// the audit log with the peer's uid.

#include <optional>

#include <boost/asio/awaitable.hpp>

#include "daemon/db_executor.hpp"
#include "protocols/control_message.hpp"

namespace iblsync::storage {
class Database;
}

namespace iblsync::daemon {

class IblCourier;

// The response to an ibl.* command, or nullopt if `request` is none.
net::awaitable<std::optional<protocols::ControlResponse>> HandleIblCommand(const protocols::ControlRequest& request,
                                                                           storage::Database& db, DbExecutor& exec,
                                                                           IblCourier& courier);

}  // namespace iblsync::daemon
