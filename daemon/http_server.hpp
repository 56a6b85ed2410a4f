#pragma once
// The HTTP/1.1 server: keep-alive, limits on header and body size, per-request
// and idle timeouts, a connection cap, and a graceful drain at shutdown.
// Beast stays inside http_server.cpp; callers see plain HttpRequest/HttpResponse.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "daemon/config.hpp"
#include "daemon/http_types.hpp"
#include "daemon/metrics.hpp"

namespace iblsync::daemon {

namespace net = boost::asio;

struct HttpLimits {
    std::uint64_t max_body_bytes = 1 << 20;
    std::uint64_t max_header_bytes = 16 << 10;
    std::chrono::seconds request_timeout{30};
    std::chrono::seconds idle_timeout{60};
    int max_connections = 512;
};

HttpLimits LimitsFrom(const Config& config);

using HttpHandler = std::function<net::awaitable<HttpResponse>(const HttpRequest&)>;

class HttpServer {
public:
    HttpServer(net::io_context& ioc, HttpHandler handler, Metrics& metrics, HttpLimits limits);
    ~HttpServer();

    // Binds every address (port 0 picks a free port). Throws std::runtime_error
    // naming the address on failure. Returns the bound addresses as "host:port".
    // Connections to `tls` addresses speak HTTPS (call SetTls first).
    std::vector<std::string> Listen(const std::vector<ListenAddress>& addresses, bool tls = false);

    // Loads the certificate chain and private key that HTTPS connections
    // accepted from now on present (TLS 1.2 and 1.3 only). Throws
    // std::runtime_error saying which file is wrong and why; the certificate
    // in use stays in force then.
    void SetTls(const std::string& certificate_file, const std::string& private_key_file);

    // Starts accepting on the bound addresses.
    void Start();

    // Applies new limits to requests read from now on.
    void SetLimits(const HttpLimits& limits);

    // Stops accepting, closes idle keep-alive connections, lets requests in
    // progress finish (their responses carry "Connection: close"), and returns
    // once no connection is left or at `deadline`, closing what is left.
    // Returns the number of requests that were cut off.
    net::awaitable<int> Shutdown(std::chrono::steady_clock::time_point deadline);

    int OpenConnections() const;
    int BusyConnections() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace iblsync::daemon
