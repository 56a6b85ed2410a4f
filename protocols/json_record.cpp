#include "protocols/json_record.hpp"

#include <algorithm>
#include <array>
#include <set>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocols/identifiers.hpp"

namespace iblsync::protocols {
namespace {

using Value = rapidjson::Value;

// The material types of the catalogue and the MARC leader/06, leader/07 and
// 008/23 (form of item) that say the same thing.
struct TypeCodes {
    std::string_view name;
    char type, level, form;
};
constexpr std::array<TypeCodes, 12> kTypes{{
    {"book", 'a', 'm', ' '},
    {"large_print", 'a', 'm', 'd'},
    {"braille", 'a', 'm', 'f'},
    {"ebook", 'a', 'm', 'o'},
    {"audiobook", 'i', 'm', ' '},
    {"music", 'j', 'm', ' '},
    {"video", 'g', 'm', ' '},
    {"serial", 'a', 's', ' '},
    {"map", 'e', 'm', ' '},
    {"score", 'c', 'm', ' '},
    {"electronic", 'm', 'm', ' '},
    {"other", 'p', 'm', ' '},
}};

// Keys in the order the canonical form writes them.
constexpr std::array<std::string_view, 18> kRecordKeys{
    "id",    "type",   "title",    "subtitle",    "authors", "year", "language", "edition", "publisher",
    "place", "series", "subjects", "description", "isbn",    "issn", "oclc",     "ppn",     "holdings"};
constexpr std::array<std::string_view, 6> kHoldingKeys{"barcode", "status", "due_date", "branch", "shelfmark",
                                                      "changed_at"};

class Reader {
public:
    explicit Reader(const JsonRecordLimits& limits) : limits_(limits) {}

    // Checks an object's keys: all known, none twice.
    Result<bool> Keys(const Value& obj, const std::string& at, const std::string_view* known, std::size_t n) {
        std::set<std::string_view> seen;
        for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
            std::string_view key(it->name.GetString(), it->name.GetStringLength());
            std::string ptr = at + "/" + Escape(key);
            if (std::find(known, known + n, key) == known + n)
                return FailAt(ptr, fmt::format("unknown member '{}'", Printable(key)));
            if (!seen.insert(key).second) return FailAt(ptr, fmt::format("member '{}' appears twice", key));
        }
        return true;
    }

    // A string member, trimmed; empty if absent or null.
    Result<std::string> String(const Value& obj, std::string_view key, const std::string& at, bool required) {
        auto it = obj.FindMember(Value(rapidjson::StringRef(key.data(), key.size())));
        std::string ptr = at + "/" + std::string(key);
        if (it == obj.MemberEnd() || it->value.IsNull()) {
            if (required) return FailAt(ptr, fmt::format("'{}' is required", key));
            return std::string();
        }
        return Text(it->value, ptr, required);
    }

