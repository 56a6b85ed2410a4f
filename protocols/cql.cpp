#include "protocols/cql.hpp"

#include <fmt/format.h>

#include "protocols/utf8.hpp"

namespace iblsync::protocols {
namespace {

enum class Tok { kEnd, kLParen, kRParen, kSlash, kSymbol, kWord, kQuoted };

struct Token {
    Tok kind = Tok::kEnd;
    std::string text;  // symbol, or the word/string with quotes removed and escapes kept
    std::size_t position = 0;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Characters that end an unquoted word (besides white space).
bool EndsWord(char c) { return c == '(' || c == ')' || c == '=' || c == '<' || c == '>' || c == '"' || c == '/'; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

// The boolean or sortby keyword a word is ("" if none), in lower case.
std::string Keyword(const Token& t) {
    if (t.kind != Tok::kWord) return "";
    for (const char* k : {"and", "or", "not", "prox", "sortby"})
        if (EqualsIgnoreCase(t.text, k)) return k;
    return "";
}

bool IsBoolean(const Token& t) {
    const auto k = Keyword(t);
    return !k.empty() && k != "sortby";
}

struct Failure {
    CqlError error;
};

class Lexer {
public:
    explicit Lexer(std::string_view s) : s_(s) {}

    Token Next() {
        while (i_ < s_.size() && IsSpace(s_[i_])) ++i_;
        Token t;
        t.position = i_;
        if (i_ == s_.size()) return t;
        const char c = s_[i_];
        if (c == '(' || c == ')' || c == '/') {
            t.kind = c == '(' ? Tok::kLParen : c == ')' ? Tok::kRParen : Tok::kSlash;
            t.text = std::string(1, c);
            ++i_;
            return t;
        }
        if (c == '=' || c == '<' || c == '>') {
            t.kind = Tok::kSymbol;
            t.text = std::string(1, c);
            ++i_;
            if (i_ < s_.size()) {
                const char d = s_[i_];
                if ((c == '=' && d == '=') || (c == '<' && (d == '=' || d == '>')) || (c == '>' && d == '=')) {
                    t.text += d;
                    ++i_;
                }
            }
            return t;
        }
        if (c == '"') {
            t.kind = Tok::kQuoted;
            ++i_;
            for (;;) {
                if (i_ == s_.size())
                    throw Failure{{14, t.position, fmt::format("the quote opened at position {} is never closed",
                                                               t.position)}};
                const char d = s_[i_++];
                if (d == '"') break;
                t.text += d;
                if (d == '\\') {
                    if (i_ == s_.size())
                        throw Failure{{14, t.position, fmt::format("the quote opened at position {} is never closed",
                                                                   t.position)}};
                    t.text += s_[i_++];
                }
            }
            return t;
        }
        t.kind = Tok::kWord;
        while (i_ < s_.size() && !IsSpace(s_[i_]) && !EndsWord(s_[i_])) {
            const char d = s_[i_++];
            t.text += d;
            if (d == '\\') {
                if (i_ == s_.size())
                    throw Failure{{10, i_ - 1, fmt::format("a backslash at position {} escapes nothing", i_ - 1)}};
                t.text += s_[i_++];
            }
        }
        return t;
    }

private:
    std::string_view s_;
    std::size_t i_ = 0;
};

std::string Describe(const Token& t) {
    switch (t.kind) {
        case Tok::kEnd: return "the end of the query";
        case Tok::kQuoted: return fmt::format("\"{}\"", t.text);
        default: return fmt::format("'{}'", t.text);
    }
}

class Parser {
public:
    Parser(std::string_view text, const CqlLimits& limits) : lex_(text), limits_(limits) { Advance(); }

    CqlQuery ParseTop() {
        CqlQuery q;
        q.root = ParseQuery();
        if (Keyword(tok_) == "sortby") {
            const auto at = tok_.position;
            Advance();
            while (tok_.kind == Tok::kWord || tok_.kind == Tok::kQuoted) {
                if (static_cast<int>(q.sort_keys.size()) == limits_.max_sort_keys)
                    throw Failure{{84, tok_.position,
                                   fmt::format("more than {} sort keys; this server sorts by at most {}",
                                               limits_.max_sort_keys, limits_.max_sort_keys)}};
                CqlSortKey key;
                key.index = TakeTerm("a sort key");
                key.modifiers = ParseModifiers();
                q.sort_keys.push_back(std::move(key));
            }
            if (q.sort_keys.empty())
                throw Failure{{10, tok_.position,
                               fmt::format("sortBy at position {} names no index to sort by", at)}};
        }
        if (tok_.kind != Tok::kEnd) {
            if (tok_.kind == Tok::kRParen)
                throw Failure{{13, tok_.position,
                               fmt::format("the ')' at position {} closes no '('", tok_.position)}};
            throw Failure{{10, tok_.position,
                           fmt::format("unexpected {} at position {}; join search clauses with and, or, not or prox",
                                       Describe(tok_), tok_.position)}};
        }
        return q;
    }

private:
    void Advance() { tok_ = lex_.Next(); }

    std::string TakeTerm(const char* what) {
        if (tok_.kind != Tok::kWord && tok_.kind != Tok::kQuoted)
            throw Failure{{10, tok_.position,
                           fmt::format("expected {} at position {}, found {}", what, tok_.position, Describe(tok_))}};
        if (tok_.text.size() > limits_.max_term_bytes)
            throw Failure{{23, tok_.position,
                           fmt::format("the term at position {} has {} bytes; at most {} are allowed", tok_.position,
                                       tok_.text.size(), limits_.max_term_bytes)}};
        // A keyword used as a term is written in lower case, as YAZ does.
        std::string t = Keyword(tok_).empty() ? std::move(tok_.text) : Keyword(tok_);
        Advance();
        return t;
    }

    void Enter(std::size_t position) {
        if (++depth_ > limits_.max_depth)
            throw Failure{{13, position,
                           fmt::format("the query nests deeper than {} levels at position {}", limits_.max_depth,
                                       position)}};
    }

    // cqlQuery ::= prefixAssignment cqlQuery | scopedClause
    std::unique_ptr<CqlNode> ParseQuery() {
        if (tok_.kind == Tok::kSymbol && tok_.text == ">") {
            const auto at = tok_.position;
            Enter(at);
            Advance();
            CqlPrefix p;
            std::string first = TakeTerm("a context set prefix or identifier after '>'");
            if (tok_.kind == Tok::kSymbol && tok_.text == "=") {
                Advance();
                p.name = std::move(first);
                p.uri = TakeTerm("a context set identifier");
            } else {
                p.uri = std::move(first);
            }
            auto node = ParseQuery();
            node->prefixes.insert(node->prefixes.begin(), std::move(p));
            node->position = at;
            --depth_;
            return node;
        }
        return ParseScoped();
    }

    // scopedClause ::= scopedClause boolean [modifiers] searchClause | searchClause
    std::unique_ptr<CqlNode> ParseScoped() {
        auto left = ParseClause();
        while (IsBoolean(tok_)) {
            if (++booleans_ > limits_.max_booleans)
                throw Failure{{38, tok_.position,
                               fmt::format("more than {} boolean operators; this server takes at most {}",
                                           limits_.max_booleans, limits_.max_booleans)}};
            auto node = std::make_unique<CqlNode>();
            node->kind = CqlNode::Kind::kBoolean;
            node->position = left->position;
            node->op = Keyword(tok_);
            Advance();
            node->op_modifiers = ParseModifiers();
            node->left = std::move(left);
            node->right = ParseClause();
            left = std::move(node);
        }
        return left;
    }

    // searchClause ::= '(' cqlQuery ')' | index relation searchTerm | searchTerm
    std::unique_ptr<CqlNode> ParseClause() {
        if (tok_.kind == Tok::kLParen) {
            const auto at = tok_.position;
            Enter(at);
            Advance();
            auto inner = ParseQuery();
            if (tok_.kind != Tok::kRParen)
                throw Failure{{13, tok_.position,
                               fmt::format("the '(' at position {} is not closed: expected ')' at position {}, "
                                           "found {}",
                                           at, tok_.position, Describe(tok_))}};
            Advance();
            --depth_;
            return inner;
        }
        auto node = std::make_unique<CqlNode>();
        node->position = tok_.position;
        const bool first_quoted = tok_.kind == Tok::kQuoted;
        std::string first = TakeTerm("a search term");
        // An index when a relation follows: a symbol, or a word that is no keyword.
        const bool named = tok_.kind == Tok::kWord && Keyword(tok_).empty();
        if (tok_.kind == Tok::kSymbol || named) {
            node->index = std::move(first);
            node->relation.name = tok_.text;
            Advance();
            node->relation.modifiers = ParseModifiers();
            node->quoted = tok_.kind == Tok::kQuoted;
            node->term = TakeTerm(fmt::format("a search term after the relation '{}'", node->relation.name).c_str());
            return node;
        }
        node->term = std::move(first);
        node->quoted = first_quoted;
        return node;
    }

    // modifierList ::= modifier+ ; modifier ::= '/' name [comparitorSymbol value]
    std::vector<CqlModifier> ParseModifiers() {
        std::vector<CqlModifier> out;
        while (tok_.kind == Tok::kSlash) {
            Advance();
            CqlModifier m;
            m.name = TakeTerm("a modifier name after '/'");
            if (tok_.kind == Tok::kSymbol) {
                m.comparison = tok_.text;
                Advance();
                m.value = TakeTerm("a modifier value");
            }
            out.push_back(std::move(m));
        }
        return out;
    }

    Lexer lex_;
    const CqlLimits& limits_;
    Token tok_;
    int depth_ = 0;
    int booleans_ = 0;
};

// --- XCQL ------------------------------------------------------------------

void Escape(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            default: out += c;
        }
    }
}

void Element(std::string& out, const char* name, std::string_view text) {
    out += fmt::format("<{}>", name);
    Escape(out, text);
    out += fmt::format("</{}>", name);
}

void Modifiers(std::string& out, const std::vector<CqlModifier>& mods) {
    if (mods.empty()) return;
    out += "<modifiers>";
    for (const auto& m : mods) {
        out += "<modifier>";
        Element(out, "type", m.name);
        if (!m.comparison.empty()) {
            Element(out, "comparison", m.comparison);
            Element(out, "value", m.value);
        }
        out += "</modifier>";
    }
    out += "</modifiers>";
}

void Prefixes(std::string& out, const std::vector<CqlPrefix>& prefixes) {
    if (prefixes.empty()) return;
    out += "<prefixes>";
    for (const auto& p : prefixes) {
        out += "<prefix>";
        Element(out, "name", p.name);
        Element(out, "identifier", p.uri);
        out += "</prefix>";
    }
    out += "</prefixes>";
}

void SortKeys(std::string& out, const std::vector<CqlSortKey>& keys) {
    if (keys.empty()) return;
    out += "<sortKeys>";
    for (const auto& k : keys) {
        out += "<key>";
        Element(out, "index", k.index);
        Modifiers(out, k.modifiers);
        out += "</key>";
    }
    out += "</sortKeys>";
}

void Xcql(std::string& out, const CqlNode& n, const std::vector<CqlSortKey>* sort, bool root) {
    const char* ns = root ? " xmlns=\"http://www.loc.gov/zing/cql/xcql/\"" : "";
    if (n.kind == CqlNode::Kind::kClause) {
        out += fmt::format("<searchClause{}>", ns);
        Prefixes(out, n.prefixes);
        Element(out, "index", n.index);
        out += "<relation>";
        Element(out, "value", n.relation.name);
        Modifiers(out, n.relation.modifiers);
        out += "</relation>";
        Element(out, "term", n.term);
        if (sort) SortKeys(out, *sort);
        out += "</searchClause>";
        return;
    }
    out += fmt::format("<triple{}>", ns);
    Prefixes(out, n.prefixes);
    out += "<boolean>";
    Element(out, "value", n.op);
    Modifiers(out, n.op_modifiers);
    out += "</boolean><leftOperand>";
    Xcql(out, *n.left, nullptr, false);
    out += "</leftOperand><rightOperand>";
    Xcql(out, *n.right, nullptr, false);
    out += "</rightOperand>";
    if (sort) SortKeys(out, *sort);
    out += "</triple>";
}

// --- CQL -------------------------------------------------------------------

std::string Quote(const std::string& s) {
    bool bare = !s.empty();
    for (char c : s)
        if (IsSpace(c) || EndsWord(c)) bare = false;
    Token probe;
    probe.kind = Tok::kWord;
    probe.text = s;
    if (!Keyword(probe).empty()) bare = false;
    return bare ? s : "\"" + s + "\"";  // a kept escape (\") stays an escape inside quotes
}

void CqlModifiers(std::string& out, const std::vector<CqlModifier>& mods) {
    for (const auto& m : mods) {
        out += "/" + Quote(m.name);
        if (!m.comparison.empty()) out += m.comparison + Quote(m.value);
    }
}

void Cql(std::string& out, const CqlNode& n) {
    const bool wrap = !n.prefixes.empty() || n.kind == CqlNode::Kind::kBoolean;
    if (wrap) out += "(";
    for (const auto& p : n.prefixes) out += ">" + (p.name.empty() ? "" : Quote(p.name) + "=") + Quote(p.uri) + " ";
    if (n.kind == CqlNode::Kind::kClause) {
        out += Quote(n.index) + " " + n.relation.name;
        CqlModifiers(out, n.relation.modifiers);
        out += " " + Quote(n.term);
    } else {
        Cql(out, *n.left);
        out += " " + n.op;
        CqlModifiers(out, n.op_modifiers);
        out += " ";
        Cql(out, *n.right);
    }
    if (wrap) out += ")";
}

}  // namespace

CqlParse ParseCql(std::string_view text, const CqlLimits& limits) {
    CqlParse out;
    if (text.size() > limits.max_bytes) {
        out.error = {12, limits.max_bytes,
                     fmt::format("the query has {} bytes; this server takes at most {}", text.size(),
                                 limits.max_bytes)};
        return out;
    }
    if (auto bad = FindInvalidUtf8(text); bad != kUtf8Valid) {
        out.error = {10, bad, fmt::format("the query is not valid UTF-8 (byte {})", bad)};
        return out;
    }
    std::size_t first = 0;
    while (first < text.size() && IsSpace(text[first])) ++first;
    if (first == text.size()) {
        out.error = {10, 0, "the query is empty"};
        return out;
    }
    try {
        Parser p(text, limits);
        out.query = p.ParseTop();
    } catch (const Failure& f) {
        out.error = f.error;
    }
    return out;
}

std::string ToXcql(const CqlQuery& query) {
    std::string out;
    if (query.root) Xcql(out, *query.root, &query.sort_keys, true);
    return out;
}

std::string ToCql(const CqlQuery& query) {
    std::string out;
    if (query.root) Cql(out, *query.root);
    if (!query.sort_keys.empty()) {
        out += " sortBy";
        for (const auto& k : query.sort_keys) {
            out += " " + Quote(k.index);
            CqlModifiers(out, k.modifiers);
        }
    }
    return out;
}

}  // namespace iblsync::protocols
