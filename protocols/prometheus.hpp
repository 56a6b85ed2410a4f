#pragma once
// Writer for the Prometheus text exposition format (version 0.0.4).

#include <string>
#include <utility>
#include <vector>

namespace iblsync::protocols {

using Labels = std::vector<std::pair<std::string, std::string>>;

class PrometheusText {
public:
    // Starts a metric family: "# HELP" and "# TYPE" lines. `type` is counter,
    // gauge or histogram.
    void Family(const std::string& name, const std::string& type, const std::string& help);
    void Sample(const std::string& name, const Labels& labels, double value);

    // A histogram's _bucket (cumulative, with +Inf), _sum and _count lines.
    // `counts[i]` counts observations in (bounds[i-1], bounds[i]]; the last
    // element of `counts` is the overflow above the last bound.
    void Histogram(const std::string& name, const Labels& labels, const std::vector<double>& bounds,
                   const std::vector<unsigned long long>& counts, double sum);

    const std::string& str() const { return out_; }

private:
    std::string out_;
};

// Escapes a label value: backslash, double quote and newline.
std::string EscapeLabelValue(const std::string& v);

inline constexpr const char* kPrometheusMediaType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace iblsync::protocols
