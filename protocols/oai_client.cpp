#include "protocols/oai_client.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <pugixml.hpp>

#include "protocols/marcxml.hpp"
#include "protocols/url.hpp"
#include "protocols/utf8.hpp"
#include "protocols/xml_limits.hpp"
#include "protocols/xml_names.hpp"

namespace iblsync::protocols::oai {
namespace {

std::string_view Local(const pugi::xml_node& n) { return LocalName(n.name()); }

pugi::xml_node Child(const pugi::xml_node& parent, std::string_view local) { return ChildByLocalName(parent, local); }

std::string Trimmed(std::string_view v) {
    constexpr std::string_view kSpace = " \t\r\n";
    const auto first = v.find_first_not_of(kSpace);
    if (first == std::string_view::npos) return "";
    return std::string(v.substr(first, v.find_last_not_of(kSpace) - first + 1));
}

std::string Text(const pugi::xml_node& n) { return n ? Trimmed(n.child_value()) : std::string(); }

long long Attr(const pugi::xml_node& n, const char* name) {
    auto a = n.attribute(name);
    if (!a) return -1;
    std::string v = Trimmed(a.value());
    long long out = -1;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc() && end == v.data() + v.size() && out >= 0 ? out : -1;
}

struct Envelope {
    pugi::xml_document doc;
    pugi::xml_node root;
    std::vector<RemoteError> errors;
};

// The OAI-PMH element of a response, checked as far as every verb needs.
Result<bool> Open(std::string_view body, Envelope& env) {
    // A byte order mark and whitespace before the declaration are common
    // and harmless; pugixml would take the whitespace as content.
    if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
    while (!body.empty() && (body.front() == ' ' || body.front() == '\n' || body.front() == '\r' ||
                             body.front() == '\t'))
        body.remove_prefix(1);
    if (!IsValidUtf8(body)) return Fail("the response is not valid UTF-8");
    if (body.find("<!DOCTYPE") != std::string_view::npos || body.find("<!ENTITY") != std::string_view::npos)
        return Fail("the response declares a DTD or entities; refused");
    const auto parsed = env.doc.load_buffer(body.data(), body.size(), pugi::parse_default & ~pugi::parse_doctype,
                                            pugi::encoding_utf8);
    if (!parsed)
        return Fail(fmt::format("the response is not well-formed XML: {} at byte {}", parsed.description(),
                                parsed.offset));
    env.root = env.doc.document_element();
    if (!env.root || Local(env.root) != "OAI-PMH")
        return Fail(fmt::format("expected an OAI-PMH response, got <{}>",
                                env.root ? std::string(env.root.name()).substr(0, 60) : std::string("nothing")));
    if (ElementDepth(env.root, kMaxOaiDepth) > kMaxOaiDepth)
        return Fail(fmt::format("the response nests elements deeper than {}", kMaxOaiDepth));
    for (auto c : env.root.children())
        if (c.type() == pugi::node_element && Local(c) == "error")
            env.errors.push_back({c.attribute("code").value(), Text(c)});
    return true;
}

std::string Args(std::initializer_list<std::pair<const char*, const std::string*>> args) {
    std::string out;
    for (const auto& [name, value] : args)
        if (!value->empty()) out += fmt::format("&{}={}", name, PercentEncode(*value));
    return out;
}

}  // namespace

bool ListPage::HasError(std::string_view code) const {
    for (const auto& e : errors)
        if (e.code == code) return true;
    return false;
}

std::string ListRecordsTarget(std::string_view path, const ListRecordsRequest& r) {
    std::string target = fmt::format("{}?verb=ListRecords", path);
    if (!r.resumption_token.empty()) return target + Args({{"resumptionToken", &r.resumption_token}});
    return target + Args({{"metadataPrefix", &r.metadata_prefix}, {"set", &r.set}, {"from", &r.from},
                          {"until", &r.until}});
}

std::string VerbTarget(std::string_view path, std::string_view verb) { return fmt::format("{}?verb={}", path, verb); }

Result<ListPage> ParseListRecords(std::string_view body) {
    Envelope env;
    if (auto ok = Open(body, env); !ok) return Fail(ok.error());
    ListPage page;
    page.errors = env.errors;
    auto list = Child(env.root, "ListRecords");
    if (!list) {
        if (!page.errors.empty()) return page;
        return Fail("the response has neither ListRecords nor an error");
    }
    for (auto rec : list.children()) {
        if (rec.type() != pugi::node_element) continue;
        if (Local(rec) == "resumptionToken") {
            page.resumption_token = Text(rec);
            page.complete_list_size = Attr(rec, "completeListSize");
            page.cursor = Attr(rec, "cursor");
            continue;
        }
        if (Local(rec) != "record") continue;
        HarvestedItem item;
        auto header = Child(rec, "header");
        if (!header) return Fail(fmt::format("record {} has no header", page.items.size() + 1));
        item.identifier = Text(Child(header, "identifier"));
        item.datestamp = Text(Child(header, "datestamp"));
        if (item.identifier.empty())
            return Fail(fmt::format("record {} has no identifier", page.items.size() + 1));
        item.deleted = Trimmed(header.attribute("status").value()) == "deleted";
        if (!item.deleted) {
            auto metadata = Child(rec, "metadata");
            auto element =
                metadata ? metadata.find_child([](pugi::xml_node n) { return n.type() == pugi::node_element; })
                         : pugi::xml_node();
            if (element) item.metadata = StandaloneElement(element);
        }
        page.items.push_back(std::move(item));
    }
    return page;
}

Result<IdentifyFacts> ParseIdentify(std::string_view body) {
    Envelope env;
    if (auto ok = Open(body, env); !ok) return Fail(ok.error());
    if (!env.errors.empty())
        return Fail(fmt::format("Identify answered {}: {}", env.errors.front().code, env.errors.front().message));
    auto id = Child(env.root, "Identify");
    if (!id) return Fail("the response has no Identify element");
    IdentifyFacts f;
    f.repository_name = Text(Child(id, "repositoryName"));
    f.base_url = Text(Child(id, "baseURL"));
    f.protocol_version = Text(Child(id, "protocolVersion"));
    f.earliest_datestamp = Text(Child(id, "earliestDatestamp"));
    f.deleted_record = Text(Child(id, "deletedRecord"));
    f.granularity = Text(Child(id, "granularity"));
    for (auto c : id.children()) {
        if (c.type() != pugi::node_element) continue;
        if (Local(c) == "adminEmail") f.admin_emails.push_back(Text(c));
        if (Local(c) == "compression") f.compression.push_back(Text(c));
        if (Local(c) == "description")
            if (auto oi = Child(c, "oai-identifier")) f.repository_identifier = Text(Child(oi, "repositoryIdentifier"));
    }
    return f;
}

Result<std::vector<FormatFacts>> ParseListMetadataFormats(std::string_view body) {
    Envelope env;
    if (auto ok = Open(body, env); !ok) return Fail(ok.error());
    if (!env.errors.empty())
        return Fail(fmt::format("ListMetadataFormats answered {}: {}", env.errors.front().code,
                                env.errors.front().message));
    auto list = Child(env.root, "ListMetadataFormats");
    if (!list) return Fail("the response has no ListMetadataFormats element");
    std::vector<FormatFacts> out;
    for (auto f : list.children())
        if (f.type() == pugi::node_element && Local(f) == "metadataFormat")
            out.push_back({Text(Child(f, "metadataPrefix")), Text(Child(f, "schema")),
                           Text(Child(f, "metadataNamespace"))});
    return out;
}

Result<SetsPage> ParseListSets(std::string_view body) {
    Envelope env;
    if (auto ok = Open(body, env); !ok) return Fail(ok.error());
    SetsPage page;
    for (const auto& e : env.errors) {
        if (e.code == "noSetHierarchy") return page;
        return Fail(fmt::format("ListSets answered {}: {}", e.code, e.message));
    }
    auto list = Child(env.root, "ListSets");
    if (!list) return Fail("the response has no ListSets element");
    for (auto s : list.children()) {
        if (s.type() != pugi::node_element) continue;
        if (Local(s) == "set") page.sets.push_back({Text(Child(s, "setSpec")), Text(Child(s, "setName"))});
        if (Local(s) == "resumptionToken") page.resumption_token = Text(s);
    }
    return page;
}

Result<std::string> LocalIdOf(std::string_view identifier) {
    const auto colon = identifier.rfind(':');
    const auto tail = colon == std::string_view::npos ? identifier : identifier.substr(colon + 1);
    auto decoded = PercentDecode(tail, false);
    if (!decoded) return Fail(fmt::format("identifier '{}' has a malformed %-escape", identifier.substr(0, 200)));
    if (decoded->empty()) return Fail(fmt::format("identifier '{}' ends in ':'", identifier.substr(0, 200)));
    if (decoded->size() > 200)
        return Fail(fmt::format("identifier '{}...' gives a local id longer than 200 bytes", identifier.substr(0, 60)));
    if (!IsValidUtf8(*decoded)) return Fail("the identifier's local part is not valid UTF-8");
    return std::move(*decoded);
}

Result<CatalogueRecord> DescribeHarvested(const HarvestedItem& item, const HoldingsMapping& mapping,
                                          std::string_view library) {
    auto local = LocalIdOf(item.identifier);
    if (!local) return Fail(local.error());
    if (item.metadata.empty()) return Fail("the record has no metadata");
    auto parsed = marc::ParseMarcXmlRecord(item.metadata);
    if (!parsed) return Fail(parsed.error());
    marc::Record record = std::move(parsed).value();
    if (record.ControlNumber().empty()) {
        auto at = std::find_if(record.fields.begin(), record.fields.end(),
                               [](const marc::Field& f) { return f.tag > "001"; });
        record.fields.insert(at, marc::Field{"001", ' ', ' ', local.value(), {}});
    }
    auto described = DescribeRecord(record, mapping, library);
    if (!described) return described;
    described.value().local_id = std::move(local).value();
    return described;
}

std::string AtGranularity(std::string_view stamp, std::string_view granularity) {
    if (granularity == "YYYY-MM-DD" && stamp.size() > 10) return std::string(stamp.substr(0, 10));
    // Fractions (the KB writes milliseconds) cut to the second: the list
    // then starts a little early, which repeats records but loses none.
    if (stamp.size() > 20 && stamp[19] == '.') return std::string(stamp.substr(0, 19)) + "Z";
    return std::string(stamp);
}

}  // namespace iblsync::protocols::oai
