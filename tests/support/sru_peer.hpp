#pragma once
// Real SRU peers for harvesting tests: Index Data's Zebra (zebrasrv, Debian
// package idzebra-2.0) holding real MARCXML records, and a fault proxy that
// sits in front of it. The proxy is the one made-up part: it passes requests
// through to Zebra, or answers as a broken source would (HTTP 500, an HTML
// page, nothing for a while), since a real server cannot be told to fail.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <string>
#include <mutex>
#include <thread>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "tests/support/test_env.hpp"

namespace iblsync::test {

// A loopback port that was free a moment ago (for servers that must be told
// their port before they start).
int FreePort();
// A TCP socket (close-on-exec) bound to a free loopback port; `port` gets it.
int BindLoopback(int& port);

// The head of an HTTP request (request line and headers) read from
// `client` up to the blank line; nullopt on a timeout, a close, or a head
// over 64 KiB.
std::optional<std::string> ReadRequestHead(int client);
// The method and target of the head's request line; both "" if malformed.
std::pair<std::string, std::string> RequestLine(const std::string& head);
// Writes all of `bytes` to `client`, as far as it takes them.
void SendAll(int client, const std::string& bytes);

// Accepts connections on a free loopback port and hands each to `serve`,
// one at a time, on a thread of its own; closes it after. Destroying it
// stops accepting and waits for the connection in hand.
class LoopbackAcceptor {
public:
    explicit LoopbackAcceptor(std::function<void(int client)> serve);
    ~LoopbackAcceptor();
    int port() const { return port_; }
    bool stopping() const { return stop_; }

private:
    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

class ZebraServer {
public:
    explicit ZebraServer(const TempDir& dir);
    ~ZebraServer();
    static bool Installed();  // zebrasrv and zebraidx on PATH

    // A new register holding exactly `files` (MARCXML); the server, if
    // running, is restarted on the same port so that it sees them.
    bool Load(const std::vector<std::string>& files);
    bool Start();  // on a free port; waits until explain answers
    void Stop();
    int port() const { return port_; }
    std::string Url() const;  // http://127.0.0.1:PORT/Default
    std::string Log() const;

private:
    std::string dir_;
    int port_ = 0;
    pid_t pid_ = -1;
};

class FaultProxy {
public:
    // kBusy: 503 with Retry-After: 1, as an OAI-PMH repository under load.
    enum class Mode { kPass, kError500, kHtml, kSilent, kDelay, kBusy };
    // Listens on a free loopback port and forwards to `target_port`.
    explicit FaultProxy(int target_port);
    ~FaultProxy();
    int port() const { return acceptor_.port(); }
    std::string Url() const;  // http://127.0.0.1:PORT/Default
    // Also ends a PassOnly limit.
    void Set(Mode mode, std::chrono::milliseconds delay = std::chrono::milliseconds(0));
    // From now on only `n` more requests are forwarded; the ones after them
    // wait until the next Set. However fast the machine, a
    // source then gives at most n answers before a test's kill -9.
    void PassOnly(int n) { pass_left_ = n; }
    int requests() const { return requests_; }
    // From now on a request without "Authorization: <value>" gets a 401.
    void RequireAuthorization(const std::string& value);
    int unauthorized() const { return unauthorized_; }
    int busy() const { return busy_; }  // 503s given in kBusy

private:
    void Serve(int client);
    int target_port_;
    std::atomic<Mode> mode_{Mode::kPass};
    std::atomic<long long> delay_ms_{0};
    std::atomic<int> pass_left_{-1};  // -1: no limit
    std::atomic<int> requests_{0};
    std::atomic<int> unauthorized_{0};
    std::atomic<int> busy_{0};
    std::mutex mu_;
    std::string authorization_;  // guarded by mu_
    LoopbackAcceptor acceptor_{[this](int client) { Serve(client); }};  // last: it calls Serve at once
};

}  // namespace iblsync::test
