#pragma once
// Plain HTTP request/response values passed between the Beast server
// (http_server.cpp) and the route handlers, so handlers never see Beast.

#include <string>
#include <utility>
#include <vector>

#include "protocols/problem.hpp"

namespace iblsync::daemon {

struct HttpRequest {
    std::string method;  // "GET", "POST", ...
    std::string target;  // as sent: path plus query
    std::string path;    // target before '?'
    std::string query;   // after '?', undecoded
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string remote;  // peer address

    // First value of a header, matched case-insensitively; empty if absent.
    std::string Header(const std::string& name) const;
    // The Content-Type without its parameters, in lower case ("" if none).
    std::string MediaType() const;
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string route = "unmatched";  // metrics label; set by the router
};

HttpResponse ProblemResponse(const protocols::Problem& problem);
HttpResponse JsonResponse(int status, std::string body);

}  // namespace iblsync::daemon
