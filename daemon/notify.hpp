#pragma once
// systemd notifications (sd_notify). Without NOTIFY_SOCKET these do nothing,
// so the daemon behaves the same when run by hand.

#include <chrono>
#include <optional>
#include <string>

namespace iblsync::daemon::notify {

void Ready(const std::string& status);
void Reloading();
void Status(const std::string& status);
void Stopping(const std::string& status);
void Watchdog();

// Half the watchdog interval systemd asked for, if it asked.
std::optional<std::chrono::microseconds> WatchdogInterval();

}  // namespace iblsync::daemon::notify
