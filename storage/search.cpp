#include "storage/search.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "protocols/identifiers.hpp"
#include "protocols/isil.hpp"
#include "protocols/json_record.hpp"
#include "protocols/normalize.hpp"
#include "protocols/province.hpp"
#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/holding_rows.hpp"
#include "storage/detail/sql.hpp"

namespace iblsync::storage {
namespace {

using protocols::CqlModifier;
using protocols::CqlNode;
using protocols::CqlPrefix;

// What an index searches.
enum class Kind {
    kWords,      // words of s_title/s_creator/s_subject/s_publisher, by vector weight
    kAll,        // cql.allRecords
    kIsbn,
    kIssn,
    kIdentifier, // any standard number or the record's own id
    kRecordId,   // ISIL:local id
    kYear,
    kModified,
    kCreated,
    kLanguage,
    kType,
    kLibrary,
    kProvince,
    kAvailable,
};

struct IndexDef {
    const char* set;   // prefix of its context set
    const char* name;  // compared without case
    Kind kind;
    const char* weights;  // kWords: which parts of the vector ("A" title … "ABCD" all)
    const char* title;
    const char* sort;     // SQL to sort by, or nullptr
};

constexpr const char* kTitleSort = "b.title_key";
constexpr const char* kCreatorSort = "b.author_key";

const IndexDef kIndexes[] = {
    {"cql", "serverChoice", Kind::kWords, "ABCD", "words of title, creator, subject and publisher", nullptr},
    {"cql", "anywhere", Kind::kWords, "ABCD", "words of title, creator, subject and publisher", nullptr},
    {"cql", "keywords", Kind::kWords, "ABCD", "words of title, creator, subject and publisher", nullptr},
    {"cql", "allRecords", Kind::kAll, "", "every record (cql.allRecords = 1)", nullptr},
    {"dc", "title", Kind::kWords, "A", "title words (245, 246, 240, 130, 730, 740)", kTitleSort},
    {"dc", "creator", Kind::kWords, "B", "names of authors and contributors (1XX, 7XX)", kCreatorSort},
    {"dc", "author", Kind::kWords, "B", "names of authors and contributors (1XX, 7XX)", kCreatorSort},
    {"dc", "subject", Kind::kWords, "C", "subject words (6XX)", nullptr},
    {"dc", "publisher", Kind::kWords, "D", "publisher (260/264 $b)", nullptr},
    {"dc", "identifier", Kind::kIdentifier, "", "ISBN, ISSN, OCLC number, PPN or local id", nullptr},
    {"dc", "date", Kind::kYear, "", "year of publication", "b.pub_year"},
    {"dc", "language", Kind::kLanguage, "", "language, ISO 639-2/B (dut, eng)", nullptr},
    {"dc", "type", Kind::kType, "", "material type (book, ebook, audiobook, large_print, video…)", nullptr},
    {"bath", "title", Kind::kWords, "A", "title words", kTitleSort},
    {"bath", "keyTitle", Kind::kWords, "A", "title words", kTitleSort},
    {"bath", "uniformTitle", Kind::kWords, "A", "title words", kTitleSort},
    {"bath", "name", Kind::kWords, "B", "names", kCreatorSort},
    {"bath", "personalName", Kind::kWords, "B", "names", kCreatorSort},
    {"bath", "corporateName", Kind::kWords, "B", "names", kCreatorSort},
    {"bath", "conferenceName", Kind::kWords, "B", "names", kCreatorSort},
    {"bath", "subject", Kind::kWords, "C", "subject words", nullptr},
    {"bath", "topicalSubject", Kind::kWords, "C", "subject words", nullptr},
    {"bath", "geographicName", Kind::kWords, "C", "subject words", nullptr},
    {"bath", "isbn", Kind::kIsbn, "", "ISBN (10 or 13 digits, hyphens allowed)", nullptr},
    {"bath", "issn", Kind::kIssn, "", "ISSN", nullptr},
    {"bath", "standardIdentifier", Kind::kIdentifier, "", "ISBN, ISSN, OCLC number, PPN or local id", nullptr},
    {"bath", "possessingInstitution", Kind::kLibrary, "", "ISIL of the library holding the record", nullptr},
    {"rec", "identifier", Kind::kRecordId, "", "record identifier: ISIL:local id, or the local id", "b.library, b.local_id"},
    {"rec", "lastModificationDate", Kind::kModified, "", "when the record last changed (ISO 8601)", "b.updated_at"},
    {"rec", "creationDate", Kind::kCreated, "", "when the record was first loaded (ISO 8601)", "b.created_at"},
    {"ibl", "holdingLibrary", Kind::kLibrary, "", "ISIL of the library holding the record", "b.library"},
    {"ibl", "province", Kind::kProvince, "", "province of that library (NL-GE or GE)", nullptr},
    {"ibl", "available", Kind::kAvailable, "", "true: a copy can be lent now; false: none can", nullptr},
    {"ibl", "materialType", Kind::kType, "", "material type, as dc.type", nullptr},
};

struct SetDef {
    const char* prefix;
    std::vector<const char*> uris;
};

const SetDef kSets[] = {
    {"cql", {"info:srw/cql-context-set/1/cql-v1.2", "info:srw/cql-context-set/1/cql-v1.1"}},
    {"dc", {"info:srw/cql-context-set/1/dc-v1.1"}},
    {"bath", {"http://zing.z3950.org/cql/bath/2.0/"}},
    {"rec", {"info:srw/cql-context-set/2/rec-1.1", "info:srw/cql-context-set/2/rec-1.0"}},
    {"ibl", {"urn:iblsync:cql-context-set:ibl-1.0"}},
};

std::string Lower(std::string s) {
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

struct Failure {
    SearchDiagnostic d;
};

[[noreturn]] void Refuse(int code, std::string details, std::string message) {
    throw Failure{{code, std::move(details), std::move(message)}};
}

// The prefix of the built-in set with this identifier, or nullptr.
const char* SetOfUri(const std::string& uri) {
    for (const auto& s : kSets)
        for (const char* u : s.uris)
            if (uri == u) return s.prefix;
    return nullptr;
}

const IndexDef* FindIndex(const std::string& set, const std::string& name) {
    const std::string n = Lower(name);
    for (const auto& i : kIndexes)
        if (set == i.set && n == Lower(i.name)) return &i;
    return nullptr;
}

using Scopes = std::vector<const CqlPrefix*>;

// The context set a prefix names: the innermost assignment in the query,
// else the built-in prefix of that name.
std::optional<std::string> SetOfPrefix(const std::string& prefix, const Scopes& scopes) {
    const std::string p = Lower(prefix);
    for (auto it = scopes.rbegin(); it != scopes.rend(); ++it) {
        if (Lower((*it)->name) != p || (*it)->name.empty()) continue;
        if (const char* set = SetOfUri((*it)->uri)) return std::string(set);
        Refuse(15, (*it)->uri, fmt::format("context set '{}' ({}) is not supported here; see explain for the sets",
                                           prefix, (*it)->uri));
    }
    for (const auto& s : kSets)
        if (p == s.prefix) return std::string(s.prefix);
    return std::nullopt;
}

const IndexDef& ResolveIndex(const std::string& index, const Scopes& scopes) {
    const auto dot = index.find('.');
    if (dot != std::string::npos) {
        const std::string prefix = index.substr(0, dot);
        auto set = SetOfPrefix(prefix, scopes);
        if (!set)
            Refuse(15, prefix, fmt::format("unknown context set '{}' in index '{}'; the sets are cql, dc, bath, rec "
                                           "and ibl",
                                           prefix, index));
        if (const auto* def = FindIndex(*set, index.substr(dot + 1))) return *def;
        Refuse(16, index, fmt::format("index '{}' is not supported; explain lists the indexes", index));
    }
    // No prefix: the query's default set (>"uri"), else the first set that has it.
    for (auto it = scopes.rbegin(); it != scopes.rend(); ++it) {
        if (!(*it)->name.empty()) continue;
        const char* set = SetOfUri((*it)->uri);
        if (!set)
            Refuse(15, (*it)->uri, fmt::format("context set {} is not supported here", (*it)->uri));
        if (const auto* def = FindIndex(set, index)) return *def;
        Refuse(16, index, fmt::format("index '{}' is not in context set {}", index, (*it)->uri));
    }
    for (const char* set : {"dc", "cql", "bath", "rec", "ibl"})
        if (const auto* def = FindIndex(set, index)) return *def;
    Refuse(16, index, fmt::format("index '{}' is not supported; explain lists the indexes", index));
}

// The relation without a cql. prefix, lower case: "=", "any", "adj", …
std::string RelationName(const std::string& relation, const Scopes& scopes) {
    std::string r = relation;
    const auto dot = r.find('.');
    if (dot != std::string::npos) {
        auto set = SetOfPrefix(r.substr(0, dot), scopes);
        if (!set || *set != "cql")
            Refuse(19, relation, fmt::format("relation '{}' is not supported; use = == <> < > <= >= any all adj "
                                             "within encloses",
                                             relation));
        r = r.substr(dot + 1);
    }
    r = Lower(r);
    if (r == "exact") r = "==";
    static const char* kKnown[] = {"=", "==", "<>", "<", ">", "<=", ">=", "any", "all", "adj", "within", "encloses"};
    for (const char* k : kKnown)
        if (r == k) return r;
    Refuse(19, relation, fmt::format("relation '{}' is not supported; use = == <> < > <= >= any all adj within encloses",
                                     relation));
}

// A term with its backslash escapes resolved and its masking characters
// marked: '*' -> U+E000, '?' -> U+E001, '^' -> U+E002 (private use code
// points, which folding keeps inside a word).
constexpr std::string_view kStar = "\xEE\x80\x80", kOne = "\xEE\x80\x81", kAnchor = "\xEE\x80\x82";

std::string Unescape(const std::string& term, bool masks) {
    std::string out;
    for (std::size_t i = 0; i < term.size(); ++i) {
        const char c = term[i];
        if (c == '\\' && i + 1 < term.size()) {
            const char e = term[++i];
            if (e != '"' && e != '*' && e != '?' && e != '^' && e != '\\')
                Refuse(26, term, fmt::format("'\\{}' in term '{}': only \\\" \\* \\? \\^ and \\\\ are escapes", e, term));
            out += e;
        } else if (masks && c == '*') {
            out += kStar;
        } else if (masks && c == '?') {
            out += kOne;
        } else if (masks && c == '^') {
            out += kAnchor;
        } else {
            out += c;
        }
    }
    return out;
}

bool HasMask(const std::string& s) {
    return s.find(kStar) != std::string::npos || s.find(kOne) != std::string::npos;
}

// Accumulates bound parameters.
class Params {
public:
    std::string Add(std::string value) {
        values_.push_back(std::move(value));
        return fmt::format("${}", values_.size());
    }
    std::vector<std::string>& values() { return values_; }

private:
    std::vector<std::string> values_;
};

// One word of a word search: folded, with its masks.
struct Word {
    std::string text;  // folded; may hold mask marks
    bool masked() const { return HasMask(text); }
    // Only a * at the end: the vector's prefix search answers it alone.
    bool PrefixOnly() const { return masked() && text == Stem() + std::string(kStar); }
    // The literal part before the first mask.
    std::string Stem() const {
        auto star = text.find(kStar), one = text.find(kOne);
        return text.substr(0, std::min(star, one));
    }
};

std::vector<Word> Words(const std::string& term, const std::string& raw_term) {
    if (term.find(kAnchor) != std::string::npos)
        Refuse(31, raw_term, "anchoring (^) is not supported; use == for an exact match of a whole title or name");
    std::vector<Word> out;
    const std::string folded = protocols::FoldForKey(term);
    std::size_t i = 0;
    while (i < folded.size()) {
        auto j = folded.find(' ', i);
        if (j == std::string::npos) j = folded.size();
        out.push_back({folded.substr(i, j - i)});
        i = j + 1;
    }
    for (const auto& w : out)
        if (w.masked() && w.Stem().empty())
            Refuse(49, raw_term, fmt::format("a word of '{}' starts with a mask; put at least one letter before * or ?",
                                             raw_term));
    if (out.empty())
        Refuse(27, raw_term, fmt::format("the term '{}' has no letters or digits to search for", raw_term));
    return out;
}

// A tsquery operand for one word: 'word':AB, or a prefix 'stem':*AB.
std::string Lexeme(const Word& w, const std::string& weights) {
    const std::string wt = weights == "ABCD" ? "" : weights;
    if (!w.masked()) return fmt::format("'{}'{}", w.text, wt.empty() ? "" : ":" + wt);
    return fmt::format("'{}':*{}", w.Stem(), wt);
}

// A POSIX regular expression matching the word as a whole word of the
// folded text (words are separated by single spaces, values by " | ").
std::string WordPattern(const Word& w) {
    std::string out;
    for (std::size_t i = 0; i < w.text.size();) {
        if (w.text.compare(i, kStar.size(), kStar) == 0) {
            out += "[^ ]*";
            i += kStar.size();
        } else if (w.text.compare(i, kOne.size(), kOne) == 0) {
            out += "[^ ]";
            i += kOne.size();
        } else {
            const char c = w.text[i++];
            if (std::strchr(".^$*+?()[]{}|\\-", c)) out += '\\';
            out += c;
        }
    }
    return out;
}

// The folded text of the indexes with these weights, for regular expressions.
std::string TextOf(const std::string& weights) {
    if (weights == "A") return "coalesce(b.s_title, b.title_key, '')";
    if (weights == "B") return "coalesce(b.s_creator, b.author_key, '')";
    if (weights == "C") return "coalesce(b.s_subject, '')";
    if (weights == "D") return "coalesce(b.s_publisher, '')";
    return "concat_ws(' | ', coalesce(b.s_title, b.title_key), coalesce(b.s_creator, b.author_key), b.s_subject, "
           "b.s_publisher)";
}

// Relation modifiers a clause may carry. Case and accents are always
// ignored: the index is folded.
struct Modifiers {
    bool unmasked = false;
    bool relevant = false;  // /relevant: rank the results by relevance
};

Modifiers CheckModifiers(const std::vector<CqlModifier>& mods, const Scopes& scopes, bool words) {
    Modifiers out;
    for (const auto& m : mods) {
        std::string name = m.name;
        const auto dot = name.find('.');
        if (dot != std::string::npos) {
            auto set = SetOfPrefix(name.substr(0, dot), scopes);
            if (!set || *set != "cql")
                Refuse(20, m.name, fmt::format("relation modifier '{}' is not supported", m.name));
            name = name.substr(dot + 1);
        }
        name = Lower(name);
        if (!m.comparison.empty())
            Refuse(20, m.name, fmt::format("relation modifier '{}' takes no value here", m.name));
        if (name == "relevant") {
            out.relevant = true;
            continue;
        }
        if (name == "ignorecase" || name == "ignoreaccents" || name == "masked" || (words && name == "word"))
            continue;
        if (name == "unmasked") {
            out.unmasked = true;
            continue;
        }
        Refuse(20, m.name,
               fmt::format("relation modifier '{}' is not supported; this index ignores case and accents and "
                           "supports /ignoreCase /ignoreAccents /relevant /masked /unmasked",
                           m.name));
    }
    return out;
}

[[noreturn]] void Unsupported(const std::string& relation, const IndexDef& def) {
    Refuse(22, relation, fmt::format("relation '{}' cannot be used with index {}.{}", relation, def.set, def.name));
}

class Translator {
public:
    SqlSearch Run(const protocols::CqlQuery& q, const std::vector<SortKey>& sort) {
        Scopes scopes;
        SqlSearch out;
        out.where = Node(*q.root, scopes, true);
        out.order_by = OrderBy(q, sort, scopes);
        out.params = std::move(params_.values());
        return out;
    }

private:
    std::string Node(const CqlNode& n, Scopes& scopes, bool positive) {
        for (const auto& p : n.prefixes) scopes.push_back(&p);
        std::string sql = n.kind == CqlNode::Kind::kClause ? Clause(n, scopes, positive) : Boolean(n, scopes, positive);
        scopes.resize(scopes.size() - n.prefixes.size());
        return sql;
    }

    std::string Boolean(const CqlNode& n, Scopes& scopes, bool positive) {
        if (n.op == "prox") return Prox(n, scopes, positive);
        if (!n.op_modifiers.empty())
            Refuse(46, n.op_modifiers.front().name,
                   fmt::format("boolean modifier '{}' is not supported on {}", n.op_modifiers.front().name, n.op));
        const std::string left = Node(*n.left, scopes, positive);
        const std::string right = Node(*n.right, scopes, n.op == "not" ? !positive : positive);
        if (n.op == "and") return fmt::format("({} AND {})", left, right);
        if (n.op == "or") return fmt::format("({} OR {})", left, right);
        return fmt::format("({} AND NOT {})", left, right);
    }

    // prox between two word clauses: a tsquery with distance operators.
    std::string Prox(const CqlNode& n, Scopes& scopes, bool positive) {
        int distance = 1;
        std::string comparison = "<=";
        bool ordered = false;
        for (const auto& m : n.op_modifiers) {
            const std::string name = Lower(m.name.substr(m.name.find('.') == std::string::npos ? 0 : m.name.find('.') + 1));
            if (name == "unit") {
                if (Lower(m.value) != "word")
                    Refuse(42, m.value, fmt::format("proximity unit '{}' is not supported; only unit=word", m.value));
            } else if (name == "distance") {
                int d = 0;
                auto [end, ec] = std::from_chars(m.value.data(), m.value.data() + m.value.size(), d);
                if (ec != std::errc() || end != m.value.data() + m.value.size() || d < 0 || d > 20)
                    Refuse(41, m.value, fmt::format("proximity distance '{}' is not supported; give 0 to 20", m.value));
                if (m.comparison != "=" && m.comparison != "<=" && m.comparison != "<")
                    Refuse(40, m.comparison,
                           fmt::format("proximity relation '{}' is not supported; use = <= or <", m.comparison));
                distance = d;
                comparison = m.comparison;
            } else if (name == "ordered") {
                ordered = true;
            } else if (name == "unordered") {
                ordered = false;
            } else {
                Refuse(44, m.name, fmt::format("proximity modifier '{}' is not supported", m.name));
            }
        }
        const auto left = ProxOperand(*n.left, scopes);
        const auto right = ProxOperand(*n.right, scopes);
        std::vector<int> distances;
        const int lo = comparison == "=" ? distance : 1;  // 0 would be the same position: never two words
        const int hi = comparison == "<" ? distance - 1 : distance;
        for (int d = lo; d <= hi; ++d) distances.push_back(d);
        if (distances.empty())
            Refuse(41, std::to_string(distance), "no distance fits this proximity; nothing could match");
        std::string q;
        for (int d : distances) {
            // The distance is how many positions apart the words are (1:
            // next to each other), as tsquery's <N> counts.
            const std::string op = fmt::format("<{}>", d);
            auto add = [&](const std::string& a, const std::string& b) { q += (q.empty() ? "" : " | ") + fmt::format("({} {} {})", a, op, b); };
            add(left, right);
            if (!ordered) add(right, left);
        }
        const std::string p = params_.Add(q);
        if (positive) rank_.push_back(p);
        return fmt::format("b.search @@ {}::tsquery", p);
    }

    std::string ProxOperand(const CqlNode& n, const Scopes& scopes) {
        if (n.kind != CqlNode::Kind::kClause || !n.prefixes.empty())
            Refuse(48, "prox", "prox joins two search clauses of single words, such as: fish prox/distance<=2 frog");
        const auto& def = ResolveIndex(n.index, scopes);
        const auto rel = RelationName(n.relation.name, scopes);
        if (def.kind != Kind::kWords || (rel != "=" && rel != "adj" && rel != "any" && rel != "all"))
            Refuse(48, "prox", "prox joins two word searches (title, creator, subject, publisher, all words)");
        CheckModifiers(n.relation.modifiers, scopes, true);
        const auto words = Words(Unescape(n.term, true), n.term);
        if (words.size() != 1)
            Refuse(48, "prox", fmt::format("prox joins single words; '{}' has {}", n.term, words.size()));
        return Lexeme(words[0], def.weights);
    }

    std::string Clause(const CqlNode& n, const Scopes& scopes, bool positive) {
        // Result sets of earlier searches are not kept (every response counts
        // and pages its own search), so none can be named.
        if (Lower(n.index) == "cql.resultsetid" || (Lower(n.index) == "resultsetid"))
            Refuse(51, n.term, fmt::format("result set '{}' does not exist: this server keeps no result sets; send "
                                           "the query itself with another startRecord",
                                           n.term));
        const auto& def = ResolveIndex(n.index, scopes);
        const std::string rel = RelationName(n.relation.name, scopes);
        switch (def.kind) {
            case Kind::kWords: return WordClause(n, def, rel, scopes, positive);
            case Kind::kAll:
                if (rel != "=") Unsupported(n.relation.name, def);
                return "true";
            default: break;
        }
        CheckModifiers(n.relation.modifiers, scopes, false);
        const std::string term = Unescape(n.term, true);
        if (HasMask(term)) Refuse(28, n.term, fmt::format("index {}.{} takes no masks (* ?)", def.set, def.name));
        if (term.find(kAnchor) != std::string::npos) Refuse(31, n.term, "anchoring (^) is not supported");
        if (term.empty()) Refuse(27, n.term, fmt::format("index {}.{} needs a value", def.set, def.name));
        switch (def.kind) {
            case Kind::kYear: return YearClause(term, rel, def);
            case Kind::kModified: return TimeClause("b.updated_at", term, rel, def);
            case Kind::kCreated: return TimeClause("b.created_at", term, rel, def);
            default: break;
        }
        // The rest compare whole values: = and ==, <> for not, any for a list.
        std::vector<std::string> values;
        if (rel == "any") values = Split(term);
        else if (rel == "=" || rel == "==" || rel == "<>") values = {term};
        else Unsupported(n.relation.name, def);
        std::string sql;
        for (const auto& v : values) sql += (sql.empty() ? "" : " OR ") + ValueClause(def, v);
        if (values.size() > 1) sql = "(" + sql + ")";
        return rel == "<>" ? "NOT " + sql : sql;
    }

    static std::vector<std::string> Split(const std::string& s) {
        std::vector<std::string> out;
        std::size_t i = 0;
        while (i < s.size()) {
            while (i < s.size() && s[i] == ' ') ++i;
            auto j = s.find(' ', i);
            if (j == std::string::npos) j = s.size();
            if (j > i) out.push_back(s.substr(i, j - i));
            i = j;
        }
        return out;
    }

    // Records with one of these match keys (protocols::MatchKeys): the
    // identifiers are looked up in record_key, which holds them for every
    // live record, by the hash its B-tree indexes.
    std::string KeyClause(const std::vector<std::string>& keys) {
        std::string any;
        for (const auto& k : keys) {
            const std::string p = params_.Add(k);
            any += fmt::format("{0}(k.khash = hashtextextended({1}, 0) AND k.key = {1})", any.empty() ? "" : " OR ", p);
        }
        return fmt::format("b.id IN (SELECT k.record_id FROM record_key k WHERE {})", any);
    }

    std::string ValueClause(const IndexDef& def, const std::string& v) {
        switch (def.kind) {
            case Kind::kIsbn: {
                auto isbn = protocols::NormalizeIsbn(v);
                if (!isbn) Refuse(36, v, fmt::format("'{}' is not an ISBN: {}", v, isbn.error()));
                return KeyClause({"isbn:" + *isbn});
            }
            case Kind::kIssn: {
                auto issn = protocols::NormalizeIssn(v);
                if (!issn) Refuse(36, v, fmt::format("'{}' is not an ISSN: {}", v, issn.error()));
                return KeyClause({"issn:" + *issn});
            }
            case Kind::kIdentifier: {
                std::vector<std::string> keys;
                if (auto isbn = protocols::NormalizeIsbn(v)) keys.push_back("isbn:" + *isbn);
                if (auto issn = protocols::NormalizeIssn(v)) keys.push_back("issn:" + *issn);
                std::string digits = v;
                for (const char* p : {"(OCoLC)", "ocm", "ocn", "on"})
                    if (digits.rfind(p, 0) == 0) digits = digits.substr(std::strlen(p));
                keys.push_back("oclc:" + digits);
                keys.push_back("ppn:" + digits);
                return fmt::format("(b.local_id = {} OR {})", params_.Add(v), KeyClause(keys));
            }
            case Kind::kRecordId: {
                const auto colon = v.find(':', 3);
                if (colon != std::string::npos && v.rfind("NL-", 0) == 0) {
                    auto isil = protocols::NormalizeIsil(v.substr(0, colon));
                    if (isil)
                        return fmt::format("(b.library = {} AND b.local_id = {})", params_.Add(*isil),
                                           params_.Add(v.substr(colon + 1)));
                }
                return fmt::format("b.local_id = {}", params_.Add(v));
            }
            case Kind::kLanguage: return fmt::format("b.language = {}", params_.Add(Lower(v)));
            case Kind::kType: return fmt::format("b.material_type = {}", params_.Add(Lower(v)));
            case Kind::kLibrary: {
                auto isil = protocols::NormalizeIsil(v);
                if (!isil) Refuse(36, v, fmt::format("'{}' is not an ISIL: {}", v, isil.error()));
                return fmt::format("b.library = {}", params_.Add(*isil));
            }
            case Kind::kProvince: {
                auto p = protocols::NormalizeProvince(v);
                if (!p) Refuse(36, v, fmt::format("'{}' is not a province: {}", v, p.error()));
                return fmt::format("b.library IN (SELECT l.isil FROM library l WHERE l.province = {})",
                                   params_.Add(*p));
            }
            case Kind::kAvailable: {
                const std::string t = Lower(v);
                const bool yes = t == "true" || t == "1" || t == "yes";
                if (!yes && t != "false" && t != "0" && t != "no")
                    Refuse(36, v, fmt::format("ibl.available takes true or false, not '{}'", v));
                return fmt::format("{}EXISTS (SELECT 1 FROM holding h WHERE h.record_id = b.id AND h.status = "
                                   "'available')",
                                   yes ? "" : "NOT ");
            }
            default: break;
        }
        Refuse(47, def.name, "this index cannot be searched");
    }

    std::string WordClause(const CqlNode& n, const IndexDef& def, const std::string& rel, const Scopes& scopes,
                           bool positive) {
        const auto mods = CheckModifiers(n.relation.modifiers, scopes, true);
        relevance_ = relevance_ || mods.relevant;
        const std::string term = Unescape(n.term, !mods.unmasked);
        if (term.empty())
            Refuse(27, n.term, fmt::format("an empty term; search cql.allRecords = 1 for every record"));
        const auto words = Words(term, n.term);
        const std::string w = def.weights;
        std::string tsquery, regex;
        bool recheck = false;
        if (rel == "any" || rel == "all") {
            const char* op = rel == "any" ? " | " : " & ";
            for (const auto& word : words) {
                tsquery += (tsquery.empty() ? "" : op) + Lexeme(word, w);
                recheck = recheck || (word.masked() && !word.PrefixOnly());
            }
            if (recheck) {
                // Some word has a mask inside: every masked word is checked as a pattern.
                std::string checks;
                for (const auto& word : words) {
                    std::string one = fmt::format("{} ~ {}", TextOf(w), params_.Add("(^| )" + WordPattern(word) + "( |$)"));
                    checks += (checks.empty() ? "" : rel == "any" ? " OR " : " AND ") + one;
                }
                regex = "(" + checks + ")";
            }
        } else if (rel == "=" || rel == "adj" || rel == "==" || rel == "<>") {
            std::string pattern;
            for (const auto& word : words) {
                tsquery += (tsquery.empty() ? "" : " <-> ") + Lexeme(word, w);
                pattern += (pattern.empty() ? "" : " ") + WordPattern(word);
                recheck = recheck || (word.masked() && !word.PrefixOnly());
            }
            if (rel == "==")
                regex = fmt::format("{} ~ {}", TextOf(w), params_.Add("(^|\\| )" + pattern + "( \\||$)"));
            else if (recheck)
                regex = fmt::format("{} ~ {}", TextOf(w), params_.Add("(^| )" + pattern + "( |$)"));
        } else {
            Unsupported(n.relation.name, def);
        }
        const std::string p = params_.Add(tsquery);
        if (positive && rel != "<>") rank_.push_back(p);
        std::string sql = fmt::format("b.search @@ {}::tsquery", p);
        if (!regex.empty()) sql = fmt::format("({} AND {})", sql, regex);
        return rel == "<>" ? "NOT " + sql : sql;
    }

    std::string YearClause(const std::string& term, const std::string& rel, const IndexDef& def) {
        auto year = [&](const std::string& s) {
            int y = 0;
            const std::string t = s.size() > 4 && s[4] == '-' ? s.substr(0, 4) : s;  // 1990-05-01 -> 1990
            auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), y);
            if (ec != std::errc() || end != t.data() + t.size() || y < 0 || y > 9999)
                Refuse(36, s, fmt::format("'{}' is not a year for {}.{}", s, def.set, def.name));
            return params_.Add(std::to_string(y));
        };
        if (rel == "within") {
            const auto parts = Split(term);
            if (parts.size() != 2) Refuse(36, term, "within takes two years: dc.date within \"1990 1999\"");
            const std::string from = year(parts[0]), to = year(parts[1]);
            return fmt::format("b.pub_year BETWEEN {}::int AND {}::int", from, to);
        }
        if (rel == "any") {
            std::string list;
            for (const auto& p : Split(term)) list += (list.empty() ? "" : ", ") + year(p) + "::int";
            return fmt::format("b.pub_year IN ({})", list);
        }
        const std::string op = rel == "==" || rel == "encloses" ? "=" : rel;
        if (op != "=" && op != "<>" && op != "<" && op != ">" && op != "<=" && op != ">=")
            Unsupported(rel, def);
        return fmt::format("b.pub_year {} {}::int", op, year(term));
    }

