#include "daemon/metrics.hpp"

#include <gtest/gtest.h>

namespace iblsync::daemon {

TEST(Metrics, PlacesLatencyInTheRightBucket) {
    Metrics m;
    m.ObserveHttp("/healthz", "GET", 200, 0.003);  // in (0.0025, 0.005]
    m.ObserveHttp("/healthz", "GET", 200, 0.005);  // bounds are inclusive
    m.ObserveHttp("/healthz", "GET", 404, 20);     // overflow
    protocols::PrometheusText t;
    m.Render(t);
    const auto& s = t.str();
    EXPECT_NE(s.find("iblsync_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0025\"} 0"), std::string::npos);
    EXPECT_NE(s.find("iblsync_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 2"), std::string::npos);
    EXPECT_NE(s.find("iblsync_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"10\"} 2"), std::string::npos);
    EXPECT_NE(s.find("iblsync_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 3"), std::string::npos);
    EXPECT_NE(s.find("iblsync_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"404\"} 1"), std::string::npos);
    EXPECT_EQ(m.HttpRequestsTotal(), 3u);
}

}  // namespace iblsync::daemon
