#include "protocols/sru.hpp"

#include <algorithm>
#include <charconv>
#include <climits>

#include <fmt/format.h>
#include <pugixml.hpp>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocols/dublin_core.hpp"
#include "protocols/marcxml.hpp"
#include "protocols/utf8.hpp"
#include "protocols/xml_names.hpp"

namespace iblsync::protocols::sru {
namespace {

constexpr const char* kSrw1 = "http://www.loc.gov/zing/srw/";
constexpr const char* kDiag1 = "http://www.loc.gov/zing/srw/diagnostic/";
constexpr const char* kSrw2 = "http://docs.oasis-open.org/ns/search-ws/sruResponse";
constexpr const char* kDiag2 = "http://docs.oasis-open.org/ns/search-ws/diagnostic";
constexpr const char* kScan2 = "http://docs.oasis-open.org/ns/search-ws/scan";
constexpr const char* kXcql = "http://www.loc.gov/zing/cql/xcql/";
constexpr const char* kZeeRex = "http://explain.z3950.org/dtd/2.0/";
constexpr const char* kHoldings = "urn:iblsync:holdings:1.0";

// Text for an XML element: escaped, and with what XML 1.0 cannot carry
// (control characters, bytes that are not UTF-8, U+FFFE/U+FFFF) replaced by
// U+FFFD, so that echoing whatever a client sent still gives a well-formed
// response.
std::string Esc(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            switch (c) {
                case '&': out += "&amp;"; break;
                case '<': out += "&lt;"; break;
                case '>': out += "&gt;"; break;
                case '"': out += "&quot;"; break;
                default:
                    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') out += kReplacement;
                    else out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        std::size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        const std::string_view piece = s.substr(i, len);
        if (len == 0 || i + len > s.size() || !IsValidUtf8(piece) ||
            piece == "\xEF\xBF\xBE" || piece == "\xEF\xBF\xBF") {
            out += kReplacement;
            ++i;
            continue;
        }
        out += piece;
        i += len;
    }
    return out;
}

std::string Lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

const std::vector<SchemaInfo> kSchemas = {
    {Schema::kMarcXml, "marcxml", "info:srw/schema/1/marcxml-v1.1", "MARC 21 records in MARCXML (MARC21slim)"},
    {Schema::kDublinCore, "dc", "info:srw/schema/1/dc-v1.1", "Simple Dublin Core (LoC MARC to DC crosswalk)"},
    {Schema::kJson, "json", "urn:iblsync:schema:marc-in-json:1.0", "MARC 21 records as MARC-in-JSON, as text"},
};

// Other names clients use for the same schemas.
const std::vector<std::pair<const char*, Schema>> kAliases = {
    {"marc21", Schema::kMarcXml},
    {"marc21-xml", Schema::kMarcXml},
    {"marcxml-v1.1", Schema::kMarcXml},
    {"info:srw/schema/1/marcxml-v1.1-light", Schema::kMarcXml},
    {"http://www.loc.gov/marc21/slim", Schema::kMarcXml},
    {"dc-v1.1", Schema::kDublinCore},
    {"srw_dc", Schema::kDublinCore},
    {"http://purl.org/dc/elements/1.1/", Schema::kDublinCore},
    {"info:srw/schema/1/dc-schema", Schema::kDublinCore},
    {"marcjson", Schema::kJson},
    {"marc-in-json", Schema::kJson},
    {"application/json", Schema::kJson},
};

struct Xml {
    std::string out;
    std::string p;  // namespace prefix with colon, "zs:"
    void Open(std::string_view name, std::string_view attrs = {}) {
        out += "<" + p + std::string(name) + (attrs.empty() ? "" : " " + std::string(attrs)) + ">";
    }
    void Close(std::string_view name) { out += "</" + p + std::string(name) + ">"; }
    void Text(std::string_view name, std::string_view text) {
        Open(name);
        out += Esc(text);
        Close(name);
    }
};

bool V1(const Request& r) { return r.version != Version::k20; }

void Diagnostics(Xml& x, const Request& r, const std::vector<Diagnostic>& diags) {
    if (diags.empty()) return;
    x.Open("diagnostics", fmt::format("xmlns:diag=\"{}\"", V1(r) ? kDiag1 : kDiag2));
    for (const auto& d : diags) {
        x.out += "<diag:diagnostic><diag:uri>" + Esc(DiagnosticUri(d.code)) + "</diag:uri>";
        if (!d.details.empty()) x.out += "<diag:details>" + Esc(d.details) + "</diag:details>";
        x.out += "<diag:message>" + Esc(d.message.empty() ? std::string(StandardMessage(d.code)) : d.message) +
                 "</diag:message></diag:diagnostic>";
    }
    x.Close("diagnostics");
}

const std::string* Param(const Request& r, std::string_view name) {
    for (const auto& [k, v] : r.params)
        if (k == name) return &v;
    return nullptr;
}

// The query as XCQL for SRU 1.x's echoed <xQuery>: the content of an XCQL
// operand (prefixes before the clause or triple, no sort keys), as the
// 1.1 XCQL schema defines it.
void XcqlOperand(std::string& out, const CqlNode& n, bool root) {
    const std::string ns = root ? fmt::format(" xmlns=\"{}\"", kXcql) : "";
    if (!n.prefixes.empty()) {
        out += "<prefixes" + ns + ">";
        for (const auto& p : n.prefixes)
            out += "<prefix><name>" + Esc(p.name) + "</name><identifier>" + Esc(p.uri) + "</identifier></prefix>";
        out += "</prefixes>";
    }
    auto mods = [&](const std::vector<CqlModifier>& ms) {
        if (ms.empty()) return;
        out += "<modifiers>";
        for (const auto& m : ms) {
            out += "<modifier><type>" + Esc(m.name) + "</type>";
            if (!m.comparison.empty())
                out += "<comparison>" + Esc(m.comparison) + "</comparison><value>" + Esc(m.value) + "</value>";
            out += "</modifier>";
        }
        out += "</modifiers>";
    };
    if (n.kind == CqlNode::Kind::kClause) {
        out += "<searchClause" + ns + "><index>" + Esc(n.index) + "</index><relation><value>" + Esc(n.relation.name) +
               "</value>";
        mods(n.relation.modifiers);
        out += "</relation><term>" + Esc(n.term) + "</term></searchClause>";
        return;
    }
    out += "<triple" + ns + "><boolean><value>" + Esc(n.op) + "</value>";
    mods(n.op_modifiers);
    out += "</boolean><leftOperand>";
    XcqlOperand(out, *n.left, false);
    out += "</leftOperand><rightOperand>";
    XcqlOperand(out, *n.right, false);
    out += "</rightOperand></triple>";
}

// The echoed request of a searchRetrieve: the parameters as sent, in the
// order each version's schema puts them.
void EchoSearch(Xml& x, const Request& r) {
    if (V1(r) && !r.cql) return;  // 1.x requires <xQuery>: no echo without a parsed query
    x.Open("echoedSearchRetrieveRequest");
    x.Text("version", VersionText(r.version));
    if (!V1(r))
        if (const auto* q = Param(r, "queryType")) x.Text("queryType", *q);
    if (const auto* q = Param(r, "query")) x.Text("query", *q);
    if (V1(r)) {
        x.Open("xQuery");
        XcqlOperand(x.out, *r.cql->root, true);
        x.Close("xQuery");
    }
    auto number = [&](const char* name) {
        if (const auto* v = Param(r, name)) {
            long long n = 0;
            auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
            if (ec == std::errc() && end == v->data() + v->size() && n >= (std::string_view(name) == "startRecord"))
                x.Text(name, *v);
        }
    };
    number("startRecord");
    number("maximumRecords");
    if (V1(r)) {
        x.Text("recordPacking", r.escape_records ? "string" : "xml");
    } else {
        x.Text("recordXMLEscaping", r.escape_records ? "string" : "xml");
    }
    if (const auto* s = Param(r, "recordSchema")) x.Text("recordSchema", *s);
    number("resultSetTTL");
    if (const auto* s = Param(r, "sortKeys")) x.Text("sortKeys", *s);
    x.Close("echoedSearchRetrieveRequest");
}

void Holdings(std::string& out, const std::vector<Copy>& copies) {
    out += fmt::format("<ibl:holdings xmlns:ibl=\"{}\">", kHoldings);
    for (const auto& c : copies) {
        out += "<ibl:copy><ibl:library>" + Esc(c.library) + "</ibl:library><ibl:barcode>" + Esc(c.barcode) +
               "</ibl:barcode>";
        if (!c.branch.empty()) out += "<ibl:branch>" + Esc(c.branch) + "</ibl:branch>";
        if (!c.shelfmark.empty()) out += "<ibl:shelfmark>" + Esc(c.shelfmark) + "</ibl:shelfmark>";
        out += "<ibl:status>" + Esc(c.status) + "</ibl:status><ibl:availableNow>" +
               (c.status == "available" ? "true" : "false") + "</ibl:availableNow>";
        if (!c.due_date.empty()) out += "<ibl:dueDate>" + Esc(c.due_date) + "</ibl:dueDate>";
        if (!c.changed_at.empty()) out += "<ibl:changedAt>" + Esc(c.changed_at) + "</ibl:changedAt>";
        out += "</ibl:copy>";
    }
    out += "</ibl:holdings>";
}

void Record(Xml& x, const Request& r, const ResultRecord& rec) {
    x.Open("record");
    if (rec.surrogate) {
        // A surrogate diagnostic takes the record's place.
        x.Text("recordSchema", "info:srw/schema/1/diagnostics-v1.1");
        if (V1(r)) x.Text("recordPacking", "xml");
        else x.Text("recordXMLEscaping", "xml");
        x.Open("recordData");
        x.out += fmt::format("<diag:diagnostic xmlns:diag=\"{}\"><diag:uri>{}</diag:uri>", V1(r) ? kDiag1 : kDiag2,
                             Esc(DiagnosticUri(rec.surrogate->code)));
        if (!rec.surrogate->details.empty()) x.out += "<diag:details>" + Esc(rec.surrogate->details) + "</diag:details>";
        x.out += "<diag:message>" +
                 Esc(rec.surrogate->message.empty() ? std::string(StandardMessage(rec.surrogate->code))
                                                    : rec.surrogate->message) +
                 "</diag:message></diag:diagnostic>";
        x.Close("recordData");
    } else {
        const bool escape = r.escape_records || !rec.data_is_xml;
        x.Text("recordSchema", InfoOf(r.schema).identifier);
        if (V1(r)) x.Text("recordPacking", escape ? "string" : "xml");
        else x.Text("recordXMLEscaping", escape ? "string" : "xml");
        x.Open("recordData");
        x.out += escape ? Esc(rec.data) : rec.data;
        x.Close("recordData");
    }
    x.Text("recordPosition", std::to_string(rec.position));
    if (r.holdings && !rec.surrogate) {
        x.Open("extraRecordData");
        Holdings(x.out, rec.copies);
        x.Close("extraRecordData");
    }
    x.Close("record");
}

std::string Open(const Request& r, const char* root, Xml& x) {
    x.p = "zs:";
    x.out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    x.Open(root, fmt::format("xmlns:zs=\"{}\"", V1(r) ? kSrw1 : kSrw2));
    if (V1(r)) x.Text("version", VersionText(r.version));
    return root;
}

// Reads a non-negative integer; values beyond long long read as LLONG_MAX.
std::optional<long long> Number(std::string_view s) {
    if (s.empty() || s.size() > 200) return std::nullopt;
    for (char c : s)
        if (c < '0' || c > '9') return std::nullopt;
    long long n = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec == std::errc::result_out_of_range) return LLONG_MAX;
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return n;
}

}  // namespace

