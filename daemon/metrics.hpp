#pragma once
// Counters and histograms the daemon exposes at /metrics. Recorded on the
// event loop thread and read by the /metrics handler on the same thread; a
// mutex guards them anyway so other threads may record too.

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "protocols/prometheus.hpp"

namespace iblsync::daemon {

class Metrics {
public:
    Metrics();

    void ObserveHttp(const std::string& route, const std::string& method, int status, double seconds);
    void CountHttpRejection(const std::string& reason);  // parse errors, limits, timeouts
    void CountReload(bool ok);
    void CountControl(const std::string& command, bool ok);
    void SetHttpConnections(int open);

    // Appends this registry's families to `out`.
    void Render(protocols::PrometheusText& out) const;

    // Totals for `iblctl status`.
    unsigned long long HttpRequestsTotal() const;
    int HttpConnections() const;

    static const std::vector<double>& LatencyBounds();

private:
    struct Histogram {
        std::vector<unsigned long long> counts;
        double sum = 0;
    };
    mutable std::mutex mu_;
    std::map<std::tuple<std::string, std::string, int>, unsigned long long> requests_;
    std::map<std::string, Histogram> latency_;  // by route
    std::map<std::string, unsigned long long> rejections_;
    std::map<std::tuple<std::string, bool>, unsigned long long> control_;
    unsigned long long reloads_ok_ = 0, reloads_rejected_ = 0;
    int http_connections_ = 0;
};

}  // namespace iblsync::daemon
