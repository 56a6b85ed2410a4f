#include "daemon/http_client.hpp"

#include <optional>

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

class HttpConnection {
public:
    HttpConnection(const net::any_io_executor& ex, std::string where) : stream(ex), key(std::move(where)) {}
    beast::tcp_stream stream;
    std::string key;  // host:port
};

HttpSession::HttpSession() = default;
HttpSession::~HttpSession() = default;
void HttpSession::Close() { connection.reset(); }

// g++ 12 reports its own coroutine frame's sized delete as mismatched with
// the frame's allocation here (a false positive of -Wmismatched-new-delete
// that depends on the shape of the coroutine body); asio allocates and frees
// the frame with its own matching operators.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {

// One exchange: a GET, or a POST of `body` when `content_type` is set.
net::awaitable<HttpAnswer> Exchange(const protocols::sru::HttpUrl& url, const std::string& target,
                                    const std::string* content_type, const std::string* body,
                                    std::chrono::seconds timeout, std::uint64_t max_body, HttpAbort* abort,
                                    const HttpHeaders* headers, HttpSession* session) {
    auto ex = co_await net::this_coro::executor;
    tcp::resolver resolver(ex);
    const std::string key = url.host + ":" + url.port;
    std::unique_ptr<HttpConnection> own;
    if (session && session->connection && session->connection->key == key) own = std::move(session->connection);
    const bool reused = own != nullptr;
    if (!own) own = std::make_unique<HttpConnection>(ex, key);
    bool aborted = false;
    HttpConnection* conn = own.get();
    if (abort)
        abort->close = [&] {
            aborted = true;
            resolver.cancel();
            beast::error_code ignored;
            conn->stream.socket().close(ignored);
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

    http::request<http::string_body> req{content_type ? http::verb::post : http::verb::get, target, 11};
    req.set(http::field::host, url.port == "80" ? url.host : url.host + ":" + url.port);
    req.set(http::field::user_agent, fmt::format("iblsyncd/{}", kVersion));
    static const HttpHeaders kDefaults;
    const HttpHeaders& h = headers ? *headers : kDefaults;
    req.set(http::field::accept, h.accept);
    if (!h.authorization.empty()) req.set(http::field::authorization, h.authorization);
    req.set(http::field::connection, session ? "keep-alive" : "close");
    if (content_type) {
        req.set(http::field::content_type, *content_type);
        req.body() = *body;
        req.prepare_payload();
    }

    beast::flat_buffer buffer;
    std::optional<http::response_parser<http::string_body>> parser;
    // A kept connection the server has closed in the meantime fails at once;
    // the GET then goes over a new one (once).
    for (int attempt = reused ? 0 : 1; attempt < 2; ++attempt) {
        if (attempt == 1 && reused) {
            beast::error_code ignored;
            conn->stream.socket().close(ignored);
            own = std::make_unique<HttpConnection>(ex, key);
            conn = own.get();
        }
        if (attempt == 1) {
            auto [rec, endpoints] = co_await resolver.async_resolve(url.host, url.port, kTuple);
            if (rec) throw fail("cannot resolve", rec);
            conn->stream.expires_after(timeout);
            auto [cec, ep] = co_await conn->stream.async_connect(endpoints, kTuple);
            (void)ep;
            if (cec) throw fail("cannot connect to", cec);
        }
        conn->stream.expires_after(timeout);
        auto [wec, written] = co_await http::async_write(conn->stream, req, kTuple);
        (void)written;
        if (wec && attempt == 0 && !aborted) continue;
        if (wec) throw fail("cannot send to", wec);
        buffer.clear();
        parser.emplace();
        parser->body_limit(max_body);
        parser->header_limit(64 << 10);
        auto [rdec, read] = co_await http::async_read(conn->stream, buffer, *parser, kTuple);
        if (rdec && attempt == 0 && !aborted && read == 0 && rdec != beast::error::timeout) continue;
        if (rdec) throw fail("no complete answer from", rdec);
        break;
    }
    auto res = parser->release();
    if (session && res.keep_alive()) {
        conn->stream.expires_never();
        session->connection = std::move(own);
    } else {
        beast::error_code ignored;
        conn->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }
    HttpAnswer out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.retry_after = std::string(res[http::field::retry_after]);
    out.body = std::move(res.body());
    co_return out;
}

}  // namespace

net::awaitable<HttpAnswer> HttpGet(const protocols::sru::HttpUrl& url, const std::string& target,
                                   std::chrono::seconds timeout, std::uint64_t max_body, HttpAbort* abort,
                                   const HttpHeaders* headers, HttpSession* session) {
    co_return co_await Exchange(url, target, nullptr, nullptr, timeout, max_body, abort, headers, session);
}

net::awaitable<HttpAnswer> HttpPost(const protocols::sru::HttpUrl& url, const std::string& target,
                                    const std::string* content_type, const std::string* body,
                                    std::chrono::seconds timeout, std::uint64_t max_body, HttpAbort* abort,
                                    const HttpHeaders* headers, HttpSession* session) {
    co_return co_await Exchange(url, target, content_type, body, timeout, max_body, abort, headers, session);
}
#pragma GCC diagnostic pop

}  // namespace iblsync::daemon
