#pragma once
// The control socket: a Unix stream socket speaking line-delimited JSON
// (protocols/control_message.hpp). Only root, the daemon's own user and
// members of the configured group may talk to it; the socket file is 0660
// and every connection's peer credentials (SO_PEERCRED) are checked too.

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "protocols/control_message.hpp"

namespace iblsync::daemon {

namespace net = boost::asio;

using ControlHandler =
    std::function<net::awaitable<protocols::ControlResponse>(const protocols::ControlRequest&)>;

class ControlServer {
public:
    ControlServer(net::io_context& ioc, ControlHandler handler);
    ~ControlServer();

    // Creates the socket at `path` (removing a stale one; refusing if a live
    // daemon answers there) with mode 0660 and group `group` (empty: keep the
    // daemon's group). Throws std::runtime_error with a message for operators.
    void Listen(const std::string& path, const std::string& group);
    void Start();
    // Stops accepting, closes sessions and removes the socket file.
    void Stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Whether the peer on connected socket `fd` may use the control socket: root,
// `daemon_uid`, or a member (primary or supplementary) of `allowed_gid`
// (-1: no group).
bool PeerAllowed(unsigned uid, unsigned gid, int fd, unsigned daemon_uid, long allowed_gid);

}  // namespace iblsync::daemon
