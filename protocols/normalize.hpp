#pragma once
// Normalised fields of a bibliographic record: what deduplication into works
// and search compare, rather than the cataloguer's exact spelling.

#include <string>
#include <string_view>

#include "protocols/marc_record.hpp"

namespace iblsync::protocols {

// Folds text for comparison: lower case; Latin letters with diacritics to
// their base letters (é->e, ĳ->ij, ß->ss, æ->ae, ø->o, ł->l); combining marks
// and modifier letters dropped; Greek and Cyrillic lower-cased; everything
// that is not a letter or digit becomes one space; trimmed.
std::string FoldForKey(std::string_view utf8);

// Title key: 245 $a $n $p without its leading article (from the nonfiling
// indicator 245/2 if set, else a Dutch, English, German or French article
// list), folded.
std::string TitleKey(const marc::Record& record);

// Author key: the family-name part of 100/110/111 $a, else the first 700 $a, folded.
std::string AuthorKey(const marc::Record& record);

// Four-digit publication year from 008/07-10, else from 264/260 $c; 0 if none.
int PublicationYear(const marc::Record& record);

// ISO 639-2/B language code from 008/35-37, else 041 $a; empty if none.
std::string Language(const marc::Record& record);

// The words search finds a record by, per index, folded as FoldForKey folds
// them. A field with several values (the title and its variant titles,
// every author) has them separated by " | ", so that an exact search (==)
// can tell where one value ends; word search ignores the bar.
struct SearchText {
    std::string title;      // 245 $a $b $n $p, 246 $a $b $n $p, 240 $a $n $p, 130 $a, 730 $a, 740 $a
    std::string creator;    // 100/700 $a $b $c $d $q, 110/710 $a $b, 111/711 $a
    std::string subject;    // 600-699: every letter subfield
    std::string publisher;  // 260/264 $b
};
SearchText SearchTextOf(const marc::Record& record);

// Coarse material type used for IBL rules and availability: book,
// large_print, braille, ebook, audiobook, music, video, serial, map, score,
// electronic, other. Large print, braille and audiobooks are the Aangepast Lezen formats.
std::string MaterialType(const marc::Record& record);

// The material types of the catalogue, as MaterialType() names them.
bool IsMaterialType(std::string_view name);

}  // namespace iblsync::protocols
