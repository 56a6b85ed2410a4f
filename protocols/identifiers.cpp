#include "protocols/identifiers.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace iblsync::protocols {
namespace {

// The leading run of digits (and X), skipping hyphens and spaces between them.
std::string LeadingNumber(std::string_view text, std::size_t max_digits) {
    std::string digits;
    std::size_t i = 0;
    while (i < text.size() && text[i] == ' ') ++i;
    for (; i < text.size() && digits.size() < max_digits; ++i) {
        char c = text[i];
        if (c >= '0' && c <= '9') digits += c;
        else if ((c == 'X' || c == 'x')) digits += 'X';
        else if (c == '-' || c == ' ') {
            // A space ends the number unless more digits follow directly ("90 274 3964 0").
            if (c == ' ' && (i + 1 >= text.size() || !(std::isdigit(static_cast<unsigned char>(text[i + 1])) ||
                                                          text[i + 1] == 'X' || text[i + 1] == 'x')))
                break;
        } else break;
    }
    return digits;
}

char Isbn10Check(std::string_view nine) {
    int sum = 0;
    for (int i = 0; i < 9; ++i) sum += (10 - i) * (nine[i] - '0');
    int check = (11 - sum % 11) % 11;
    return check == 10 ? 'X' : static_cast<char>('0' + check);
}

char Ean13Check(std::string_view twelve) {
    int sum = 0;
    for (int i = 0; i < 12; ++i) sum += (i % 2 ? 3 : 1) * (twelve[i] - '0');
    return static_cast<char>('0' + (10 - sum % 10) % 10);
}

bool AllDigits(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void AddUnique(std::vector<std::string>& v, std::string s) {
    if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
}

}  // namespace

Result<std::string> NormalizeIsbn(std::string_view text) {
    std::string d = LeadingNumber(text, 13);
    if (d.size() == 10) {
        if (!AllDigits(std::string_view(d).substr(0, 9)))
            return Fail(fmt::format("ISBN-10 '{}' has an X before its check digit", d));
        if (Isbn10Check(std::string_view(d).substr(0, 9)) != d[9])
            return Fail(fmt::format("ISBN-10 '{}' has a wrong check digit (expected {})", d,
                                    Isbn10Check(std::string_view(d).substr(0, 9))));
        std::string twelve = "978" + d.substr(0, 9);
        return twelve + Ean13Check(twelve);
    }
    if (d.size() == 13) {
        if (!AllDigits(d)) return Fail(fmt::format("ISBN-13 '{}' contains a non-digit", d));
        if (d.rfind("978", 0) != 0 && d.rfind("979", 0) != 0)
            return Fail(fmt::format("'{}' is an EAN-13 but not an ISBN (prefix must be 978 or 979)", d));
        if (Ean13Check(std::string_view(d).substr(0, 12)) != d[12])
            return Fail(fmt::format("ISBN-13 '{}' has a wrong check digit (expected {})", d,
                                    Ean13Check(std::string_view(d).substr(0, 12))));
        return d;
    }
    return Fail(fmt::format("'{}' is not an ISBN: it has {} digits, not 10 or 13",
                            std::string(text.substr(0, 40)), d.size()));
}

Result<std::string> NormalizeIssn(std::string_view text) {
    std::string d = LeadingNumber(text, 8);
    if (d.size() != 8 || !AllDigits(std::string_view(d).substr(0, 7)))
        return Fail(fmt::format("'{}' is not an ISSN (8 characters NNNN-NNNC)", std::string(text.substr(0, 40))));
    int sum = 0;
    for (int i = 0; i < 7; ++i) sum += (8 - i) * (d[i] - '0');
    int check = (11 - sum % 11) % 11;
    char expected = check == 10 ? 'X' : static_cast<char>('0' + check);
    if (d[7] != expected)
        return Fail(fmt::format("ISSN '{}-{}' has a wrong check digit (expected {})", d.substr(0, 4), d.substr(4), expected));
    return d.substr(0, 4) + "-" + d.substr(4);
}

RecordIdentifiers ExtractIdentifiers(const marc::Record& record) {
    RecordIdentifiers ids;
    for (const auto* f : record.All("020"))
        for (const auto& v : f->Subs('a')) {
            auto isbn = NormalizeIsbn(v);
            if (isbn) AddUnique(ids.isbns, isbn.value());
            else ids.rejected.push_back("020 $a: " + isbn.error());
        }
    for (const auto* f : record.All("022"))
        for (const auto& v : f->Subs('a')) {
            auto issn = NormalizeIssn(v);
            if (issn) AddUnique(ids.issns, issn.value());
            else ids.rejected.push_back("022 $a: " + issn.error());
        }
    for (const auto* f : record.All("035"))
        for (const auto& v : f->Subs('a')) {
            auto close = v.find(')');
            if (v.empty() || v[0] != '(' || close == std::string::npos) continue;
            std::string source = v.substr(1, close - 1);
            std::string number = v.substr(close + 1);
            number.erase(0, number.find_first_not_of(" "));
            if (source == "OCoLC") {
                // "(OCoLC)ocm12345678", "(OCoLC)on1234567890", "(OCoLC)12345"
                std::size_t start = number.find_first_of("0123456789");
                if (start == std::string::npos) continue;
                std::string digits = LeadingNumber(std::string_view(number).substr(start), 15);
                digits.erase(0, std::min(digits.find_first_not_of('0'), digits.size() - 1));
                if (AllDigits(digits) && !digits.empty()) AddUnique(ids.oclc, digits);
            } else if (source == "NL-LeOCL" || source == "PPN" || source == "DE-603") {
                // PICA production numbers: 8-10 characters, last may be X.
                if (number.size() >= 8 && number.size() <= 10) AddUnique(ids.ppn, number);
            }
        }
    return ids;
}

}  // namespace iblsync::protocols
