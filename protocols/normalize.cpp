#include "protocols/normalize.hpp"

#include <array>
#include <cctype>
#include <cstdint>

namespace iblsync::protocols {
namespace {

// U+00C0..U+017F (Latin-1 Supplement letters and Latin Extended-A) folded to
// ASCII. Entries of more than one letter are ligatures and special letters.
constexpr std::array<const char*, 0x180 - 0xC0> kLatin = {
    // C0
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    // D0
    "d", "n", "o", "o", "o", "o", "o", " ", "o", "u", "u", "u", "u", "y", "th", "ss",
    // E0
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    // F0
    "d", "n", "o", "o", "o", "o", "o", " ", "o", "u", "u", "u", "u", "y", "th", "y",
    // 100
    "a", "a", "a", "a", "a", "a", "c", "c", "c", "c", "c", "c", "c", "c", "d", "d",
    // 110
    "d", "d", "e", "e", "e", "e", "e", "e", "e", "e", "e", "e", "g", "g", "g", "g",
    // 120
    "g", "g", "g", "g", "h", "h", "h", "h", "i", "i", "i", "i", "i", "i", "i", "i",
    // 130
    "i", "i", "ij", "ij", "j", "j", "k", "k", "k", "l", "l", "l", "l", "l", "l", "l",
    // 140
    "l", "l", "l", "n", "n", "n", "n", "n", "n", "n", "n", "n", "o", "o", "o", "o",
    // 150
    "o", "o", "oe", "oe", "r", "r", "r", "r", "r", "r", "s", "s", "s", "s", "s", "s",
    // 160
    "s", "s", "t", "t", "t", "t", "t", "t", "u", "u", "u", "u", "u", "u", "u", "u",
    // 170
    "u", "u", "u", "u", "w", "w", "y", "y", "y", "z", "z", "z", "z", "z", "z", "s",
};

// Decodes one UTF-8 code point at s[i]; advances i. Invalid bytes give U+FFFD.
char32_t Decode(std::string_view s, std::size_t& i) {
    auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (c >= 0x80 && c < 0xC0) len = 1;
    if (i + static_cast<std::size_t>(len) > s.size()) {
        ++i;
        return 0xFFFD;
    }
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += static_cast<std::size_t>(len);
    return (c >= 0x80 && c < 0xC0) ? 0xFFFD : cp;
}

void Encode(char32_t cp, std::string& out) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

bool StartsWithWord(std::string_view text, std::string_view word) {
    return text.size() > word.size() && text.substr(0, word.size()) == word &&
           (word.back() == '\'' || text[word.size()] == ' ');
}

std::string DropArticle(const std::string& folded_title, std::string_view lang) {
    // Folded forms: "l'" became "l " and "'t" became "t " in FoldForKey.
    static const std::array<std::string_view, 4> kLangs{"dut", "eng", "ger", "fre"};
    static const std::array<std::array<std::string_view, 8>, 4> kArticles{{
        {"de", "het", "een", "t", "", "", "", ""},
        {"the", "a", "an", "", "", "", "", ""},
        {"der", "die", "das", "ein", "eine", "", "", ""},
        {"le", "la", "les", "l", "un", "une", "", ""},
    }};
    for (std::size_t l = 0; l < kLangs.size(); ++l) {
        if (!lang.empty() && lang != kLangs[l]) continue;
        for (auto article : kArticles[l]) {
            if (article.empty()) continue;
            if (StartsWithWord(folded_title, article)) return folded_title.substr(article.size() + 1);
        }
    }
    return folded_title;
}

}  // namespace

std::string FoldForKey(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    bool space = false;
    auto emit = [&](std::string_view piece) {
        if (space && !out.empty()) out += ' ';
        space = false;
        out += piece;
    };
    for (std::size_t i = 0; i < s.size();) {
        char32_t cp = Decode(s, i);
        if (cp < 0x80) {
            auto c = static_cast<char>(cp);
            if (std::isalnum(static_cast<unsigned char>(c))) {
                char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                emit(std::string_view(&lower, 1));
            } else {
                space = true;
            }
        } else if (cp >= 0xC0 && cp < 0x180) {
            std::string_view f = kLatin[cp - 0xC0];
            if (f == " ") space = true;  // × and ÷
            else emit(f);
        } else if ((cp >= 0x300 && cp <= 0x36F) || (cp >= 0x2B9 && cp <= 0x2BF) || cp == 0xFE20 ||
                   cp == 0xFE21 || cp == 0xFE22 || cp == 0xFE23) {
            // combining marks, modifier letters (alif, ayn, prime), ligature halves: drop
        } else if (cp == 0x131) {
            emit("i");
        } else if ((cp >= 0x2000 && cp <= 0x206F) || cp == 0xA0 || cp == 0xFFFD || (cp >= 0xA1 && cp <= 0xBF)) {
            space = true;  // general punctuation, no-break space, Latin-1 symbols
        } else {
            std::string piece;
            if (cp >= 0x391 && cp <= 0x3A9) cp += 0x20;        // Greek capitals
            else if (cp >= 0x410 && cp <= 0x42F) cp += 0x20;   // Cyrillic capitals
            else if (cp >= 0x400 && cp <= 0x40F) cp += 0x50;   // Cyrillic Ѐ..Џ
            Encode(cp, piece);
            emit(piece);
        }
    }
    return out;
}

std::string TitleKey(const marc::Record& r) {
    const marc::Field* f = r.First("245");
    if (!f) return {};
    std::string title = f->Join("anp");
    // The nonfiling indicator counts the bytes of the article to skip, as
    // written; in UTF-8 records that may split a character, so skip whole
    // characters only.
    if (f->ind2 >= '1' && f->ind2 <= '9') {
        std::size_t skip = static_cast<std::size_t>(f->ind2 - '0');
        while (skip < title.size() && (static_cast<unsigned char>(title[skip]) & 0xC0) == 0x80) ++skip;
        if (skip < title.size()) return FoldForKey(std::string_view(title).substr(skip));
    }
    return DropArticle(FoldForKey(title), f->ind2 == '0' ? std::string_view("none") : Language(r));
}

namespace {

// Appends the folded `value` to `out` as one more value of the field.
void AddValue(std::string& out, std::string_view value) {
    std::string folded = FoldForKey(value);
    if (folded.empty()) return;
    if (!out.empty()) out += " | ";
    out += folded;
}

void AddFields(std::string& out, const marc::Record& r, std::string_view tag, std::string_view codes) {
    for (const auto* f : r.All(tag)) AddValue(out, f->Join(codes));
}

}  // namespace

SearchText SearchTextOf(const marc::Record& r) {
    SearchText t;
    AddFields(t.title, r, "245", "abnp");
    AddFields(t.title, r, "246", "abnp");
    AddFields(t.title, r, "240", "anp");
    for (const char* tag : {"130", "730", "740"}) AddFields(t.title, r, tag, "a");
    for (const char* tag : {"100", "700"}) AddFields(t.creator, r, tag, "abcdq");
    for (const char* tag : {"110", "710"}) AddFields(t.creator, r, tag, "ab");
    for (const char* tag : {"111", "711"}) AddFields(t.creator, r, tag, "a");
    for (const auto& f : r.fields) {
        if (f.tag.size() != 3 || f.tag[0] != '6' || f.IsControl()) continue;
        std::string value;
        for (const auto& sf : f.subfields)
            if (sf.code >= 'a' && sf.code <= 'z') value += (value.empty() ? "" : " ") + sf.value;
        AddValue(t.subject, value);
    }
    AddFields(t.publisher, r, "260", "b");
    AddFields(t.publisher, r, "264", "b");
    return t;
}

std::string AuthorKey(const marc::Record& r) {
    const marc::Field* f = r.First("100");
    if (!f) f = r.First("110");
    if (!f) f = r.First("111");
    if (!f) f = r.First("700");
    if (!f) return {};
    std::string name = f->Sub('a');
    if (f->tag == "100" || f->tag == "700") name = name.substr(0, name.find(','));
    return FoldForKey(name);
}

int PublicationYear(const marc::Record& r) {
    auto year_at = [](std::string_view s) -> int {
        for (std::size_t i = 0; i + 4 <= s.size(); ++i) {
            bool digits = true;
            for (std::size_t k = 0; k < 4; ++k) digits = digits && std::isdigit(static_cast<unsigned char>(s[i + k]));
            bool bounded = (i == 0 || !std::isdigit(static_cast<unsigned char>(s[i - 1]))) &&
                           (i + 4 == s.size() || !std::isdigit(static_cast<unsigned char>(s[i + 4])));
            if (digits && bounded) {
                int y = std::stoi(std::string(s.substr(i, 4)));
                if (y >= 1400 && y <= 2100) return y;
            }
        }
        return 0;
    };
    if (const auto* f = r.First("008"); f && f->data.size() >= 11) {
        std::string_view y = std::string_view(f->data).substr(7, 4);
        if (int v = year_at(y)) return v;
    }
    for (const char* tag : {"264", "260"})
        for (const auto* f : r.All(tag))
            for (const auto& c : f->Subs('c'))
                if (int v = year_at(c)) return v;
    return 0;
}

std::string Language(const marc::Record& r) {
    if (const auto* f = r.First("008"); f && f->data.size() >= 38) {
        std::string lang = f->data.substr(35, 3);
        bool ok = true;
        for (char& c : lang) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            ok = ok && c >= 'a' && c <= 'z';
        }
        if (ok && lang != "und" && lang != "zxx" && lang != "mul") return lang;
    }
    if (const auto* f = r.First("041")) {
        std::string a = f->Sub('a');
        if (a.size() >= 3) return FoldForKey(a.substr(0, 3));
    }
    return {};
}