    std::string TimeClause(const char* column, const std::string& term, const std::string& rel, const IndexDef& def) {
        // A day (YYYY-MM-DD) is the whole day, UTC; a moment is RFC 3339.
        auto bounds = [&](const std::string& s) -> std::pair<std::string, std::string> {
            if (s.size() == 10 && s[4] == '-' && s[7] == '-') {
                auto t = protocols::NormalizeTimestamp(s + "T00:00:00Z");
                if (!t) Refuse(36, s, fmt::format("'{}' is not a date: {}", s, t.error()));
                return {*t, ""};
            }
            auto t = protocols::NormalizeTimestamp(s);
            if (!t)
                Refuse(36, s, fmt::format("'{}' is not a date (YYYY-MM-DD) or time (RFC 3339) for {}.{}", s, def.set,
                                          def.name));
            return {*t, *t};
        };
        auto day_end = [](const std::string& p) { return fmt::format("({}::timestamptz + interval '1 day')", p); };
        if (rel == "within") {
            const auto parts = Split(term);
            if (parts.size() != 2) Refuse(36, term, "within takes two dates: \"2026-01-01 2026-01-31\"");
            auto [a, a_exact] = bounds(parts[0]);
            auto [b, b_exact] = bounds(parts[1]);
            const std::string pa = params_.Add(a), pb = params_.Add(b);
            return fmt::format("({0} >= {1}::timestamptz AND {0} {2})", column, pa,
                               b_exact.empty() ? "< " + day_end(pb) : "<= " + pb + "::timestamptz");
        }
        auto [v, exact] = bounds(term);
        const std::string p = params_.Add(v);
        const bool day = exact.empty();
        if (rel == "=" || rel == "==")
            return day ? fmt::format("({0} >= {1}::timestamptz AND {0} < {2})", column, p, day_end(p))
                       : fmt::format("{} = {}::timestamptz", column, p);
        if (rel == "<>")
            return day ? fmt::format("NOT ({0} >= {1}::timestamptz AND {0} < {2})", column, p, day_end(p))
                       : fmt::format("{} <> {}::timestamptz", column, p);
        if (rel == "<" || rel == ">=") return fmt::format("{} {} {}::timestamptz", column, rel, p);
        if (rel == ">") return day ? fmt::format("{} >= {}", column, day_end(p)) : fmt::format("{} > {}::timestamptz", column, p);
        if (rel == "<=") return day ? fmt::format("{} < {}", column, day_end(p)) : fmt::format("{} <= {}::timestamptz", column, p);
        Unsupported(rel, def);
    }

