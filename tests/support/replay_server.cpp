#include "tests/support/replay_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "tests/support/sru_peer.hpp"
#include "tests/support/test_env.hpp"

namespace iblsync::test {

ReplayServer::ReplayServer(std::vector<Rule> rules) : rules_(std::move(rules)) {}

ReplayServer::~ReplayServer() = default;

std::string ReplayServer::Url(const std::string& path) const {
    return fmt::format("http://127.0.0.1:{}{}", port(), path);
}

std::vector<std::string> ReplayServer::Targets() const {
    std::lock_guard lock(mu_);
    return targets_;
}

void ReplayServer::Serve(int client) {
    auto head = ReadRequestHead(client);
    if (!head) return;
    const std::string target = RequestLine(*head).second;
    std::string file;
    {
        std::lock_guard lock(mu_);
        targets_.push_back(target);
        for (auto& r : rules_) {
            if (r.times == 0 || target.find(r.needle) == std::string::npos) continue;
            if (r.times > 0) --r.times;
            file = r.file;
            break;
        }
    }
    std::string reply;
    if (file.empty()) {
        reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    } else {
        const std::string body = ReadFile(file);
        reply = fmt::format("HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n"
                            "Connection: close\r\n\r\n{}",
                            body.size(), body);
    }
    SendAll(client, reply);
}

}  // namespace iblsync::test