    Result<std::string> Text(const Value& v, const std::string& ptr, bool required) {
        if (!v.IsString()) return FailAt(ptr, "must be a string");
        std::string_view s(v.GetString(), v.GetStringLength());
        if (s.size() > limits_.max_string_bytes)
            return FailAt(ptr, fmt::format("string of {} bytes; the limit is {}", s.size(), limits_.max_string_bytes));
        for (char c : s) {
            auto u = static_cast<unsigned char>(c);
            if (u < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return FailAt(ptr, fmt::format("control character U+{:04X} is not allowed", u));
        }
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r'))
            s.remove_prefix(1);
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
            s.remove_suffix(1);
        if (required && s.empty()) return FailAt(ptr, "must not be empty");
        return std::string(s);
    }

    // An array of strings; a single string is taken as a one-element array.
    Result<std::vector<std::string>> Strings(const Value& obj, std::string_view key, const std::string& at) {
        std::vector<std::string> out;
        auto it = obj.FindMember(Value(rapidjson::StringRef(key.data(), key.size())));
        std::string ptr = at + "/" + std::string(key);
        if (it == obj.MemberEnd() || it->value.IsNull()) return out;
        if (it->value.IsString()) {
            auto s = Text(it->value, ptr, false);
            if (!s) return Error{s.error(), s.error_pointer()};
            if (!s->empty()) out.push_back(s.value());
            return out;
        }
        if (!it->value.IsArray()) return FailAt(ptr, "must be an array of strings");
        if (it->value.Size() > limits_.max_array_items)
            return FailAt(ptr, fmt::format("{} items; the limit is {}", it->value.Size(), limits_.max_array_items));
        for (rapidjson::SizeType i = 0; i < it->value.Size(); ++i) {
            auto s = Text(it->value[i], fmt::format("{}/{}", ptr, i), false);
            if (!s) return Error{s.error(), s.error_pointer()};
            if (!s->empty()) out.push_back(s.value());
        }
        return out;
    }

    static std::string Escape(std::string_view key) {  // RFC 6901
        std::string out;
        for (char c : key) {
            if (c == '~') out += "~0";
            else if (c == '/') out += "~1";
            else out += c;
        }
        return out;
    }

    static std::string Printable(std::string_view s) {
        return s.size() > 60 ? std::string(s.substr(0, 60)) + "..." : std::string(s);
    }

private:
    const JsonRecordLimits& limits_;
};

marc::Field Data(std::string tag, char ind1, char ind2, std::vector<marc::Subfield> subs) {
    return marc::Field{std::move(tag), ind1, ind2, "", std::move(subs)};
}

void WriteString(rapidjson::Writer<rapidjson::StringBuffer>& w, std::string_view key, const std::string& v) {
    if (v.empty()) return;
    w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
}

void WriteStrings(rapidjson::Writer<rapidjson::StringBuffer>& w, std::string_view key,
                  const std::vector<std::string>& v) {
    if (v.empty()) return;
    w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    w.StartArray();
    for (const auto& s : v) w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
    w.EndArray();
}

Result<Holding> ReadHolding(Reader& rd, const Value& v, const std::string& ptr) {
    if (!v.IsObject()) return FailAt(ptr, "a copy must be an object");
    if (auto k = rd.Keys(v, ptr, kHoldingKeys.data(), kHoldingKeys.size()); !k) return Error{k.error(), k.error_pointer()};
    Holding h;
    auto barcode = rd.String(v, "barcode", ptr, true);
    if (!barcode) return Error{barcode.error(), barcode.error_pointer()};
    if (barcode->size() > 100) return FailAt(ptr + "/barcode", "longer than 100 bytes");
    h.barcode = barcode.value();
    auto status = rd.String(v, "status", ptr, false);
    if (!status) return Error{status.error(), status.error_pointer()};
    if (!status->empty()) {
        auto s = ParseItemStatus(status.value());
        if (!s)
            return FailAt(ptr + "/status",
                          fmt::format("'{}' is not a status (available, on_loan, in_transit, reserved, missing, "
                                      "not_lendable)",
                                      Reader::Printable(status.value())));
        h.status = *s;
    }
    auto due = rd.String(v, "due_date", ptr, false);
    if (!due) return Error{due.error(), due.error_pointer()};
    if (!due->empty()) {
        auto d = NormalizeDate(due.value());
        if (!d) return FailAt(ptr + "/due_date", d.error());
        h.due_date = d.value();
    }
    for (auto [key, slot] : {std::pair{"branch", &h.branch}, std::pair{"shelfmark", &h.shelfmark}}) {
        auto s = rd.String(v, key, ptr, false);
        if (!s) return Error{s.error(), s.error_pointer()};
        if (s->size() > 200) return FailAt(ptr + "/" + key, "longer than 200 bytes");
        *slot = s.value();
    }
    auto changed = rd.String(v, "changed_at", ptr, false);
    if (!changed) return Error{changed.error(), changed.error_pointer()};
    if (!changed->empty()) {
        auto t = NormalizeTimestamp(changed.value());
        if (!t) return FailAt(ptr + "/changed_at", t.error());
        h.changed_at = t.value();
    }
    return h;
}

}  // namespace

Result<std::string> NormalizeTimestamp(std::string_view text) {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), converted to UTC.
    auto digits = [&](std::size_t pos, std::size_t n, int& out) {
        if (pos + n > text.size()) return false;
        out = 0;
        for (std::size_t i = pos; i < pos + n; ++i) {
            if (text[i] < '0' || text[i] > '9') return false;
            out = out * 10 + (text[i] - '0');
        }
        return true;
    };
    auto bad = [&] {
        return Fail(fmt::format("'{}' is not an RFC 3339 date-time (e.g. 2026-11-24T09:30:00Z)",
                                Reader::Printable(text)));
    };
    int y, mo, d, h, mi, s;
    if (text.size() < 20 || !digits(0, 4, y) || text[4] != '-' || !digits(5, 2, mo) || text[7] != '-' ||
        !digits(8, 2, d) || (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !digits(11, 2, h) ||
        text[13] != ':' || !digits(14, 2, mi) || text[16] != ':' || !digits(17, 2, s))
        return bad();
    auto date = NormalizeDate(text.substr(0, 10));
    if (!date || h > 23 || mi > 59 || s > 60) return bad();
    std::size_t pos = 19;
    std::string frac;
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') frac += text[pos++];
        if (frac.empty()) return bad();
        frac.resize(6, '0');  // microseconds, as PostgreSQL keeps them
    }
    int offset = 0;
    if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z') && pos + 1 == text.size()) {
    } else if (pos + 6 == text.size() && (text[pos] == '+' || text[pos] == '-') && text[pos + 3] == ':') {
        int oh, om;
        if (!digits(pos + 1, 2, oh) || !digits(pos + 4, 2, om) || oh > 23 || om > 59) return bad();
        offset = (text[pos] == '+' ? 1 : -1) * (oh * 60 + om);
    } else {
        return bad();
    }
    // Days from civil (Howard Hinnant's algorithm) to shift by the offset.
    auto days_from_civil = [](int yy, int mm, int dd) {
        yy -= mm <= 2;
        const int era = (yy >= 0 ? yy : yy - 399) / 400;
        const int yoe = yy - era * 400;
        const int doy = (153 * (mm + (mm > 2 ? -3 : 9)) + 2) / 5 + dd - 1;
        const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
    };
    long long minutes = static_cast<long long>(days_from_civil(y, mo, d)) * 1440 + h * 60 + mi - offset;
    long long days = minutes >= 0 ? minutes / 1440 : (minutes - 1439) / 1440;
    int mod = static_cast<int>(minutes - days * 1440);
    // Civil from days.
    long long z = days + 719468;
    const long long era = (z >= 0 ? z : z - 146096) / 146097;
    const long long doe = z - era * 146097;
    const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const long long mp = (5 * doy + 2) / 153;
    const long long dd = doy - (153 * mp + 2) / 5 + 1;
    const long long mm = mp < 10 ? mp + 3 : mp - 9;
    const long long yy = yoe + era * 400 + (mm <= 2);
    std::string out = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", yy, mm, dd, mod / 60, mod % 60, s);
    if (!frac.empty()) out += "." + frac;
    return out + "Z";
}

