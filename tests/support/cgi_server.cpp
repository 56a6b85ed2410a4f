#include "tests/support/cgi_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "tests/support/sru_peer.hpp"
#include "tests/support/test_env.hpp"

extern char** environ;

namespace iblsync::test {

namespace {
std::string TempFile() {
    char path[] = "/tmp/iblsync-cgi-XXXXXX";
    close(mkstemp(path));
    return path;
}
}  // namespace

CgiServer::CgiServer(std::vector<std::string> argv, std::vector<std::string> env, std::string script_name)
    : argv_(std::move(argv)), env_(std::move(env)), script_name_(std::move(script_name)), stderr_path_(TempFile()) {}

CgiServer::~CgiServer() { unlink(stderr_path_.c_str()); }

std::string CgiServer::Url() const { return fmt::format("http://127.0.0.1:{}{}", port(), script_name_); }

std::string CgiServer::Stderr() const { return ReadFile(stderr_path_); }

void CgiServer::Serve(int client) {
    ++requests_;
    auto request = ReadRequestHead(client);
    if (!request) return;
    auto reply = [&](const std::string& text) { SendAll(client, text); };
    const auto [method, target] = RequestLine(*request);
    if (method.empty()) return reply("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    const auto q = target.find('?');
    const std::string query = q == std::string::npos ? "" : target.substr(q + 1);

    // The environment and argv, made before spawning.
    std::vector<std::string> env{"GATEWAY_INTERFACE=CGI/1.1", "SERVER_PROTOCOL=HTTP/1.1", "SERVER_NAME=127.0.0.1",
                                 fmt::format("SERVER_PORT={}", port()), "REMOTE_ADDR=127.0.0.1",
                                 "REQUEST_METHOD=" + method, "QUERY_STRING=" + query, "SCRIPT_NAME=" + script_name_,
                                 "PATH=/usr/bin:/bin"};
    env.insert(env.end(), env_.begin(), env_.end());
    std::vector<char*> envp, args;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    for (auto& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, stderr_path_.c_str(), O_WRONLY | O_APPEND, 0);
    pid_t pid = -1;
    const int spawned = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    std::string output;
    char buf[8192];
    if (spawned == 0) {
        for (;;) {
            ssize_t n = read(out[0], buf, sizeof buf);
            if (n <= 0) break;
            output.append(buf, static_cast<std::size_t>(n));
        }
    }
    close(out[0]);
    int status = 0;
    if (spawned == 0) waitpid(pid, &status, 0);
    auto split = output.find("\r\n\r\n");
    std::size_t sep = 4;
    if (split == std::string::npos) split = output.find("\n\n"), sep = 2;
    if (spawned != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || split == std::string::npos ||
        output.size() == split + sep) {
        ++failures_;
        return reply("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    std::string status_line = "200 OK", headers;
    const std::string head = output.substr(0, split);
    for (std::size_t at = 0; at < head.size();) {
        auto end = head.find('\n', at);
        std::string h = head.substr(at, end == std::string::npos ? std::string::npos : end - at);
        at = end == std::string::npos ? head.size() : end + 1;
        if (!h.empty() && h.back() == '\r') h.pop_back();
        if (h.empty()) continue;
        if (strncasecmp(h.c_str(), "Status:", 7) == 0) {
            status_line = h.substr(h.find_first_not_of(' ', 7));
            continue;
        }
        headers += h + "\r\n";
    }
    const std::string body = output.substr(split + sep);
    reply(fmt::format("HTTP/1.1 {}\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n", status_line, headers,
                      body.size()) +
          body);
}

}  // namespace iblsync::test
