#include "protocols/control_message.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fmt/format.h>

namespace iblsync::protocols {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

Result<rapidjson::Document> ParseObject(std::string_view line) {
    if (line.size() > kMaxControlLine)
        return Fail(fmt::format("control message is {} bytes; the limit is {}", line.size(),
                                kMaxControlLine));
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
    if (doc.HasParseError())
        return Fail(fmt::format("control message is not valid JSON: {} at offset {}",
                                rapidjson::GetParseError_En(doc.GetParseError()),
                                doc.GetErrorOffset()));
    if (!doc.IsObject()) return Fail("control message must be a JSON object");
    return doc;
}

}  // namespace

std::string FormatControlRequest(const ControlRequest& request) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("command");
    w.String(request.command);
    w.Key("args");
    w.StartObject();
    for (const auto& [k, v] : request.args) {
        w.Key(k.c_str(), static_cast<rapidjson::SizeType>(k.size()));
        w.String(v);
    }
    w.EndObject();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

Result<ControlRequest> ParseControlRequest(std::string_view line) {
    auto doc = ParseObject(line);
    if (!doc) return Fail(doc.error());
    const auto& d = doc.value();
    auto cmd = d.FindMember("command");
    if (cmd == d.MemberEnd() || !cmd->value.IsString())
        return Fail("control message needs a string member \"command\"");
    ControlRequest out;
    out.command = cmd->value.GetString();
    if (auto args = d.FindMember("args"); args != d.MemberEnd()) {
        if (!args->value.IsObject()) return Fail("\"args\" must be an object of strings");
        for (const auto& m : args->value.GetObject()) {
            if (!m.value.IsString())
                return Fail(fmt::format("argument \"{}\" must be a string", m.name.GetString()));
            out.args[m.name.GetString()] = m.value.GetString();
        }
    }
    return out;
}

std::string FormatControlResponse(const ControlResponse& response) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("ok");
    w.Bool(response.ok);
    if (response.ok) {
        w.Key("result");
        w.RawValue(response.result_json.data(), response.result_json.size(), rapidjson::kObjectType);
    } else {
        w.Key("error");
        w.String(response.error);
        if (!response.hint.empty()) {
            w.Key("hint");
            w.String(response.hint);
        }
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

Result<ControlResponse> ParseControlResponse(std::string_view line) {
    auto doc = ParseObject(line);
    if (!doc) return Fail(doc.error());
    const auto& d = doc.value();
    auto ok = d.FindMember("ok");
    if (ok == d.MemberEnd() || !ok->value.IsBool())
        return Fail("control response has no boolean \"ok\"");
    ControlResponse out;
    out.ok = ok->value.GetBool();
    if (out.ok) {
        if (auto r = d.FindMember("result"); r != d.MemberEnd()) {
            rapidjson::StringBuffer buf;
            Writer w(buf);
            r->value.Accept(w);
            out.result_json.assign(buf.GetString(), buf.GetSize());
        }
    } else {
        if (auto e = d.FindMember("error"); e != d.MemberEnd() && e->value.IsString())
            out.error = e->value.GetString();
        if (auto h = d.FindMember("hint"); h != d.MemberEnd() && h->value.IsString())
            out.hint = h->value.GetString();
    }
    return out;
}

}  // namespace iblsync::protocols
