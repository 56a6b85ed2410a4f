#include "protocols/oai_pmh.hpp"

#include <array>
#include <charconv>
#include <cstdint>

#include <fmt/format.h>

#include "protocols/marcxml.hpp"
#include "protocols/url.hpp"
#include "protocols/utf8.hpp"

namespace iblsync::protocols::oai {

namespace {

constexpr std::array<std::string_view, 6> kVerbs{"Identify",        "ListMetadataFormats", "ListSets",
                                                 "ListIdentifiers", "ListRecords",         "GetRecord"};

// Howard Hinnant's days-from-civil: days since 1970-01-01 of a proleptic
// Gregorian date.
long long DaysFromCivil(int y, unsigned m, unsigned d) {
    y -= m <= 2;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<long long>(doe) - 719468;
}

void CivilFromDays(long long z, int& y, unsigned& m, unsigned& d) {
    z += 719468;
    const long long era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y = static_cast<int>(yoe + era * 400 + (m <= 2));
}

bool Digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
    if (at + n > s.size()) return false;
    out = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}

std::string Attr(std::string_view text) { return marc::XmlEscape(text); }

// Text XML 1.0 can carry: valid UTF-8 without control characters other
// than tab, newline and carriage return.
bool XmlText(std::string_view s) {
    for (unsigned char c : s)
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    return IsValidUtf8(s);
}

// A harvester's value quoted in a message: printable ASCII only, and short.
std::string Quoted(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 60)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > 60) out += "...";
    return out;
}

// A setSpec component: the characters the schema's setSpecType allows.
bool SetChar(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           std::string_view("-_.!~*'()").find(c) != std::string_view::npos;
}

bool PrefixValid(std::string_view p) {
    if (p.empty()) return false;
    for (char c : p)
        if (!SetChar(c)) return false;
    return true;
}

// --- the resumption token: base64url of the fields, then a check ----------

constexpr std::string_view kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string B64(std::string_view in) {
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : in) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += kB64[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out += kB64[(acc << (6 - bits)) & 63];
    return out;
}

std::optional<std::string> UnB64(std::string_view in) {
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        auto v = kB64.find(c);
        if (v == std::string_view::npos) return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // not what B64 writes
    return out;
}

// Not a secret: it tells a token this code wrote from a changed or cut one,
// which then gets badResumptionToken rather than a list of something else.
std::uint32_t Check(std::string_view s) {
    std::uint32_t h = 2166136261u;
    for (char c : std::string_view("iblsync-oai-token")) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
    for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
    return h;
}

std::string StampField(const std::optional<Datestamp>& d) {
    if (!d) return "";
    return fmt::format("{}{}", d->seconds, d->day ? "d" : "s");
}

bool ParseStampField(std::string_view f, std::optional<Datestamp>& out) {
    if (f.empty()) return true;
    const char kind = f.back();
    if (kind != 'd' && kind != 's') return false;
    long long v = 0;
    auto [end, ec] = std::from_chars(f.data(), f.data() + f.size() - 1, v);
    if (ec != std::errc() || end != f.data() + f.size() - 1) return false;
    // Only what ParseDatestamp can give: years 0001 to 9999.
    if (v < DaysFromCivil(1, 1, 1) * 86400 || v > DaysFromCivil(9999, 12, 31) * 86400 + 86399) return false;
    if (kind == 'd' && v % 86400 != 0) return false;
    out = Datestamp{v, kind == 'd'};
    return true;
}

bool ParseCount(std::string_view f, long long min, long long& out) {
    auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), out);
    return ec == std::errc() && end == f.data() + f.size() && out >= min && !f.empty() &&
           (f.size() == 1 || f[0] != '0');
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    for (;;) {
        auto at = s.find(sep);
        out.push_back(s.substr(0, at));
        if (at == std::string_view::npos) return out;
        s.remove_prefix(at + 1);
    }
}

const char* kEnvelopeStart =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<OAI-PMH xmlns=\"http://www.openarchives.org/OAI/2.0/\" "
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
    "xsi:schemaLocation=\"http://www.openarchives.org/OAI/2.0/ "
    "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd\">\n";

}  // namespace

std::string_view VerbName(Verb verb) { return kVerbs[static_cast<std::size_t>(verb)]; }

