// iblctl: the operator's command line for a running iblsyncd.
//
// Exit codes: 0 ok, 1 the daemon refused the command, 2 usage error,
// 3 daemon not reachable, 4 permission denied, 5 protocol error or timeout.

#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "tools/iblctl/control_client.hpp"
#include "tools/iblctl/render.hpp"

namespace {

using iblsync::protocols::ControlRequest;
using iblsync::protocols::ControlResponse;

std::string DefaultSocket() {
    if (const char* env = std::getenv("IBLSYNC_CONTROL_SOCKET")) return env;
    return "/run/iblsync/control.sock";
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"iblctl: administer a running iblsync node (iblsyncd) over its control socket"};
    app.require_subcommand(1);
    std::string socket = DefaultSocket();
    bool json = false;
    int timeout_ms = 10000;
    app.add_option("-s,--socket", socket, "control socket (env IBLSYNC_CONTROL_SOCKET)")
        ->capture_default_str();
    app.add_flag("--json", json, "print the daemon's answer as JSON, for scripts");
    app.add_option("--timeout-ms", timeout_ms, "how long to wait for an answer")
        ->capture_default_str()
        ->check(CLI::Range(1, 600000));

    auto* status = app.add_subcommand("status", "node identity, database state, listeners, counters");
    auto* reload = app.add_subcommand("reload", "re-read the config file (like SIGHUP); reports what changed");
    auto* help = app.add_subcommand("commands", "list the commands the running daemon understands");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }

    ControlRequest request;
    std::string (*render)(const std::string&) = nullptr;
    if (status->parsed()) {
        request.command = "status";
        render = iblsync::iblctl::RenderStatus;
    } else if (reload->parsed()) {
        request.command = "reload";
        render = iblsync::iblctl::RenderReload;
    } else if (help->parsed()) {
        request.command = "help";
        render = iblsync::iblctl::RenderHelp;
    }

    ControlResponse response;
    iblsync::iblctl::CallError error;
    if (!iblsync::iblctl::Call(socket, request, timeout_ms, response, error)) {
        std::cerr << "iblctl: " << error.message << "\n";
        return error.exit_code;
    }
    if (!response.ok) {
        if (json) {
            std::cout << iblsync::protocols::FormatControlResponse(response) << "\n";
        } else {
            std::cerr << "iblctl: " << request.command << " failed: " << response.error << "\n";
            if (!response.hint.empty()) std::cerr << "hint: " << response.hint << "\n";
        }
        // A refused peer is told so by the daemon; report it as a permission problem.
        return response.error.rfind("permission denied", 0) == 0 ? 4 : 1;
    }
    std::cout << (json ? response.result_json + "\n" : render(response.result_json));
    return 0;
}
