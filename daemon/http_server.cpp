// The only translation unit that instantiates Beast's HTTP machinery (build
// time: see research/stack.md §5). Single-threaded: everything here runs on
// the daemon's one io_context thread, so the connection list needs no lock.

#include "daemon/http_server.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <list>
#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/spawn.hpp"

namespace iblsync::daemon {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
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

// The client went away or we are shutting down: nothing to answer. A TLS
// client that closes without close_notify ends its stream "truncated".
bool Ended(const beast::error_code& ec) {
    return ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
           ec == net::error::connection_reset || ec == net::ssl::error::stream_truncated;
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
    std::vector<bool> acceptor_tls;
    // Shared with the connections that use it: a reload gives new
    // connections a new context while the old ones finish with theirs.
    std::shared_ptr<net::ssl::context> tls;
    std::list<Connection> connections;
    bool stopping = false;

    Impl(net::io_context& i, HttpHandler h, Metrics& m, HttpLimits l)
        : ioc(i), handler(std::move(h)), metrics(m), limits(l) {}

    void UpdateGauge() { metrics.SetHttpConnections(static_cast<int>(connections.size())); }

    net::awaitable<void> AcceptLoop(tcp::acceptor& acceptor, bool tls_listener) {
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
            net::co_spawn(ioc, tls_listener ? TlsSession(std::move(socket)) : Session(std::move(socket)),
                          LogFailure{"http session"});
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
    template <class Stream>
    net::awaitable<void> AnswerAndClose(Stream& stream, const protocols::Problem& problem) {
        http::response<http::string_body> res{static_cast<http::status>(problem.status), 11};
        res.set(http::field::server, kServerHeader);
        res.set(http::field::content_type, protocols::kProblemMediaType);
        res.body() = protocols::ToJson(problem);
        res.keep_alive(false);
        res.prepare_payload();
        beast::get_lowest_layer(stream).expires_after(limits.request_timeout);
        auto [ec, n] = co_await http::async_write(stream, res, kTuple);
        if (ec) co_return;
        beast::error_code ignored;
        beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ignored);
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
        std::array<char, 16384> sink;
        std::size_t drained = 0;
        while (drained < (4u << 20)) {
            auto [rec, got] = co_await stream.async_read_some(net::buffer(sink), kTuple);
            if (rec) break;
            drained += got;
        }
    }

    net::awaitable<void> Session(tcp::socket socket) {
        beast::tcp_stream stream(std::move(Prepare(socket)));
        co_await Serve(stream, RemoteOf(stream.socket()));
    }

    net::awaitable<void> TlsSession(tcp::socket socket) {
        std::shared_ptr<net::ssl::context> context = tls;
        TlsStream stream(beast::tcp_stream(std::move(Prepare(socket))), *context);
        const std::string remote = RemoteOf(beast::get_lowest_layer(stream).socket());
        beast::get_lowest_layer(stream).expires_after(limits.request_timeout);
        auto [ec] = co_await stream.async_handshake(net::ssl::stream_base::server, kTuple);
        if (ec) {
            // Plain HTTP on the HTTPS port, an old protocol version, a
            // client that does not trust us: nothing to answer in HTTP.
            metrics.CountHttpRejection("tls_handshake");
            spdlog::debug("https handshake failed remote={} error=\"{}\"", remote, ec.message());
            co_return;
        }
        co_await Serve(stream, remote);
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
        co_await stream.async_shutdown(kTuple);  // close_notify, so the client sees a clean end
    }

    static tcp::socket& Prepare(tcp::socket& socket) {
        // Answers go out at once: with Nagle on, a response written in two
        // pieces waited for the client's delayed ACK.
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        return socket;
    }

    static std::string RemoteOf(const tcp::socket& socket) {
        beast::error_code ec;
        auto peer = socket.remote_endpoint(ec);
        return ec ? "unknown" : EndpointString(peer);
    }

    // Reads requests and answers them until the connection ends.
    template <class Stream>
    net::awaitable<void> Serve(Stream& stream, const std::string remote) {
        auto self = connections.insert(connections.end(), Connection{&beast::get_lowest_layer(stream), false});
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
            beast::get_lowest_layer(stream).expires_after(first ? lim.request_timeout : lim.idle_timeout);
            auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple);
            if (Ended(ec)) co_return;
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
                beast::get_lowest_layer(stream).expires_after(lim.request_timeout);
                auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kTuple);
                if (bec == beast::error::timeout) {
                    metrics.CountHttpRejection("timeout");
                    co_return;
                }
                if (Ended(bec)) co_return;
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
            beast::get_lowest_layer(stream).expires_after(lim.request_timeout);
            auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
            std::chrono::duration<double> took = Clock::now() - started;
            metrics.ObserveHttp(response.route, request.method, response.status, took.count());
            spdlog::debug("http request method={} path={} status={} ms={:.2f} remote={}",
                          request.method, request.path, response.status, took.count() * 1000, remote);
            if (wec || !res.keep_alive()) break;
            first = false;
        }
        if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
            beast::error_code ignored;
            stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        }
    }
};

HttpServer::HttpServer(net::io_context& ioc, HttpHandler handler, Metrics& metrics, HttpLimits limits)
    : impl_(std::make_unique<Impl>(ioc, std::move(handler), metrics, limits)) {}

HttpServer::~HttpServer() = default;

std::vector<std::string> HttpServer::Listen(const std::vector<ListenAddress>& addresses, bool tls) {
    if (tls && !impl_->tls) throw std::runtime_error("HTTPS listeners need a certificate (SetTls) first");
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
        impl_->acceptor_tls.push_back(tls);
    }
    return bound;
}

void HttpServer::Start() {
    for (std::size_t i = 0; i < impl_->acceptors.size(); ++i)
        net::co_spawn(impl_->ioc, impl_->AcceptLoop(*impl_->acceptors[i], impl_->acceptor_tls[i]),
                      LogFailure{"http accept"});
}

void HttpServer::SetLimits(const HttpLimits& limits) { impl_->limits = limits; }

void HttpServer::SetTls(const std::string& certificate_file, const std::string& private_key_file) {
    auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
    context->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                         net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                         net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
    beast::error_code ec;
    context->use_certificate_chain_file(certificate_file, ec);
    if (ec)
        throw std::runtime_error(fmt::format("http.tls_certificate: {} is not a PEM certificate chain: {}",
                                             certificate_file, ec.message()));
    context->use_private_key_file(private_key_file, net::ssl::context::pem, ec);
    if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH)
        throw std::runtime_error(fmt::format("http.tls_private_key: {} does not belong to the certificate in {}",
                                             private_key_file, certificate_file));
    if (ec)
        throw std::runtime_error(
            fmt::format("http.tls_private_key: {} is not a PEM private key: {}", private_key_file, ec.message()));
    if (SSL_CTX_check_private_key(context->native_handle()) != 1)
        throw std::runtime_error(fmt::format("http.tls_private_key: {} does not belong to the certificate in {}",
                                             private_key_file, certificate_file));
    impl_->tls = std::move(context);
}

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
