#include "daemon/http_types.hpp"

#include <strings.h>

#include <algorithm>
#include <cctype>

namespace iblsync::daemon {

std::string HttpRequest::Header(const std::string& name) const {
    for (const auto& [k, v] : headers)
        if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
    return {};
}

std::string HttpRequest::MediaType() const {
    std::string type = Header("Content-Type");
    type = type.substr(0, type.find(';'));
    while (!type.empty() && type.back() == ' ') type.pop_back();
    std::transform(type.begin(), type.end(), type.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return type;
}

HttpResponse ProblemResponse(const protocols::Problem& problem) {
    HttpResponse r;
    r.status = problem.status;
    r.content_type = protocols::kProblemMediaType;
    r.body = protocols::ToJson(problem);
    return r;
}

HttpResponse JsonResponse(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

}  // namespace iblsync::daemon