const char* VersionText(Version v) {
    switch (v) {
        case Version::k11: return "1.1";
        case Version::k12: return "1.2";
        case Version::k20: return "2.0";
    }
    return "2.0";
}

std::string DiagnosticUri(int code) { return fmt::format("info:srw/diagnostic/1/{}", code); }

std::string_view StandardMessage(int code) {
    switch (code) {
        case 1: return "General system error";
        case 4: return "Unsupported operation";
        case 5: return "Unsupported version";
        case 6: return "Unsupported parameter value";
        case 7: return "Mandatory parameter not supplied";
        case 8: return "Unsupported parameter";
        case 10: return "Query syntax error";
        case 12: return "Too many characters in query";
        case 13: return "Invalid or unsupported use of parentheses";
        case 14: return "Invalid or unsupported use of quotes";
        case 15: return "Unsupported context set";
        case 16: return "Unsupported index";
        case 19: return "Unsupported relation";
        case 20: return "Unsupported relation modifier";
        case 22: return "Unsupported combination of relation and index";
        case 23: return "Too many characters in term";
        case 26: return "Non special character escaped in term";
        case 27: return "Empty term unsupported";
        case 28: return "Masking character not supported";
        case 31: return "Anchoring character not supported";
        case 36: return "Term in invalid format for index or relation";
        case 38: return "Too many boolean operators in query";
        case 40: return "Unsupported proximity relation";
        case 41: return "Unsupported proximity distance";
        case 42: return "Unsupported proximity unit";
        case 44: return "Unsupported combination of proximity modifiers";
        case 46: return "Unsupported boolean modifier";
        case 47: return "Cannot process query; reason unknown";
        case 48: return "Query feature unsupported";
        case 49: return "Masking character in unsupported position";
        case 50: return "Result sets not supported";
        case 51: return "Result set does not exist";
        case 61: return "First record position out of range";
        case 64: return "Record temporarily unavailable";
        case 66: return "Unknown schema for retrieval";
        case 71: return "Unsupported record packing";
        case 72: return "XPath retrieval unsupported";
        case 84: return "Too many sort keys to sort";
        case 91: return "Unsupported case";
        case 92: return "Unsupported missing value action";
        case 110: return "Stylesheets not supported";
        case 120: return "Response position out of range";
        default: return "Diagnostic";
    }
}

