#pragma once
// Control-socket commands that manage who may push: libraries and their
// API tokens (library.add|list|enable|disable, token.issue|rotate|revoke).
// Each change is written to the audit log with the peer's uid.

#include <optional>

#include <boost/asio/awaitable.hpp>

#include "daemon/db_executor.hpp"
#include "protocols/control_message.hpp"

namespace iblsync::storage {
class Database;
}

namespace iblsync::daemon {

// The response to an admin command, or nullopt if `request` is none.
net::awaitable<std::optional<protocols::ControlResponse>> HandleAdminCommand(const protocols::ControlRequest& request,
                                                                             storage::Database& db, DbExecutor& exec);

}  // namespace iblsync::daemon
