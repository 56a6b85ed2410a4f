#include "protocols/prometheus.hpp"

#include <gtest/gtest.h>

namespace iblsync::protocols {

TEST(PrometheusText, WritesFamiliesAndEscapedLabels) {
    PrometheusText t;
    t.Family("x_total", "counter", "Things.");
    t.Sample("x_total", {{"path", "a\"b\\c\nd"}}, 3);
    EXPECT_EQ(t.str(),
              "# HELP x_total Things.\n# TYPE x_total counter\n"
              "x_total{path=\"a\\\"b\\\\c\\nd\"} 3\n");
}

TEST(PrometheusText, HistogramBucketsAreCumulative) {
    PrometheusText t;
    t.Histogram("lat", {{"route", "/r"}}, {0.1, 1}, {2, 3, 1}, 4.5);
    EXPECT_EQ(t.str(),
              "lat_bucket{route=\"/r\",le=\"0.1\"} 2\n"
              "lat_bucket{route=\"/r\",le=\"1\"} 5\n"
              "lat_bucket{route=\"/r\",le=\"+Inf\"} 6\n"
              "lat_sum{route=\"/r\"} 4.5\n"
              "lat_count{route=\"/r\"} 6\n");
}

}  // namespace iblsync::protocols