    std::string OrderBy(const protocols::CqlQuery& q, const std::vector<SortKey>& given, const Scopes& scopes) {
        std::vector<SortKey> keys = given;
        if (keys.empty()) {
            for (const auto& k : q.sort_keys) {
                SortKey s;
                s.index = k.index;
                for (const auto& m : k.modifiers) {
                    std::string name = Lower(m.name);
                    if (name.rfind("sort.", 0) == 0) name = name.substr(5);
                    if (name == "ascending") s.ascending = true;
                    else if (name == "descending") s.ascending = false;
                    else if (name == "ignorecase") s.case_sensitive = false;
                    else if (name == "respectcase") s.case_sensitive = true;
                    else if (name == "missinglow") s.missing = "missingLow";
                    else if (name == "missinghigh") s.missing = "missingHigh";
                    else if (name == "missingomit" || name == "missingfail" || name == "missingvalue")
                        Refuse(92, m.name, fmt::format("sort modifier '{}' is not supported; records without the "
                                                       "value sort last (sort.missingLow sorts them first)",
                                                       m.name));
                    else
                        Refuse(20, m.name, fmt::format("sort modifier '{}' is not supported", m.name));
                }
                keys.push_back(s);
            }
        }
        std::string out;
        for (const auto& k : keys) {
            std::string column;
            if (Lower(k.index) == "cql.relevance" || Lower(k.index) == "relevance") {
                column = RankExpression();
                if (column.empty()) column = "b.id";
            } else {
                const auto& def = ResolveIndex(k.index, scopes);
                if (!def.sort) Refuse(16, k.index, fmt::format("records cannot be sorted by {}.{}; sort by title, "
                                                                "creator, date, identifier or lastModificationDate",
                                                                def.set, def.name));
                column = def.sort;
            }
            if (k.case_sensitive)
                Refuse(91, k.index, "sorting is always case-insensitive here (sort.ignoreCase)");
            // Multi-column keys (rec.identifier) take the direction on each column.
            std::string piece;
            std::size_t i = 0;
            while (i <= column.size()) {
                auto j = column.find(", ", i);
                if (j == std::string::npos) j = column.size();
                piece += (piece.empty() ? "" : ", ") + column.substr(i, j - i) + (k.ascending ? " ASC" : " DESC") +
                         (k.missing == "missingLow" ? (k.ascending ? " NULLS FIRST" : " NULLS LAST")
                                                    : (k.ascending ? " NULLS LAST" : " NULLS FIRST"));
                i = j + 2;
            }
            out += (out.empty() ? "" : ", ") + piece;
        }
        if (out.empty()) {
            // Relevance when asked for (/relevant), else the order records
            // were loaded in: ranking reads every match, the plain order
            // lets a broad search stop at the page's last record.
            const std::string rank = relevance_ ? RankExpression() : "";
            out = rank.empty() ? "b.id" : rank + " DESC, b.id";
        } else {
            out += ", b.id";
        }
        return out;
    }

