#include "protocols/holdings.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cctype>

#include <fmt/format.h>

#include "protocols/isil.hpp"

namespace iblsync::protocols {
namespace {

constexpr std::array<std::pair<ItemStatus, std::string_view>, 6> kStatusNames{{
    {ItemStatus::kAvailable, "available"},
    {ItemStatus::kOnLoan, "on_loan"},
    {ItemStatus::kInTransit, "in_transit"},
    {ItemStatus::kReserved, "reserved"},
    {ItemStatus::kMissing, "missing"},
    {ItemStatus::kNotLendable, "not_lendable"},
}};

// Presets for the systems Dutch public libraries and their neighbours run.
// Koha: 952 $a home branch, $b holding branch, $o call number, $p barcode,
// $q due date, $7 not for loan, $1 lost, $0 withdrawn, $4 damaged.
// SirsiDynix: 999 $a call number, $i barcode, $m library, $k current location.
// iblsync: the 852 that iblsync itself writes (export, OAI-PMH marc21), with
// the status in $9 and the due date in $d, so that one node can harvest
// another's catalogue with its availability.
constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kPresets{{
    {"marc21", "852 owner=a branch=b shelfmark=hij barcode=p"},
    {"iblsync",
     "852 owner=a branch=b shelfmark=h barcode=p due=d status(9=on_loan)=on_loan status(9=in_transit)=in_transit "
     "status(9=reserved)=reserved status(9=missing)=missing status(9=not_lendable)=not_lendable"},
    {"koha",
     "952 barcode=p branch=b shelfmark=o due=q status(1!=0)=missing status(0!=0)=missing "
     "status(7!=0)=not_lendable status(4!=0)=not_lendable"},
    {"sirsi",
     "999 barcode=i branch=m shelfmark=a status(k=CHECKEDOUT)=on_loan status(k=INTRANSIT)=in_transit "
     "status(k=HOLDS)=reserved status(k=MISSING)=missing status(k=LOST)=missing status(k=REFERENCE)=not_lendable"},
    {"none", ""},
}};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string Trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

bool ValidCodes(std::string_view codes) {
    return !codes.empty() && std::all_of(codes.begin(), codes.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0;
    });
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool ValidDate(int y, int m, int d) {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1) return false;
    return d <= kDays[m - 1] + (m == 2 && IsLeap(y) ? 1 : 0);
}

bool ReadInt(std::string_view s, int& out) {
    if (s.empty() || s.size() > 4) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

std::string Value(const marc::Field& f, std::string_view codes) { return Trim(f.Join(codes)); }

bool Matches(const StatusRule& rule, const marc::Field& f) {
    std::string v;
    bool present = false;
    for (const auto& sf : f.subfields)
        if (sf.code == rule.code) {
            v = Trim(sf.value);
            present = !v.empty();
            break;
        }
    switch (rule.test) {
        case StatusRule::Test::kPresent: return present;
        case StatusRule::Test::kEquals: return present && EqualsIgnoreCase(v, rule.value);
        case StatusRule::Test::kNotEquals: return present && !EqualsIgnoreCase(v, rule.value);
    }
    return false;
}

}  // namespace

std::string_view ToString(ItemStatus status) {
    for (const auto& [s, name] : kStatusNames)
        if (s == status) return name;
    return "available";
}

std::optional<ItemStatus> ParseItemStatus(std::string_view text) {
    for (const auto& [s, name] : kStatusNames)
        if (name == text) return s;
    return std::nullopt;
}

Result<std::string> NormalizeDate(std::string_view text) {
    std::string t = Trim(text);
    int y = 0, m = 0, d = 0;
    bool parsed = false;
    if (t.size() >= 10 && t[4] == '-' && t[7] == '-' && (t.size() == 10 || t[10] == 'T' || t[10] == ' ')) {
        parsed = ReadInt(std::string_view(t).substr(0, 4), y) && ReadInt(std::string_view(t).substr(5, 2), m) &&
                 ReadInt(std::string_view(t).substr(8, 2), d);
    } else if (t.size() == 8 && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        parsed = ReadInt(std::string_view(t).substr(0, 4), y) && ReadInt(std::string_view(t).substr(4, 2), m) &&
                 ReadInt(std::string_view(t).substr(6, 2), d);
    } else if (auto s1 = t.find('/'); s1 != std::string::npos) {
        auto s2 = t.find('/', s1 + 1);
        parsed = s2 != std::string::npos && ReadInt(std::string_view(t).substr(0, s1), m) &&
                 ReadInt(std::string_view(t).substr(s1 + 1, s2 - s1 - 1), d) &&
                 ReadInt(std::string_view(t).substr(s2 + 1), y) && t.size() - s2 - 1 == 4;
    }
    if (!parsed || !ValidDate(y, m, d)) return Fail(fmt::format("'{}' is not a date (expected YYYY-MM-DD)", t));
    return fmt::format("{:04}-{:02}-{:02}", y, m, d);
}

std::string HoldingsMapping::Spec() const {
    if (tag.empty()) return "none";
    std::string out = tag;
    auto add = [&](std::string_view key, const std::string& codes) {
        if (!codes.empty()) out += fmt::format(" {}={}", key, codes);
    };
    add("owner", owner);
    add("barcode", barcode);
    add("branch", branch);
    add("shelfmark", shelfmark);
    add("due", due);
    for (const auto& r : rules) {
        const char* op = r.test == StatusRule::Test::kEquals ? "=" : r.test == StatusRule::Test::kNotEquals ? "!=" : "";
        out += fmt::format(" status({}{}{})={}", r.code, op, r.value, ToString(r.status));
    }
    return out;
}

Result<HoldingsMapping> ParseHoldingsMapping(std::string_view spec) {
    std::string text = Trim(spec);
    for (const auto& [name, preset] : kPresets)
        if (EqualsIgnoreCase(text, name)) {
            if (preset.empty()) return HoldingsMapping{};
            return ParseHoldingsMapping(preset);
        }
    std::vector<std::string> tokens;
    for (std::size_t i = 0; i < text.size();) {
        while (i < text.size() && text[i] == ' ') ++i;
        std::size_t j = text.find(' ', i);
        if (j == std::string::npos) j = text.size();
        if (j > i) tokens.push_back(text.substr(i, j - i));
        i = j;
    }
    if (tokens.empty())
        return Fail("empty holdings mapping; use a preset (marc21, iblsync, koha, sirsi, none) or a spec");
    HoldingsMapping m;
    const std::string& tag = tokens[0];
    if (tag.size() != 3 || !marc::IsValidTag(tag) || marc::IsControlTag(tag))
        return Fail(
            fmt::format("'{}' is neither a preset (marc21, iblsync, koha, sirsi, none) nor a data field tag", tag));
    m.tag = tag;
    for (std::size_t i = 1; i < tokens.size(); ++i) {
        const std::string& tok = tokens[i];
        auto eq = tok.rfind('=');
        if (tok.rfind("status(", 0) == 0) {
            auto close = tok.find(')');
            if (close == std::string::npos || close + 1 >= tok.size() || tok[close + 1] != '=')
                return Fail(fmt::format("'{}': write status(<code>[=|!=<value>])=<status>", tok));
            std::string cond = tok.substr(7, close - 7);
            auto status = ParseItemStatus(tok.substr(close + 2));
            if (!status)
                return Fail(fmt::format("'{}': unknown status '{}' (available, on_loan, in_transit, reserved, missing, "
                                        "not_lendable)",
                                        tok, tok.substr(close + 2)));
            StatusRule rule;
            rule.status = *status;
            if (cond.empty() || !ValidCodes(cond.substr(0, 1)))
                return Fail(fmt::format("'{}': the condition must start with a subfield code", tok));
            rule.code = cond[0];
            if (cond.size() > 1) {
                if (cond.compare(1, 2, "!=") == 0) {
                    rule.test = StatusRule::Test::kNotEquals;
                    rule.value = cond.substr(3);
                } else if (cond[1] == '=') {
                    rule.test = StatusRule::Test::kEquals;
                    rule.value = cond.substr(2);
                } else {
                    return Fail(fmt::format("'{}': after the subfield code comes = or !=", tok));
                }
            }
            m.rules.push_back(std::move(rule));
            continue;
        }
        if (eq == std::string::npos) return Fail(fmt::format("'{}': expected key=subfield codes", tok));
        std::string key = tok.substr(0, eq), codes = tok.substr(eq + 1);
        if (!ValidCodes(codes)) return Fail(fmt::format("'{}': subfield codes are letters or digits", tok));
        std::string* slot = key == "barcode"     ? &m.barcode
                            : key == "branch"    ? &m.branch
                            : key == "shelfmark" ? &m.shelfmark
                            : key == "due"       ? &m.due
                            : key == "owner"     ? &m.owner
                                                 : nullptr;
        if (!slot)
            return Fail(fmt::format("'{}': unknown key '{}' (barcode, branch, shelfmark, due, owner, status(...))", tok,
                                    key));
        *slot = codes;
    }
    if (m.barcode.empty()) return Fail(fmt::format("'{}': the mapping needs barcode=<code>: copies are keyed by it", text));
    return m;
}

ExtractedHoldings ExtractHoldings(const marc::Record& record, const HoldingsMapping& m, std::string_view library) {
    ExtractedHoldings out;
    if (!m.Enabled()) return out;
    int n = 0;
    for (const auto* f : record.All(m.tag)) {
        ++n;
        if (!m.owner.empty()) {
            std::string owner = Value(*f, m.owner);
            // Only an ISIL can say "another library"; local codes (Koha branch
            // codes, MARC organisation codes) are kept.
            if (auto isil = NormalizeIsil(owner); isil && isil.value() != library) continue;
        }
        Holding h;
        h.barcode = Value(*f, m.barcode);
        if (h.barcode.empty()) {
            out.warnings.push_back(fmt::format("copy {} in {} has no barcode (subfield {}); skipped", n, m.tag, m.barcode));
            continue;
        }
        if (h.barcode.size() > 100) {
            out.warnings.push_back(fmt::format("copy {} in {}: barcode longer than 100 bytes; skipped", n, m.tag));
            continue;
        }
        if (!m.branch.empty()) h.branch = Value(*f, m.branch);
        if (!m.shelfmark.empty()) h.shelfmark = Value(*f, m.shelfmark);
        if (!m.due.empty()) {
            if (std::string due = Value(*f, m.due); !due.empty()) {
                if (auto d = NormalizeDate(due)) h.due_date = d.value();
                else out.warnings.push_back(fmt::format("copy {} ({}): due date {}; ignored", n, h.barcode, d.error()));
            }
        }
        auto rule = std::find_if(m.rules.begin(), m.rules.end(), [&](const StatusRule& r) { return Matches(r, *f); });
        if (rule != m.rules.end()) h.status = rule->status;
        else h.status = h.due_date.empty() ? ItemStatus::kAvailable : ItemStatus::kOnLoan;
        if (h.status != ItemStatus::kOnLoan) h.due_date.clear();
        auto same = std::find_if(out.holdings.begin(), out.holdings.end(),
                                 [&](const Holding& o) { return o.barcode == h.barcode; });
        if (same != out.holdings.end()) {
            out.warnings.push_back(fmt::format("barcode {} appears twice in the record; the last copy counts", h.barcode));
            *same = std::move(h);
        } else {
            out.holdings.push_back(std::move(h));
        }
    }
    return out;
}

}  // namespace iblsync::protocols
