#pragma once
// The control-socket protocol between iblctl and iblsyncd: one JSON object
// per line in each direction.
//
//   request:  {"command":"status","args":{"key":"value"}}
//   response: {"ok":true,"result":{...}}
//             {"ok":false,"error":"what went wrong","hint":"what to do"}

#include <map>
#include <string>
#include <string_view>

#include "protocols/result.hpp"

namespace iblsync::protocols {

// A request line may not exceed this; longer lines are refused unread.
inline constexpr std::size_t kMaxControlLine = 64 * 1024;

struct ControlRequest {
    std::string command;
    std::map<std::string, std::string> args;

    // The argument `key`, or "" if it was not given.
    std::string Arg(const std::string& key) const {
        auto it = args.find(key);
        return it == args.end() ? std::string() : it->second;
    }
};

struct ControlResponse {
    bool ok = false;
    std::string result_json = "null";  // the "result" member, as JSON text
    std::string error;
    std::string hint;
};

std::string FormatControlRequest(const ControlRequest& request);
Result<ControlRequest> ParseControlRequest(std::string_view line);

// `result_json` must be valid JSON text; it is embedded as is.
std::string FormatControlResponse(const ControlResponse& response);
Result<ControlResponse> ParseControlResponse(std::string_view line);

}  // namespace iblsync::protocols
