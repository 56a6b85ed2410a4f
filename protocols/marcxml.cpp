#include "protocols/marcxml.hpp"

#include <cstring>

#include <fmt/format.h>
#include <pugixml.hpp>

#include "protocols/utf8.hpp"
#include "protocols/xml_names.hpp"

namespace iblsync::protocols::marc {
namespace {

bool IsNameChar(char c) {
    return !(c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '>' || c == '/');
}

// XML 1.0 knows five named entities; anything else needs a DTD, which we refuse.
std::string CheckEntities(std::string_view xml) {
    for (std::size_t i = xml.find('&'); i != std::string_view::npos; i = xml.find('&', i + 1)) {
        auto semi = xml.find(';', i);
        if (semi == std::string_view::npos || semi - i > 12)
            return fmt::format("bare '&' at byte {} (write &amp;)", i);
        std::string_view name = xml.substr(i + 1, semi - i - 1);
        if (name == "amp" || name == "lt" || name == "gt" || name == "quot" || name == "apos") continue;
        if (name.size() > 1 && name[0] == '#') continue;  // character reference; pugixml checks it
        std::string shown;
        for (char c : name) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
        return fmt::format("undeclared entity '&{};' at byte {}", shown, i);
    }
    return {};
}

}  // namespace

std::string XmlEscape(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 8);
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

Result<Record> ParseMarcXmlRecord(std::string_view xml) {
    if (xml.size() > kMaxMarcXmlRecord)
        return Fail(fmt::format("record element is {} bytes; the limit is {}", xml.size(), kMaxMarcXmlRecord));
    if (auto bad = FindInvalidUtf8(xml); bad != kUtf8Valid)
        return Fail(fmt::format("invalid UTF-8 at byte {} of the record", bad));
    if (auto e = CheckEntities(xml); !e.empty()) return Fail(e);
    pugi::xml_document doc;
    auto parsed = doc.load_buffer(xml.data(), xml.size(),
                                  pugi::parse_default | pugi::parse_ws_pcdata_single, pugi::encoding_utf8);
    if (!parsed)
        return Fail(fmt::format("not well-formed XML: {} at byte {}", parsed.description(), parsed.offset));
    pugi::xml_node root = doc.document_element();
    if (LocalName(root.name()) != "record")
        return Fail(fmt::format("expected a <record> element, found <{}>", root.name()));

    Record r;
    bool have_leader = false;
    for (pugi::xml_node n : root.children()) {
        if (n.type() != pugi::node_element) continue;
        std::string_view name = LocalName(n.name());
        if (name == "leader") {
            r.leader = n.child_value();
            have_leader = true;
            if (r.leader.size() != 24)
                return Fail(fmt::format("leader has {} characters, not 24", r.leader.size()));
        } else if (name == "controlfield") {
            auto tag = n.attribute("tag");
            if (!tag) return Fail("controlfield without a tag attribute");
            r.fields.push_back(Field{tag.value(), ' ', ' ', n.child_value(), {}});
        } else if (name == "datafield") {
            auto tag = n.attribute("tag");
            if (!tag) return Fail("datafield without a tag attribute");
            Field f;
            f.tag = tag.value();
            std::string_view i1 = n.attribute("ind1").value(), i2 = n.attribute("ind2").value();
            if (i1.size() > 1 || i2.size() > 1)
                return Fail(fmt::format("datafield {} has an indicator longer than one character", f.tag));
            f.ind1 = i1.empty() ? ' ' : NormalizeIndicator(i1[0]);
            f.ind2 = i2.empty() ? ' ' : NormalizeIndicator(i2[0]);
            for (pugi::xml_node s : n.children()) {
                if (s.type() != pugi::node_element) continue;
                if (LocalName(s.name()) != "subfield")
                    return Fail(fmt::format("datafield {} contains <{}>, not <subfield>", f.tag, s.name()));
                std::string_view code = s.attribute("code").value();
                if (code.size() != 1)
                    return Fail(fmt::format("datafield {} has a subfield without a one-character code", f.tag));
                f.subfields.push_back(Subfield{code[0], s.child_value()});
            }
            r.fields.push_back(std::move(f));
        } else {
            return Fail(fmt::format("unexpected element <{}> in a record", n.name()));
        }
    }
    if (!have_leader) return Fail("record has no leader");
    r.leader[9] = 'a';  // XML text is Unicode whatever the leader claimed
    NormalizeLeader(r.leader);
    for (auto& f : r.fields) {
        if (f.IsControl() && !f.subfields.empty())
            return Fail(fmt::format("control field {} written as a datafield", f.tag));
    }
    if (auto problem = Validate(r); !problem.empty()) return Fail(problem);
    return r;
}

Result<std::string> WriteMarcXmlRecord(const Record& r, bool with_namespace) {
    if (auto problem = Validate(r); !problem.empty()) return Fail(problem);
    for (const auto& f : r.fields) {
        auto check = [&](std::string_view v) {
            for (unsigned char c : v)
                if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
            return IsValidUtf8(v);
        };
        bool ok = f.IsControl() ? check(f.data) : true;
        for (const auto& s : f.subfields) ok = ok && check(s.value);
        if (!ok) return Fail(fmt::format("field {} holds characters XML 1.0 cannot carry", f.tag));
    }
    std::string out = with_namespace ? fmt::format("<record xmlns=\"{}\">", kMarcXmlNamespace) : "<record>";
    out += "<leader>" + XmlEscape(r.leader) + "</leader>";
    // MARC21slim.xsd wants every controlfield before the first datafield.
    for (const auto& f : r.fields)
        if (f.IsControl())
            out += fmt::format("<controlfield tag=\"{}\">{}</controlfield>", XmlEscape(f.tag), XmlEscape(f.data));
    for (const auto& f : r.fields) {
        if (f.IsControl()) continue;
        out += fmt::format("<datafield tag=\"{}\" ind1=\"{}\" ind2=\"{}\">", XmlEscape(f.tag),
                           XmlEscape(std::string(1, f.ind1)), XmlEscape(std::string(1, f.ind2)));
        for (const auto& s : f.subfields)
            out += fmt::format("<subfield code=\"{}\">{}</subfield>", XmlEscape(std::string(1, s.code)),
                               XmlEscape(s.value));
        out += "</datafield>";
    }
    out += "</record>";
    return out;
}

std::string MarcXmlCollectionStart() {
    return fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<collection xmlns=\"{}\">\n", kMarcXmlNamespace);
}