std::string_view CodeName(ErrorCode code) {
    switch (code) {
        case ErrorCode::kBadArgument: return "badArgument";
        case ErrorCode::kBadResumptionToken: return "badResumptionToken";
        case ErrorCode::kBadVerb: return "badVerb";
        case ErrorCode::kCannotDisseminateFormat: return "cannotDisseminateFormat";
        case ErrorCode::kIdDoesNotExist: return "idDoesNotExist";
        case ErrorCode::kNoRecordsMatch: return "noRecordsMatch";
        case ErrorCode::kNoMetadataFormats: return "noMetadataFormats";
        case ErrorCode::kNoSetHierarchy: return "noSetHierarchy";
    }
    return "badArgument";
}

std::optional<Datestamp> ParseDatestamp(std::string_view t) {
    int y = 0, mo = 0, d = 0;
    if (t.size() != 10 && t.size() != 20) return std::nullopt;
    if (!Digits(t, 0, 4, y) || t[4] != '-' || !Digits(t, 5, 2, mo) || t[7] != '-' || !Digits(t, 8, 2, d))
        return std::nullopt;
    static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1]) return std::nullopt;
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap) return std::nullopt;
    const long long day = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400;
    if (t.size() == 10) return Datestamp{day, true};
    int h = 0, mi = 0, s = 0;
    if (t[10] != 'T' || !Digits(t, 11, 2, h) || t[13] != ':' || !Digits(t, 14, 2, mi) || t[16] != ':' ||
        !Digits(t, 17, 2, s) || t[19] != 'Z')
        return std::nullopt;
    if (h > 23 || mi > 59 || s > 59) return std::nullopt;
    return Datestamp{day + h * 3600 + mi * 60 + s, false};
}

std::string FormatDatestamp(long long seconds) {
    long long days = seconds / 86400, rest = seconds % 86400;
    if (rest < 0) rest += 86400, --days;
    int y = 0;
    unsigned m = 0, d = 0;
    CivilFromDays(days, y, m, d);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", y, m, d, rest / 3600, rest / 60 % 60, rest % 60);
}

long long ListQuery::UntilSeconds() const {
    if (!until) return -1;
    return until->day ? until->seconds + 86399 : until->seconds;
}

std::string EncodeToken(const ListQuery& q) {
    const std::string fields = fmt::format("1|{}|{}|{}|{}|{}|{}|{}", q.metadata_prefix, q.set, StampField(q.from),
                                           StampField(q.until), q.after, q.cursor, q.complete_list_size);
    return fmt::format("{}.{:08x}", B64(fields), Check(fields));
}

std::optional<ListQuery> DecodeToken(std::string_view token) {
    if (token.size() > 1000) return std::nullopt;
    const auto dot = token.rfind('.');
    if (dot == std::string_view::npos || token.size() - dot != 9) return std::nullopt;
    auto fields = UnB64(token.substr(0, dot));
    if (!fields || fmt::format("{:08x}", Check(*fields)) != token.substr(dot + 1)) return std::nullopt;
    const auto f = Split(*fields, '|');
    if (f.size() != 8 || f[0] != "1") return std::nullopt;
    ListQuery q;
    q.metadata_prefix = std::string(f[1]);
    q.set = std::string(f[2]);
    if (!PrefixValid(q.metadata_prefix) || (!q.set.empty() && !ParseSetSpec(q.set))) return std::nullopt;
    if (!ParseStampField(f[3], q.from) || !ParseStampField(f[4], q.until)) return std::nullopt;
    if (!ParseCount(f[5], 0, q.after) || !ParseCount(f[6], 0, q.cursor)) return std::nullopt;
    if (f[7] == "-1") {
        q.complete_list_size = -1;
    } else if (!ParseCount(f[7], 0, q.complete_list_size)) {
        return std::nullopt;
    }
    return q;
}

