#include "protocols/prometheus.hpp"

#include <cmath>

#include <fmt/format.h>

namespace iblsync::protocols {
namespace {

std::string FormatValue(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (std::isnan(v)) return "NaN";
    if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.0f}", v);
    return fmt::format("{}", v);
}

std::string FormatLabels(const Labels& labels) {
    if (labels.empty()) return {};
    std::string out = "{";
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i) out += ',';
        out += labels[i].first + "=\"" + EscapeLabelValue(labels[i].second) + "\"";
    }
    return out + "}";
}

}  // namespace

std::string EscapeLabelValue(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

void PrometheusText::Family(const std::string& name, const std::string& type, const std::string& help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void PrometheusText::Sample(const std::string& name, const Labels& labels, double value) {
    out_ += name + FormatLabels(labels) + " " + FormatValue(value) + "\n";
}

void PrometheusText::Histogram(const std::string& name, const Labels& labels,
                               const std::vector<double>& bounds,
                               const std::vector<unsigned long long>& counts, double sum) {
    unsigned long long cumulative = 0;
    for (std::size_t i = 0; i <= bounds.size(); ++i) {
        cumulative += i < counts.size() ? counts[i] : 0;
        Labels l = labels;
        l.emplace_back("le", i < bounds.size() ? FormatValue(bounds[i]) : "+Inf");
        Sample(name + "_bucket", l, static_cast<double>(cumulative));
    }
    Sample(name + "_sum", labels, sum);
    Sample(name + "_count", labels, static_cast<double>(cumulative));
}

}  // namespace iblsync::protocols