const std::vector<SchemaInfo>& Schemas() { return kSchemas; }

std::optional<Schema> FindSchema(std::string_view requested) {
    const std::string r = Lower(requested);
    for (const auto& s : kSchemas)
        if (r == s.name || r == Lower(s.identifier)) return s.schema;
    for (const auto& [name, schema] : kAliases)
        if (r == name) return schema;
    return std::nullopt;
}

const SchemaInfo& InfoOf(Schema schema) {
    for (const auto& s : kSchemas)
        if (s.schema == schema) return s;
    return kSchemas.front();
}

const char* ContentType(Version version) {
    return version == Version::k20 ? "application/sru+xml; charset=utf-8" : "text/xml; charset=utf-8";
}

ParsedRequest ParseRequest(const std::vector<std::pair<std::string, std::string>>& params, const Limits& limits) {
    ParsedRequest out;
    Request& r = out.request;
    r.params = params;
    r.maximum_records = limits.default_maximum_records;
    r.maximum_terms = limits.default_maximum_terms;
    auto fail = [&](int code, std::string details, std::string message) {
        if (!out.diagnostic) out.diagnostic = Diagnostic{code, std::move(details), std::move(message)};
    };
    auto get = [&](std::string_view name) { return Param(r, name); };

    for (std::size_t i = 0; i < params.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (params[i].first == params[j].first)
                fail(6, params[i].first, fmt::format("Unsupported parameter value: '{}' is given twice", params[i].first));

    if (const auto* v = get("version")) {
        if (*v == "1.1") r.version = Version::k11;
        else if (*v == "1.2") r.version = Version::k12;
        else if (*v == "2.0") r.version = Version::k20;
        else fail(5, "2.0", fmt::format("Unsupported version: {} (this server speaks 1.1, 1.2 and 2.0)", *v));
    }
    if (const auto* op = get("operation")) {
        if (*op == "searchRetrieve") r.operation = Operation::kSearchRetrieve;
        else if (*op == "explain") r.operation = Operation::kExplain;
        else if (*op == "scan") r.operation = Operation::kScan;
        else {
            r.operation = Operation::kSearchRetrieve;
            fail(4, *op, fmt::format("Unsupported operation: '{}' (use explain, searchRetrieve or scan)", *op));
        }
    } else if (get("query")) {
        r.operation = Operation::kSearchRetrieve;
    } else if (get("scanClause")) {
        r.operation = Operation::kScan;
    }

    static const char* kCommon[] = {"operation", "version", "stylesheet", "recordPacking", "recordXMLEscaping",
                                    "extraRequestData", "httpAccept", "responseType", "renderedBy"};
    static const char* kSearch[] = {"query", "startRecord", "maximumRecords", "recordSchema", "recordXPath",
                                    "resultSetTTL", "sortKeys", "queryType", "x-holdings"};
    static const char* kScan[] = {"scanClause", "responsePosition", "maximumTerms"};
    for (const auto& [name, value] : params) {
        if (name.rfind("x-", 0) == 0 && name != "x-holdings") continue;  // extensions we do not know are ignored
        bool known = std::find(std::begin(kCommon), std::end(kCommon), name) != std::end(kCommon);
        if (r.operation == Operation::kSearchRetrieve)
            known = known || std::find(std::begin(kSearch), std::end(kSearch), name) != std::end(kSearch);
        if (r.operation == Operation::kScan)
            known = known || std::find(std::begin(kScan), std::end(kScan), name) != std::end(kScan);
        if (!known) fail(8, name, fmt::format("Unsupported parameter: '{}' is not a parameter of {}", name,
                                              r.operation == Operation::kScan ? "scan"
                                              : r.operation == Operation::kExplain ? "explain"
                                                                                    : "searchRetrieve"));
    }
    if (get("stylesheet")) fail(110, *get("stylesheet"), "Stylesheets not supported");
    if (const auto* a = get("httpAccept")) {
        const std::string t = Lower(*a);
        if (t != "application/sru+xml" && t != "application/xml" && t != "text/xml" && t != "*/*")
            fail(6, "httpAccept", fmt::format("Unsupported parameter value: httpAccept {} (responses are "
                                              "application/sru+xml)",
                                              *a));
    }
    if (const auto* p = get("recordPacking")) {
        if (V1(r)) {
            if (*p == "string") r.escape_records = true;
            else if (*p != "xml") fail(71, *p, fmt::format("Unsupported record packing '{}': use xml or string", *p));
        } else if (*p != "packed") {
            fail(71, *p, fmt::format("Unsupported record packing '{}': records are packed", *p));
        }
    }
    if (const auto* e = get("recordXMLEscaping")) {
        if (V1(r)) fail(8, "recordXMLEscaping", "Unsupported parameter: recordXMLEscaping is SRU 2.0; use recordPacking");
        else if (*e == "string") r.escape_records = true;
        else if (*e != "xml") fail(71, *e, fmt::format("Unsupported record XML escaping '{}': use xml or string", *e));
    }

    if (r.operation == Operation::kSearchRetrieve) {
        if (const auto* t = get("queryType"); t && *t != "cql")
            fail(6, "queryType", fmt::format("Unsupported parameter value: queryType {} (only cql)", *t));
        if (const auto* q = get("query")) {
            r.query = *q;
            auto parsed = ParseCql(*q, limits.cql);
            if (parsed) r.cql = std::move(*parsed.query);
            else fail(parsed.error.diagnostic, parsed.error.diagnostic == 10 ? std::to_string(parsed.error.position) : "",
                      fmt::format("{}: {}", StandardMessage(parsed.error.diagnostic), parsed.error.message));
        } else {
            fail(7, "query", "Mandatory parameter not supplied: query");
        }
        if (const auto* s = get("startRecord")) {
            auto n = Number(*s);
            if (!n || *n < 1) fail(6, "startRecord", fmt::format("Unsupported parameter value: startRecord '{}' is "
                                                                 "not a positive number",
                                                                 *s));
            else r.start_record = *n;
        }
        if (const auto* m = get("maximumRecords")) {
            auto n = Number(*m);
            if (!n) {
                fail(6, "maximumRecords", fmt::format("Unsupported parameter value: maximumRecords '{}' is not a "
                                                      "number",
                                                      *m));
            } else if (*n > limits.maximum_records) {
                r.maximum_records = limits.maximum_records;
                r.maximum_clamped = true;
            } else {
                r.maximum_records = static_cast<int>(*n);
            }
        }
        if (const auto* s = get("recordSchema")) {
            if (auto schema = FindSchema(*s)) r.schema = *schema;
            else fail(66, *s, fmt::format("Unknown schema for retrieval: '{}' (marcxml, dc or json)", *s));
        }
        if (get("recordXPath")) fail(72, *get("recordXPath"), "XPath retrieval unsupported");
        if (const auto* t = get("resultSetTTL"); t && !Number(*t))
            fail(6, "resultSetTTL", "Unsupported parameter value: resultSetTTL must be a number of seconds");
        if (const auto* k = get("sortKeys")) {
            std::string error;
            if (!ParseSortKeys(*k, error)) fail(6, "sortKeys", "Unsupported parameter value: sortKeys: " + error);
            r.sort_keys = *k;
        }
        if (const auto* h = get("x-holdings")) {
            if (*h == "true" || *h == "1") r.holdings = true;
            else if (*h != "false" && *h != "0")
                fail(6, "x-holdings", "Unsupported parameter value: x-holdings takes true or false");
        }
    } else if (r.operation == Operation::kScan) {
        if (const auto* c = get("scanClause")) {
            r.scan_clause = *c;
            auto parsed = ParseCql(*c, limits.cql);
            if (!parsed) {
                fail(parsed.error.diagnostic, "", fmt::format("{}: {}", StandardMessage(parsed.error.diagnostic),
                                                              parsed.error.message));
            } else if (parsed.query->root->kind != CqlNode::Kind::kClause || !parsed.query->sort_keys.empty()) {
                fail(10, "", "Query syntax error: a scanClause is one index, relation and term, such as dc.title=m");
            } else {
                r.scan_cql = std::move(*parsed.query);
            }
        } else {
            fail(7, "scanClause", "Mandatory parameter not supplied: scanClause");
        }
        if (const auto* p = get("responsePosition")) {
            auto n = Number(*p);
            if (!n || *n > limits.maximum_terms + 1)
                fail(6, "responsePosition", fmt::format("Unsupported parameter value: responsePosition '{}' (0 to {})",
                                                        *p, limits.maximum_terms + 1));
            else r.response_position = static_cast<int>(*n);
        }
        if (const auto* m = get("maximumTerms")) {
            auto n = Number(*m);
            if (!n || *n < 1) fail(6, "maximumTerms", fmt::format("Unsupported parameter value: maximumTerms '{}'", *m));
            else r.maximum_terms = static_cast<int>(std::min<long long>(*n, limits.maximum_terms));
        }
    }
    return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> ParseSoapRequest(std::string_view body,
                                                                                  std::string& error) {
    if (body.find("<!DOCTYPE") != std::string_view::npos || body.find("<!ENTITY") != std::string_view::npos) {
        error = "a document type declaration is not allowed in a request";
        return std::nullopt;
    }
    if (!IsValidUtf8(body)) {
        error = "the request is not valid UTF-8";
        return std::nullopt;
    }
    pugi::xml_document doc;
    const auto parsed = doc.load_buffer(body.data(), body.size(), pugi::parse_default & ~pugi::parse_doctype,
                                        pugi::encoding_utf8);
    if (!parsed) {
        error = fmt::format("the request is not well-formed XML: {} at byte {}", parsed.description(), parsed.offset);
        return std::nullopt;
    }
    auto local = [](const pugi::xml_node& n) { return std::string(LocalName(n.name())); };
    pugi::xml_node request;
    auto envelope = doc.document_element();
    if (local(envelope) != "Envelope") {
        error = "expected a SOAP Envelope";
        return std::nullopt;
    }
    for (auto child : envelope.children())
        if (child.type() == pugi::node_element && local(child) == "Body") request = child.find_child([](pugi::xml_node n) {
            return n.type() == pugi::node_element;
        });
    const std::string op = request ? local(request) : "";
    std::vector<std::pair<std::string, std::string>> out;
    if (op == "searchRetrieveRequest") out.emplace_back("operation", "searchRetrieve");
    else if (op == "explainRequest") out.emplace_back("operation", "explain");
    else if (op == "scanRequest") out.emplace_back("operation", "scan");
    else {
        error = "the SOAP body holds no searchRetrieveRequest, explainRequest or scanRequest";
        return std::nullopt;
    }
    for (auto child : request.children()) {
        if (child.type() != pugi::node_element) continue;
        const std::string name = local(child);
        if (name == "extraRequestData") continue;
        out.emplace_back(name, child.text().get());
    }
    return out;
}

std::string SoapEnvelope(std::string_view response) {
    const auto decl_end = response.rfind("?>", 100);
    if (response.rfind("<?xml", 0) == 0 && decl_end != std::string_view::npos) response.remove_prefix(decl_end + 2);
    while (!response.empty() && (response.front() == '\n' || response.front() == ' ')) response.remove_prefix(1);
    return fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SOAP-ENV:Envelope "
                       "xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Body>{}</SOAP-ENV:Body>"
                       "</SOAP-ENV:Envelope>",
                       response);
}

std::optional<std::vector<SortKeySpec>> ParseSortKeys(std::string_view text, std::string& error) {
    std::vector<SortKeySpec> out;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && text[i] == ' ') ++i;
        if (i == text.size()) break;
        auto j = text.find(' ', i);
        if (j == std::string_view::npos) j = text.size();
        const std::string_view key = text.substr(i, j - i);
        i = j;
        std::vector<std::string> parts;
        std::size_t a = 0;
        while (true) {
            auto b = key.find(',', a);
            parts.emplace_back(key.substr(a, b == std::string_view::npos ? std::string_view::npos : b - a));
            if (b == std::string_view::npos) break;
            a = b + 1;
        }
        if (parts.size() > 5 || parts[0].empty()) {
            error = fmt::format("'{}' is not path,schema,ascending,caseSensitive,missingValue", key);
            return std::nullopt;
        }
        SortKeySpec k;
        k.path = parts[0];
        auto flag = [&](std::size_t n, bool def) -> std::optional<bool> {
            if (parts.size() <= n || parts[n].empty()) return def;
            if (parts[n] == "1") return true;
            if (parts[n] == "0") return false;
            return std::nullopt;
        };
        auto asc = flag(2, true), cs = flag(3, false);
        if (!asc || !cs) {
            error = fmt::format("'{}': ascending and caseSensitive are 0 or 1", key);
            return std::nullopt;
        }
        k.ascending = *asc;
        k.case_sensitive = *cs;
        if (parts.size() > 4) k.missing = parts[4];
        out.push_back(std::move(k));
    }
    if (out.empty()) {
        error = "no sort key";
        return std::nullopt;
    }
    return out;
}

