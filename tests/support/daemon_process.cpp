#include "tests/support/daemon_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <regex>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace iblsync::test {

std::string NodeConfig::ToToml() const {
    return fmt::format(
        "[node]\nrole = \"{}\"\nisil = \"{}\"\nname = \"Test node {}\"\n{}"
        "[http]\nlisten = [\"{}\"]\nmax_body_bytes = {}\nmax_header_bytes = {}\nmax_connections = {}\n"
        "request_timeout_seconds = {}\nidle_timeout_seconds = {}\nshutdown_timeout_seconds = {}\n{}"
        "[database]\nconninfo = \"{}\"\npool_size = {}\n"
        "[control]\nsocket = \"{}\"\ngroup = \"\"\n"
        "[log]\nlevel = \"{}\"\n{}{}",
        role, isil, isil, role == "poi" ? fmt::format("provinces = {}\n", provinces) : "", listen,
        max_body_bytes, max_header_bytes, max_connections, request_timeout_seconds,
        idle_timeout_seconds, shutdown_timeout_seconds, http_toml, conninfo, pool_size, socket, log_level, api_toml.empty() ? "" : "[api]\n" + api_toml,
        extra_toml);
}

DaemonProcess::DaemonProcess(const TempDir& dir, NodeConfig config)
    : dir_(dir), config_(std::move(config)) {
    if (config_.socket.empty()) config_.socket = dir_.File("control.sock");
    config_path_ = dir_.File("iblsyncd.toml");
    log_path_ = dir_.File("iblsyncd.log");
    notify_path_ = dir_.File("notify.sock");
    WriteFile(config_path_, config_.ToToml());
}

DaemonProcess::~DaemonProcess() {
    if (pid_ > 0 && !exit_code_) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    if (notify_fd_ >= 0) close(notify_fd_);
}

void DaemonProcess::RewriteConfig(const std::string& text) const { WriteFile(config_path_, text); }

bool DaemonProcess::Start(std::chrono::milliseconds timeout,
                          std::optional<std::chrono::microseconds> watchdog) {
    notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, notify_path_.c_str(), sizeof addr.sun_path - 1);
    unlink(notify_path_.c_str());
    if (bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw std::runtime_error("cannot bind notify socket");

    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
        std::string s = *e;
        if (s.rfind("NOTIFY_SOCKET=", 0) == 0 || s.rfind("WATCHDOG_", 0) == 0 ||
            s.rfind("JOURNAL_STREAM=", 0) == 0)
            continue;
        env_strings.push_back(s);
    }
    env_strings.push_back("NOTIFY_SOCKET=" + notify_path_);
    if (watchdog) env_strings.push_back(fmt::format("WATCHDOG_USEC={}", watchdog->count()));
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::string bin = IblsyncdPath();
    std::vector<char*> argv{bin.data(), const_cast<char*>("--config"), config_path_.data(), nullptr};
    int rc = posix_spawn(&pid_, bin.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error(fmt::format("posix_spawn {}: {}", bin, std::strerror(rc)));

    bool ready = WaitFor(
        [&] {
            if (!Running()) return true;
            DrainNotifications();
            for (const auto& n : notifications_)
                if (n.find("READY=1") != std::string::npos) return true;
            return false;
        },
        timeout);
    if (!ready || exit_code_) return false;
    for (const auto& n : notifications_) {
        std::smatch m;
        static const std::regex kHttp(R"(http=[^ ,]*:(\d+))");
        if (std::regex_search(n, m, kHttp)) port_ = std::stoi(m[1]);
    }
    return port_ != 0;
}

void DaemonProcess::Signal(int signo) const { kill(pid_, signo); }

bool DaemonProcess::Running() {
    if (pid_ <= 0 || exit_code_) return false;
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == 0) return true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
}

std::optional<int> DaemonProcess::WaitExit(std::chrono::milliseconds timeout) {
    WaitFor([&] { return !Running(); }, timeout);
    return exit_code_;
}

std::string DaemonProcess::Log() const { return ReadFile(log_path_); }

bool DaemonProcess::WaitForLog(const std::string& needle, std::chrono::milliseconds timeout) const {
    return WaitFor([&] { return Log().find(needle) != std::string::npos; }, timeout);
}

void DaemonProcess::DrainNotifications() {
    char buf[4096];
    for (;;) {
        ssize_t n = recv(notify_fd_, buf, sizeof buf, 0);
        if (n <= 0) break;
        notifications_.emplace_back(buf, static_cast<std::size_t>(n));
    }
}

const std::vector<std::string>& DaemonProcess::Notifications() {
    DrainNotifications();
    return notifications_;
}

bool DaemonProcess::WaitForNotification(const std::string& needle, std::chrono::milliseconds timeout) {
    return WaitFor(
        [&] {
            for (const auto& n : Notifications())
                if (n.find(needle) != std::string::npos) return true;
            return false;
        },
        timeout);
}

CommandResult DaemonProcess::Iblctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{IblctlPath(), "--socket", config_.socket};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
}

}  // namespace iblsync::test
