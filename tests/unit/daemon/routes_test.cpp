#include "daemon/routes.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

namespace iblsync::daemon {
namespace {

HttpResponse Call(Routes& routes, const std::string& method, const std::string& path) {
    net::io_context ioc;
    HttpRequest req;
    req.method = method;
    req.path = path;
    req.target = path;
    auto f = net::co_spawn(ioc, routes.Handle(req), net::use_future);
    ioc.run();
    return f.get();
}

Routes MakeRoutes(bool ready) {
    return Routes(RouteContext{
        [ready]() -> net::awaitable<Readiness> {
            Readiness r;
            r.ready = ready;
            r.database = ready ? "reachable" : "unreachable";
            r.schema_version = ready ? 1 : 0;
            r.expected_version = 1;
            if (!ready) r.reason = "connection refused";
            co_return r;
        },
        [] { return std::string("m 1\n"); },
        nullptr, nullptr, nullptr, nullptr, nullptr, nullptr});
}

}  // namespace

TEST(Routes, HealthzIsAlwaysOk) {
    auto routes = MakeRoutes(false);
    auto r = Call(routes, "GET", "/healthz");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"status":"ok"})");
    EXPECT_EQ(r.route, "/healthz");
}

TEST(Routes, ReadyzFollowsReadiness) {
    auto up = MakeRoutes(true);
    EXPECT_EQ(Call(up, "GET", "/readyz").status, 200);
    auto down = MakeRoutes(false);
    auto r = Call(down, "GET", "/readyz");
    EXPECT_EQ(r.status, 503);
    EXPECT_NE(r.body.find("\"reason\":\"connection refused\""), std::string::npos);
}

TEST(Routes, WrongMethodGets405WithAllow) {
    auto routes = MakeRoutes(true);
    auto r = Call(routes, "DELETE", "/metrics");
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(r.content_type, "application/problem+json");
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"Allow", "GET"}));
}

TEST(Routes, UnknownPathGets404AndHostilePathIsNotEchoedRaw) {
    auto routes = MakeRoutes(true);
    auto r = Call(routes, "GET", "/x\x01\xff\"y");
    EXPECT_EQ(r.status, 404);
    EXPECT_NE(r.body.find("urn:iblsync:problem:not-found"), std::string::npos);
    EXPECT_NE(r.body.find("/x??\\\"y"), std::string::npos) << r.body;
}

TEST(Routes, RelativeTargetIs400) {
    auto routes = MakeRoutes(true);
    auto r = Call(routes, "GET", "*");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("urn:iblsync:problem:bad-target"), std::string::npos);
}

}  // namespace iblsync::daemon
