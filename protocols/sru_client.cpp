#include "protocols/sru_client.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <pugixml.hpp>

#include "protocols/url.hpp"
#include "protocols/utf8.hpp"
#include "protocols/xml_limits.hpp"
#include "protocols/xml_names.hpp"

namespace iblsync::protocols::sru {
namespace {

std::string_view Local(const pugi::xml_node& n) { return LocalName(n.name()); }

pugi::xml_node Child(const pugi::xml_node& parent, std::string_view local) { return ChildByLocalName(parent, local); }

std::string Text(const pugi::xml_node& n) { return n ? std::string(n.child_value()) : std::string(); }

std::optional<long long> Number(const pugi::xml_node& n) {
    if (!n) return std::nullopt;
    std::string_view v = n.child_value();
    constexpr std::string_view kSpace = " \t\r\n";
    const auto first = v.find_first_not_of(kSpace);
    if (first == std::string_view::npos) return std::nullopt;
    v = v.substr(first, v.find_last_not_of(kSpace) - first + 1);
    long long out = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc() || end != v.data() + v.size() || v.empty()) return std::nullopt;
    return out;
}

RemoteDiagnostic ReadDiagnostic(const pugi::xml_node& d) {
    return RemoteDiagnostic{Text(Child(d, "uri")), Text(Child(d, "details")), Text(Child(d, "message"))};
}

}  // namespace

Result<HttpUrl> ParseHttpUrl(std::string_view url) {
    constexpr std::string_view kHttp = "http://";
    if (url.rfind("https://", 0) == 0)
        return Fail("https sources are not supported yet; use an http:// URL (or a TLS-terminating proxy)");
    if (url.rfind(kHttp, 0) != 0) return Fail(fmt::format("'{}' is not an http:// URL", url));
    url.remove_prefix(kHttp.size());
    if (url.find_first_of("?#") != std::string_view::npos)
        return Fail("the URL must not carry a query or fragment; give the SRU base URL only");
    HttpUrl out;
    const auto slash = url.find('/');
    std::string_view authority = url.substr(0, slash);
    if (slash != std::string_view::npos) out.path = std::string(url.substr(slash));
    if (authority.find('@') != std::string_view::npos) return Fail("user names in the URL are not supported");
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return Fail("unclosed '[' in the host");
        out.host = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
        if (!authority.empty()) {
            if (authority.front() != ':') return Fail("expected ':' and a port after the IPv6 address");
            out.port = std::string(authority.substr(1));
        }
    } else {
        const auto colon = authority.rfind(':');
        out.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) out.port = std::string(authority.substr(colon + 1));
    }
    if (out.host.empty()) return Fail("the URL has no host");
    int port = 0;
    auto [end, ec] = std::from_chars(out.port.data(), out.port.data() + out.port.size(), port);
    if (ec != std::errc() || end != out.port.data() + out.port.size() || port < 1 || port > 65535)
        return Fail(fmt::format("'{}' is not a port number 1..65535", out.port));
    return out;
}

std::string PageTarget(const HttpUrl& url, const PageRequest& r) {
    std::string target = url.path;
    target += fmt::format("?version={}&operation=searchRetrieve&query={}&startRecord={}&maximumRecords={}",
                          PercentEncode(r.version), PercentEncode(r.query), r.start, r.maximum);
    if (!r.record_schema.empty()) target += "&recordSchema=" + PercentEncode(r.record_schema);
    // 1.x defaults to string packing at some servers; 2.0 calls it recordXMLEscaping.
    target += r.version == "2.0" ? "&recordXMLEscaping=xml" : "&recordPacking=xml";
    return target;
}

std::string QueryWithSince(std::string_view query_template, std::string_view since) {
    std::string quoted = "\"";
    for (char c : since) {
        if (c == '"' || c == '\\') quoted += '\\';
        quoted += c;
    }
    quoted += '"';
    std::string out;
    constexpr std::string_view kMark = "{since}";
    std::size_t at = 0;
    for (auto hit = query_template.find(kMark); hit != std::string_view::npos;
         hit = query_template.find(kMark, at)) {
        out.append(query_template.substr(at, hit - at));
        out += quoted;
        at = hit + kMark.size();
    }
    out.append(query_template.substr(at));
    return out;
}

