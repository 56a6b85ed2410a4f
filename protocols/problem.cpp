#include "protocols/problem.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace iblsync::protocols {

Problem MakeProblem(int status, const std::string& slug, std::string title, std::string detail) {
    return Problem{status, "urn:iblsync:problem:" + slug, std::move(title), std::move(detail), {}, {}};
}

std::string ToJson(const Problem& problem) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("type");
    w.String(problem.type);
    w.Key("title");
    w.String(problem.title);
    w.Key("status");
    w.Int(problem.status);
    w.Key("detail");
    w.String(problem.detail);
    if (!problem.pointer.empty()) {
        w.Key("pointer");
        w.String(problem.pointer);
    }
    for (const auto& [name, json] : problem.extensions) {
        w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
        w.RawValue(json.c_str(), json.size(), rapidjson::kObjectType);
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace iblsync::protocols
