#include "tools/iblctl/import.hpp"

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "protocols/holdings.hpp"
#include "protocols/isil.hpp"
#include "protocols/province.hpp"
#include "storage/catalogue_import.hpp"
#include "storage/errors.hpp"
#include "storage/record_files.hpp"

namespace iblsync::iblctl {
namespace {

using Clock = std::chrono::steady_clock;


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
    long long parsed = 0, rejected = 0, warnings = 0;
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
        storage::RecordFileCounts counts;
        storage::RecordFileSink sink;
        sink.add = [&](protocols::CatalogueRecord&& r) { load.Add(std::move(r)); };
        std::string current;
        sink.note = [&](const storage::RecordNote& n) {
            rejects << current << '\t' << n.offset << '\t' << n.index << '\t'
                    << (n.warning ? "warning (record kept): " : "") << n.text << '\n';
        };
        sink.progress = [&](long long records, long long bytes) { progress.Update(records, bytes); };
        for (const auto& path : a.files) {
            current = path;
            if (auto err = storage::ReadRecordFile(path, mapping, isil.value(), sink, counts); !err.empty()) {
                progress.Done();
                std::cerr << "\niblctl: " << err << "; no records were loaded\n";
                return 6;
            }
        }
        parsed = counts.records;
        rejected = counts.rejected;
        warnings = counts.warnings;
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