int RemoteDiagnostic::Code() const {
    constexpr std::string_view kPrefix = "info:srw/diagnostic/1/";
    if (uri.rfind(kPrefix, 0) != 0) return 0;
    int code = 0;
    auto [end, ec] = std::from_chars(uri.data() + kPrefix.size(), uri.data() + uri.size(), code);
    return ec == std::errc() && end == uri.data() + uri.size() ? code : 0;
}

bool RemoteDiagnostic::Transient() const {
    const int code = Code();
    return code == 1 || code == 2;
}

Result<Page> ParsePage(std::string_view body) {
    if (!IsValidUtf8(body)) return Fail("the response is not valid UTF-8");
    if (body.find("<!DOCTYPE") != std::string_view::npos || body.find("<!ENTITY") != std::string_view::npos)
        return Fail("the response declares a DTD or entities; refused");
    pugi::xml_document doc;
    const auto parsed = doc.load_buffer(body.data(), body.size(), pugi::parse_default & ~pugi::parse_doctype,
                                        pugi::encoding_utf8);
    if (!parsed)
        return Fail(fmt::format("the response is not well-formed XML: {} at byte {}", parsed.description(),
                                parsed.offset));
    auto root = doc.document_element();
    // SRW over SOAP wraps the response in an Envelope.
    if (Local(root) == "Envelope") {
        auto soap_body = Child(root, "Body");
        root = soap_body ? soap_body.find_child([](pugi::xml_node n) { return n.type() == pugi::node_element; })
                         : pugi::xml_node();
    }
    if (!root || Local(root) != "searchRetrieveResponse")
        return Fail(fmt::format("expected an SRU searchRetrieveResponse, got <{}>",
                                root ? std::string(root.name()) : std::string("nothing")));
    if (ElementDepth(root, kMaxPageDepth) > kMaxPageDepth)
        return Fail(fmt::format("the response nests elements deeper than {}", kMaxPageDepth));

    Page page;
    if (auto diags = Child(root, "diagnostics"))
        for (auto d : diags.children())
            if (d.type() == pugi::node_element && Local(d) == "diagnostic")
                page.diagnostics.push_back(ReadDiagnostic(d));
    auto count = Number(Child(root, "numberOfRecords"));
    if (!count && page.diagnostics.empty()) return Fail("the response has no numberOfRecords");
    page.number_of_records = count.value_or(0);
    if (page.number_of_records < 0) return Fail("numberOfRecords is negative");
    if (auto next = Child(root, "nextRecordPosition")) {
        page.next_position = Number(next);
        if (!page.next_position || *page.next_position < 1)
            return Fail(fmt::format("nextRecordPosition '{}' is not a positive number", Text(next)));
    }
    if (auto records = Child(root, "records")) {
        for (auto rec : records.children()) {
            if (rec.type() != pugi::node_element || Local(rec) != "record") continue;
            HarvestedRecord out;
            out.schema = Text(Child(rec, "recordSchema"));
            out.position = Number(Child(rec, "recordPosition")).value_or(0);
            auto data = Child(rec, "recordData");
            if (!data) return Fail(fmt::format("record {} has no recordData", page.records.size() + 1));
            auto element = data.find_child([](pugi::xml_node n) { return n.type() == pugi::node_element; });
            if (element && Local(element) == "diagnostic") {
                out.diagnostic = ReadDiagnostic(element);
            } else if (element) {
                out.data = StandaloneElement(element);
            } else {
                // String packing: the record is escaped text.
                out.data = data.text().get();
                if (out.data.find("<!DOCTYPE") != std::string::npos || out.data.find("<!ENTITY") != std::string::npos)
                    return Fail(fmt::format("record {} declares a DTD or entities; refused", page.records.size() + 1));
            }
            page.records.push_back(std::move(out));
        }
    }
    return page;
}

Result<std::optional<long long>> NextStart(const Page& page, long long start) {
    const long long after = start + static_cast<long long>(page.records.size());
    if (page.next_position) {
        // A server that sends us back (or nowhere) would be harvested
        // forever; one that skips ahead would lose records silently.
        if (*page.next_position != after)
            return Fail(fmt::format("nextRecordPosition {} does not follow a page of {} records from {}",
                                    *page.next_position, page.records.size(), start));
        return std::optional<long long>(after);
    }
    // Without nextRecordPosition: more if the count says so and this page
    // moved us on (an empty page would otherwise ask for itself forever).
    if (!page.records.empty() && after <= page.number_of_records) return std::optional<long long>(after);
    return std::optional<long long>();
}

}  // namespace iblsync::protocols::sru
