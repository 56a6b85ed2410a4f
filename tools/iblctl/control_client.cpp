#include "tools/iblctl/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

namespace iblsync::iblctl {
namespace {

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) close(fd);
    }
};

}  // namespace

bool Call(const std::string& path, const protocols::ControlRequest& request, int timeout_ms,
          protocols::ControlResponse& response, CallError& error) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        error = {2, fmt::format("socket path {} is too long", path)};
        return false;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    Fd s{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (s.fd < 0) {
        error = {3, fmt::format("cannot create a socket: {}", std::strerror(errno))};
        return false;
    }
    if (connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int e = errno;
        if (e == ENOENT)
            error = {3, fmt::format("no control socket at {}: is iblsyncd running? Check "
                                    "'systemctl status iblsyncd', or pass --socket PATH",
                                    path)};
        else if (e == ECONNREFUSED)
            error = {3, fmt::format("nothing answers on {}: iblsyncd is not running (the socket "
                                    "file is left from an earlier run)",
                                    path)};
        else if (e == EACCES || e == EPERM)
            error = {4, fmt::format("permission denied on {}: run iblctl as root or as a member of "
                                    "the daemon's control group (control.group, usually 'iblsync')",
                                    path)};
        else
            error = {3, fmt::format("cannot connect to {}: {}", path, std::strerror(e))};
        return false;
    }
    std::string line = protocols::FormatControlRequest(request) + "\n";
    for (std::size_t sent = 0; sent < line.size();) {
        ssize_t n = send(s.fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // the daemon may have refused us; read its answer below
        sent += static_cast<std::size_t>(n);
    }
    std::string in;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                          std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            error = {5, fmt::format("no answer from iblsyncd within {} ms", timeout_ms)};
            return false;
        }
        pollfd p{s.fd, POLLIN, 0};
        int r = poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        char buf[8192];
        ssize_t n = recv(s.fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        if (in.find('\n') != std::string::npos) break;
        if (in.size() > (16u << 20)) break;
    }
    auto nl = in.find('\n');
    if (nl == std::string::npos) {
        error = {5, "iblsyncd closed the connection without a complete answer"};
        return false;
    }
    auto parsed = protocols::ParseControlResponse(std::string_view(in).substr(0, nl));
    if (!parsed) {
        error = {5, "unreadable answer from iblsyncd: " + parsed.error()};
        return false;
    }
    response = std::move(parsed).value();
    return true;
}

}  // namespace iblsync::iblctl
