#pragma once
// Runs the real iblsyncd binary for a test: writes its config, listens on a
// NOTIFY_SOCKET the way systemd does, and captures its log.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/test_env.hpp"

namespace iblsync::test {

struct NodeConfig {
    std::string role = "poi";
    std::string isil = "NL-0000000001";
    std::string provinces = R"(["NL-GE"])";
    std::string listen = "127.0.0.1:0";
    std::string conninfo;
    std::string socket;  // defaults to <dir>/control.sock
    std::string log_level = "info";
    long max_body_bytes = 1 << 20;
    long max_header_bytes = 16 << 10;
    int max_connections = 512;
    int request_timeout_seconds = 30;
    int idle_timeout_seconds = 60;
    int shutdown_timeout_seconds = 20;
    int pool_size = 4;
    std::string api_toml;   // lines of the [api] section, e.g. "rate_per_second = 5\n"
    std::string http_toml;  // more lines of the [http] section, e.g. "tls_listen = [...]\n"
    std::string extra_toml; // appended last, e.g. [[harvest]] tables

    std::string ToToml() const;
};

class DaemonProcess {
public:
    // Writes `config` to <dir>/iblsyncd.toml.
    DaemonProcess(const TempDir& dir, NodeConfig config);
    ~DaemonProcess();  // SIGKILLs a daemon that is still running

    // Starts the daemon and waits for READY=1. Returns false if it exited or
    // timed out first (exit_code() then tells why, Log() shows the log).
    bool Start(std::chrono::milliseconds timeout = std::chrono::seconds(20),
               std::optional<std::chrono::microseconds> watchdog = std::nullopt);

    void Signal(int signo) const;
    // Waits for the process to exit; returns its exit code (128+signal if killed).
    std::optional<int> WaitExit(std::chrono::milliseconds timeout);
    bool Running();

    std::string Log() const;
    bool WaitForLog(const std::string& needle, std::chrono::milliseconds timeout) const;
    // Notifications received so far, one datagram each.
    const std::vector<std::string>& Notifications();
    bool WaitForNotification(const std::string& needle, std::chrono::milliseconds timeout);

    // Runs iblctl against this daemon's control socket.
    CommandResult Iblctl(const std::vector<std::string>& args) const;

    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    const std::string& config_path() const { return config_path_; }
    const std::string& control_socket() const { return config_.socket; }
    std::optional<int> exit_code() const { return exit_code_; }
    NodeConfig& config() { return config_; }
    void RewriteConfig(const std::string& text) const;

private:
    void DrainNotifications();

    const TempDir& dir_;
    NodeConfig config_;
    std::string config_path_;
    std::string log_path_;
    std::string notify_path_;
    int notify_fd_ = -1;
    pid_t pid_ = -1;
    int port_ = 0;
    std::optional<int> exit_code_;
    std::vector<std::string> notifications_;
};

}  // namespace iblsync::test
