#include "storage/record_files.hpp"

#include <zlib.h>

#include <istream>
#include <streambuf>

#include <fmt/format.h>

#include "protocols/iso2709.hpp"
#include "protocols/json_record.hpp"
#include "protocols/marcxml.hpp"

namespace iblsync::storage {
namespace {

// Reads a file through zlib, which passes uncompressed files through as they
// are: gzip is transparent.
class GzStreamBuf : public std::streambuf {
public:
    explicit GzStreamBuf(const std::string& path) : file_(gzopen(path.c_str(), "rb")) {
        if (file_) gzbuffer(file_, 1 << 17);
    }
    ~GzStreamBuf() override {
        if (file_) gzclose(file_);
    }
    GzStreamBuf(const GzStreamBuf&) = delete;
    GzStreamBuf& operator=(const GzStreamBuf&) = delete;
    bool ok() const { return file_ != nullptr; }
    // Bytes of the file (compressed) consumed so far, for progress.
    long long FileOffset() const { return file_ ? static_cast<long long>(gzoffset(file_)) : 0; }
    std::string Error() {
        int code = 0;
        const char* msg = file_ ? gzerror(file_, &code) : "cannot open";
        return code == Z_OK || code == Z_STREAM_END ? std::string() : std::string(msg);
    }

protected:
    int_type underflow() override {
        if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
        int n = gzread(file_, buf_, sizeof buf_);
        if (n <= 0) return traits_type::eof();
        setg(buf_, buf_, buf_ + n);
        return traits_type::to_int_type(*gptr());
    }

private:
    gzFile file_;
    char buf_[1 << 16];
};

// Splits NDJSON into lines, in bounded memory: a line longer than the
// record limit is skipped to its end and reported, not buffered.
class NdjsonSplitter {
public:
    NdjsonSplitter(std::istream& in, std::size_t max_bytes) : in_(in), max_(max_bytes) {}
    // Returns false at the end. Blank lines are skipped.
    bool Next(protocols::marc::RawRecord& out) {
        for (;;) {
            out.bytes.clear();
            out.error.clear();
            out.offset = offset_;
            if (in_.peek() == EOF) return false;
            bool too_long = false;
            int c;
            while ((c = in_.get()) != EOF) {
                ++offset_;
                if (c == '\n') break;
                if (out.bytes.size() < max_) out.bytes.push_back(static_cast<char>(c));
                else too_long = true;
            }
            if (!out.bytes.empty() && out.bytes.back() == '\r') out.bytes.pop_back();
            if (too_long) {
                out.bytes.clear();
                out.error = fmt::format("line longer than {} bytes; skipped", max_);
                return true;
            }
            if (out.bytes.find_first_not_of(" \t") != std::string::npos) return true;
        }
    }

private:
    std::istream& in_;
    std::size_t max_;
    long long offset_ = 0;
};

}  // namespace

std::string ReadRecordFile(const std::string& path, const protocols::HoldingsMapping& mapping,
                           const std::string& library, const RecordFileSink& sink, RecordFileCounts& counts) {
    GzStreamBuf buf(path);
    if (!buf.ok()) return fmt::format("cannot open {}", path);
    std::istream in(&buf);
    // MARCXML starts with '<' (after a BOM or white space), NDJSON with '{',
    // ISO 2709 with digits.
    int c;
    while ((c = in.peek()) != EOF &&
           (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == 0xEF || c == 0xBB || c == 0xBF))
        in.get();
    const bool xml = in.peek() == '<';
    const bool ndjson = in.peek() == '{';
    protocols::marc::RawRecord raw;
    protocols::marc::MarcXmlSplitter xml_split(in);
    protocols::marc::Iso2709Splitter iso_split(in);
    const protocols::JsonRecordLimits json_limits;
    NdjsonSplitter json_split(in, json_limits.max_bytes);
    long long index = 0;
    while (xml ? xml_split.Next(raw) : ndjson ? json_split.Next(raw) : iso_split.Next(raw)) {
        ++index;
        auto reject = [&](const std::string& why) {
            ++counts.rejected;
            if (sink.note) sink.note(RecordNote{static_cast<long long>(raw.offset), index, why, false});
        };
        if (!raw.error.empty()) {
            reject(raw.error);
            continue;
        }
        Result<protocols::CatalogueRecord> described = Fail("");
        if (ndjson) {
            auto record = protocols::ParseJsonRecord(raw.bytes, json_limits);
            if (!record) {
                reject(record.error_pointer().empty() ? record.error()
                                                      : record.error_pointer() + ": " + record.error());
                continue;
            }
            described = protocols::DescribeRecord(std::move(record).value());
        } else {
            auto record = xml ? protocols::marc::ParseMarcXmlRecord(raw.bytes) : protocols::marc::ParseIso2709(raw.bytes);
            if (!record) {
                reject(record.error());
                continue;
            }
            described = protocols::DescribeRecord(record.value(), mapping, library);
        }
        if (!described) {
            reject(described.error());
            continue;
        }
        for (const auto& w : described->warnings) {
            ++counts.warnings;
            if (sink.note) sink.note(RecordNote{static_cast<long long>(raw.offset), index, w, true});
        }
        sink.add(std::move(described).value());
        ++counts.records;
        if (sink.progress) sink.progress(counts.records, counts.file_bytes + buf.FileOffset());
    }
    if (auto err = buf.Error(); !err.empty()) return fmt::format("{}: {}", path, err);
    counts.file_bytes += buf.FileOffset();
    return {};
}

}  // namespace iblsync::storage
