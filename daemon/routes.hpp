#pragma once
// The HTTP routes of a node, independent of Beast and of the database: what
// they need from the rest of the daemon comes in through RouteContext.

#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "daemon/http_types.hpp"

namespace iblsync::daemon {

namespace net = boost::asio;

struct Readiness {
    bool ready = false;
    std::string database;  // "reachable" or "unreachable"
    int schema_version = 0;
    int expected_version = 0;
    std::string reason;  // why not ready, in words
};

struct RouteContext {
    std::function<net::awaitable<Readiness>()> readiness;
    std::function<std::string()> metrics_text;
    // Everything under /v1/ (push API, change feed).
    std::function<net::awaitable<HttpResponse>(const HttpRequest&)> api;
    // The SRU server, at the path sru_path() gives.
    std::function<net::awaitable<HttpResponse>(const HttpRequest&)> sru;
    std::function<std::string()> sru_path;
    // The OAI-PMH provider, at the path oai_path() gives.
    std::function<net::awaitable<HttpResponse>(const HttpRequest&)> oai;
    std::function<std::string()> oai_path;
    // ISO 18626 messages, at /iso18626.
    std::function<net::awaitable<HttpResponse>(const HttpRequest&)> iso18626;
};

class Routes {
public:
    explicit Routes(RouteContext context) : ctx_(std::move(context)) {}

    // Answers one request. Never throws for bad input: that is a 4xx problem.
    net::awaitable<HttpResponse> Handle(const HttpRequest& request);

private:
    RouteContext ctx_;
};

}  // namespace iblsync::daemon
