#pragma once
// Search over the catalogue: a CQL query (protocols/cql.hpp) translated to
// SQL over bib_record and run, with paging and sorting. User values only
// ever reach PostgreSQL as bound parameters.
//
// Context sets and their indexes (docs/sru.md lists them for users):
//   cql  serverChoice, anywhere, keywords (title, creator, subject and
//        publisher words), allRecords
//   dc   title, creator, author, subject, publisher, identifier, date,
//        language, type
//   bath title, keyTitle, uniformTitle, name, personalName, corporateName,
//        conferenceName, subject, topicalSubject, geographicName, isbn,
//        issn, standardIdentifier, possessingInstitution
//   rec  identifier (ISIL:local id, or the local id), lastModificationDate,
//        creationDate
//   ibl  holdingLibrary (ISIL), province (NL-GE or GE), available
//        (true/false: a copy is available now), materialType

#include <optional>
#include <string>
#include <vector>

#include "protocols/cql.hpp"
#include "storage/push.hpp"

namespace iblsync::storage {

class Database;

// Why a query cannot be answered: an SRU diagnostic (info:srw/diagnostic/1/N).
struct SearchDiagnostic {
    int code = 0;
    std::string details;  // what the diagnostic is about: the index, relation, modifier…
    std::string message;  // for people
};

// One sort key given outside the query (SRU 1.1 sortKeys, SRU 2.0 sortKeys).
struct SortKey {
    std::string index;      // as in CQL: "dc.title", "date"
    bool ascending = true;
    bool case_sensitive = false;
    std::string missing;    // "", "missingLow", "missingHigh"
};

// The query as SQL: a condition over bib_record b with $1…$n, an ORDER BY.
struct SqlSearch {
    std::string where;
    std::vector<std::string> params;
    std::string order_by;   // without the words ORDER BY
};

struct Translation {
    std::optional<SqlSearch> sql;
    SearchDiagnostic diagnostic;  // when !sql
};

// Translates `query`; `sort` (if not empty) replaces the query's own sortBy.
Translation TranslateCql(const protocols::CqlQuery& query, const std::vector<SortKey>& sort = {});

struct SearchRequest {
    const protocols::CqlQuery* query = nullptr;
    std::vector<SortKey> sort;
    long long start = 1;     // first record wanted, counting from 1
    int maximum = 10;        // records wanted; 0 for the count only
    bool holdings = false;   // also read each record's copies
    // Results are counted exactly up to this many; a larger count is the
    // planner's estimate (SearchOutcome::exact false).
    long long exact_count_limit = 1000;
};

struct SearchHit {
    long long position = 0;  // in the result set, from 1
    long long id = 0;
    std::string library, local_id, format, raw, updated_at;
    long long work_id = 0;
    std::vector<StoredHolding> holdings;
};

struct SearchOutcome {
    std::optional<SearchDiagnostic> diagnostic;  // set: nothing else is
    long long total = 0;
    bool exact = true;   // false: total is an estimate above the exact count limit
    bool more = false;   // records follow the last hit
    std::vector<SearchHit> hits;
};

SearchOutcome Search(Database& db, const SearchRequest& request);

// Scan: the headings of an index in order around a term, with how many
// records have each. Titles scan by title key (the folded title without
// its leading article), creators by author key (the folded family name).
struct ScanEntry {
    std::string value;    // the heading as stored (folded)
    std::string display;  // as one of its records writes it
    long long records = 0;
};
struct ScanOutcome {
    std::optional<SearchDiagnostic> diagnostic;
    std::vector<ScanEntry> terms;
};
// `clause` is one search clause (index relation term). The term lands at
// `response_position` (1: first; 0: just before the list) of at most
// `maximum_terms` terms.
ScanOutcome Scan(Database& db, const protocols::CqlQuery& clause, int response_position, int maximum_terms);

// The indexes TranslateCql knows, for explain: set prefix, index name, and
// what it searches.
struct IndexInfo {
    const char* set;
    const char* name;
    const char* title;
    bool sortable;
    bool scannable;
};
const std::vector<IndexInfo>& SearchIndexes();

// Context set prefixes and identifiers TranslateCql knows.
struct ContextSetInfo {
    const char* prefix;
    const char* identifier;
};
const std::vector<ContextSetInfo>& ContextSets();

}  // namespace iblsync::storage