    std::string RankExpression() const {
        std::string out;
        for (const auto& p : rank_) out += (out.empty() ? "" : " + ") + fmt::format("ts_rank(b.search, {}::tsquery)", p);
        return out;
    }

    Params params_;
    std::vector<std::string> rank_;
    bool relevance_ = false;
};

using detail::Str;

// Runs a search statement that stops at a LIMIT. The planner then often
// walks the primary key (or the sort key's index) and filters, betting
// that matches are dense; when its estimate is far too high (two words that
// rarely meet in one record, a NOT that removes nearly everything), that
// walk reads the whole table. So the statement gets a time budget; past it,
// it runs again with the planner kept to the search indexes (a bitmap
// scan), which is quick exactly when matches are few.
pqxx::result Bounded(pqxx::dbtransaction& tx, const std::string& sql, const std::vector<std::string>& params) {
    {
        pqxx::subtransaction first(tx, "walk");
        try {
            first.exec0("SET LOCAL statement_timeout = 100");
            auto rows = first.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
            first.exec0("SET LOCAL statement_timeout TO DEFAULT");
            first.commit();
            return rows;
        } catch (const pqxx::sql_error& e) {
            if (e.sqlstate() != "57014") throw;  // not the budget: a real failure
        }
    }
    pqxx::subtransaction second(tx, "bitmap");
    second.exec0("SET LOCAL enable_indexscan = off");
    second.exec0("SET LOCAL enable_seqscan = off");
    auto rows = second.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
    second.exec0("SET LOCAL enable_indexscan TO DEFAULT");
    second.exec0("SET LOCAL enable_seqscan TO DEFAULT");
    second.commit();
    return rows;
}

// The copies of every hit in one statement, not one per record.
void ReadCopies(pqxx::transaction_base& tx, const detail::ArrayLiteral& ids, std::vector<SearchHit>& hits) {
    const auto rows = tx.exec_params(fmt::format("SELECT h.record_id, {} FROM holding h WHERE h.record_id = ANY($1::bigint[])"
                                                 " ORDER BY h.record_id, h.barcode",
                                                 detail::HoldingColumns("h")),
                                     ids.Done());
    for (const auto& r : rows) {
        const long long record = r[0].as<long long>();
        for (auto& h : hits)
            if (h.id == record) {
                h.holdings.push_back(detail::HoldingFrom(r, 1));
                h.holdings.back().record_local_id = h.local_id;
                break;
            }
    }
}

}  // namespace

