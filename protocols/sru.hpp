#pragma once
// SRU, Search/Retrieve via URL: requests of versions 1.1, 1.2 (LoC) and 2.0
// (OASIS searchRetrieve) read from their parameters, and responses written
// as XML that validates against each version's schema. Pure: the daemon
// (daemon/sru_service.cpp) runs the search and hands the results here.
//
// Version 1.x responses use the namespace http://www.loc.gov/zing/srw/,
// version 2.0 responses http://docs.oasis-open.org/ns/search-ws/sruResponse.
// Every failure is a diagnostic (info:srw/diagnostic/1/N) in the response.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocols/cql.hpp"
#include "protocols/marc_record.hpp"

namespace iblsync::protocols::sru {

enum class Version { k11, k12, k20 };
const char* VersionText(Version v);  // "1.1", "1.2", "2.0"

enum class Operation { kExplain, kSearchRetrieve, kScan };

struct Diagnostic {
    int code = 1;
    std::string details;
    std::string message;  // the standard message when empty
};
// "info:srw/diagnostic/1/<code>"
std::string DiagnosticUri(int code);
// The standard message of an SRU diagnostic ("Query syntax error" for 10).
std::string_view StandardMessage(int code);

// Record schemas this server returns.
enum class Schema { kMarcXml, kDublinCore, kJson };
struct SchemaInfo {
    Schema schema;
    const char* name;        // short name in explain ("marcxml")
    const char* identifier;  // URI written as the record's recordSchema
    const char* title;
};
const std::vector<SchemaInfo>& Schemas();
// The schema a recordSchema value names (short name or URI, any case).
std::optional<Schema> FindSchema(std::string_view requested);
const SchemaInfo& InfoOf(Schema schema);

struct Limits {
    int default_maximum_records = 10;
    int maximum_records = 100;  // larger requests get this many (and nextRecordPosition)
    int default_maximum_terms = 20;
    int maximum_terms = 100;
    CqlLimits cql;
};

struct Request {
    Version version = Version::k20;
    Operation operation = Operation::kExplain;
    std::vector<std::pair<std::string, std::string>> params;  // as received, for the echo

    // searchRetrieve
    std::string query;
    std::optional<CqlQuery> cql;
    long long start_record = 1;
    int maximum_records = 10;
    bool maximum_clamped = false;  // more were asked than this server sends at once
    Schema schema = Schema::kMarcXml;
    bool escape_records = false;  // recordPacking=string (1.x), recordXMLEscaping=string (2.0)
    std::string sort_keys;        // the sortKeys parameter (1.1 syntax), as given
    bool holdings = false;        // x-holdings=true: each copy and its availability in extraRecordData

    // scan
    std::string scan_clause;
    std::optional<CqlQuery> scan_cql;
    int response_position = 1;
    int maximum_terms = 20;
};

struct ParsedRequest {
    Request request;
    std::optional<Diagnostic> diagnostic;  // the request cannot be answered as asked
};

// Reads a request from its parameters (query string, or a form body for
// POST). Which version: `version` if given (1.1, 1.2, 2.0); without it
// 2.0. Which operation: `operation` if given; else searchRetrieve with a
// query, scan with a scanClause, explain with neither.
ParsedRequest ParseRequest(const std::vector<std::pair<std::string, std::string>>& params, const Limits& limits);

// SRW, SRU's SOAP binding (what yaz-client sends by default): a SOAP 1.1
// envelope whose body holds a searchRetrieveRequest, explainRequest or
// scanRequest in the SRU 1.x namespace. Its child elements become the
// request's parameters, and `operation` comes from the element's name.
// A document type declaration is refused (no entity expansion). nullopt
// with `error` if the body is not such a request.
std::optional<std::vector<std::pair<std::string, std::string>>> ParseSoapRequest(std::string_view body,
                                                                                  std::string& error);
// A response document wrapped in a SOAP envelope, for an SRW client.
std::string SoapEnvelope(std::string_view response);

// One sort key of the sortKeys parameter: "path,schema,ascending,caseSensitive,missingValue".
struct SortKeySpec {
    std::string path;
    bool ascending = true;
    bool case_sensitive = false;
    std::string missing;  // "", "missingLow", "missingHigh", or a value
};
// nullopt with `error` set if malformed.
std::optional<std::vector<SortKeySpec>> ParseSortKeys(std::string_view text, std::string& error);

// --- responses ----------------------------------------------------------

struct Copy {
    std::string library, barcode, branch, shelfmark, status, due_date, changed_at;
};

struct ResultRecord {
    long long position = 0;
    std::string identifier;  // ISIL:local id
    // The record in the requested schema: an XML element (MARCXML, DC) or
    // text (JSON); escaped as a string when asked, or when it is not XML.
    std::string data;
    bool data_is_xml = true;
    std::optional<Diagnostic> surrogate;  // the record cannot be shown: a surrogate diagnostic instead
    std::vector<Copy> copies;             // with x-holdings=true
};

struct SearchResult {
    long long total = 0;
    bool exact = true;   // false: total is an estimate (SRU 2.0 says so in resultCountPrecision)
    bool more = false;   // records follow the last one: nextRecordPosition
    std::vector<ResultRecord> records;
    std::vector<Diagnostic> diagnostics;  // non-empty: the search failed (fatal)
};

std::string SearchRetrieveResponse(const Request& request, const SearchResult& result);

// A diagnostic for a request that could not be read: a searchRetrieve
// response carrying it (explain and scan requests get the response of
// their own operation).
std::string DiagnosticResponse(const Request& request, const Diagnostic& diagnostic, std::string_view explain_record);

// What explain says about this server.
struct ExplainInfo {
    std::string host;
    int port = 0;
    std::string database;  // the path, without the leading /
    std::string title;
    std::string description;
    struct Set {
        std::string prefix, identifier;
    };
    std::vector<Set> sets;
    struct Index {
        std::string set, name, title;
        bool sortable = false;
        bool scannable = false;
    };
    std::vector<Index> indexes;
    Limits limits;
};
// The ZeeRex explain record (namespace http://explain.z3950.org/dtd/2.0/).
std::string ExplainRecord(const ExplainInfo& info);
std::string ExplainResponse(const Request& request, std::string_view explain_record);

struct ScanTerm {
    std::string value, display;
    long long records = 0;
};
std::string ScanResponse(const Request& request, const std::vector<ScanTerm>& terms,
                         const std::vector<Diagnostic>& diagnostics);

// --- records ---------------------------------------------------------------

// Dublin Core as SRU carries it: <srw_dc:dc> (info:srw/schema/1/dc-schema).
std::string SrwDublinCore(const marc::Record& record);
// MARC-in-JSON: {"leader": "...", "fields": [{"001": "..."}, {"245": {"ind1": "1", "ind2": "0", "subfields": [{"a": "..."}]}}]}.
std::string MarcInJson(const marc::Record& record);

// The Content-Type of a response of this version.
const char* ContentType(Version version);

}  // namespace iblsync::protocols::sru