std::string MarcXmlCollectionEnd() { return "</collection>\n"; }

bool MarcXmlSplitter::More() {
    char chunk[65536];
    in_.read(chunk, sizeof chunk);
    auto got = static_cast<std::size_t>(in_.gcount());
    buf_.append(chunk, got);
    return got > 0;
}

std::size_t MarcXmlSplitter::Find(std::size_t from, std::string_view needle) {
    for (;;) {
        auto at = buf_.find(needle, from);
        if (at != std::string::npos) return at;
        from = buf_.size() > needle.size() ? buf_.size() - needle.size() : 0;
        if (buf_.size() - pos_ > kMaxMarcXmlRecord + 65536) return std::string::npos;
        if (!More()) return std::string::npos;
    }
}

void MarcXmlSplitter::Compact(std::size_t keep_from) {
    if (keep_from < 65536) return;
    buf_.erase(0, keep_from);
    dropped_ += keep_from;
    pos_ -= keep_from;
}

bool MarcXmlSplitter::Next(RawRecord& out) {
    out = RawRecord{};
    if (fatal_) return false;
    std::size_t record_start = std::string::npos;
    auto fail_stream = [&](std::string why) {
        out.error = std::move(why);
        out.offset = dropped_ + pos_;
        fatal_ = true;
        return true;
    };
    for (;;) {
        if (record_start == std::string::npos) Compact(pos_);
        else if (pos_ - record_start > kMaxMarcXmlRecord) {
            // Skip the rest of this oversized record without keeping it.
            out.offset = dropped_ + record_start;
            out.error = fmt::format("record element larger than {} bytes; skipped", kMaxMarcXmlRecord);
            std::size_t end = Find(pos_, "</");
            while (end != std::string::npos) {
                auto close = buf_.find('>', end);
                std::string_view name(buf_.data() + end + 2, close == std::string::npos ? 0 : close - end - 2);
                pos_ = close == std::string::npos ? buf_.size() : close + 1;
                if (LocalName(name) == "record") break;
                Compact(pos_);
                end = Find(pos_, "</");
            }
            if (end == std::string::npos) fatal_ = true;
            return true;
        }
        std::size_t lt = Find(pos_, "<");
        if (lt == std::string::npos) {
            if (record_start != std::string::npos)
                return fail_stream("stream ends inside a <record> element");
            return false;
        }
        while (buf_.size() < lt + 9 && More()) {
        }
        std::string_view rest(buf_.data() + lt, buf_.size() - lt);
        if (rest.rfind("<!--", 0) == 0) {
            auto end = Find(lt + 4, "-->");
            if (end == std::string::npos) return fail_stream("unterminated comment");
            pos_ = end + 3;
            continue;
        }
        if (rest.rfind("<![CDATA[", 0) == 0) {
            auto end = Find(lt + 9, "]]>");
            if (end == std::string::npos) return fail_stream("unterminated CDATA section");
            pos_ = end + 3;
            continue;
        }
        if (rest.rfind("<!", 0) == 0)
            return fail_stream("document type declarations (DTDs, <!ENTITY>) are not allowed in MARCXML");
        if (rest.rfind("<?", 0) == 0) {
            auto end = Find(lt + 2, "?>");
            if (end == std::string::npos) return fail_stream("unterminated processing instruction");
            std::string pi = buf_.substr(lt, end - lt);
            auto enc = pi.find("encoding=");
            if (pi.rfind("<?xml", 0) == 0 && enc != std::string::npos) {
                std::string value = pi.substr(enc + 10);
                value = value.substr(0, value.find_first_of("\"'"));
                for (auto& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                if (value != "utf-8" && value != "utf8")
                    return fail_stream(fmt::format("encoding '{}' is not supported; send UTF-8", value));
            }
            pos_ = end + 2;
            continue;
        }
        // A start or end tag: find its '>' outside quoted attribute values.
        std::size_t i = lt + 1;
        char quote = 0;
        for (;; ++i) {
            if (i >= buf_.size() && !More()) return fail_stream("stream ends inside a tag");
            char c = buf_[i];
            if (quote) {
                if (c == quote) quote = 0;
            } else if (c == '"' || c == '\'') {
                quote = c;
            } else if (c == '>') {
                break;
            }
            if (i - lt > 65536) return fail_stream("tag longer than 64 KiB");
        }
        bool closing = buf_[lt + 1] == '/';
        std::size_t name_start = lt + (closing ? 2 : 1), name_end = name_start;
        while (name_end < i && IsNameChar(buf_[name_end])) ++name_end;
        std::string_view local = LocalName(std::string_view(buf_.data() + name_start, name_end - name_start));
        pos_ = i + 1;
        if (local != "record") continue;
        if (!closing && record_start == std::string::npos) {
            record_start = lt;
            if (buf_[i - 1] == '/') {  // <record/>
                out.offset = dropped_ + lt;
                out.error = "empty <record/> element";
                return true;
            }
        } else if (closing && record_start != std::string::npos) {
            out.offset = dropped_ + record_start;
            out.bytes = buf_.substr(record_start, pos_ - record_start);
            return true;
        }
    }
}

}  // namespace iblsync::protocols::marc
