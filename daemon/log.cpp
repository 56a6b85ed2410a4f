#include "daemon/log.hpp"

#include <cstdlib>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace iblsync::daemon {
namespace {

// "<3>" .. "<7>": sd-daemon(3) priority prefixes that journald understands.
class SyslogPrefix : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        static const char* kPrefix[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", ""};
        const char* p = kPrefix[static_cast<int>(msg.level)];
        dest.append(p, p + std::char_traits<char>::length(p));
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<SyslogPrefix>();
    }
};

}  // namespace

void SetUpLogging(const std::string& level) {
    auto logger = std::make_shared<spdlog::logger>("iblsyncd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    if (std::getenv("JOURNAL_STREAM")) {
        formatter->add_flag<SyslogPrefix>('*').set_pattern("%*level=%l %v");
    } else {
        formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ level=%l %v");
    }
    logger->set_formatter(std::move(formatter));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
    SetLogLevel(level);
}

bool SetLogLevel(const std::string& level) {
    auto l = spdlog::level::from_str(level);
    if (l == spdlog::level::off && level != "off") return false;
    spdlog::set_level(l);
    return true;
}

std::string Quote(const std::string& value) {
    bool plain = !value.empty();
    for (char c : value)
        if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t') plain = false;
    if (plain) return value;
    std::string out = "\"";
    for (char c : value) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out + "\"";
}

}  // namespace iblsync::daemon
