// The only translation unit that instantiates Beast's HTTP machinery (build
// time: see research/stack.md §5). Single-threaded: everything here runs on
// the daemon's one io_context thread, so the connection list needs no lock.

#include "daemon/http_server.hpp"

#include <list>
#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/spawn.hpp"

namespace iblsync::daemon {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
constexpr const char* kServerHeader = "iblsyncd";

struct Connection {
    beast::tcp_stream* stream = nullptr;
    bool busy = false;  // a request is being read, handled or answered
};

std::string EndpointString(const tcp::endpoint& ep) {
    auto addr = ep.address();
    return addr.is_v6() ? fmt::format("[{}]:{}", addr.to_string(), ep.port())
                        : fmt::format("{}:{}", addr.to_string(), ep.port());
}

protocols::Problem ParseProblem(const beast::error_code& ec, const HttpLimits& limits) {
    if (ec == http::error::body_limit)
        return protocols::MakeProblem(
            413, "body-too-large", "Request body too large",
            fmt::format("the request body exceeds the limit of {} bytes (http.max_body_bytes); "
                        "send smaller batches",
                        limits.max_body_bytes));
    if (ec == http::error::header_limit)
        return protocols::MakeProblem(
            431, "headers-too-large", "Request header fields too large",
            fmt::format("the request line and headers exceed {} bytes (http.max_header_bytes)",
                        limits.max_header_bytes));
    return protocols::MakeProblem(400, "malformed-request", "Malformed HTTP request",
                                  fmt::format("the request could not be parsed as HTTP/1.1: {}",
                                              ec.message()));
}

std::string RejectionReason(const beast::error_code& ec) {
    if (ec == http::error::body_limit) return "body_too_large";
    if (ec == http::error::header_limit) return "headers_too_large";
    return "malformed";
}

}  // namespace

HttpLimits LimitsFrom(const Config& c) {
    return HttpLimits{c.max_body_bytes, c.max_header_bytes,
                      std::chrono::seconds(c.request_timeout_seconds),
                      std::chrono::seconds(c.idle_timeout_seconds), c.max_connections};
}

struct HttpServer::Impl {
    net::io_context& ioc;
    HttpHandler handler;
    Metrics& metrics;
    HttpLimits limits;
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
    std::list<Connection> connections;
    bool stopping = false;

    Impl(net::io_context& i, HttpHandler h, Metrics& m, HttpLimits l)
        : ioc(i), handler(std::move(h)), metrics(m), limits(l) {}

    void UpdateGauge() { metrics.SetHttpConnections(static_cast<int>(connections.size())); }

