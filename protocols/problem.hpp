#pragma once
// Problem details for HTTP APIs (RFC 9457), media type application/problem+json.
// Every error kind has a stable `type` URI so that clients can branch on it.

#include <string>
#include <utility>
#include <vector>

namespace iblsync::protocols {

struct Problem {
    int status = 500;
    std::string type;    // stable per error kind, e.g. "urn:iblsync:problem:not-found"
    std::string title;   // short, the same for every occurrence of this type
    std::string detail;  // this occurrence, in words an integrator can act on
    std::string pointer;  // JSON pointer (RFC 6901) into the request body, when one value is at fault
    // Further members (RFC 9457 extensions): name and JSON text of the value.
    std::vector<std::pair<std::string, std::string>> extensions;
};

inline constexpr const char* kProblemMediaType = "application/problem+json";

// Builds a Problem whose type is "urn:iblsync:problem:<slug>".
Problem MakeProblem(int status, const std::string& slug, std::string title, std::string detail);

// Serialises to a JSON object with type, title, status and detail.
std::string ToJson(const Problem& problem);

}  // namespace iblsync::protocols
