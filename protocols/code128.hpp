#pragma once
// Code 128 barcodes (ISO/IEC 15417), code set B, for the IBL transport
// slips: the envelope an item travels in carries an outbound and a return
// barcode that the POI's sorting scans. Pure: text in, bar widths or an
// SVG drawing out.

#include <string>
#include <string_view>
#include <vector>

namespace iblsync::protocols::code128 {

inline constexpr std::size_t kMaxLength = 48;

// The widths, in modules, of the bars and spaces from the start symbol
// through the stop symbol, a bar first; start B, the text, the check
// symbol, stop. Empty if `text` is empty, longer than kMaxLength, or has a
// character outside printable ASCII (32..126).
std::vector<int> Encode(std::string_view text);

// The barcode as an inline SVG element: bars `module` px wide and `height`
// px high, quiet zones of 10 modules either side, the text in a line below.
// Empty if Encode() refuses the text.
std::string Svg(std::string_view text, double module = 2.0, int height = 60);

}  // namespace iblsync::protocols::code128
