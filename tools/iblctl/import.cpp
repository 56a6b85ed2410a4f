#include "tools/iblctl/import.hpp"

#include <unistd.h>
#include <zlib.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <streambuf>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "protocols/catalogue_record.hpp"
#include "protocols/holdings.hpp"
#include "protocols/iso2709.hpp"
#include "protocols/isil.hpp"
#include "protocols/json_record.hpp"
#include "protocols/marcxml.hpp"
#include "protocols/province.hpp"
#include "storage/catalogue_import.hpp"
#include "storage/errors.hpp"

namespace iblsync::iblctl {
namespace {

using Clock = std::chrono::steady_clock;

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

std::string ConninfoFromConfig(const std::string& path, std::string& error) {
    try {
        auto tbl = toml::parse_file(path);
        if (auto v = tbl["database"]["conninfo"].value<std::string>()) return *v;
        error = fmt::format("{}: database.conninfo is missing", path);
    } catch (const toml::parse_error& e) {
        error = fmt::format("{}:{}: {}", path, e.source().begin.line, e.description());
    }
    return {};
}

std::string Thousands(long long n) {
    std::string s = std::to_string(n), out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i && (s.size() - i) % 3 == 0) out += ',';
        out += s[i];
    }
    return out;
}

class Progress {
public:
    Progress(long long total_bytes) : total_(total_bytes), tty_(isatty(2)), start_(Clock::now()), last_(start_) {}
    void Update(long long records, long long bytes_done, bool force = false) {
        auto now = Clock::now();
        auto since = now - last_;
        if (!force && since < (tty_ ? std::chrono::milliseconds(200) : std::chrono::seconds(10))) return;
        last_ = now;
        double secs = std::chrono::duration<double>(now - start_).count();
        double rate = secs > 0 ? records / secs : 0;
        std::string eta = "-";
        if (bytes_done > 0 && total_ > 0 && secs > 1) {
            double left = secs * (static_cast<double>(total_) / static_cast<double>(bytes_done) - 1);
            eta = fmt::format("{}:{:02}", static_cast<int>(left) / 60, static_cast<int>(left) % 60);
        }
        int pct = total_ > 0 ? static_cast<int>(100.0 * static_cast<double>(bytes_done) / static_cast<double>(total_)) : 0;
        std::string line = fmt::format("import: {:>3}%  {} records  {} records/s  ETA {}", std::min(pct, 100),
                                       Thousands(records), Thousands(static_cast<long long>(rate)), eta);
        if (tty_) std::cerr << "\r" << line << "\033[K" << std::flush;
        else std::cerr << line << "\n";
    }
    void Done() {
        if (tty_) std::cerr << "\n";
    }
    double Seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

private:
    long long total_;
    bool tty_;
    Clock::time_point start_, last_;
};

}  // namespace

std::optional<std::size_t> ParseSize(const std::string& text) {
    std::size_t i = 0;
    unsigned long long number = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        if (number > (1ull << 40)) return std::nullopt;
        number = number * 10 + static_cast<unsigned>(text[i++] - '0');
    }
    if (i == 0) return std::nullopt;
    while (i < text.size() && text[i] == ' ') ++i;
    std::string unit;
    for (; i < text.size(); ++i) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
    int shift;
    if (unit == "k" || unit == "kb" || unit == "kib") shift = 10;
    else if (unit == "m" || unit == "mb" || unit == "mib") shift = 20;
    else if (unit == "g" || unit == "gb" || unit == "gib") shift = 30;
    else if (unit == "t" || unit == "tb" || unit == "tib") shift = 40;
    else return std::nullopt;
    if (number > ((1ull << 40) >> shift)) return std::nullopt;
    const unsigned long long bytes = number << shift;
    if (bytes < (64ull << 10)) return std::nullopt;
    return static_cast<std::size_t>(bytes);
}

