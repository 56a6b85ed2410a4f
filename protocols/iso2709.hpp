#pragma once
// MARC 21 records in ISO 2709 ("binary MARC", .mrc): a 24-byte leader, a
// directory of 12-byte entries (tag, length, start), then the fields, each
// ending in 0x1E, subfields introduced by 0x1F, the record ending in 0x1D.
// Character coding from leader/09: 'a' = UTF-8, ' ' = MARC-8.

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/marc8.hpp"
#include "protocols/marc_record.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols::marc {

inline constexpr std::size_t kMaxIso2709Length = 99999;  // five digits in leader/00-04

// Parses one record (the bytes up to and including its 0x1D terminator).
// MARC-8 text is converted to UTF-8 and leader/09 set to 'a'. Every failure
// names what is wrong and where: "directory length 25 is not a multiple of 12".
Result<Record> ParseIso2709(std::string_view bytes, Composition composition = Composition::kComposed);

// Serialises as UTF-8 ISO 2709 (leader/09 = 'a'; lengths and base address computed).
Result<std::string> WriteIso2709(const Record& record);

// One record's bytes as cut from a stream, before parsing.
struct RawRecord {
    std::string bytes;
    std::uint64_t offset = 0;  // byte offset of the record in the stream
    std::string error;         // set when the bytes could not be cut out cleanly
};

// Cuts a stream of ISO 2709 records into single records at their 0x1D
// terminators, in bounded memory (one record plus a 64 KiB buffer). A record
// whose leader length is wrong is still cut at its terminator, so one damaged
// record does not take the following ones with it. Line breaks between
// records (some exports add them) are skipped.
class Iso2709Splitter {
public:
    explicit Iso2709Splitter(std::istream& in) : in_(in) {}
    // False at the end of the stream.
    bool Next(RawRecord& out);

private:
    bool Fill();
    std::istream& in_;
    std::vector<char> buf_ = std::vector<char>(64 * 1024);
    std::size_t pos_ = 0, end_ = 0;
    std::uint64_t consumed_ = 0;  // stream offset of buf_[0]
};

}  // namespace iblsync::protocols::marc
