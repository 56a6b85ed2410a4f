#include "protocols/change_feed.hpp"

#include <algorithm>
#include <map>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <fmt/format.h>

#include "protocols/isil.hpp"
#include "protocols/push_batch.hpp"

namespace iblsync::protocols::feed {
namespace {

using Value = rapidjson::Value;

Result<rapidjson::Document> Parse(std::string_view text) {
    // Deeper than any page we write: a peer that nests further is not one of ours.
    if (auto d = CheckJsonDepth(text, 16); !d) return Error{d.error(), ""};
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
    if (doc.HasParseError())
        return Fail(fmt::format("invalid JSON at byte {}: {}", doc.GetErrorOffset(),
                                rapidjson::GetParseError_En(doc.GetParseError())));
    if (!doc.IsObject()) return FailAt("", "the answer must be a JSON object");
    return doc;
}

// Reads members of one object; the first failure is kept.
class Fields {
public:
    Fields(const Value& v, std::string at) : v_(v), at_(std::move(at)) {}

    std::string Text(const char* key, std::size_t max, bool required = true) {
        auto m = v_.FindMember(key);
        if (m == v_.MemberEnd() || m->value.IsNull()) {
            if (required) Set(key, "is missing");
            return {};
        }
        if (!m->value.IsString()) return Set(key, "must be a string"), std::string();
        std::string s(m->value.GetString(), m->value.GetStringLength());
        if (s.size() > max) Set(key, fmt::format("longer than {} bytes", max));
        return s;
    }
    long long Int(const char* key) {
        auto m = v_.FindMember(key);
        if (m == v_.MemberEnd() || !m->value.IsInt64() || m->value.GetInt64() < 0)
            return Set(key, "must be a non-negative integer"), 0;
        return m->value.GetInt64();
    }
    bool Bool(const char* key) {
        auto m = v_.FindMember(key);
        if (m == v_.MemberEnd() || !m->value.IsBool()) return Set(key, "must be true or false"), false;
        return m->value.GetBool();
    }
    const Value* Array(const char* key, bool required = true) {
        auto m = v_.FindMember(key);
        if (m == v_.MemberEnd()) {
            if (required) Set(key, "is missing");
            return nullptr;
        }
        if (!m->value.IsArray()) return Set(key, "must be an array"), nullptr;
        return &m->value;
    }
    std::string Isil(const char* key, bool required = true) {
        auto s = Text(key, 20, required);
        if (s.empty()) {
            if (required && ok()) Set(key, "must not be empty");
            return s;
        }
        auto n = NormalizeIsil(s);
        if (!n || *n != s) Set(key, fmt::format("'{}' is not a canonical ISIL", s));
        return s;
    }
    void Set(const char* key, std::string message) {
        if (error_.message.empty()) error_ = Error{std::move(message), at_ + "/" + key};
    }
    bool ok() const { return error_.message.empty(); }
    Error error() const { return Error{error_.pointer + ": " + error_.message, error_.pointer}; }

private:
    const Value& v_;
    std::string at_;
    Error error_;
};

Result<Holding> ReadHolding(const Value& v, const std::string& at) {
    if (!v.IsObject()) return FailAt(at, at + ": a copy must be an object");
    Fields f(v, at);
    Holding h;
    h.barcode = f.Text("barcode", 100);
    h.branch = f.Text("branch", 200, false);
    h.shelfmark = f.Text("shelfmark", 200, false);
    const auto status = f.Text("status", 20);
    h.due_date = f.Text("due_date", 10, false);
    h.changed_at = f.Text("changed_at", 40, false);
    if (f.ok() && h.barcode.empty()) f.Set("barcode", "must not be empty");
    if (f.ok()) {
        if (auto s = ParseItemStatus(status)) h.status = *s;
        else f.Set("status", fmt::format("'{}' is not a copy status", status));
    }
    if (f.ok() && !h.due_date.empty()) {
        auto d = NormalizeDate(h.due_date);
        if (!d || *d != h.due_date) f.Set("due_date", "must be YYYY-MM-DD");
    }
    if (!f.ok()) return f.error();
    return h;
}

}  // namespace

Result<Page> ParsePage(std::string_view json, const Limits& limits) {
    auto doc = Parse(json);
    if (!doc) return Error{doc.error(), doc.error_pointer()};
    Fields top(*doc, "");
    Page page;
    page.next_since = top.Int("next_since");
    page.head = top.Int("head");
    const Value* changes = top.Array("changes");
    const Value* records = top.Array("records");
    const Value* libraries = top.Array("libraries");
    if (!top.ok()) return top.error();
    if (changes->Size() > limits.max_changes)
        return FailAt("/changes", fmt::format("/changes: more than {} changes in one page", limits.max_changes));
    long long last = -1;
    for (rapidjson::SizeType i = 0; i < changes->Size(); ++i) {
        const std::string at = fmt::format("/changes/{}", i);
        const Value& v = (*changes)[i];
        if (!v.IsObject()) return FailAt(at, at + ": a change must be an object");
        Fields f(v, at);
        Change c;
        c.seq = f.Int("seq");
        c.at = f.Text("at", 40);
        c.entity = f.Text("entity", 10);
        c.op = f.Text("op", 10);
        c.library = f.Isil("library");
        if (f.ok() && c.entity != "record" && c.entity != "holding") f.Set("entity", "must be record or holding");
        if (f.ok() && c.op != "insert" && c.op != "update" && c.op != "delete")
            f.Set("op", "must be insert, update or delete");
        if (f.ok()) {
            c.local_id = f.Text(c.entity == "record" ? "id" : "barcode", 200);
            if (c.entity == "holding") c.record_local_id = f.Text("record", 200, false);
        }
        if (f.ok() && c.seq <= last) f.Set("seq", "sequence numbers must increase");
        if (!f.ok()) return f.error();
        last = c.seq;
        page.changes.push_back(std::move(c));
    }
    if (last >= 0 && page.next_since < last)
        return FailAt("/next_since", fmt::format("/next_since: {} is behind the last change {}", page.next_since, last));
    if (page.next_since > page.head)
        return FailAt("/next_since", fmt::format("/next_since: {} is beyond the head {}", page.next_since, page.head));

    for (rapidjson::SizeType i = 0; i < records->Size(); ++i) {
        const std::string at = fmt::format("/records/{}", i);
        const Value& v = (*records)[i];
        if (!v.IsObject()) return FailAt(at, at + ": a record state must be an object");
        Fields f(v, at);
        RecordState r;
        r.library = f.Isil("library");
        r.local_id = f.Text("id", 200);
        r.deleted = f.Bool("deleted");
        if (f.ok() && r.local_id.empty()) f.Set("id", "must not be empty");
        if (f.ok() && !r.deleted) {
            r.format = f.Text("format", 10);
            r.raw = f.Text("raw", limits.max_record_bytes);
            if (f.ok() && r.format != "iso2709" && r.format != "marcxml" && r.format != "json")
                f.Set("format", "must be iso2709, marcxml or json");
            if (const Value* hs = f.ok() ? f.Array("holdings") : nullptr) {
                for (rapidjson::SizeType k = 0; k < hs->Size(); ++k) {
                    auto h = ReadHolding((*hs)[k], fmt::format("{}/holdings/{}", at, k));
                    if (!h) return Error{h.error(), h.error_pointer()};
                    r.holdings.push_back(std::move(h).value());
                }
            }
        }
        if (!f.ok()) return f.error();
        page.records.push_back(std::move(r));
    }
    for (rapidjson::SizeType i = 0; i < libraries->Size(); ++i) {
        const std::string at = fmt::format("/libraries/{}", i);
        const Value& v = (*libraries)[i];
        if (!v.IsObject()) return FailAt(at, at + ": a library must be an object");
        Fields f(v, at);
        Library l;
        l.isil = f.Isil("isil");
        l.name = f.Text("name", 200);
        l.province = f.Text("province", 5, false);
        l.poi = f.Isil("poi");
        if (f.ok() && l.name.empty()) f.Set("name", "must not be empty");
        if (!f.ok()) return f.error();
        page.libraries.push_back(std::move(l));
    }
    return page;
}

Result<Digest> ParseDigest(std::string_view json) {
    auto doc = Parse(json);
    if (!doc) return Error{doc.error(), doc.error_pointer()};
    Fields top(*doc, "");
    const Value* libraries = top.Array("libraries");
    const Value* records = top.Array("records", false);
    if (!top.ok()) return top.error();
    Digest d;
    for (rapidjson::SizeType i = 0; i < libraries->Size(); ++i) {
        const std::string at = fmt::format("/libraries/{}", i);
        const Value& v = (*libraries)[i];
        if (!v.IsObject()) return FailAt(at, at + ": must be an object");
        Fields f(v, at);
        LibraryDigest l;
        l.isil = f.Isil("isil");
        l.records = f.Int("records");
        l.holdings = f.Int("holdings");
        l.records_sum = f.Text("records_sum", 40);
        l.holdings_sum = f.Text("holdings_sum", 40);
        if (!f.ok()) return f.error();
        d.libraries.push_back(std::move(l));
    }
    if (records)
        for (rapidjson::SizeType i = 0; i < records->Size(); ++i) {
            const std::string at = fmt::format("/records/{}", i);
            const Value& v = (*records)[i];
            if (!v.IsObject()) return FailAt(at, at + ": must be an object");
            Fields f(v, at);
            RecordDigest r;
            r.local_id = f.Text("id", 200);
            r.checksum = f.Text("checksum", 64);
            r.holdings = f.Int("holdings");
            r.holdings_sum = f.Text("holdings_sum", 40);
            if (!f.ok()) return f.error();
            d.records.push_back(std::move(r));
        }
    auto by_isil = [](const LibraryDigest& a, const LibraryDigest& b) { return a.isil < b.isil; };
    std::sort(d.libraries.begin(), d.libraries.end(), by_isil);
    std::sort(d.records.begin(), d.records.end(),
              [](const RecordDigest& a, const RecordDigest& b) { return a.local_id < b.local_id; });
    return d;
}

std::vector<Difference> Compare(const std::vector<LibraryDigest>& here, const std::vector<LibraryDigest>& peer) {
    std::map<std::string, std::pair<const LibraryDigest*, const LibraryDigest*>> all;
    for (const auto& l : here) all[l.isil].first = &l;
    for (const auto& l : peer) all[l.isil].second = &l;
    std::vector<Difference> out;
    for (const auto& [isil, p] : all) {
        const auto* a = p.first;
        const auto* b = p.second;
        // A library without live records or copies is the same as none.
        auto empty = [](const LibraryDigest* d) { return !d || (d->records == 0 && d->holdings == 0); };
        if (empty(a) && empty(b)) continue;
        if (empty(b)) {
            out.push_back({isil, fmt::format("{} records and {} copies here, none at the peer", a->records, a->holdings)});
        } else if (empty(a)) {
            out.push_back({isil, fmt::format("none here, {} records and {} copies at the peer", b->records, b->holdings)});
        } else if (a->records != b->records || a->records_sum != b->records_sum) {
            out.push_back({isil, a->records != b->records
                                     ? fmt::format("records: {} here, {} at the peer", a->records, b->records)
                                     : fmt::format("records: {} on both sides, but their contents differ", a->records)});
        } else if (a->holdings != b->holdings || a->holdings_sum != b->holdings_sum) {
            out.push_back({isil, a->holdings != b->holdings
                                     ? fmt::format("copies: {} here, {} at the peer", a->holdings, b->holdings)
                                     : fmt::format("copies: {} on both sides, but their states differ", a->holdings)});
        }
    }
    return out;
}

std::vector<std::string> CompareRecords(const std::vector<RecordDigest>& here, const std::vector<RecordDigest>& peer,
                                        std::size_t limit, std::size_t* total) {
    std::vector<std::string> out;
    std::size_t n = 0;
    auto note = [&](const std::string& id) {
        ++n;
        if (out.size() < limit) out.push_back(id);
    };
    auto a = here.begin();
    auto b = peer.begin();
    while (a != here.end() || b != peer.end()) {
        if (b == peer.end() || (a != here.end() && a->local_id < b->local_id)) note((a++)->local_id);
        else if (a == here.end() || b->local_id < a->local_id) note((b++)->local_id);
        else {
            if (!(*a == *b)) note(a->local_id);
            ++a, ++b;
        }
    }
    if (total) *total = n;
    return out;
}

}  // namespace iblsync::protocols::feed
