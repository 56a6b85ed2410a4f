// The real iblsyncd over loopback HTTP: routes, limits and malformed requests.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "storage/migrations.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

class HttpTest : public ::testing::Test {
protected:
    void StartDaemon(NodeConfig config = {}) {
        config.conninfo = schema_.conninfo();
        daemon_ = std::make_unique<DaemonProcess>(dir_, config);
        ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
    }
    int port() const { return daemon_->port(); }

    TempDir dir_;
    TestSchema schema_;
    std::unique_ptr<DaemonProcess> daemon_;
};

void ExpectProblem(const std::optional<HttpReply>& r, int status, const std::string& type) {
    ASSERT_TRUE(r.has_value()) << "no response";
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_EQ(r->headers.at("content-type"), "application/problem+json");
    EXPECT_NE(r->body.find("\"type\":\"urn:iblsync:problem:" + type + "\""), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("\"status\":" + std::to_string(status)), std::string::npos) << r->body;
}

TEST_F(HttpTest, HealthzReadyzAndMetrics) {
    StartDaemon();
    auto health = HttpGet(port(), "/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    EXPECT_EQ(health->body, R"({"status":"ok"})");

    auto ready = HttpGet(port(), "/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 200) << ready->body;
    EXPECT_NE(ready->body.find(fmt::format("\"schema_version\":{}", storage::LatestKnownVersion())), std::string::npos);

    auto metrics = HttpGet(port(), "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_EQ(metrics->status, 200);
    EXPECT_EQ(metrics->headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const auto& m = metrics->body;
    EXPECT_NE(m.find("iblsync_build_info{version=\"0.1.0\""), std::string::npos);
    EXPECT_NE(m.find("isil=\"NL-0000000001\""), std::string::npos);
    EXPECT_NE(m.find("iblsync_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1"), std::string::npos) << m;
    EXPECT_NE(m.find("iblsync_http_requests_total{route=\"/readyz\",method=\"GET\",status=\"200\"} 1"), std::string::npos);
    EXPECT_NE(m.find("iblsync_http_request_duration_seconds_count{route=\"/healthz\"} 1"), std::string::npos);
    EXPECT_NE(m.find("iblsync_db_up 1"), std::string::npos);
    EXPECT_NE(m.find("iblsync_db_pool_connections{state=\"size\"} 4"), std::string::npos);
}

TEST_F(HttpTest, KeepAliveServesSeveralRequestsOnOneConnection) {
    StartDaemon();
    RawConnection c(port());
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        auto r = c.Read();
        ASSERT_TRUE(r) << "request " << i;
        EXPECT_EQ(r->status, 200);
        EXPECT_EQ(r->headers.count("connection"), 0u);  // HTTP/1.1 default: keep-alive
    }
    // Pipelined: two requests in one write, two answers in order.
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_EQ(c.Read()->status, 200);
    EXPECT_EQ(c.Read()->status, 404);
}

TEST_F(HttpTest, UnknownPathAndWrongMethod) {
    StartDaemon();
    ExpectProblem(HttpGet(port(), "/v1/records"), 404, "not-found");
    auto r = HttpGet(port(), "/healthz", "POST");
    ExpectProblem(r, 405, "method-not-allowed");
    EXPECT_EQ(r->headers.at("allow"), "GET");
    ExpectProblem(HttpGet(port(), "/readyz", "BREW"), 405, "method-not-allowed");
}

TEST_F(HttpTest, OversizedBodyByContentLengthIs413) {
    NodeConfig cfg;
    cfg.max_body_bytes = 4096;
    StartDaemon(cfg);
    RawConnection c(port());
    // Announce 10 MB and send only the headers: the server must not wait for the body.
    c.Send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n");
    auto r = c.Read();
    ExpectProblem(r, 413, "body-too-large");
    EXPECT_NE(r->body.find("4096 bytes (http.max_body_bytes)"), std::string::npos);
    EXPECT_EQ(r->headers.at("connection"), "close");
}

TEST_F(HttpTest, OversizedChunkedBodyIs413) {
    NodeConfig cfg;
    cfg.max_body_bytes = 4096;
    StartDaemon(cfg);
    RawConnection c(port());
    std::string chunk(3000, 'a');
    c.Send("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.Send("bb8\r\n" + chunk + "\r\nbb8\r\n" + chunk + "\r\n0\r\n\r\n");
    ExpectProblem(c.Read(), 413, "body-too-large");
}

TEST_F(HttpTest, OversizedHeadersAre431) {
    NodeConfig cfg;
    cfg.max_header_bytes = 2048;
    StartDaemon(cfg);
    RawConnection c(port());
    c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'b') + "\r\n\r\n");
    auto r = c.Read();
    ExpectProblem(r, 431, "headers-too-large");
}

TEST_F(HttpTest, MalformedRequestsAre400AndServerStaysUp) {
    StartDaemon();
    const char* bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /healthz HTTP/9.9\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  // a TLS ClientHello on plain HTTP
    };
    for (const char* request : bad) {
        RawConnection c(port());
        c.Send(request);
        auto r = c.Read();
        SCOPED_TRACE(request);
        ExpectProblem(r, 400, "malformed-request");
        EXPECT_TRUE(c.WaitClosed(5s));
    }
    auto health = HttpGet(port(), "/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    auto metrics = HttpGet(port(), "/metrics");
    EXPECT_NE(metrics->body.find("iblsync_http_rejected_total{reason=\"malformed\"} 6"), std::string::npos)
        << metrics->body;
}

TEST_F(HttpTest, IdleAndHalfSentRequestsTimeOut) {
    NodeConfig cfg;
    cfg.request_timeout_seconds = 1;
    cfg.idle_timeout_seconds = 1;
    StartDaemon(cfg);
    RawConnection slow(port());
    slow.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // never finished
    EXPECT_TRUE(slow.WaitClosed(10s));
    RawConnection idle(port());
    idle.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(idle.Read()->status, 200);
    EXPECT_TRUE(idle.WaitClosed(10s));  // kept alive, then closed after the idle timeout
    auto metrics = HttpGet(port(), "/metrics");
    EXPECT_NE(metrics->body.find("iblsync_http_rejected_total{reason=\"timeout\"} 1"), std::string::npos)
        << metrics->body;
}

TEST_F(HttpTest, ConnectionsOverTheCapGet503) {
    NodeConfig cfg;
    cfg.max_connections = 2;
    StartDaemon(cfg);
    RawConnection a(port()), b(port());
    a.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    b.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(a.Read()->status, 200);
    ASSERT_EQ(b.Read()->status, 200);
    RawConnection c(port());
    c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = c.Read();
    ExpectProblem(r, 503, "too-many-connections");
    EXPECT_EQ(r->headers.at("retry-after"), "1");
}

}  // namespace
}  // namespace iblsync::test