std::variant<Request, OaiError> ParseRequest(const Params& params) {
    const std::string* verb_text = nullptr;
    for (const auto& [name, value] : params) {
        if (!XmlText(name) || !XmlText(value))
            return OaiError{name == "verb" ? ErrorCode::kBadVerb : ErrorCode::kBadArgument,
                            "arguments must be UTF-8 text without control characters"};
    }
    for (const auto& [name, value] : params) {
        if (name != "verb") continue;
        if (verb_text) return OaiError{ErrorCode::kBadVerb, "the verb argument is repeated"};
        verb_text = &value;
    }
    if (!verb_text) return OaiError{ErrorCode::kBadVerb, "the verb argument is missing"};
    Request req;
    bool known = false;
    for (std::size_t i = 0; i < kVerbs.size(); ++i)
        if (*verb_text == kVerbs[i]) req.verb = static_cast<Verb>(i), known = true;
    if (!known)
        return OaiError{ErrorCode::kBadVerb,
                        fmt::format("'{}' is not an OAI-PMH verb", Quoted(*verb_text))};

    // Which arguments the verb takes; the protocol requires a repeated or
    // unknown argument to be refused.
    std::vector<std::string_view> allowed;
    switch (req.verb) {
        case Verb::kIdentify: break;
        case Verb::kListMetadataFormats: allowed = {"identifier"}; break;
        case Verb::kListSets: allowed = {"resumptionToken"}; break;
        case Verb::kListIdentifiers:
        case Verb::kListRecords: allowed = {"metadataPrefix", "from", "until", "set", "resumptionToken"}; break;
        case Verb::kGetRecord: allowed = {"identifier", "metadataPrefix"}; break;
    }
    std::vector<std::pair<std::string_view, const std::string*>> given;
    for (const auto& [name, value] : params) {
        if (name == "verb") continue;
        bool ok = false;
        for (auto a : allowed) ok = ok || name == a;
        if (!ok)
            return OaiError{ErrorCode::kBadArgument,
                            fmt::format("{} takes no argument '{}'", VerbName(req.verb), Quoted(name))};
        for (const auto& g : given)
            if (g.first == name)
                return OaiError{ErrorCode::kBadArgument, fmt::format("the argument '{}' is repeated", Quoted(name))};
        given.emplace_back(name, &value);
    }
    auto arg = [&](std::string_view name) -> const std::string* {
        for (const auto& g : given)
            if (g.first == name) return g.second;
        return nullptr;
    };

    if (const std::string* token = arg("resumptionToken")) {
        if (given.size() > 1)
            return OaiError{ErrorCode::kBadArgument, "resumptionToken is an exclusive argument: give it alone"};
        if (req.verb == Verb::kListSets)
            return OaiError{ErrorCode::kBadResumptionToken, "this repository lists its sets in one response"};
        auto list = DecodeToken(*token);
        if (!list)
            return OaiError{ErrorCode::kBadResumptionToken,
                            "the resumption token is not one this repository issued; start the list again"};
        req.list = std::move(*list);
        req.resumed = true;
        return req;
    }

    if (req.verb == Verb::kGetRecord || req.verb == Verb::kListMetadataFormats) {
        if (const std::string* id = arg("identifier")) req.identifier = *id;
        if (req.verb == Verb::kGetRecord && !arg("identifier"))
            return OaiError{ErrorCode::kBadArgument, "GetRecord needs the argument identifier"};
    }
    if (req.verb == Verb::kGetRecord || req.verb == Verb::kListRecords || req.verb == Verb::kListIdentifiers) {
        const std::string* prefix = arg("metadataPrefix");
        if (!prefix)
            return OaiError{ErrorCode::kBadArgument,
                            fmt::format("{} needs the argument metadataPrefix", VerbName(req.verb))};
        req.list.metadata_prefix = *prefix;
    }
    if (req.verb == Verb::kListRecords || req.verb == Verb::kListIdentifiers) {
        for (const char* name : {"from", "until"}) {
            const std::string* text = arg(name);
            if (!text) continue;
            auto d = ParseDatestamp(*text);
            if (!d)
                return OaiError{ErrorCode::kBadArgument,
                                fmt::format("{} '{}' is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDThh:mm:ssZ)",
                                            name, Quoted(*text))};
            (std::string_view(name) == "from" ? req.list.from : req.list.until) = d;
        }
        if (req.list.from && req.list.until) {
            if (req.list.from->day != req.list.until->day)
                return OaiError{ErrorCode::kBadArgument, "from and until are given at different granularities"};
            if (req.list.from->seconds > req.list.until->seconds)
                return OaiError{ErrorCode::kBadArgument, "from is later than until"};
        }
        if (const std::string* set = arg("set")) {
            if (!ParseSetSpec(*set))
                return OaiError{ErrorCode::kBadArgument,
                                fmt::format("'{}' is not a setSpec of this repository", Quoted(*set))};
            req.list.set = *set;
        }
    }
    if (!req.list.metadata_prefix.empty() && !FindFormat(req.list.metadata_prefix))
        return OaiError{ErrorCode::kCannotDisseminateFormat,
                        fmt::format("metadataPrefix '{}' is not offered here; ListMetadataFormats lists the ones "
                                    "that are",
                                    Quoted(req.list.metadata_prefix))};
    return req;
}