std::string SearchRetrieveResponse(const Request& r, const SearchResult& result) {
    Xml x;
    const std::string root = Open(r, "searchRetrieveResponse", x);
    x.Text("numberOfRecords", std::to_string(result.total));
    if (result.diagnostics.empty() && !result.records.empty()) {
        x.Open("records");
        for (const auto& rec : result.records) Record(x, r, rec);
        x.Close("records");
        if (result.more) x.Text("nextRecordPosition", std::to_string(result.records.back().position + 1));
    }
    EchoSearch(x, r);
    Diagnostics(x, r, result.diagnostics);
    if (!V1(r) && result.diagnostics.empty())
        x.Text("resultCountPrecision", result.exact ? "info:srw/vocabulary/resultCountPrecision/1/exact"
                                                    : "info:srw/vocabulary/resultCountPrecision/1/estimate");
    x.Close(root);
    return x.out;
}

std::string ExplainResponse(const Request& r, std::string_view explain_record) {
    Xml x;
    const std::string root = Open(r, "explainResponse", x);
    x.Open("record");
    x.Text("recordSchema", kZeeRex);
    if (V1(r)) x.Text("recordPacking", r.escape_records ? "string" : "xml");
    else x.Text("recordXMLEscaping", r.escape_records ? "string" : "xml");
    x.Open("recordData");
    x.out += r.escape_records ? Esc(explain_record) : std::string(explain_record);
    x.Close("recordData");
    x.Close("record");
    x.Close(root);
    return x.out;
}