Translation TranslateCql(const protocols::CqlQuery& query, const std::vector<SortKey>& sort) {
    Translation t;
    if (!query.root) {
        t.diagnostic = {10, "", "empty query"};
        return t;
    }
    try {
        t.sql = Translator().Run(query, sort);
    } catch (const Failure& f) {
        t.diagnostic = f.d;
    }
    return t;
}

SearchOutcome Search(Database& db, const SearchRequest& request) {
    SearchOutcome out;
    auto t = TranslateCql(*request.query, request.sort);
    if (!t.sql) {
        out.diagnostic = t.diagnostic;
        return out;
    }
    const auto& sql = *t.sql;
    const std::string where = "NOT b.deleted AND " + sql.where;
    return db.Pool().With([&](pqxx::connection& c) {
        // One snapshot for the count and the page, so they agree.
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c, "search");
        std::size_t got = 0;
        if (request.maximum > 0) {
            // One more than asked: whether another page follows, without a count.
            std::vector<std::string> params = sql.params;
            params.push_back(std::to_string(request.maximum + 1));
            params.push_back(std::to_string(request.start - 1));
            const auto rows = Bounded(
                tx,
                fmt::format("SELECT b.id, b.library, b.local_id, b.format, b.raw,"
                            " to_char(b.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                            " coalesce(w.work_id, 0)"
                            " FROM bib_record b LEFT JOIN record_work w ON w.record_id = b.id"
                            " WHERE {} ORDER BY {} LIMIT ${}::bigint OFFSET ${}::bigint",
                            where, sql.order_by, params.size() - 1, params.size()),
                params);
            got = rows.size();
            out.more = got > static_cast<std::size_t>(request.maximum);
            detail::ArrayLiteral ids;
            long long position = request.start;
            for (const auto& r : rows) {
                if (out.hits.size() == static_cast<std::size_t>(request.maximum)) break;
                SearchHit h;
                h.position = position++;
                h.id = r[0].as<long long>();
                h.library = r[1].as<std::string>();
                h.local_id = r[2].as<std::string>();
                h.format = r[3].as<std::string>();
                h.raw = r[4].as<std::string>();
                h.updated_at = r[5].as<std::string>();
                h.work_id = r[6].as<long long>();
                ids.Add(h.id);
                out.hits.push_back(std::move(h));
            }
            if (request.holdings && !out.hits.empty()) ReadCopies(tx, ids, out.hits);
        }
        // The count. A first page that is not full is the whole result.
        if (request.start == 1 && request.maximum > 0 && !out.more) {
            out.total = static_cast<long long>(got);
            return out;
        }
        // Exactly up to the limit; beyond it the planner's estimate, which
        // costs a plan instead of a pass over every match. When the
        // estimate is far beyond the limit, the count is not run at all.
        const std::string plan =
            tx.exec_params1(fmt::format("EXPLAIN (FORMAT JSON) SELECT 1 FROM bib_record b WHERE {}", where),
                            pqxx::prepare::make_dynamic_params(sql.params))[0]
                .as<std::string>();
        long long estimate = 0;
        if (const auto at = plan.find("\"Plan Rows\": "); at != std::string::npos) estimate = std::atoll(plan.c_str() + at + 13);
        const long long seen = request.start - 1 + static_cast<long long>(got);
        if (estimate <= 4 * request.exact_count_limit) {
            std::vector<std::string> params = sql.params;
            params.push_back(std::to_string(request.exact_count_limit + 1));
            out.total = Bounded(tx,
                                fmt::format("SELECT count(*) FROM (SELECT 1 FROM bib_record b WHERE {} LIMIT ${}::bigint) s",
                                            where, params.size()),
                                params)
                            .at(0)[0]
                            .as<long long>();
            if (out.total <= request.exact_count_limit) return out;
        }
        out.total = std::max({estimate, out.total, seen, request.exact_count_limit + 1});
        out.exact = false;
        return out;
    });
}

