#include "protocols/dublin_core.hpp"

#include <string_view>

#include "protocols/marcxml.hpp"  // XmlEscape

namespace iblsync::protocols::dc {
namespace {

using marc::Field;
using marc::Record;

void Add(DcRecord& out, const char* element, std::string value) {
    // Trailing ISBD punctuation (" /", " :", ".") belongs to the card, not the element.
    while (!value.empty() && (value.back() == ' ' || value.back() == '/' || value.back() == ':' ||
                              value.back() == ';' || value.back() == ',' || value.back() == '='))
        value.pop_back();
    if (!value.empty()) out.emplace_back(element, std::move(value));
}

// Subject headings: main part, then subdivisions ($v $x $y $z) joined by "--".
std::string Subject(const Field& f, std::string_view main_codes) {
    std::string out = f.Join(main_codes);
    std::string subdivisions;
    for (const auto& s : f.subfields) {
        if (std::string_view("vxyz").find(s.code) == std::string_view::npos) continue;
        if (!subdivisions.empty()) subdivisions += "--";
        subdivisions += s.value;
    }
    if (!subdivisions.empty()) out += "--" + subdivisions;
    return out;
}

int TagNumber(const std::string& tag) {
    int n = 0;
    for (char c : tag) {
        if (c < '0' || c > '9') return -1;
        n = n * 10 + (c - '0');
    }
    return n;
}

const char* TypeOf(char leader6) {
    switch (leader6) {
        case 'a': case 't': return "text";
        case 'e': case 'f': return "cartographic";
        case 'c': case 'd': return "notated music";
        case 'i': case 'j': return "sound recording";
        case 'k': return "still image";
        case 'g': return "moving image";
        case 'r': return "three dimensional object";
        case 'm': return "software, multimedia";
        case 'p': return "mixed material";
        default: return nullptr;
    }
}

}  // namespace

DcRecord FromMarc(const Record& r) {
    DcRecord out;
    const char leader6 = r.leader.size() > 7 ? r.leader[6] : ' ';
    const char leader7 = r.leader.size() > 7 ? r.leader[7] : ' ';
    for (const auto& f : r.fields) {
        if (f.tag == "245") Add(out, "title", f.Join("abfghk"));
    }
    for (const auto& f : r.fields) {
        if (f.tag == "100" || f.tag == "110" || f.tag == "111" || f.tag == "700" || f.tag == "710" ||
            f.tag == "711" || f.tag == "720")
            Add(out, "creator", f.Join("abcdefghjklmnopqrstuvwxyz"));
    }
    if (leader7 == 'c') Add(out, "type", "collection");
    if (leader6 == 'd' || leader6 == 'f' || leader6 == 'p' || leader6 == 't') Add(out, "type", "manuscript");
    if (const char* type = TypeOf(leader6)) Add(out, "type", type);
    for (const auto* f : r.All("655")) Add(out, "type", f->Join("abcdefghijklmnopqrstuvwxyz"));
    for (const auto& f : r.fields)
        if (f.tag == "260" || f.tag == "264") Add(out, "publisher", f.Join("ab"));
    for (const auto& f : r.fields)
        if (f.tag == "260" || f.tag == "264")
            for (const auto& c : f.Subs('c')) Add(out, "date", c);
    if (const Field* f008 = r.First("008"); f008 && f008->data.size() >= 38) {
        std::string lang = f008->data.substr(35, 3);
        if (lang.find_first_not_of(" |") != std::string::npos) Add(out, "language", lang);
    }
    for (const auto* f : r.All("856"))
        for (const auto& q : f->Subs('q')) Add(out, "format", q);
    for (const auto* f : r.All("520")) Add(out, "description", f->Join("ab"));
    for (const auto& f : r.fields) {
        int n = TagNumber(f.tag);
        if (n >= 500 && n <= 599 && n != 506 && n != 530 && n != 540 && n != 546 && n != 520)
            Add(out, "description", f.Sub('a'));
    }
    for (const auto& f : r.fields) {
        if (f.tag == "600") Add(out, "subject", Subject(f, "abcdefghjklmnopqrstu4"));
        else if (f.tag == "610") Add(out, "subject", Subject(f, "abcdefghklmnoprstu4"));
        else if (f.tag == "611") Add(out, "subject", Subject(f, "acdefghjklnpqstu4"));
        else if (f.tag == "630") Add(out, "subject", Subject(f, "adfhklor"));
        else if (f.tag == "650") Add(out, "subject", Subject(f, "ae"));
        else if (f.tag == "653") Add(out, "subject", f.Join("a"));
    }
    for (const auto* f : r.All("651")) Add(out, "coverage", f->Join("a"));
    for (const auto* f : r.All("662")) Add(out, "coverage", f->Join("abcdefgh"));
    for (const auto* f : r.All("752")) Add(out, "coverage", f->Join("abcd"));
    for (const auto* f : r.All("530")) Add(out, "relation", f->Join("abcdu"));
    for (const auto& f : r.fields) {
        int n = TagNumber(f.tag);
        if ((n >= 760 && n <= 787) && n != 761 && n != 763 && n != 764 && n != 766 && n != 768 &&
            n != 769 && n != 771 && n != 778 && n != 779 && n != 781 && n != 782 && n != 783 && n != 784)
            Add(out, "relation", f.Join("ot"));
    }
    for (const auto* f : r.All("856"))
        if (auto u = f->Sub('u'); !u.empty()) Add(out, "identifier", u);
    for (const auto* f : r.All("020"))
        if (auto a = f->Sub('a'); !a.empty()) Add(out, "identifier", "URN:ISBN:" + a);
    for (const auto* f : r.All("506")) Add(out, "rights", f->Sub('a'));
    for (const auto* f : r.All("540")) Add(out, "rights", f->Sub('a'));
    return out;
}

namespace {

// The elements of `record` after `out` (the opening tag), then `close`.
std::string Wrapped(const DcRecord& record, std::string out, const char* close) {
    for (const auto& [element, value] : record)
        out += "<dc:" + element + ">" + marc::XmlEscape(value) + "</dc:" + element + ">";
    return out + close;
}

}  // namespace

std::string ToOaiDcXml(const DcRecord& record) {
    return Wrapped(
        record,
        "<oai_dc:dc xmlns:oai_dc=\"http://www.openarchives.org/OAI/2.0/oai_dc/\" "
        "xmlns:dc=\"http://purl.org/dc/elements/1.1/\" "
        "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
        "xsi:schemaLocation=\"http://www.openarchives.org/OAI/2.0/oai_dc/ "
        "http://www.openarchives.org/OAI/2.0/oai_dc.xsd\">",
        "</oai_dc:dc>");
}

std::string ToSrwDcXml(const DcRecord& record) {
    return Wrapped(record,
                   "<srw_dc:dc xmlns:srw_dc=\"info:srw/schema/1/dc-schema\" "
                   "xmlns:dc=\"http://purl.org/dc/elements/1.1/\">",
                   "</srw_dc:dc>");
}

}  // namespace iblsync::protocols::dc
