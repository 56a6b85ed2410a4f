#pragma once
// A deliberately small HTTP/1.1 client over a plain TCP socket, so tests can
// send exactly the bytes they mean, malformed ones included.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace iblsync::test {

struct HttpReply {
    int status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
};

class RawConnection {
public:
    explicit RawConnection(int port);
    ~RawConnection();
    bool Send(const std::string& bytes);
    // Reads one response (Content-Length framed). Empty if the server closed
    // or nothing came within `timeout`.
    std::optional<HttpReply> Read(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // True if the server closed the connection within `timeout`.
    bool WaitClosed(std::chrono::milliseconds timeout);
    bool ok() const { return fd_ >= 0; }

private:
    int fd_ = -1;
    std::string buffer_;
};

// One request with headers and a body on a fresh connection (Content-Length
// is added when there is a body).
std::optional<HttpReply> HttpCall(int port, const std::string& method, const std::string& path,
                                  const std::vector<std::pair<std::string, std::string>>& headers = {},
                                  const std::string& body = {});

// One request on a fresh connection.
std::optional<HttpReply> HttpGet(int port, const std::string& path, const std::string& method = "GET");

}  // namespace iblsync::test