ScanOutcome Scan(Database& db, const protocols::CqlQuery& clause, int response_position, int maximum_terms) {
    ScanOutcome out;
    const CqlNode& n = *clause.root;
    const char* key = nullptr;
    const char* display = nullptr;
    const char* from = "bib_record b";
    const char* live = " AND NOT b.deleted";
    std::string term;
    try {
        Scopes scopes;
        for (const auto& p : n.prefixes) scopes.push_back(&p);
        const auto& def = ResolveIndex(n.index, scopes);
        if (def.sort == kTitleSort) {
            key = "b.title_key";
            display = "b.title";
        } else if (def.sort == kCreatorSort) {
            key = "b.author_key";
            display = "b.author_key";
        } else if (def.kind == Kind::kWords && std::string(def.weights) == "C") {
            // Subject headings: their own table, kept by triggers (migration 0010).
            key = "s.heading";
            display = "s.heading";
            from = "record_subject s";
            live = "";
        } else {
            Refuse(16, n.index,
                   fmt::format("{}.{} cannot be scanned; scan dc.title, dc.creator or dc.subject", def.set, def.name));
        }
        const std::string rel = RelationName(n.relation.name, scopes);
        if (rel != "=" && rel != ">=") Unsupported(n.relation.name, def);
        CheckModifiers(n.relation.modifiers, scopes, true);
        const std::string unescaped = Unescape(n.term, false);
        term = protocols::FoldForKey(unescaped);
    } catch (const Failure& f) {
        out.diagnostic = f.d;
        return out;
    }
    const int before = std::max(0, response_position - 1);
    const int after = std::max(0, maximum_terms - before);
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c, "scan");
        auto query = [&](const char* cmp, const char* order, int limit) {
            return tx.exec_params(
                fmt::format("SELECT {0}, min({1}), count(*) FROM {4} WHERE {0} {2} $1{5}"
                            " GROUP BY {0} ORDER BY {0} {3} LIMIT $2",
                            key, display, cmp, order, from, live),
                term, limit);
        };
        std::vector<ScanEntry> head;
        if (before > 0)
            for (const auto& r : query("<", "DESC", before))
                head.insert(head.begin(), {r[0].as<std::string>(), Str(r[1]), r[2].as<long long>()});
        out.terms = std::move(head);
        if (after > 0)
            for (const auto& r : query(">=", "ASC", after))
                out.terms.push_back({r[0].as<std::string>(), Str(r[1]), r[2].as<long long>()});
        return out;
    });
}

const std::vector<IndexInfo>& SearchIndexes() {
    static const std::vector<IndexInfo> kInfo = [] {
        std::vector<IndexInfo> v;
        for (const auto& i : kIndexes)
            v.push_back({i.set, i.name, i.title, i.sort != nullptr,
                         i.sort == kTitleSort || i.sort == kCreatorSort ||
                             (i.kind == Kind::kWords && std::string(i.weights) == "C")});
        return v;
    }();
    return kInfo;
}

const std::vector<ContextSetInfo>& ContextSets() {
    static const std::vector<ContextSetInfo> kInfo = [] {
        std::vector<ContextSetInfo> v;
        for (const auto& s : kSets) v.push_back({s.prefix, s.uris.front()});
        return v;
    }();
    return kInfo;
}

}  // namespace iblsync::storage