std::string DiagnosticResponse(const Request& r, const Diagnostic& d, std::string_view explain_record) {
    if (r.operation == Operation::kScan) return ScanResponse(r, {}, {d});
    if (r.operation == Operation::kExplain && !explain_record.empty()) {
        std::string out = ExplainResponse(r, explain_record);
        Xml x;
        x.p = "zs:";
        Diagnostics(x, r, {d});
        const std::string close = "</zs:explainResponse>";
        out.insert(out.size() - close.size(), x.out);
        return out;
    }
    SearchResult result;
    result.diagnostics.push_back(d);
    return SearchRetrieveResponse(r, result);
}

std::string ScanResponse(const Request& r, const std::vector<ScanTerm>& terms,
                         const std::vector<Diagnostic>& diagnostics) {
    Xml x;
    x.p = "zs:";
    x.out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    const bool v1 = V1(r);
    x.Open("scanResponse", fmt::format("xmlns:zs=\"{}\"", v1 ? kSrw1 : kScan2));
    if (v1) x.Text("version", VersionText(r.version));
    if (!terms.empty() && diagnostics.empty()) {
        x.Open("terms");
        for (std::size_t i = 0; i < terms.size(); ++i) {
            const auto& t = terms[i];
            x.Open("term");
            x.Text("value", t.value);
            x.Text("numberOfRecords", std::to_string(t.records));
            if (!t.display.empty()) x.Text("displayTerm", t.display);
            x.Text("whereInList", terms.size() == 1 ? "only" : i == 0 ? "first" : i + 1 == terms.size() ? "last" : "inner");
            x.Close("term");
        }
        x.Close("terms");
    }
    Diagnostics(x, r, diagnostics);
    x.Close("scanResponse");
    return x.out;
}

