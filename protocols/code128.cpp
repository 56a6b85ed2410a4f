#include "protocols/code128.hpp"

#include <fmt/format.h>

#include "protocols/marcxml.hpp"  // XmlEscape

namespace iblsync::protocols::code128 {

namespace {

// Bar, space, bar, space, bar, space widths of the symbols 0..105, and the
// stop symbol (106), which has a final bar of 2.
constexpr const char* kSymbols[107] = {
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212", "221213",
    "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221", "223211", "221132",
    "221231", "213212", "223112", "312131", "311222", "321122", "321221", "312212", "322112", "322211",
    "212123", "212321", "232121", "111323", "131123", "131321", "112313", "132113", "132311", "211313",
    "231113", "231311", "112133", "112331", "132131", "113123", "113321", "133121", "313121", "211331",
    "231131", "213113", "213311", "213131", "311123", "311321", "331121", "312113", "312311", "332111",
    "314111", "221411", "431111", "111224", "111422", "121124", "121421", "141122", "141221", "112214",
    "112412", "122114", "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111",
    "111242", "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
    "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311", "113141",
    "114131", "311141", "411131", "211412", "211214", "211232", "2331112"};
constexpr int kStartB = 104;
constexpr int kStop = 106;
constexpr int kQuiet = 10;

void Append(std::vector<int>& out, int symbol) {
    for (const char* p = kSymbols[symbol]; *p; ++p) out.push_back(*p - '0');
}

}  // namespace

std::vector<int> Encode(std::string_view text) {
    if (text.empty() || text.size() > kMaxLength) return {};
    for (unsigned char c : text)
        if (c < 32 || c > 126) return {};
    std::vector<int> out;
    Append(out, kStartB);
    int sum = kStartB;
    int position = 1;
    for (unsigned char c : text) {
        const int value = c - 32;
        Append(out, value);
        sum += value * position++;
    }
    Append(out, sum % 103);
    Append(out, kStop);
    return out;
}

std::string Svg(std::string_view text, double module, int height) {
    const auto widths = Encode(text);
    if (widths.empty()) return {};
    int modules = 0;
    for (int w : widths) modules += w;
    const double width = (modules + 2 * kQuiet) * module;
    const int text_height = 16;
    std::string out = fmt::format(
        R"(<svg xmlns="http://www.w3.org/2000/svg" width="{0:.0f}" height="{1}" viewBox="0 0 {0:.2f} {1}" )"
        R"(role="img" aria-label="{2}"><rect width="100%" height="100%" fill="#fff"/>)",
        width, height + text_height + 4, marc::XmlEscape(text));
    double x = kQuiet * module;
    bool bar = true;
    for (int w : widths) {
        if (bar) out += fmt::format(R"(<rect x="{:.2f}" y="0" width="{:.2f}" height="{}"/>)", x, w * module, height);
        x += w * module;
        bar = !bar;
    }
    out += fmt::format(R"(<text x="{:.2f}" y="{}" font-family="monospace" font-size="14" text-anchor="middle">{}</text>)",
                       width / 2, height + text_height, marc::XmlEscape(text));
    out += "</svg>";
    return out;
}

}  // namespace iblsync::protocols::code128
