#include "daemon/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "daemon/version.hpp"

namespace iblsync::daemon {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);

std::string Why(const boost::system::error_code& ec, std::chrono::seconds timeout) {
    if (ec == beast::error::timeout) return fmt::format("no answer within {} s", timeout.count());
    if (ec == http::error::body_limit) return "the answer is larger than the source's max_page_bytes";
    return ec.message();
}

}  // namespace

// g++ 12 reports its own coroutine frame's sized delete as mismatched with
// the frame's allocation here (a false positive of -Wmismatched-new-delete
// that depends on the shape of the coroutine body); asio allocates and frees
// the frame with its own matching operators.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
net::awaitable<HttpAnswer> HttpGet(const protocols::sru::HttpUrl& url, const std::string& target,
                                   std::chrono::seconds timeout, std::uint64_t max_body, HttpAbort* abort,
                                   const HttpHeaders* headers) {
    auto ex = co_await net::this_coro::executor;
    tcp::resolver resolver(ex);
    beast::tcp_stream stream(ex);
    bool aborted = false;
    if (abort)
        abort->close = [&] {
            aborted = true;
            resolver.cancel();
            beast::error_code ignored;
            stream.socket().close(ignored);
        };
    struct Clear {
        HttpAbort* a;
        ~Clear() {
            if (a) a->close = nullptr;
        }
    } clear{abort};
    auto fail = [&](const char* step, const boost::system::error_code& ec) {
        return HttpFailure(aborted ? std::string("aborted")
                                   : fmt::format("{} {}:{}: {}", step, url.host, url.port, Why(ec, timeout)));
    };

    auto [rec, endpoints] = co_await resolver.async_resolve(url.host, url.port, kTuple);
    if (rec) throw fail("cannot resolve", rec);
    stream.expires_after(timeout);
    auto [cec, ep] = co_await stream.async_connect(endpoints, kTuple);
    (void)ep;
    if (cec) throw fail("cannot connect to", cec);

    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, url.port == "80" ? url.host : url.host + ":" + url.port);
    req.set(http::field::user_agent, fmt::format("iblsyncd/{}", kVersion));
    static const HttpHeaders kDefaults;
    const HttpHeaders& h = headers ? *headers : kDefaults;
    req.set(http::field::accept, h.accept);
    if (!h.authorization.empty()) req.set(http::field::authorization, h.authorization);
    req.set(http::field::connection, "close");
    auto [wec, written] = co_await http::async_write(stream, req, kTuple);
    (void)written;
    if (wec) throw fail("cannot send to", wec);

    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_body);
    parser.header_limit(64 << 10);
    auto [rdec, read] = co_await http::async_read(stream, buffer, parser, kTuple);
    (void)read;
    if (rdec) throw fail("no complete answer from", rdec);
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

    auto res = parser.release();
    HttpAnswer out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
    co_return out;
}
#pragma GCC diagnostic pop

}  // namespace iblsync::daemon