int RunImport(const ImportArgs& a) {
    auto isil = protocols::NormalizeIsil(a.library);
    if (!isil) {
        std::cerr << "iblctl: --library: " << isil.error() << "\n";
        return 2;
    }
    std::string province;
    if (!a.province.empty()) {
        auto p = protocols::NormalizeProvince(a.province);
        if (!p) {
            std::cerr << "iblctl: --province: " << p.error() << "\n";
            return 2;
        }
        province = p.value();
    }
    std::string conninfo = a.conninfo;
    if (conninfo.empty()) {
        std::string error;
        conninfo = ConninfoFromConfig(a.config, error);
        if (conninfo.empty()) {
            std::cerr << "iblctl: cannot find the database: " << error << "; pass --config FILE or --db CONNINFO\n";
            return 2;
        }
    }
    long long total_bytes = 0;
    for (const auto& f : a.files) {
        std::ifstream probe(f, std::ios::binary | std::ios::ate);
        if (!probe) {
            std::cerr << "iblctl: cannot read " << f << ": " << std::strerror(errno) << "\n";
            return 6;
        }
        total_bytes += static_cast<long long>(probe.tellg());
    }
    std::string rejects_path = a.rejects.empty() ? fmt::format("iblsync-import-{}.rejects", isil.value()) : a.rejects;
    std::ofstream rejects(rejects_path, std::ios::trunc);
    if (!rejects) {
        std::cerr << "iblctl: cannot write the reject file " << rejects_path << "\n";
        return 6;
    }
    rejects << "# file\tbyte offset\trecord number\treason\n";

    if (!a.holdings.empty()) {
        if (auto m = protocols::ParseHoldingsMapping(a.holdings); !m) {
            std::cerr << "iblctl: --holdings: " << m.error() << "\n";
            return 2;
        }
    }
    protocols::HoldingsMapping mapping;
    long long parsed = 0, rejected = 0, warnings = 0, bytes_before = 0;
    storage::ImportSummary summary;
    Progress progress(total_bytes);
    try {
        auto library = storage::FindLibrary(conninfo, isil.value());
        if (!library && a.name.empty()) {
            std::cerr << "iblctl: library " << isil.value()
                      << " is not registered; pass --name NAME (and --province NL-XX) to register it\n";
            return 1;
        }
        if (!a.name.empty() || !a.holdings.empty()) {
            storage::UpsertLibrary(conninfo, {isil.value(), a.name, province, a.holdings});
            library = storage::FindLibrary(conninfo, isil.value());
        }
        auto parsed_mapping = protocols::ParseHoldingsMapping(library->holdings_mapping);
        if (!parsed_mapping) {
            std::cerr << "iblctl: the holdings mapping stored for " << isil.value() << " is invalid ("
                      << parsed_mapping.error() << "); set it with --holdings\n";
            return 1;
        }
        mapping = parsed_mapping.value();
        storage::ImportOptions options;
        options.library = isil.value();
        options.full = a.full;
        options.index_memory = a.index_memory;
        storage::CatalogueImport load(conninfo, options);
        for (const auto& path : a.files) {
            GzStreamBuf buf(path);
            if (!buf.ok()) {
                std::cerr << "iblctl: cannot open " << path << "\n";
                return 6;
            }
            std::istream in(&buf);
            // MARCXML starts with '<' (after a BOM or white space), NDJSON
            // with '{', ISO 2709 with digits.
            int c;
            while ((c = in.peek()) != EOF && (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == 0xEF ||
                                              c == 0xBB || c == 0xBF))
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
                    ++rejected;
                    rejects << path << '\t' << raw.offset << '\t' << index << '\t' << why << '\n';
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
                    auto record =
                        xml ? protocols::marc::ParseMarcXmlRecord(raw.bytes) : protocols::marc::ParseIso2709(raw.bytes);
                    if (!record) {
                        reject(record.error());
                        continue;
                    }
                    described = protocols::DescribeRecord(record.value(), mapping, isil.value());
                }
                if (!described) {
                    reject(described.error());
                    continue;
                }
                for (const auto& w : described->warnings) {
                    ++warnings;
                    rejects << path << '\t' << raw.offset << '\t' << index << "\twarning (record kept): " << w << '\n';
                }
                load.Add(std::move(described).value());
                ++parsed;
                progress.Update(parsed, bytes_before + buf.FileOffset());
            }
            if (auto err = buf.Error(); !err.empty()) {
                std::cerr << "\niblctl: " << path << ": " << err << "; no records were loaded\n";
                return 6;
            }
            bytes_before += buf.FileOffset();
        }
        progress.Update(parsed, total_bytes, true);
        progress.Done();
        std::cerr << "import: merging into the catalogue...\n";
        summary = load.Finish();
    } catch (const storage::DatabaseError& e) {
        progress.Done();
        std::cerr << "iblctl: import failed, nothing was changed: " << e.what() << "\n";
        return 1;
    }
    double secs = progress.Seconds();
    if (a.json) {
        std::cout << fmt::format(
            R"({{"library":"{}","records":{},"rejected":{},"warnings":{},"new":{},"changed":{},"unchanged":{},"deleted":{},"duplicates":{},"copies_new":{},"copies_changed":{},"copies_deleted":{},"works_created":{},"works_merged":{},"records_moved":{},"first_seq":{},"last_seq":{},"bounded_from":{},"seconds":{:.3f},"rejects_file":"{}"}})"
            "\n",
            isil.value(), parsed, rejected, warnings, summary.inserted, summary.updated, summary.unchanged,
            summary.deleted, summary.duplicates, summary.holdings_inserted, summary.holdings_updated,
            summary.holdings_deleted, summary.works_created, summary.works_merged, summary.records_moved,
            summary.first_seq, summary.last_seq, summary.bounded_from, secs, rejects_path);
    } else {
        std::cout << fmt::format(
            "library      {}\nrecords      {} read, {} rejected, {} with warnings\nnew          {}\nchanged      {}\n"
            "unchanged    {}\ndeleted      {}\nduplicates   {} (the last occurrence counts)\n"
            "copies       {} new, {} changed, {} deleted (holdings: {})\n"
            "works        {} new, {} merged, {} records moved\ntime         {:.1f} s ({} records/s)\n",
            isil.value(), Thousands(parsed), Thousands(rejected), Thousands(warnings), Thousands(summary.inserted),
            Thousands(summary.updated), Thousands(summary.unchanged), Thousands(summary.deleted),
            Thousands(summary.duplicates), Thousands(summary.holdings_inserted), Thousands(summary.holdings_updated),
            Thousands(summary.holdings_deleted), mapping.Enabled() ? mapping.Spec() : std::string("not in MARC records"), Thousands(summary.works_created), Thousands(summary.works_merged),
            Thousands(summary.records_moved), secs, Thousands(secs > 0 ? static_cast<long long>(parsed / secs) : 0));
        if (summary.bounded_from >= 0)
            std::cout << fmt::format(
                "memory       --index-memory reached at record {}: the rest was merged by the database (slower; "
                "raise it if the machine has the memory)\n",
                Thousands(summary.bounded_from + 1));
        if (rejected || warnings) std::cout << "rejects      " << rejects_path << "\n";
    }
    return 0;
}

}  // namespace iblsync::iblctl
