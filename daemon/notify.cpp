#include "daemon/notify.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <fmt/format.h>

namespace iblsync::daemon::notify {
namespace {

unsigned long long MonotonicUsec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL + ts.tv_nsec / 1000;
}

void Send(const std::string& msg) { sd_notify(0, msg.c_str()); }

}  // namespace

void Ready(const std::string& status) { Send(fmt::format("READY=1\nSTATUS={}", status)); }

// RELOADING=1 must carry MONOTONIC_USEC for Type=notify-reload (systemd 253+);
// older systemd ignores the extra field.
void Reloading() {
    Send(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading configuration", MonotonicUsec()));
}

void Status(const std::string& status) { Send("STATUS=" + status); }
void Stopping(const std::string& status) { Send(fmt::format("STOPPING=1\nSTATUS={}", status)); }
void Watchdog() { Send("WATCHDOG=1"); }

std::optional<std::chrono::microseconds> WatchdogInterval() {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::microseconds(usec / 2);
}

}  // namespace iblsync::daemon::notify
