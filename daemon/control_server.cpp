// Asio local-socket code lives here only.

#include "daemon/control_server.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <list>
#include <vector>
#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/spawn.hpp"

namespace iblsync::daemon {

using local = net::local::stream_protocol;
namespace {
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

// The peer's supplementary groups as they were at connect(2) (SO_PEERGROUPS,
// Linux 4.13+): no /proc lookup, so it works under ProtectProc=invisible.
bool InSupplementaryGroups(int fd, long gid) {
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 2; ++attempt) {
        socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
            groups.resize(len / sizeof(gid_t));
            for (gid_t g : groups)
                if (static_cast<long>(g) == gid) return true;
            return false;
        }
        if (errno != ERANGE) return false;
        groups.resize(len / sizeof(gid_t) + 1);
    }
    return false;
}
}  // namespace

bool PeerAllowed(unsigned uid, unsigned gid, int fd, unsigned daemon_uid, long allowed_gid) {
    if (uid == 0 || uid == daemon_uid) return true;
    if (allowed_gid < 0) return false;
    if (static_cast<long>(gid) == allowed_gid) return true;
    return InSupplementaryGroups(fd, allowed_gid);
}

struct ControlServer::Impl {
    net::io_context& ioc;
    ControlHandler handler;
    std::unique_ptr<local::acceptor> acceptor;
    std::list<local::socket*> sessions;
    std::string path;
    std::string group;
    long gid = -1;
    bool stopping = false;

    net::awaitable<void> AcceptLoop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor->async_accept(kTuple);
            if (stopping || ec == net::error::operation_aborted) co_return;
            if (ec) {
                spdlog::warn("control accept failed error=\"{}\"", ec.message());
                continue;
            }
            net::co_spawn(ioc, Session(std::move(socket)), LogFailure{"control session"});
        }
    }

    net::awaitable<void> Reply(local::socket& s, const protocols::ControlResponse& r) {
        std::string line = protocols::FormatControlResponse(r) + "\n";
        co_await net::async_write(s, net::buffer(line), kTuple);
    }

    net::awaitable<void> Session(local::socket socket) {
        auto self = sessions.insert(sessions.end(), &socket);
        struct Unregister {
            Impl* impl;
            std::list<local::socket*>::iterator it;
            ~Unregister() { impl->sessions.erase(it); }
        } unregister{this, self};

        ucred cred{};
        socklen_t len = sizeof cred;
        if (getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
            !PeerAllowed(cred.uid, cred.gid, socket.native_handle(), geteuid(), gid)) {
            spdlog::warn("control peer refused uid={} gid={} pid={}", cred.uid, cred.gid, cred.pid);
            protocols::ControlResponse r;
            r.error = fmt::format("permission denied: uid {} is not root, the daemon's user, or a "
                                  "member of the control group{}",
                                  cred.uid, group.empty() ? "" : " '" + group + "'");
            r.hint = group.empty() ? "run iblctl as root or as the daemon's user"
                                   : fmt::format("run iblctl as root or add the user to group '{}'", group);
            co_await Reply(socket, r);
            co_return;
        }

        std::string buffer;
        while (!stopping) {
            auto [ec, n] = co_await net::async_read_until(
                socket, net::dynamic_buffer(buffer, protocols::kMaxControlLine + 1), '\n', kTuple);
            if (ec == net::error::not_found) {
                protocols::ControlResponse r;
                r.error = fmt::format("control message longer than {} bytes", protocols::kMaxControlLine);
                co_await Reply(socket, r);
                co_return;
            }
            if (ec) co_return;  // peer closed, or shutdown
            std::string line = buffer.substr(0, n - 1);
            buffer.erase(0, n);
            protocols::ControlResponse response;
            auto request = protocols::ParseControlRequest(line);
            if (!request) {
                response.error = request.error();
                response.hint = "send one JSON object per line, e.g. {\"command\":\"status\"}";
            } else {
                // Who asked, for the audit log: set here, whatever the client sent.
                request.value().args["_peer_uid"] = std::to_string(cred.uid);
                response = co_await handler(request.value());
            }
            co_await Reply(socket, response);
        }
    }
};

ControlServer::ControlServer(net::io_context& ioc, ControlHandler handler)
    : impl_(std::make_unique<Impl>(Impl{ioc, std::move(handler), nullptr, {}, {}, {}, -1, false})) {}

ControlServer::~ControlServer() { Stop(); }

void ControlServer::Listen(const std::string& path, const std::string& group) {
    auto& s = *impl_;
    s.path = path;
    s.group = group;
    if (!group.empty()) {
        struct group* g = getgrnam(group.c_str());
        if (!g)
            throw std::runtime_error(fmt::format(
                "control.group '{}' does not exist; create it (systemd-sysusers) or set group = \"\"",
                group));
        s.gid = g->gr_gid;
    }
    // A socket file left by a crashed daemon is removed; one a live daemon answers on is not.
    struct stat st{};
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw std::runtime_error(fmt::format("{} exists and is not a socket; remove it or change control.socket", path));
        local::socket probe(s.ioc);
        boost::system::error_code ec;
        probe.connect(local::endpoint(path), ec);
        if (!ec)
            throw std::runtime_error(fmt::format(
                "another iblsyncd is running with control socket {}; stop it first", path));
        ::unlink(path.c_str());
    }
    s.acceptor = std::make_unique<local::acceptor>(s.ioc);
    boost::system::error_code ec;
    s.acceptor->open(local::endpoint(path).protocol(), ec);
    // Create the socket file with no access for others from the first moment.
    mode_t old = umask(0117);
    if (!ec) s.acceptor->bind(local::endpoint(path), ec);
    umask(old);
    if (!ec) s.acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::runtime_error(fmt::format("cannot create control socket {}: {}{}", path, ec.message(),
                                             ec == boost::system::errc::no_such_file_or_directory
                                                 ? " (create the directory, e.g. via systemd RuntimeDirectory=)"
                                                 : ""));
    if (chmod(path.c_str(), 0660) != 0)
        throw std::runtime_error(fmt::format("cannot chmod {}: {}", path, std::strerror(errno)));
    if (s.gid >= 0 && chown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(s.gid)) != 0)
        throw std::runtime_error(fmt::format("cannot give {} to group '{}': {}", path, group,
                                             std::strerror(errno)));
}

void ControlServer::Start() {
    net::co_spawn(impl_->ioc, impl_->AcceptLoop(), LogFailure{"control accept"});
}

void ControlServer::Stop() {
    auto& s = *impl_;
    if (s.stopping || !s.acceptor) return;
    s.stopping = true;
    boost::system::error_code ignored;
    s.acceptor->close(ignored);
    for (auto* socket : s.sessions) socket->close(ignored);
    ::unlink(s.path.c_str());
}

}  // namespace iblsync::daemon
