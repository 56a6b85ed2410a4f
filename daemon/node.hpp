#pragma once
// One iblsyncd process: wires config, database, HTTP server, control socket,
// signals and systemd notifications around one io_context.

#include <memory>

#include "daemon/config.hpp"

namespace iblsync::daemon {

// Exit codes, so that systemd (RestartPreventExitStatus=78) does not restart
// a daemon that cannot work until an operator fixes something.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitConfig = 78;  // EX_CONFIG: bad config, foreign or too-new database

class Node {
public:
    explicit Node(Config config);
    ~Node();

    // Runs until SIGTERM/SIGINT; returns the process exit code.
    int Run();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace iblsync::daemon
