#include "protocols/push_batch.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fmt/format.h>

namespace iblsync::protocols {
namespace {

constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

Result<rapidjson::Document> ParseDocument(std::string_view text, const BatchLimits& limits) {
    if (auto d = CheckJsonDepth(text, limits.max_depth); !d) return Error{d.error(), ""};
    rapidjson::Document doc;
    doc.Parse<kParseFlags>(text.data(), text.size());
    if (doc.HasParseError())
        return Fail(fmt::format("invalid JSON at byte {}: {}", doc.GetErrorOffset(),
                                rapidjson::GetParseError_En(doc.GetParseError())));
    return doc;
}

std::string Serialise(const rapidjson::Value& v) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    v.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
}

Result<JsonRecord> Prefixed(Result<JsonRecord> r, const std::string& prefix) {
    if (r) return r;
    return FailAt(prefix + r.error_pointer(), r.error());
}

Result<AvailabilityItem> ReadAvailability(const rapidjson::Value& v, const std::string& at) {
    if (!v.IsObject()) return FailAt(at, "an availability update must be an object");
    AvailabilityItem item;
    bool have_status = false;
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
        const std::string key(m->name.GetString(), m->name.GetStringLength());
        const std::string ptr = at + "/" + key;
        const auto& val = m->value;
        auto text = [&]() -> Result<std::string> {
            if (!val.IsString()) return FailAt(ptr, "must be a string");
            std::string s(val.GetString(), val.GetStringLength());
            if (s.empty()) return FailAt(ptr, "must not be empty");
            if (s.size() > 200) return FailAt(ptr, "longer than 200 bytes");
            for (unsigned char c : s)
                if (c < 0x20) return FailAt(ptr, fmt::format("control character U+{:04X} is not allowed", c));
            return s;
        };
        if (key == "barcode") {
            if (!item.barcode.empty()) return FailAt(ptr, "member 'barcode' appears twice");
            auto s = text();
            if (!s) return Error{s.error(), s.error_pointer()};
            if (s->size() > 100) return FailAt(ptr, "longer than 100 bytes");
            item.barcode = s.value();
        } else if (key == "item_id") {
            if (item.item_id != 0) return FailAt(ptr, "member 'item_id' appears twice");
            if (!val.IsInt64() || val.GetInt64() <= 0) return FailAt(ptr, "must be a positive integer");
            item.item_id = val.GetInt64();
        } else if (key == "status") {
            if (have_status) return FailAt(ptr, "member 'status' appears twice");
            auto s = text();
            if (!s) return Error{s.error(), s.error_pointer()};
            auto st = ParseItemStatus(s.value());
            if (!st)
                return FailAt(ptr, "not a status (available, on_loan, in_transit, reserved, missing, not_lendable)");
            item.status = *st;
            have_status = true;
        } else if (key == "due_date") {
            if (!item.due_date.empty()) return FailAt(ptr, "member 'due_date' appears twice");
            if (val.IsNull()) continue;
            auto s = text();
            if (!s) return Error{s.error(), s.error_pointer()};
            auto d = NormalizeDate(s.value());
            if (!d) return FailAt(ptr, d.error());
            item.due_date = d.value();
        } else if (key == "changed_at") {
            if (!item.changed_at.empty()) return FailAt(ptr, "member 'changed_at' appears twice");
            auto s = text();
            if (!s) return Error{s.error(), s.error_pointer()};
            auto t = NormalizeTimestamp(s.value());
            if (!t) return FailAt(ptr, t.error());
            item.changed_at = t.value();
        } else {
            return FailAt(ptr, fmt::format("unknown member '{}'", key.substr(0, 60)));
        }
    }
    if (item.barcode.empty() == (item.item_id == 0))
        return FailAt(at, "give the copy's 'barcode' or its 'item_id' (one of the two)");
    if (!have_status) return FailAt(at + "/status", "'status' is required");
    return item;
}

}  // namespace

Result<std::size_t> CheckJsonDepth(std::string_view text, std::size_t max_depth) {
    std::size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return Fail(fmt::format("JSON nested deeper than {} levels (at byte {})", max_depth, i));
            deepest = std::max(deepest, depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

Result<std::vector<RecordItem>> ParseRecordBatch(std::string_view body, bool ndjson, const BatchLimits& limits) {
    std::vector<RecordItem> out;
    if (ndjson) {
        while (!body.empty()) {
            auto nl = body.find('\n');
            std::string_view line = body.substr(0, nl);
            body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
            while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
                line.remove_suffix(1);
            while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
            if (line.empty()) continue;
            if (out.size() == limits.max_items)
                return Fail(fmt::format("more than {} records in one batch; split it", limits.max_items));
            const std::size_t index = out.size();  // positions count records; blank lines are skipped
            RecordItem item;
            if (auto d = CheckJsonDepth(line, limits.max_depth); !d)
                item.record = FailAt(fmt::format("/{}", index), d.error());
            else
                item.record = Prefixed(ParseJsonRecord(line, limits.record), fmt::format("/{}", index));
            out.push_back(std::move(item));
        }
        if (out.empty()) return Fail("the batch holds no records");
        return out;
    }
    auto doc = ParseDocument(body, limits);
    if (!doc) return Error{doc.error(), ""};
    if (!doc->IsArray()) return Fail("a batch of records must be a JSON array (or NDJSON, Content-Type application/x-ndjson)");
    if (doc->Size() > limits.max_items)
        return Fail(fmt::format("{} records in one batch; the limit is {}", doc->Size(), limits.max_items));
    if (doc->Empty()) return Fail("the batch holds no records");
    for (rapidjson::SizeType i = 0; i < doc->Size(); ++i) {
        RecordItem item;
        item.record = Prefixed(ParseJsonRecord(Serialise((*doc)[i]), limits.record), fmt::format("/{}", i));
        out.push_back(std::move(item));
    }
    return out;
}

Result<std::vector<Result<AvailabilityItem>>> ParseAvailabilityBatch(std::string_view body, const BatchLimits& limits) {
    auto doc = ParseDocument(body, limits);
    if (!doc) return Error{doc.error(), ""};
    if (!doc->IsArray()) return Fail("availability updates must be a JSON array of objects");
    if (doc->Size() > limits.max_items)
        return Fail(fmt::format("{} updates in one batch; the limit is {}", doc->Size(), limits.max_items));
    if (doc->Empty()) return Fail("the batch holds no updates");
    std::vector<Result<AvailabilityItem>> out;
    out.reserve(doc->Size());
    for (rapidjson::SizeType i = 0; i < doc->Size(); ++i)
        out.push_back(ReadAvailability((*doc)[i], fmt::format("/{}", i)));
    return out;
}

}  // namespace iblsync::protocols