Result<JsonRecord> ParseJsonRecord(std::string_view text, const JsonRecordLimits& limits) {
    if (text.size() > limits.max_bytes)
        return FailAt("", fmt::format("record of {} bytes; the limit is {}", text.size(), limits.max_bytes));
    rapidjson::Document doc;
    // Iterative parsing: deep nesting cannot exhaust the stack. The encoding
    // check refuses invalid UTF-8 instead of storing it.
    doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
    if (doc.HasParseError())
        return FailAt("", fmt::format("invalid JSON at byte {}: {}", doc.GetErrorOffset(),
                                      rapidjson::GetParseError_En(doc.GetParseError())));
    if (!doc.IsObject()) return FailAt("", "a record must be a JSON object");
    Reader rd(limits);
    if (auto k = rd.Keys(doc, "", kRecordKeys.data(), kRecordKeys.size()); !k) return Error{k.error(), k.error_pointer()};

    JsonRecord out;
    std::string title, subtitle, language, edition, publisher, place, series, description;
    std::vector<std::string> authors, subjects, isbn, issn, oclc, ppn;
    for (auto [key, slot, required] :
         {std::tuple{"id", &out.id, true}, std::tuple{"title", &title, true}, std::tuple{"subtitle", &subtitle, false},
          std::tuple{"language", &language, false}, std::tuple{"edition", &edition, false},
          std::tuple{"publisher", &publisher, false}, std::tuple{"place", &place, false},
          std::tuple{"series", &series, false}, std::tuple{"description", &description, false},
          std::tuple{"type", &out.material_type, false}}) {
        auto s = rd.String(doc, key, "", required);
        if (!s) return Error{s.error(), s.error_pointer()};
        *slot = s.value();
    }
    if (out.id.size() > 200) return FailAt("/id", fmt::format("{} bytes; the limit is 200", out.id.size()));
    for (auto [key, slot] : {std::pair{"authors", &authors}, std::pair{"subjects", &subjects}, std::pair{"isbn", &isbn},
                             std::pair{"issn", &issn}, std::pair{"oclc", &oclc}, std::pair{"ppn", &ppn}}) {
        auto s = rd.Strings(doc, key, "");
        if (!s) return Error{s.error(), s.error_pointer()};
        *slot = std::move(s).value();
    }
    int year = 0;
    if (auto it = doc.FindMember("year"); it != doc.MemberEnd() && !it->value.IsNull()) {
        if (!it->value.IsInt() || it->value.GetInt() < 1 || it->value.GetInt() > 2999)
            return FailAt("/year", "must be a whole number from 1 to 2999");
        year = it->value.GetInt();
    }
    if (!language.empty()) {
        bool ok = language.size() == 3 && std::all_of(language.begin(), language.end(), [](char c) {
                      return c >= 'a' && c <= 'z';
                  });
        if (!ok) return FailAt("/language", "must be an ISO 639-2 code of three lower-case letters, such as 'dut'");
    }
    if (out.material_type.empty()) out.material_type = "book";
    auto type = std::find_if(kTypes.begin(), kTypes.end(), [&](const TypeCodes& t) { return t.name == out.material_type; });
    if (type == kTypes.end())
        return FailAt("/type", fmt::format("'{}' is not a material type (book, large_print, braille, ebook, audiobook, "
                                           "music, video, serial, map, score, electronic, other)",
                                           Reader::Printable(out.material_type)));
    for (std::size_t i = 0; i < isbn.size(); ++i)
        if (!NormalizeIsbn(isbn[i])) return FailAt(fmt::format("/isbn/{}", i), fmt::format("'{}' is not a valid ISBN", isbn[i]));
    for (std::size_t i = 0; i < issn.size(); ++i)
        if (!NormalizeIssn(issn[i])) return FailAt(fmt::format("/issn/{}", i), fmt::format("'{}' is not a valid ISSN", issn[i]));

    if (auto it = doc.FindMember("holdings"); it != doc.MemberEnd() && !it->value.IsNull()) {
        if (!it->value.IsArray()) return FailAt("/holdings", "must be an array of copies");
        if (it->value.Size() > limits.max_holdings)
            return FailAt("/holdings", fmt::format("{} copies; the limit is {}", it->value.Size(), limits.max_holdings));
        out.holdings_given = true;
        std::set<std::string> barcodes;
        for (rapidjson::SizeType i = 0; i < it->value.Size(); ++i) {
            std::string ptr = fmt::format("/holdings/{}", i);
            auto h = ReadHolding(rd, it->value[i], ptr);
            if (!h) return Error{h.error(), h.error_pointer()};
            if (!barcodes.insert(h->barcode).second)
                return FailAt(ptr + "/barcode", fmt::format("barcode '{}' appears twice in this record", h->barcode));
            out.holdings.push_back(std::move(h).value());
        }
    }

    // The crosswalk to MARC 21 (documented in docs/formats.md).
    auto& m = out.marc;
    m.leader = "00000nam a2200000 i 4500";
    m.leader[6] = type->type;
    m.leader[7] = type->level;
    m.fields.push_back(marc::Field{"001", ' ', ' ', out.id, {}});
    std::string f008(40, ' ');
    f008.replace(0, 6, "||||||");
    f008[6] = year ? 's' : 'n';
    f008.replace(7, 4, year ? fmt::format("{:04}", year) : "uuuu");
    f008.replace(15, 3, "xx ");
    f008[23] = type->form;
    f008.replace(35, 3, language.empty() ? "und" : language);
    f008[39] = 'd';
    m.fields.push_back(marc::Field{"008", ' ', ' ', f008, {}});
    for (const auto& s : isbn) m.fields.push_back(Data("020", ' ', ' ', {{'a', s}}));
    for (const auto& s : issn) m.fields.push_back(Data("022", ' ', ' ', {{'a', s}}));
    for (const auto& s : oclc) m.fields.push_back(Data("035", ' ', ' ', {{'a', "(OCoLC)" + s}}));
    for (const auto& s : ppn) m.fields.push_back(Data("035", ' ', ' ', {{'a', "(NL-LeOCL)" + s}}));
    if (!authors.empty()) m.fields.push_back(Data("100", '1', ' ', {{'a', authors[0]}}));
    std::vector<marc::Subfield> t{{'a', title}};
    if (!subtitle.empty()) t.push_back({'b', subtitle});
    // Second indicator blank: the leading article is dropped by language
    // when keys are built, as no byte count was given.
    m.fields.push_back(Data("245", authors.empty() ? '0' : '1', ' ', std::move(t)));
    if (!edition.empty()) m.fields.push_back(Data("250", ' ', ' ', {{'a', edition}}));
    if (!place.empty() || !publisher.empty() || year) {
        std::vector<marc::Subfield> p;
        if (!place.empty()) p.push_back({'a', place});
        if (!publisher.empty()) p.push_back({'b', publisher});
        if (year) p.push_back({'c', std::to_string(year)});
        m.fields.push_back(Data("264", ' ', '1', std::move(p)));
    }
    if (!series.empty()) m.fields.push_back(Data("490", '0', ' ', {{'a', series}}));
    if (!description.empty()) m.fields.push_back(Data("520", ' ', ' ', {{'a', description}}));
    for (const auto& s : subjects) m.fields.push_back(Data("650", ' ', '4', {{'a', s}}));
    for (std::size_t i = 1; i < authors.size(); ++i) m.fields.push_back(Data("700", '1', ' ', {{'a', authors[i]}}));

    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    WriteString(w, "id", out.id);
    WriteString(w, "type", out.material_type);
    WriteString(w, "title", title);
    WriteString(w, "subtitle", subtitle);
    WriteStrings(w, "authors", authors);
    if (year) {
        w.Key("year");
        w.Int(year);
    }
    WriteString(w, "language", language);
    WriteString(w, "edition", edition);
    WriteString(w, "publisher", publisher);
    WriteString(w, "place", place);
    WriteString(w, "series", series);
    WriteStrings(w, "subjects", subjects);
    WriteString(w, "description", description);
    WriteStrings(w, "isbn", isbn);
    WriteStrings(w, "issn", issn);
    WriteStrings(w, "oclc", oclc);
    WriteStrings(w, "ppn", ppn);
    w.EndObject();
    out.canonical.assign(buf.GetString(), buf.GetSize());
    return out;
}

}  // namespace iblsync::protocols
