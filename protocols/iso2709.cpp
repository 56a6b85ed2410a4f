#include "protocols/iso2709.hpp"

#include <cstring>

#include <fmt/format.h>

#include "protocols/marc8.hpp"
#include "protocols/utf8.hpp"

namespace iblsync::protocols::marc {
namespace {

constexpr char kSubfield = 0x1f;
constexpr char kFieldEnd = 0x1e;
constexpr char kRecordEnd = 0x1d;

// Parses a run of ASCII digits; -1 if any byte is not a digit.
long Digits(std::string_view s) {
    long v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

std::string Printable(std::string_view s) {
    std::string out;
    for (char c : s) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
}

// Converts or checks one value according to the record's coding.
Result<std::string> Text(std::string_view raw, bool marc8, Composition composition, const std::string& where) {
    if (marc8) {
        auto r = Marc8ToUtf8(raw, composition);
        if (!r) return Fail(where + ": " + r.error());
        return r;
    }
    auto bad = FindInvalidUtf8(raw);
    if (bad != kUtf8Valid) return Fail(fmt::format("{}: invalid UTF-8 at byte {}", where, bad));
    return std::string(raw);
}

}  // namespace

Result<Record> ParseIso2709(std::string_view b, Composition composition) {
    if (b.size() < 25) return Fail(fmt::format("record of {} bytes is shorter than a leader", b.size()));
    Record r;
    r.leader.assign(b.substr(0, 24));
    long length = Digits(b.substr(0, 5));
    if (length < 0) return Fail(fmt::format("leader/00-04 record length '{}' is not a number", Printable(b.substr(0, 5))));
    if (static_cast<std::size_t>(length) != b.size())
        return Fail(fmt::format("leader says the record has {} bytes, but it has {}", length, b.size()));
    if (b.back() != kRecordEnd) return Fail("record does not end with the record terminator (0x1D)");
    long base = Digits(b.substr(12, 5));
    if (base < 0) return Fail(fmt::format("leader/12-16 base address '{}' is not a number", Printable(b.substr(12, 5))));
    if (base < 25 || static_cast<std::size_t>(base) > b.size() - 1)
        return Fail(fmt::format("base address {} lies outside the record ({} bytes)", base, b.size()));
    if (b[base - 1] != kFieldEnd) return Fail(fmt::format("directory does not end with a field terminator at byte {}", base - 1));
    std::size_t dir_len = static_cast<std::size_t>(base) - 1 - 24;
    if (dir_len % 12 != 0) return Fail(fmt::format("directory length {} is not a multiple of 12", dir_len));

    const char coding = r.leader[9];
    if (coding != 'a' && coding != ' ')
        return Fail(fmt::format("leader/09 character coding '{}' is neither 'a' (UTF-8) nor ' ' (MARC-8)", Printable(std::string(1, coding))));
    const bool marc8 = coding == ' ';
    std::string_view data = b.substr(static_cast<std::size_t>(base), b.size() - 1 - static_cast<std::size_t>(base));

    for (std::size_t e = 0; e < dir_len / 12; ++e) {
        std::string_view entry = b.substr(24 + e * 12, 12);
        std::string tag(entry.substr(0, 3));
        long flen = Digits(entry.substr(3, 4));
        long fstart = Digits(entry.substr(7, 5));
        if (!IsValidTag(tag)) return Fail(fmt::format("directory entry {} has an invalid tag '{}'", e, Printable(tag)));
        if (flen < 1 || fstart < 0)
            return Fail(fmt::format("directory entry {} (tag {}) has a non-numeric length or start", e, tag));
        if (static_cast<std::size_t>(fstart + flen) > data.size())
            return Fail(fmt::format("field {} (length {}, start {}) runs past the end of the record", tag, flen, fstart));
        std::string_view raw = data.substr(static_cast<std::size_t>(fstart), static_cast<std::size_t>(flen));
        if (raw.back() != kFieldEnd) return Fail(fmt::format("field {} does not end with a field terminator", tag));
        raw.remove_suffix(1);

        Field f;
        f.tag = tag;
        if (IsControlTag(tag)) {
            auto text = Text(raw, marc8, composition, "field " + tag);
            if (!text) return Fail(text.error());
            f.data = std::move(text).value();
            r.fields.push_back(std::move(f));
            continue;
        }
        if (raw.size() < 2) return Fail(fmt::format("field {} is too short for its two indicators", tag));
        f.ind1 = NormalizeIndicator(raw[0]);
        f.ind2 = NormalizeIndicator(raw[1]);
        std::string_view rest = raw.substr(2);
        if (!rest.empty() && rest.front() != kSubfield)
            return Fail(fmt::format("field {} has data before its first subfield", tag));
        while (!rest.empty()) {
            rest.remove_prefix(1);  // the 0x1F
            auto next = rest.find(kSubfield);
            std::string_view sub = rest.substr(0, next);
            rest = next == std::string_view::npos ? std::string_view() : rest.substr(next);
            if (sub.empty()) return Fail(fmt::format("field {} has an empty subfield (no code)", tag));
            auto text = Text(sub.substr(1), marc8, composition, fmt::format("field {} ${}", tag, Printable(sub.substr(0, 1))));
            if (!text) return Fail(text.error());
            f.subfields.push_back(Subfield{sub[0], std::move(text).value()});
        }
        r.fields.push_back(std::move(f));
    }
    r.leader[9] = 'a';
    NormalizeLeader(r.leader);
    if (auto problem = Validate(r); !problem.empty()) return Fail(problem);
    return r;
}

Result<std::string> WriteIso2709(const Record& r) {
    if (auto problem = Validate(r); !problem.empty()) return Fail(problem);
    std::string directory, data;
    for (const auto& f : r.fields) {
        std::size_t start = data.size();
        if (f.IsControl()) {
            data += f.data;
        } else {
            data += f.ind1;
            data += f.ind2;
            for (const auto& s : f.subfields) {
                data += kSubfield;
                data += s.code;
                data += s.value;
            }
        }
        data += kFieldEnd;
        std::size_t len = data.size() - start;
        if (len > 9999 || start > 99999)
            return Fail(fmt::format("field {} is too long for ISO 2709 ({} bytes; the limit is 9999)", f.tag, len));
        directory += fmt::format("{}{:04}{:05}", f.tag, len, start);
    }
    std::size_t base = 24 + directory.size() + 1;
    std::size_t total = base + data.size() + 1;
    if (total > kMaxIso2709Length)
        return Fail(fmt::format("record is too long for ISO 2709 ({} bytes; the limit is 99999)", total));
    std::string leader = r.leader;
    std::memcpy(leader.data(), fmt::format("{:05}", total).data(), 5);
    leader[9] = 'a';
    leader[10] = '2';
    leader[11] = '2';
    std::memcpy(leader.data() + 12, fmt::format("{:05}", base).data(), 5);
    std::memcpy(leader.data() + 20, "4500", 4);
    std::string out;
    out.reserve(total);
    out += leader;
    out += directory;
    out += kFieldEnd;
    out += data;
    out += kRecordEnd;
    return out;
}

bool Iso2709Splitter::Fill() {
    if (pos_ > 0) {
        std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
        consumed_ += pos_;
        end_ -= pos_;
        pos_ = 0;
    }
    if (end_ == buf_.size()) return false;
    in_.read(buf_.data() + end_, static_cast<std::streamsize>(buf_.size() - end_));
    std::size_t got = static_cast<std::size_t>(in_.gcount());
    end_ += got;
    return got > 0;
}

bool Iso2709Splitter::Next(RawRecord& out) {
    out = RawRecord{};
    for (;;) {
        // Skip line breaks and NULs between records.
        while (pos_ < end_ && (buf_[pos_] == '\n' || buf_[pos_] == '\r' || buf_[pos_] == '\0')) ++pos_;
        if (pos_ < end_) break;
        if (!Fill()) return false;
    }
    out.offset = consumed_ + pos_;
    std::size_t scanned = pos_;
    for (;;) {
        const char* hit = static_cast<const char*>(std::memchr(buf_.data() + scanned, kRecordEnd, end_ - scanned));
        if (hit) {
            std::size_t stop = static_cast<std::size_t>(hit - buf_.data()) + 1;
            out.bytes.append(buf_.data() + pos_, stop - pos_);
            pos_ = stop;
            return true;
        }
        // No terminator yet: keep what we have (bounded) and read more.
        std::size_t have = out.bytes.size() + (end_ - pos_);
        if (have > kMaxIso2709Length) {
            out.bytes.clear();
            out.error = fmt::format("no record terminator within {} bytes; skipped to the next one", kMaxIso2709Length);
            // Discard up to the next terminator without holding it in memory.
            pos_ = end_;
            for (;;) {
                if (!Fill()) return true;
                const char* t = static_cast<const char*>(std::memchr(buf_.data() + pos_, kRecordEnd, end_ - pos_));
                if (t) {
                    pos_ = static_cast<std::size_t>(t - buf_.data()) + 1;
                    return true;
                }
                pos_ = end_;
            }
        }
        out.bytes.append(buf_.data() + pos_, end_ - pos_);
        pos_ = end_;
        scanned = pos_;
        if (!Fill()) {
            // End of stream inside a record.
            out.error = "stream ends inside a record (no record terminator)";
            return true;
        }
        scanned = pos_;
    }
}

}  // namespace iblsync::protocols::marc