    net::awaitable<void> AcceptLoop(tcp::acceptor& acceptor) {
        net::steady_timer pause(ioc);
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(kTuple);
            if (stopping || ec == net::error::operation_aborted) co_return;
            if (ec) {
                // EMFILE and friends: log, breathe, go on accepting.
                spdlog::warn("http accept failed error=\"{}\"", ec.message());
                pause.expires_after(std::chrono::milliseconds(100));
                co_await pause.async_wait(kTuple);
                continue;
            }
            if (static_cast<int>(connections.size()) >= limits.max_connections) {
                metrics.CountHttpRejection("too_many_connections");
                net::co_spawn(ioc, RefuseBusy(std::move(socket)), LogFailure{"http refuse"});
                continue;
            }
            net::co_spawn(ioc, Session(std::move(socket)), LogFailure{"http session"});
        }
    }

    // Over the connection cap: answer 503 and close without reading the request.
    net::awaitable<void> RefuseBusy(tcp::socket socket) {
        auto problem = protocols::MakeProblem(
            503, "too-many-connections", "Too many connections",
            fmt::format("the server already has {} open connections (http.max_connections); "
                        "retry later or reuse keep-alive connections",
                        limits.max_connections));
        auto body = protocols::ToJson(problem);
        auto text = fmt::format(
            "HTTP/1.1 503 Service Unavailable\r\nServer: {}\r\nContent-Type: {}\r\n"
            "Retry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
            kServerHeader, protocols::kProblemMediaType, body.size(), body);
        co_await net::async_write(socket, net::buffer(text), kTuple);
        beast::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
    }

    // Writes an error response, then closes gracefully: stop sending, and
    // drain what the client still sends for a moment, so that it reads our
    // answer instead of a connection reset.
    net::awaitable<void> AnswerAndClose(beast::tcp_stream& stream, const protocols::Problem& problem) {
        http::response<http::string_body> res{static_cast<http::status>(problem.status), 11};
        res.set(http::field::server, kServerHeader);
        res.set(http::field::content_type, protocols::kProblemMediaType);
        res.body() = protocols::ToJson(problem);
        res.keep_alive(false);
        res.prepare_payload();
        stream.expires_after(limits.request_timeout);
        auto [ec, n] = co_await http::async_write(stream, res, kTuple);
        if (ec) co_return;
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream.expires_after(std::chrono::seconds(2));
        std::array<char, 16384> sink;
        std::size_t drained = 0;
        while (drained < (4u << 20)) {
            auto [rec, got] = co_await stream.async_read_some(net::buffer(sink), kTuple);
            if (rec) break;
            drained += got;
        }
    }

    net::awaitable<void> Session(tcp::socket socket) {
        beast::error_code ec0;
        auto peer = socket.remote_endpoint(ec0);
        std::string remote = ec0 ? "unknown" : EndpointString(peer);
        // Answers go out at once: with Nagle on, a response written in two
        // pieces waited for the client's delayed ACK.
        socket.set_option(tcp::no_delay(true), ec0);
        beast::tcp_stream stream(std::move(socket));
        auto self = connections.insert(connections.end(), Connection{&stream, false});
        UpdateGauge();
        struct Unregister {
            Impl* impl;
            std::list<Connection>::iterator it;
            ~Unregister() {
                impl->connections.erase(it);
                impl->UpdateGauge();
            }
        } unregister{this, self};

        beast::flat_buffer buffer;
        bool first = true;
        while (!stopping) {
            const HttpLimits lim = limits;  // a reload applies from the next request on
            http::request_parser<http::string_body> parser;
            parser.header_limit(static_cast<std::uint32_t>(lim.max_header_bytes));
            parser.body_limit(lim.max_body_bytes);
            self->busy = false;
            stream.expires_after(first ? lim.request_timeout : lim.idle_timeout);
            auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple);
            if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
                ec == net::error::connection_reset)
                co_return;
            if (ec == beast::error::timeout) {
                // Silence on a kept-alive connection is normal; a half-sent request is not.
                if (parser.got_some() || buffer.size() > 0) metrics.CountHttpRejection("timeout");
                co_return;
            }
            self->busy = true;
            if (ec) {
                metrics.CountHttpRejection(RejectionReason(ec));
                co_await AnswerAndClose(stream, ParseProblem(ec, lim));
                co_return;
            }
            if (!parser.is_done()) {
                stream.expires_after(lim.request_timeout);
                auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kTuple);
                if (bec == beast::error::timeout) {
                    metrics.CountHttpRejection("timeout");
                    co_return;
                }
                if (bec == net::error::operation_aborted || bec == http::error::end_of_stream ||
                    bec == net::error::connection_reset)
                    co_return;
                if (bec) {
                    metrics.CountHttpRejection(RejectionReason(bec));
                    co_await AnswerAndClose(stream, ParseProblem(bec, lim));
                    co_return;
                }
            }
            auto started = Clock::now();
            http::request<http::string_body> req = parser.release();
            HttpRequest request;
            request.method = std::string(req.method_string());
            request.target = std::string(req.target());
            auto q = request.target.find('?');
            request.path = request.target.substr(0, q);
            if (q != std::string::npos) request.query = request.target.substr(q + 1);
            for (const auto& f : req)
                request.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
            request.body = std::move(req.body());
            request.remote = remote;

            HttpResponse response;
            try {
                response = co_await handler(request);
            } catch (const std::exception& e) {
                spdlog::error("http handler failed method={} path={} error=\"{}\"", request.method,
                              request.path, e.what());
                response = ProblemResponse(protocols::MakeProblem(
                    500, "internal-error", "Internal server error",
                    "the server failed to answer this request; the error is in its log"));
            }

            http::response<http::string_body> res{static_cast<http::status>(response.status),
                                                  req.version()};
            res.set(http::field::server, kServerHeader);
            res.set(http::field::content_type, response.content_type);
            for (const auto& [k, v] : response.headers) res.set(k, v);
            res.body() = std::move(response.body);
            // Checked after the handler: a shutdown that began meanwhile closes this connection.
            res.keep_alive(req.keep_alive() && !stopping);
            res.prepare_payload();
            stream.expires_after(lim.request_timeout);
            auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
            std::chrono::duration<double> took = Clock::now() - started;
            metrics.ObserveHttp(response.route, request.method, response.status, took.count());
            spdlog::debug("http request method={} path={} status={} ms={:.2f} remote={}",
                          request.method, request.path, response.status, took.count() * 1000, remote);
            if (wec || !res.keep_alive()) break;
            first = false;
        }
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
};