bool IsMaterialType(std::string_view name) {
    for (const char* t : {"book", "large_print", "braille", "ebook", "audiobook", "music", "video", "serial", "map",
                          "score", "electronic", "other"})
        if (name == t) return true;
    return false;
}

std::string MaterialType(const marc::Record& r) {
    const char type = r.leader.size() == 24 ? r.leader[6] : ' ';
    const char level = r.leader.size() == 24 ? r.leader[7] : ' ';
    const marc::Field* f008 = r.First("008");
    const std::string fixed = f008 ? f008->data : std::string();
    const char form = fixed.size() > 23 ? fixed[23] : ' ';  // form of item (books, music, serials)
    switch (type) {
        case 'a':
        case 't':
            if (level == 's' || level == 'b') return form == 'o' || form == 's' ? "ebook" : "serial";
            if (form == 'd') return "large_print";
            if (form == 'f') return "braille";
            if (form == 'o' || form == 'q' || form == 's') return "ebook";
            return "book";
        case 'i': return "audiobook";  // nonmusical sound recording (spoken word, DAISY)
        case 'j': return "music";
        case 'g': return "video";
        case 'e':
        case 'f': return "map";
        case 'c':
        case 'd': return "score";
        case 'm': return "electronic";  // computer files: software, CD-ROMs, e-resources
        default: return "other";
    }
}

}  // namespace iblsync::protocols
