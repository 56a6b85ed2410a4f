#pragma once
// How control-socket command handlers answer: a refusal with a hint for the
// operator, or a JSON result, and the one JSON helper they all use.

#include <string>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocols/control_message.hpp"

namespace iblsync::daemon::control {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

inline protocols::ControlResponse Refuse(std::string error, std::string hint) {
    protocols::ControlResponse r;
    r.error = std::move(error);
    r.hint = std::move(hint);
    return r;
}

inline protocols::ControlResponse Ok(std::string json) {
    protocols::ControlResponse r;
    r.ok = true;
    r.result_json = std::move(json);
    return r;
}

inline protocols::ControlResponse Ok(const rapidjson::StringBuffer& buf) {
    return Ok(std::string(buf.GetString(), buf.GetSize()));
}

inline void Str(Writer& w, const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
}

}  // namespace iblsync::daemon::control
