#include "daemon/metrics.hpp"

#include <algorithm>

namespace iblsync::daemon {

Metrics::Metrics() = default;

const std::vector<double>& Metrics::LatencyBounds() {
    static const std::vector<double> kBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                             0.05,   0.1,   0.25,   0.5,   1,    2.5,  5, 10};
    return kBounds;
}

void Metrics::ObserveHttp(const std::string& route, const std::string& method, int status,
                          double seconds) {
    std::lock_guard lock(mu_);
    ++requests_[{route, method, status}];
    auto& h = latency_[route];
    const auto& b = LatencyBounds();
    if (h.counts.empty()) h.counts.assign(b.size() + 1, 0);
    auto i = std::lower_bound(b.begin(), b.end(), seconds) - b.begin();
    ++h.counts[i];
    h.sum += seconds;
}

void Metrics::CountHttpRejection(const std::string& reason) {
    std::lock_guard lock(mu_);
    ++rejections_[reason];
}

void Metrics::CountReload(bool ok) {
    std::lock_guard lock(mu_);
    ++(ok ? reloads_ok_ : reloads_rejected_);
}

void Metrics::CountControl(const std::string& command, bool ok) {
    std::lock_guard lock(mu_);
    ++control_[{command, ok}];
}

void Metrics::SetHttpConnections(int open) {
    std::lock_guard lock(mu_);
    http_connections_ = open;
}

unsigned long long Metrics::HttpRequestsTotal() const {
    std::lock_guard lock(mu_);
    unsigned long long total = 0;
    for (const auto& [k, v] : requests_) total += v;
    return total;
}

int Metrics::HttpConnections() const {
    std::lock_guard lock(mu_);
    return http_connections_;
}

void Metrics::Render(protocols::PrometheusText& out) const {
    std::lock_guard lock(mu_);
    out.Family("iblsync_http_requests_total", "counter", "HTTP requests answered, by route, method and status.");
    for (const auto& [k, v] : requests_) {
        const auto& [route, method, status] = k;
        out.Sample("iblsync_http_requests_total",
                   {{"route", route}, {"method", method}, {"status", std::to_string(status)}},
                   static_cast<double>(v));
    }
    out.Family("iblsync_http_request_duration_seconds", "histogram",
               "Time from a complete request to its response being written, by route.");
    for (const auto& [route, h] : latency_)
        out.Histogram("iblsync_http_request_duration_seconds", {{"route", route}}, LatencyBounds(),
                      h.counts, h.sum);
    out.Family("iblsync_http_rejected_total", "counter",
               "Connections or requests refused before routing (malformed, over a limit, timed out).");
    for (const auto& [reason, v] : rejections_)
        out.Sample("iblsync_http_rejected_total", {{"reason", reason}}, static_cast<double>(v));
    out.Family("iblsync_http_connections", "gauge", "Open HTTP connections.");
    out.Sample("iblsync_http_connections", {}, http_connections_);
    out.Family("iblsync_config_reloads_total", "counter", "Configuration reloads, by result.");
    out.Sample("iblsync_config_reloads_total", {{"result", "applied"}}, static_cast<double>(reloads_ok_));
    out.Sample("iblsync_config_reloads_total", {{"result", "rejected"}},
               static_cast<double>(reloads_rejected_));
    out.Family("iblsync_control_commands_total", "counter", "Control-socket commands, by command and result.");
    for (const auto& [k, v] : control_)
        out.Sample("iblsync_control_commands_total",
                   {{"command", std::get<0>(k)}, {"result", std::get<1>(k) ? "ok" : "error"}},
                   static_cast<double>(v));
}

}  // namespace iblsync::daemon