std::string ExplainRecord(const ExplainInfo& info) {
    std::string o = fmt::format("<explain xmlns=\"{}\">", kZeeRex);
    o += fmt::format("<serverInfo protocol=\"SRU\" version=\"1.2\" transport=\"http\" method=\"GET POST\">"
                     "<host>{}</host><port>{}</port><database>{}</database></serverInfo>",
                     Esc(info.host), info.port, Esc(info.database));
    o += fmt::format("<databaseInfo><title lang=\"en\" primary=\"true\">{}</title>"
                     "<description lang=\"en\" primary=\"true\">{}</description></databaseInfo>",
                     Esc(info.title), Esc(info.description));
    o += "<indexInfo>";
    for (const auto& s : info.sets)
        o += fmt::format("<set name=\"{}\" identifier=\"{}\"/>", Esc(s.prefix), Esc(s.identifier));
    for (const auto& i : info.indexes)
        o += fmt::format("<index search=\"true\" scan=\"{}\" sort=\"{}\"><title>{}</title><map><name set=\"{}\">{}</name>"
                         "</map></index>",
                         i.scannable ? "true" : "false", i.sortable ? "true" : "false", Esc(i.title), Esc(i.set),
                         Esc(i.name));
    o += "</indexInfo><schemaInfo>";
    for (const auto& s : kSchemas)
        o += fmt::format("<schema identifier=\"{}\" name=\"{}\" retrieve=\"true\" sort=\"false\"><title>{}</title>"
                         "</schema>",
                         Esc(s.identifier), s.name, Esc(s.title));
    o += "</schemaInfo><configInfo>";
    o += fmt::format("<default type=\"numberOfRecords\">{}</default>", info.limits.default_maximum_records);
    o += fmt::format("<default type=\"contextSet\">dc</default>");
    o += fmt::format("<default type=\"index\">cql.serverChoice</default>");
    o += fmt::format("<default type=\"relation\">=</default>");
    o += fmt::format("<default type=\"retrieveSchema\">{}</default>", InfoOf(Schema::kMarcXml).identifier);
    o += fmt::format("<setting type=\"maximumRecords\">{}</setting>", info.limits.maximum_records);
    o += fmt::format("<setting type=\"maximumTerms\">{}</setting>", info.limits.maximum_terms);
    o += "<supports type=\"sort\"/><supports type=\"scan\"/>";
    for (const char* rel : {"=", "==", "<>", "<", ">", "<=", ">=", "any", "all", "adj", "within", "encloses"})
        o += fmt::format("<supports type=\"relation\">{}</supports>", Esc(rel));
    for (const char* mod : {"ignoreCase", "ignoreAccents", "relevant", "masked", "unmasked", "word"})
        o += fmt::format("<supports type=\"relationModifier\">{}</supports>", mod);
    o += "<supports type=\"maskingCharacter\">*</supports><supports type=\"maskingCharacter\">?</supports>";
    o += "<supports type=\"extraRecordData\">x-holdings=true: each copy and its availability</supports>";
    o += "</configInfo></explain>";
    return o;
}

std::string SrwDublinCore(const marc::Record& record) { return dc::ToSrwDcXml(dc::FromMarc(record)); }

std::string MarcInJson(const marc::Record& record) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("leader");
    w.String(record.leader);
    w.Key("fields");
    w.StartArray();
    for (const auto& f : record.fields) {
        w.StartObject();
        w.Key(f.tag.c_str(), static_cast<rapidjson::SizeType>(f.tag.size()));
        if (f.IsControl()) {
            w.String(f.data);
        } else {
            w.StartObject();
            w.Key("ind1");
            w.String(std::string(1, f.ind1));
            w.Key("ind2");
            w.String(std::string(1, f.ind2));
            w.Key("subfields");
            w.StartArray();
            for (const auto& s : f.subfields) {
                w.StartObject();
                w.Key(&s.code, 1);
                w.String(s.value);
                w.EndObject();
            }
            w.EndArray();
            w.EndObject();
        }
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return buf.GetString();
}

}  // namespace iblsync::protocols::sru
