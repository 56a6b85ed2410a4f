#pragma once
// Completion handler for co_spawn: every spawned coroutine reports an escaped
// exception in the log instead of vanishing like `detached` would.

#include <exception>
#include <string>

#include <spdlog/spdlog.h>

namespace iblsync::daemon {

struct LogFailure {
    const char* task;
    void operator()(std::exception_ptr e) const {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            spdlog::error("task failed task={} error=\"{}\"", task, x.what());
        } catch (...) {
            spdlog::error("task failed task={} error=unknown", task);
        }
    }
};

}  // namespace iblsync::daemon
