#pragma once
// One HTTP/1.1 GET (harvesting) or POST (ISO 18626 messages to other nodes)
// at a time over plain TCP: connect, send, read the whole answer. Every step shares one deadline, so a source that
// accepts and then never answers (or trickles) costs at most `timeout`.
// With an HttpSession the connection stays open for the next GET to the same
// host (keep-alive): a harvest then does not connect once per page, and an
// SRU server that keeps the result set per connection (Zebra) does not
// search again for every page.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "protocols/sru_client.hpp"

namespace iblsync::daemon {

namespace net = boost::asio;

struct HttpAnswer {
    int status = 0;
    std::string content_type;
    std::string body;
    std::string retry_after;  // the Retry-After header, "" if none
};

// Resolving, connecting, a timeout, a reset, a body over the limit: what
// went wrong, in words for the operator.
class HttpFailure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Lets another coroutine abort a GET in flight (shutdown): Abort() closes
// its socket, and the GET throws HttpFailure("aborted").
struct HttpAbort {
    std::function<void()> close;
    void Abort() {
        if (close) close();
    }
};

// Headers other than the defaults. Passed by pointer: g++ 12 mishandles a
// class-type coroutine parameter that has a default argument (the frame's
// copy is freed twice).
struct HttpHeaders {
    std::string accept = "application/sru+xml, text/xml, application/xml";
    std::string authorization;  // sent when not empty ("Bearer iblt_…")
};

// A connection kept between GETs; empty until the first one.
class HttpConnection;
struct HttpSession {
    HttpSession();
    ~HttpSession();
    void Close();  // the next GET connects afresh
    std::unique_ptr<HttpConnection> connection;
};

net::awaitable<HttpAnswer> HttpGet(const protocols::sru::HttpUrl& url, const std::string& target,
                                   std::chrono::seconds timeout, std::uint64_t max_body, HttpAbort* abort = nullptr,
                                   const HttpHeaders* headers = nullptr, HttpSession* session = nullptr);

// POSTs `body` as `content_type`. A kept connection that the server closed
// meanwhile is retried once on a new one, as for a GET: only for messages
// that are safe to send twice (ISO 18626 messages are, by their identity).
net::awaitable<HttpAnswer> HttpPost(const protocols::sru::HttpUrl& url, const std::string& target,
                                    const std::string* content_type, const std::string* body,
                                    std::chrono::seconds timeout, std::uint64_t max_body, HttpAbort* abort = nullptr,
                                    const HttpHeaders* headers = nullptr, HttpSession* session = nullptr);

}  // namespace iblsync::daemon
