#pragma once
// One MARC 21 record (bibliographic or holdings) in memory, independent of
// its serialisation: ISO 2709 (iso2709.hpp) and MARCXML (marcxml.hpp) read
// into and write from this model. Text is always UTF-8 here; MARC-8 input is
// converted on reading.

#include <string>
#include <string_view>
#include <vector>

namespace iblsync::protocols::marc {

struct Subfield {
    char code = 'a';
    std::string value;
};

struct Field {
    std::string tag;                  // three characters, e.g. "245"
    char ind1 = ' ';
    char ind2 = ' ';
    std::string data;                 // control fields (001-009) only
    std::vector<Subfield> subfields;  // data fields only

    bool IsControl() const;
    // First value of subfield `code`; empty if absent.
    std::string Sub(char code) const;
    std::vector<std::string> Subs(char code) const;
    // Values of the given subfield codes in field order, joined by a space.
    std::string Join(std::string_view codes) const;
};

struct Record {
    std::string leader;  // 24 characters
    std::vector<Field> fields;

    const Field* First(std::string_view tag) const;
    std::vector<const Field*> All(std::string_view tag) const;
    // The 001 control number, empty if absent.
    std::string ControlNumber() const;
};

// MARC 21 control fields are 001-009 (and 00X in general).
bool IsControlTag(std::string_view tag);

// A tag is three ASCII letters or digits (MARC 21 uses digits; some systems
// put letters in local fields, which we keep).
bool IsValidTag(std::string_view tag);

// Indicators as MARC 21 defines them: a digit, a lower-case letter or blank.
// The blank notations found in real exports ('#', '_', '-', '\', '|') read
// as blank and upper-case letters as lower case; anything else is kept and
// then rejected by Validate().
char NormalizeIndicator(char c);

// Leader positions MARC 21 fixes: 10-11 are "22" and 20-23 are "4500";
// bytes outside [0-9A-Za-z ] in the coded positions read as blank. Record
// length and base address (00-04, 12-16) are left to the writers.
void NormalizeLeader(std::string& leader);

// Checks what every writer relies on: 24-character leader, valid tags,
// indicators [0-9a-z ], subfield codes printable ASCII (as MARC21slim.xsd
// allows), no delimiter bytes inside values.
// Returns an empty string if the record is sound, else the first problem.
std::string Validate(const Record& record);

}  // namespace iblsync::protocols::marc
