#pragma once
// Logging: spdlog to stderr, one event per line with key=value fields:
//   info("http listening addr={}", addr)
// Under systemd (JOURNAL_STREAM set) lines carry no timestamp and start with
// a syslog priority prefix so journald records the right level.

#include <string>

#include <spdlog/spdlog.h>

namespace iblsync::daemon {

// Installs the stderr logger as spdlog's default. Call once, early.
void SetUpLogging(const std::string& level);

// Changes the level at run time; returns false for an unknown level name.
bool SetLogLevel(const std::string& level);

// Quotes a value for a key=value field if it contains spaces or quotes.
std::string Quote(const std::string& value);

}  // namespace iblsync::daemon
