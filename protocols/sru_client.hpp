#pragma once
// The client side of SRU, for harvesting another server: the request URL of
// one page, and the page read back (records, count, next position,
// diagnostics). Pure; the harvester (daemon/harvester.cpp) does the I/O.
//
// Responses of SRU 1.1/1.2 (namespace http://www.loc.gov/zing/srw/) and 2.0
// (http://docs.oasis-open.org/ns/search-ws/sruResponse) are read by local
// names, since servers differ in prefixes. Each record's recordData is cut
// out as a document of its own, with the namespace declarations it inherited,
// so that the MARCXML reader sees what it would see in a file.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/result.hpp"

namespace iblsync::protocols::sru {

// A source URL split for an HTTP client: http://host[:port]/path.
struct HttpUrl {
    std::string host;
    std::string port = "80";
    std::string path = "/";  // without a query
};
// Only http; https sources are refused with a message that says so.
Result<HttpUrl> ParseHttpUrl(std::string_view url);

struct PageRequest {
    std::string version = "1.2";  // 1.1, 1.2 or 2.0
    std::string query;            // CQL
    std::string record_schema = "marcxml";
    long long start = 1;          // startRecord, 1-based
    int maximum = 100;            // maximumRecords
};
// The path and query string of a searchRetrieve GET: "/path?version=...".
std::string PageTarget(const HttpUrl& url, const PageRequest& request);

// Replaces every "{since}" in an incremental query template by `since`
// (an ISO 8601 UTC time such as 2026-12-05T14:03:00Z), quoted for CQL.
std::string QueryWithSince(std::string_view query_template, std::string_view since);

struct RemoteDiagnostic {
    std::string uri;  // info:srw/diagnostic/1/N
    std::string details;
    std::string message;
    int Code() const;  // N of a standard SRU diagnostic; 0 for any other URI
    // Worth retrying later: "general system error" (1) and "system
    // temporarily unavailable" (2). Anything else will fail the same way
    // until someone changes the source or its config.
    bool Transient() const;
};

struct HarvestedRecord {
    long long position = 0;  // recordPosition, 0 if the server gave none
    std::string schema;      // recordSchema as the server gave it
    std::string data;        // the recordData's element as a document of its own (or its text, for string packing)
    std::optional<RemoteDiagnostic> diagnostic;  // a surrogate diagnostic instead of a record
};

struct Page {
    long long number_of_records = 0;
    std::vector<HarvestedRecord> records;
    std::optional<long long> next_position;  // nextRecordPosition, if the server said
    std::vector<RemoteDiagnostic> diagnostics;  // non-surrogate: the request as a whole failed
};

inline constexpr std::size_t kMaxPageDepth = 64;  // element nesting a page may have

// Reads one searchRetrieveResponse. Fails (with a reason) on anything that
// is not one: HTML error pages, malformed XML, a DTD, invalid UTF-8,
// nesting deeper than kMaxPageDepth.
Result<Page> ParsePage(std::string_view body);

// Where the next page starts, or nullopt when this one was the last: the
// server's nextRecordPosition when it gave one, else counted from `start`.
// Fails if nextRecordPosition is not right after this page.
Result<std::optional<long long>> NextStart(const Page& page, long long start);

}  // namespace iblsync::protocols::sru
