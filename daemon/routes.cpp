#include "daemon/routes.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fmt/format.h>

#include "protocols/prometheus.hpp"

namespace iblsync::daemon {
namespace {

// Echoing a client's path into a message: printable ASCII only, bounded.
std::string Printable(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
}

HttpResponse MethodNotAllowed(const HttpRequest& req, const std::string& route) {
    auto r = ProblemResponse(protocols::MakeProblem(
        405, "method-not-allowed", "Method not allowed",
        fmt::format("{} does not accept {}; use GET", req.path, Printable(req.method))));
    r.headers.emplace_back("Allow", "GET");
    r.route = route;
    return r;
}

std::string ReadinessJson(const Readiness& r) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("status");
    w.String(r.ready ? "ready" : "not ready");
    w.Key("database");
    w.String(r.database);
    w.Key("schema_version");
    w.Int(r.schema_version);
    w.Key("expected_schema_version");
    w.Int(r.expected_version);
    if (!r.reason.empty()) {
        w.Key("reason");
        w.String(r.reason);
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

net::awaitable<HttpResponse> Routes::Handle(const HttpRequest& req) {
    if (req.path.empty() || req.path.front() != '/') {
        co_return ProblemResponse(protocols::MakeProblem(
            400, "bad-target", "Bad request target",
            "the request target must be an absolute path such as /healthz"));
    }
    if (req.path.rfind("/v1/", 0) == 0 && ctx_.api) co_return co_await ctx_.api(req);
    if (ctx_.sru && req.path == ctx_.sru_path()) co_return co_await ctx_.sru(req);
    if (ctx_.oai && req.path == ctx_.oai_path()) co_return co_await ctx_.oai(req);
    if (ctx_.iso18626 && req.path == "/iso18626") co_return co_await ctx_.iso18626(req);
    const bool get = req.method == "GET";
    if (req.path == "/healthz") {
        if (!get) co_return MethodNotAllowed(req, "/healthz");
        auto r = JsonResponse(200, R"({"status":"ok"})");
        r.route = "/healthz";
        co_return r;
    }
    if (req.path == "/readyz") {
        if (!get) co_return MethodNotAllowed(req, "/readyz");
        Readiness state = co_await ctx_.readiness();
        auto r = JsonResponse(state.ready ? 200 : 503, ReadinessJson(state));
        r.route = "/readyz";
        if (!state.ready) r.headers.emplace_back("Retry-After", "5");
        co_return r;
    }
    if (req.path == "/metrics") {
        if (!get) co_return MethodNotAllowed(req, "/metrics");
        HttpResponse r;
        r.content_type = protocols::kPrometheusMediaType;
        r.body = ctx_.metrics_text();
        r.route = "/metrics";
        co_return r;
    }
    co_return ProblemResponse(protocols::MakeProblem(
        404, "not-found", "Not found",
        fmt::format("there is no resource at {}; this node serves /healthz, /readyz, /metrics, the /v1 API, "
                    "ISO 18626 at /iso18626, SRU at {} and OAI-PMH at {}",
                    Printable(req.path), ctx_.sru_path ? ctx_.sru_path() : "/sru",
                    ctx_.oai_path ? ctx_.oai_path() : "/oai")));
}

}  // namespace iblsync::daemon