// --- identifiers and sets ----------------------------------------------------

std::string RecordIdentifier(std::string_view repository, std::string_view isil, std::string_view local_id) {
    return fmt::format("oai:{}:{}:{}", repository, PercentEncode(isil), PercentEncode(local_id));
}

std::optional<std::pair<std::string, std::string>> ParseRecordIdentifier(std::string_view repository,
                                                                         std::string_view identifier) {
    const std::string head = fmt::format("oai:{}:", repository);
    if (identifier.size() > 2000 || identifier.substr(0, head.size()) != head) return std::nullopt;
    identifier.remove_prefix(head.size());
    const auto colon = identifier.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    auto isil = PercentDecode(identifier.substr(0, colon), false);
    auto local = PercentDecode(identifier.substr(colon + 1), false);
    if (!isil || !local || isil->empty() || local->empty()) return std::nullopt;
    return std::make_pair(std::move(*isil), std::move(*local));
}

std::string RepositoryIdentifierFor(std::string_view isil) {
    std::string out;
    for (char c : isil) {
        if ((c >= 'A' && c <= 'Z')) out += static_cast<char>(c - 'A' + 'a');
        else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) out += c;
        else out += '-';
    }
    if (out.empty() || !(out[0] >= 'a' && out[0] <= 'z')) out = "node-" + out;
    return out + ".iblsync";
}

bool ValidRepositoryIdentifier(std::string_view id) {
    // [a-zA-Z][a-zA-Z0-9-]*(\.[a-zA-Z][a-zA-Z0-9-]*)+ (the oai-identifier schema)
    if (id.empty() || id.size() > 200) return false;
    int labels = 0;
    for (auto label : Split(id, '.')) {
        if (label.empty() || !((label[0] >= 'a' && label[0] <= 'z') || (label[0] >= 'A' && label[0] <= 'Z')))
            return false;
        for (char c : label)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
                return false;
        ++labels;
    }
    return labels >= 2;
}

std::string SetSpec(SetKind kind, std::string_view value) {
    std::string out = kind == SetKind::kLibrary ? "library" : kind == SetKind::kProvince ? "province" : "poi";
    if (value.empty()) return out;
    out += ':';
    for (char c : value) out += c == '/' ? '.' : c == ':' ? '_' : c;
    return out;
}

std::optional<SetFilter> ParseSetSpec(std::string_view spec) {
    if (spec.size() > 100) return std::nullopt;
    const auto colon = spec.find(':');
    const auto top = spec.substr(0, colon);
    SetFilter f;
    if (top == "library") f.kind = SetKind::kLibrary;
    else if (top == "province") f.kind = SetKind::kProvince;
    else if (top == "poi") f.kind = SetKind::kPoi;
    else return std::nullopt;
    if (colon == std::string_view::npos) return f;
    const auto rest = spec.substr(colon + 1);
    if (rest.empty()) return std::nullopt;
    for (char c : rest) {
        if (!SetChar(c)) return std::nullopt;
        f.value += c == '.' ? '/' : c == '_' ? ':' : c;
    }
    return f;
}

// --- responses -----------------------------------------------------------------

std::string Response(long long response_date, std::string_view base_url, const Params* echo, std::string_view body) {
    std::string out = kEnvelopeStart;
    out += fmt::format("<responseDate>{}</responseDate>\n<request", FormatDatestamp(response_date));
    if (echo) {
        for (const auto& [name, value] : *echo) out += fmt::format(" {}=\"{}\"", name, Attr(value));
    }
    out += fmt::format(">{}</request>\n", Attr(base_url));
    out += body;
    out += "</OAI-PMH>\n";
    return out;
}

std::string ErrorResponse(long long response_date, std::string_view base_url, const Params& params,
                          const OaiError& error) {
    const bool echo = error.code != ErrorCode::kBadVerb && error.code != ErrorCode::kBadArgument;
    // Only arguments the verb takes reach this point with other codes, each once.
    return Response(response_date, base_url, echo ? &params : nullptr,
                    fmt::format("<error code=\"{}\">{}</error>\n", CodeName(error.code), Attr(error.message)));
}

