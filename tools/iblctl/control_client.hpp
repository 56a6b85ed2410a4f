#pragma once
// Blocking client for the daemon's control socket (plain POSIX sockets:
// iblctl is a short-lived process and needs no event loop).

#include <string>

#include "protocols/control_message.hpp"

namespace iblsync::iblctl {

struct CallError {
    int exit_code;        // 3: daemon unreachable, 4: permission denied, 5: protocol error
    std::string message;  // says what to do
};

// Sends one request and waits up to `timeout_ms` for its response line.
// Returns the response, or fills `error`.
bool Call(const std::string& socket_path,
          const protocols::ControlRequest& request,
          int timeout_ms,
          protocols::ControlResponse& response,
          CallError& error);

}  // namespace iblsync::iblctl
