#include "protocols/marc_record.hpp"

#include <fmt/format.h>

namespace iblsync::protocols::marc {
namespace {

bool IsAlnum(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

// Bytes that delimit ISO 2709 structure may not occur inside values.
bool HasDelimiter(std::string_view s) {
    for (char c : s)
        if (c == 0x1d || c == 0x1e || c == 0x1f) return true;
    return false;
}

}  // namespace

char NormalizeIndicator(char c) {
    if (c == '#' || c == '_' || c == '-' || c == '\\' || c == '|') return ' ';
    if (c >= 'A' && c <= 'Z') return static_cast<char>(c - 'A' + 'a');
    return c;
}

void NormalizeLeader(std::string& leader) {
    if (leader.size() != 24) return;
    leader[10] = '2';
    leader[11] = '2';
    leader.replace(20, 4, "4500");
    for (std::size_t i : {5, 6, 7, 8, 9, 17, 18, 19})
        if (!IsAlnum(leader[i]) && leader[i] != ' ') leader[i] = ' ';
    for (std::size_t i = 0; i < 24; ++i)
        if ((i < 5 || (i >= 12 && i < 17)) && !(leader[i] >= '0' && leader[i] <= '9')) leader[i] = '0';
}

bool IsControlTag(std::string_view tag) { return tag.size() == 3 && tag[0] == '0' && tag[1] == '0'; }

bool IsValidTag(std::string_view tag) {
    return tag.size() == 3 && IsAlnum(tag[0]) && IsAlnum(tag[1]) && IsAlnum(tag[2]);
}

bool Field::IsControl() const { return IsControlTag(tag); }

std::string Field::Sub(char code) const {
    for (const auto& s : subfields)
        if (s.code == code) return s.value;
    return {};
}

std::vector<std::string> Field::Subs(char code) const {
    std::vector<std::string> out;
    for (const auto& s : subfields)
        if (s.code == code) out.push_back(s.value);
    return out;
}

std::string Field::Join(std::string_view codes) const {
    std::string out;
    for (const auto& s : subfields) {
        if (codes.find(s.code) == std::string_view::npos || s.value.empty()) continue;
        if (!out.empty()) out += ' ';
        out += s.value;
    }
    return out;
}

const Field* Record::First(std::string_view tag) const {
    for (const auto& f : fields)
        if (f.tag == tag) return &f;
    return nullptr;
}

std::vector<const Field*> Record::All(std::string_view tag) const {
    std::vector<const Field*> out;
    for (const auto& f : fields)
        if (f.tag == tag) out.push_back(&f);
    return out;
}

std::string Record::ControlNumber() const {
    const Field* f = First("001");
    return f ? f->data : std::string();
}

std::string Validate(const Record& r) {
    if (r.leader.size() != 24) return fmt::format("leader has {} characters, not 24", r.leader.size());
    for (const auto& f : r.fields) {
        if (!IsValidTag(f.tag)) return fmt::format("invalid tag '{}'", f.tag);
        if (f.IsControl()) {
            if (HasDelimiter(f.data)) return fmt::format("field {} contains a MARC delimiter byte", f.tag);
            continue;
        }
        for (char ind : {f.ind1, f.ind2})
            if (!(ind == ' ' || (ind >= '0' && ind <= '9') || (ind >= 'a' && ind <= 'z')))
                return fmt::format("field {} has an invalid indicator (byte 0x{:02x})", f.tag,
                                   static_cast<unsigned char>(ind));
        for (const auto& s : f.subfields) {
            if (s.code < 0x21 || s.code > 0x7e)
                return fmt::format("field {} has an invalid subfield code (byte 0x{:02x})", f.tag,
                                   static_cast<unsigned char>(s.code));
            if (HasDelimiter(s.value))
                return fmt::format("field {} ${} contains a MARC delimiter byte", f.tag, s.code);
        }
    }
    return {};
}

}  // namespace iblsync::protocols::marc