std::string HeaderXml(const Header& h) {
    std::string out = h.deleted ? "<header status=\"deleted\">" : "<header>";
    out += fmt::format("<identifier>{}</identifier><datestamp>{}</datestamp>", Attr(h.identifier),
                       FormatDatestamp(h.datestamp));
    for (const auto& s : h.sets) out += fmt::format("<setSpec>{}</setSpec>", Attr(s));
    out += "</header>";
    return out;
}

std::string RecordXml(const Header& header, std::string_view metadata) {
    std::string out = "<record>";
    out += HeaderXml(header);
    if (!header.deleted) {
        out += "<metadata>";
        out += metadata;
        out += "</metadata>";
    }
    out += "</record>\n";
    return out;
}

std::string ResumptionTokenXml(std::string_view token, long long complete_list_size, long long cursor) {
    std::string attrs;
    if (complete_list_size >= 0) attrs += fmt::format(" completeListSize=\"{}\"", complete_list_size);
    attrs += fmt::format(" cursor=\"{}\"", cursor);
    return fmt::format("<resumptionToken{}>{}</resumptionToken>\n", attrs, Attr(token));
}

std::string IdentifyXml(const IdentifyInfo& info) {
    std::string out = "<Identify>\n";
    out += fmt::format("<repositoryName>{}</repositoryName>\n<baseURL>{}</baseURL>\n", Attr(info.repository_name),
                       Attr(info.base_url));
    out += "<protocolVersion>2.0</protocolVersion>\n";
    for (const auto& e : info.admin_emails) out += fmt::format("<adminEmail>{}</adminEmail>\n", Attr(e));
    out += fmt::format(
        "<earliestDatestamp>{}</earliestDatestamp>\n<deletedRecord>persistent</deletedRecord>\n"
        "<granularity>YYYY-MM-DDThh:mm:ssZ</granularity>\n",
        FormatDatestamp(info.earliest_datestamp));
    out += fmt::format(
        "<description><oai-identifier xmlns=\"http://www.openarchives.org/OAI/2.0/oai-identifier\" "
        "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
        "xsi:schemaLocation=\"http://www.openarchives.org/OAI/2.0/oai-identifier "
        "http://www.openarchives.org/OAI/2.0/oai-identifier.xsd\">"
        "<scheme>oai</scheme><repositoryIdentifier>{}</repositoryIdentifier><delimiter>:</delimiter>"
        "<sampleIdentifier>oai:{}:{}</sampleIdentifier></oai-identifier></description>\n",
        Attr(info.repository_identifier), Attr(info.repository_identifier), Attr(info.sample_local));
    out += "</Identify>\n";
    return out;
}

const std::vector<MetadataFormat>& Formats() {
    static const std::vector<MetadataFormat> kFormats{
        {"marc21", "http://www.loc.gov/standards/marcxml/schema/MARC21slim.xsd", "http://www.loc.gov/MARC21/slim"},
        {"oai_dc", "http://www.openarchives.org/OAI/2.0/oai_dc.xsd", "http://www.openarchives.org/OAI/2.0/oai_dc/"},
    };
    return kFormats;
}

const MetadataFormat* FindFormat(std::string_view prefix) {
    for (const auto& f : Formats())
        if (f.prefix == prefix) return &f;
    return nullptr;
}

std::string ListMetadataFormatsXml(const std::vector<MetadataFormat>& formats) {
    std::string out = "<ListMetadataFormats>\n";
    for (const auto& f : formats)
        out += fmt::format(
            "<metadataFormat><metadataPrefix>{}</metadataPrefix><schema>{}</schema>"
            "<metadataNamespace>{}</metadataNamespace></metadataFormat>\n",
            Attr(f.prefix), Attr(f.schema), Attr(f.ns));
    out += "</ListMetadataFormats>\n";
    return out;
}

std::string ListSetsXml(const std::vector<SetInfo>& sets) {
    std::string out = "<ListSets>\n";
    for (const auto& s : sets)
        out += fmt::format("<set><setSpec>{}</setSpec><setName>{}</setName></set>\n", Attr(s.spec), Attr(s.name));
    out += "</ListSets>\n";
    return out;
}

}  // namespace iblsync::protocols::oai
