// gen-records: makes any number of realistic MARC 21 records by varying real
// ones, for benchmarks and scale tests. Reproducible: the same seed and
// sources give the same bytes.
//
//   gen-records --count 1000000 --seed 7 --format iso2709 --out big.mrc SOURCE...
//
// Each record is a real source record with a new 001, a new valid ISBN-13
// (one in ten reuses an earlier one, so deduplication has work to do), a
// title of 2-6 words drawn from all source titles (so that, as in a real
// catalogue, nearly every record is its own edition), the author and subjects
// of other random source records, a random year, and optionally 852 holdings
// for some of the given libraries.

#include <cctype>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "protocols/iso2709.hpp"
#include "protocols/marcxml.hpp"

namespace marc = iblsync::protocols::marc;

namespace {

std::vector<marc::Record> LoadSources(const std::vector<std::string>& files) {
    std::vector<marc::Record> out;
    for (const auto& path : files) {
        std::ifstream in(path, std::ios::binary);
        marc::RawRecord raw;
        bool xml = path.size() > 4 && path.substr(path.size() - 4) == ".xml";
        marc::MarcXmlSplitter xs(in);
        marc::Iso2709Splitter is(in);
        while (xml ? xs.Next(raw) : is.Next(raw)) {
            if (!raw.error.empty()) continue;
            auto r = xml ? marc::ParseMarcXmlRecord(raw.bytes) : marc::ParseIso2709(raw.bytes);
            if (r && r->First("245") && r->leader[6] != ' ') out.push_back(std::move(r).value());
        }
    }
    return out;
}

std::string Isbn13(std::mt19937_64& rng) {
    std::string d = "978";
    for (int i = 0; i < 9; ++i) d += static_cast<char>('0' + rng() % 10);
    int sum = 0;
    for (int i = 0; i < 12; ++i) sum += (i % 2 ? 3 : 1) * (d[i] - '0');
    return d + static_cast<char>('0' + (10 - sum % 10) % 10);
}

void Replace(marc::Record& r, const std::string& tag, std::vector<marc::Field> with) {
    std::erase_if(r.fields, [&](const marc::Field& f) { return f.tag == tag; });
    for (auto& f : with) {
        auto pos = std::find_if(r.fields.begin(), r.fields.end(), [&](const marc::Field& g) { return g.tag > f.tag; });
        r.fields.insert(pos, std::move(f));
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"gen-records: realistic MARC 21 test records made by varying real ones"};
    long long count = 1000;
    std::uint64_t seed = 1;
    std::string format = "marcxml", out_path = "-";
    std::vector<std::string> libraries, sources;
    int max_copies = 3;
    app.add_option("--count", count, "records to write")->capture_default_str()->check(CLI::Range(1LL, 100000000LL));
    app.add_option("--seed", seed, "random seed")->capture_default_str();
    app.add_option("--format", format, "marcxml or iso2709")->check(CLI::IsMember({"marcxml", "iso2709"}))->capture_default_str();
    app.add_option("--out", out_path, "output file, - for stdout")->capture_default_str();
    app.add_option("--libraries", libraries, "ISILs to give 852 holdings (1..--copies copies per record)")->delimiter(',');
    app.add_option("--copies", max_copies, "most holdings per record")->capture_default_str()->check(CLI::Range(1, 50));
    app.add_option("sources", sources, "real MARCXML or ISO 2709 files to vary")->required()->check(CLI::ExistingFile);
    CLI11_PARSE(app, argc, argv);

    auto base = LoadSources(sources);
    if (base.empty()) {
        std::cerr << "gen-records: no usable records in the sources\n";
        return 1;
    }
    std::ofstream file;
    if (out_path != "-") file.open(out_path, std::ios::binary | std::ios::trunc);
    std::ostream& out = out_path == "-" ? std::cout : file;
    if (!out) {
        std::cerr << "gen-records: cannot write " << out_path << "\n";
        return 1;
    }
    std::vector<std::string> words;
    for (const auto& r : base)
        if (const auto* t = r.First("245")) {
            std::string a = t->Sub('a');
            std::size_t start = 0;
            for (std::size_t i = 0; i <= a.size(); ++i)
                if (i == a.size() || a[i] == ' ') {
                    if (i - start >= 3 && std::isalpha(static_cast<unsigned char>(a[start])))
                        words.push_back(a.substr(start, i - start));
                    start = i + 1;
                }
        }
    if (words.empty()) words.push_back("Titel");
    std::mt19937_64 rng(seed);
    auto pick = [&]() -> const marc::Record& { return base[rng() % base.size()]; };
    std::vector<std::string> recent_isbns;
    const bool xml = format == "marcxml";
    if (xml) out << marc::MarcXmlCollectionStart();
    for (long long i = 0; i < count; ++i) {
        marc::Record r = pick();
        Replace(r, "001", {marc::Field{"001", ' ', ' ', fmt::format("gen{}-{}", seed, i), {}}});
        std::erase_if(r.fields, [](const marc::Field& f) { return f.tag == "003" || f.tag == "035"; });
        std::string isbn = (!recent_isbns.empty() && rng() % 10 == 0) ? recent_isbns[rng() % recent_isbns.size()]
                                                                       : Isbn13(rng);
        if (recent_isbns.size() < 1000) recent_isbns.push_back(isbn);
        else recent_isbns[rng() % recent_isbns.size()] = isbn;
        Replace(r, "020", {marc::Field{"020", ' ', ' ', "", {{'a', isbn}}}});
        std::string title;
        for (int w = 0, n = 2 + static_cast<int>(rng() % 5); w < n; ++w)
            title += (w ? " " : "") + words[rng() % words.size()];
        Replace(r, "245", {marc::Field{"245", '1', '0', "", {{'a', title}}}});
        const marc::Record& author_src = pick();
        std::vector<marc::Field> authors;
        if (const auto* a = author_src.First("100")) authors.push_back(*a);
        Replace(r, "100", authors);
        std::vector<marc::Field> subjects;
        for (const auto* s : pick().All("650")) subjects.push_back(*s);
        Replace(r, "650", subjects);
        if (auto* f008 = const_cast<marc::Field*>(r.First("008")); f008 && f008->data.size() >= 11)
            f008->data.replace(7, 4, std::to_string(1950 + rng() % 76));
        std::vector<marc::Field> holdings;
        if (!libraries.empty()) {
            int copies = 1 + static_cast<int>(rng() % static_cast<unsigned>(max_copies));
            for (int c = 0; c < copies; ++c) {
                const std::string& lib = libraries[rng() % libraries.size()];
                holdings.push_back(marc::Field{"852", ' ', ' ', "",
                                               {{'a', lib}, {'b', fmt::format("Vestiging {}", 1 + rng() % 5)},
                                                {'h', fmt::format("R {:03}", rng() % 1000)},
                                                {'p', fmt::format("{}{:010}", lib.substr(3, 4), rng() % 10000000000ULL)}}});
            }
        }
        Replace(r, "852", holdings);
        r.leader.replace(0, 5, "00000");
        auto bytes = xml ? marc::WriteMarcXmlRecord(r, false) : marc::WriteIso2709(r);
        if (!bytes) {
            --i;  // a combination too long for ISO 2709: draw again
            continue;
        }
        out << *bytes;
        if (xml) out << '\n';
    }
    if (xml) out << marc::MarcXmlCollectionEnd();
    out.flush();
    return out ? 0 : 1;
}
