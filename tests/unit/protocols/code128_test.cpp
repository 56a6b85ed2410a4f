// Code 128 for the IBL transport slips. The symbol table is checked for
// shape, and the drawings are read back by a real barcode reader: the SVG
// is rasterised with rsvg-convert (librsvg) and decoded with zbarimg
// (ZBar), both Debian packages that tools/install-deps installs.

#include "protocols/code128.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace iblsync::protocols::code128 {
namespace {

// What zbarimg reads from the barcode drawn for `text` ("" if nothing).
std::string ReadBack(const std::string& text) {
    char dir[] = "/tmp/iblsync-code128-XXXXXX";
    if (!mkdtemp(dir)) return "mkdtemp failed";
    const std::string svg = std::string(dir) + "/b.svg", png = std::string(dir) + "/b.png";
    std::ofstream(svg) << Svg(text, 3.0, 90);
    std::string out;
    const std::string cmd = fmt::format(
        "rsvg-convert -b white -o '{}' '{}' && zbarimg --quiet --raw -Sdisable -Scode128.enable '{}' 2>/dev/null", png, svg,
        png);
    if (FILE* p = popen(cmd.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, p)) out += buf;
        pclose(p);
    }
    std::filesystem::remove_all(dir);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

TEST(Code128, EverySymbolIsElevenModulesAndTheyDiffer) {
    std::set<std::vector<int>> seen;
    // Each character of code set B on its own: start, char, check, stop.
    for (int c = 32; c <= 126; ++c) {
        const auto w = Encode(std::string(1, static_cast<char>(c)));
        ASSERT_EQ(w.size(), 6u * 3 + 7) << c;
        for (int s = 0; s < 3; ++s) {
            int modules = 0;
            for (int i = 0; i < 6; ++i) modules += w[s * 6 + i];
            EXPECT_EQ(modules, 11) << "symbol " << s << " of '" << static_cast<char>(c) << "'";
        }
        seen.insert(std::vector<int>(w.begin() + 6, w.begin() + 12));
        int stop = 0;
        for (std::size_t i = 18; i < w.size(); ++i) stop += w[i];
        EXPECT_EQ(stop, 13);
    }
    EXPECT_EQ(seen.size(), 95u) << "each character has its own pattern";
}

TEST(Code128, TheCheckSymbolWeighsEachPosition) {
    // Start B (104) + 'A' (33) x 1 + 'B' (34) x 2 = 205; 205 mod 103 = 102.
    const auto ab = Encode("AB");
    const std::vector<int> check(ab.begin() + 18, ab.begin() + 24);
    EXPECT_EQ(check, (std::vector<int>{4, 1, 1, 1, 3, 1})) << "symbol 102";
    // Swapping the characters changes the check: 104 + 34 + 66 = 204 -> 101.
    const auto ba = Encode("BA");
    EXPECT_EQ(std::vector<int>(ba.begin() + 18, ba.begin() + 24), (std::vector<int>{3, 1, 1, 1, 4, 1}));
}

TEST(Code128, RefusesWhatCodeSetBCannotCarry) {
    EXPECT_TRUE(Encode("").empty());
    EXPECT_TRUE(Encode(std::string(kMaxLength + 1, 'A')).empty());
    EXPECT_FALSE(Encode(std::string(kMaxLength, 'A')).empty());
    EXPECT_TRUE(Encode("tab\there").empty());
    EXPECT_TRUE(Encode("caf\xc3\xa9").empty());
    EXPECT_TRUE(Svg("\x7f").empty());
    // Markup in the text is escaped in the drawing.
    const auto svg = Svg("<a&\"b>");
    EXPECT_NE(svg.find("&lt;a&amp;&quot;b&gt;</text>"), std::string::npos) << svg;
    EXPECT_EQ(svg.find("<a&"), std::string::npos);
}

TEST(Code128, ABarcodeReaderReadsWhatWasDrawn) {
    ASSERT_EQ(std::system("command -v zbarimg >/dev/null && command -v rsvg-convert >/dev/null"), 0)
        << "zbarimg and rsvg-convert are needed; tools/install-deps installs zbar-tools and librsvg2-bin";
    for (const std::string text : {"NL-DEMO-EDE/IBL-2/H", "NL-0000000311/IBL-12345/T", "DLF200001",
                                   "Mixed case: {~} `pipe|` 0123456789", " !\"#$%&'()*+,-./:;<=>?@[\\]^_"})
        EXPECT_EQ(ReadBack(text), text);
}

}  // namespace
}  // namespace iblsync::protocols::code128