HttpServer::HttpServer(net::io_context& ioc, HttpHandler handler, Metrics& metrics, HttpLimits limits)
    : impl_(std::make_unique<Impl>(ioc, std::move(handler), metrics, limits)) {}

HttpServer::~HttpServer() = default;

std::vector<std::string> HttpServer::Listen(const std::vector<ListenAddress>& addresses) {
    std::vector<std::string> bound;
    for (const auto& a : addresses) {
        beast::error_code ec;
        auto address = net::ip::make_address(a.host, ec);
        if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", a.ToString(), ec.message()));
        tcp::endpoint ep(address, a.port);
        auto acceptor = std::make_unique<tcp::acceptor>(impl_->ioc);
        acceptor->open(ep.protocol(), ec);
        if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
        if (!ec && address.is_v6()) acceptor->set_option(net::ip::v6_only(true), ec);
        if (!ec) acceptor->bind(ep, ec);
        if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
        if (ec)
            throw std::runtime_error(fmt::format("cannot listen on {}: {}{}", a.ToString(), ec.message(),
                                                 ec == net::error::address_in_use
                                                     ? " (another process uses this port; change http.listen)"
                                                     : ""));
        bound.push_back(EndpointString(acceptor->local_endpoint()));
        impl_->acceptors.push_back(std::move(acceptor));
    }
    return bound;
}

void HttpServer::Start() {
    for (auto& a : impl_->acceptors)
        net::co_spawn(impl_->ioc, impl_->AcceptLoop(*a), LogFailure{"http accept"});
}

void HttpServer::SetLimits(const HttpLimits& limits) { impl_->limits = limits; }

net::awaitable<int> HttpServer::Shutdown(Clock::time_point deadline) {
    auto& s = *impl_;
    s.stopping = true;
    beast::error_code ignored;
    for (auto& a : s.acceptors) a->close(ignored);
    for (auto& c : s.connections)
        if (!c.busy) c.stream->cancel();
    net::steady_timer tick(s.ioc);
    while (!s.connections.empty() && Clock::now() < deadline) {
        tick.expires_after(std::chrono::milliseconds(20));
        co_await tick.async_wait(kTuple);
        for (auto& c : s.connections)
            if (!c.busy) c.stream->cancel();
    }
    int cut = 0;
    for (auto& c : s.connections) {
        cut += c.busy ? 1 : 0;
        c.stream->socket().close(ignored);
    }
    co_return cut;
}

int HttpServer::OpenConnections() const { return static_cast<int>(impl_->connections.size()); }

int HttpServer::BusyConnections() const {
    int n = 0;
    for (const auto& c : impl_->connections) n += c.busy ? 1 : 0;
    return n;
}

}  // namespace iblsync::daemon
