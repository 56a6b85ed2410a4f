#pragma once
// The harvester's side of OAI-PMH 2.0: request targets, and responses read
// back (Identify, ListMetadataFormats, ListSets, ListRecords). Pure; the
// harvester (daemon/harvester.cpp) and `iblctl oai check` do the I/O.
//
// Reading is tolerant of what real repositories send around the protocol
// (a byte order mark, whitespace before the declaration or inside values,
// any namespace prefix) and strict about what is stored: each record's
// metadata is cut out as a document of its own for the MARCXML reader, and
// a page with a DTD, invalid UTF-8 or deep nesting is refused whole.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/catalogue_record.hpp"
#include "protocols/holdings.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols::oai {

struct ListRecordsRequest {
    std::string metadata_prefix = "marc21";
    std::string set, from, until;  // "" when not given
    std::string resumption_token;  // given: the other arguments are not sent
};
// "<path>?verb=ListRecords&...", arguments percent-encoded.
std::string ListRecordsTarget(std::string_view path, const ListRecordsRequest& request);
// "<path>?verb=<verb>" for Identify, ListMetadataFormats and ListSets.
std::string VerbTarget(std::string_view path, std::string_view verb);

struct RemoteError {
    std::string code;  // badResumptionToken, noRecordsMatch, ...
    std::string message;
};

struct HarvestedItem {
    std::string identifier;
    std::string datestamp;  // as the repository wrote it
    bool deleted = false;
    std::string metadata;   // the metadata's element, standalone; "" if deleted or absent
};

struct ListPage {
    std::vector<HarvestedItem> items;
    std::string resumption_token;  // "" when the list ends here
    long long complete_list_size = -1, cursor = -1;
    std::vector<RemoteError> errors;
    bool HasError(std::string_view code) const;
};

inline constexpr std::size_t kMaxOaiDepth = 64;  // element nesting a response may have

// Reads one ListRecords response (or its error response).
Result<ListPage> ParseListRecords(std::string_view body);

struct IdentifyFacts {
    std::string repository_name, base_url, protocol_version, earliest_datestamp, deleted_record, granularity;
    std::vector<std::string> admin_emails, compression;
    std::string repository_identifier;  // from an oai-identifier description, if any
};
Result<IdentifyFacts> ParseIdentify(std::string_view body);

struct FormatFacts {
    std::string prefix, schema, ns;
};
Result<std::vector<FormatFacts>> ParseListMetadataFormats(std::string_view body);

struct SetFacts {
    std::string spec, name;
};
// Sets of one response, and its resumption token ("" at the end). A
// repository without sets answers noSetHierarchy: an empty list, no error.
struct SetsPage {
    std::vector<SetFacts> sets;
    std::string resumption_token;
};
Result<SetsPage> ParseListSets(std::string_view body);

// The record's local id in the library's catalogue, from its OAI
// identifier: the part after the last ':', percent-decoded
// ("oai:koha.example.nl:123" → "123"). Deleted records have only their
// identifier, so it must come from there and not from the MARC 001.
Result<std::string> LocalIdOf(std::string_view identifier);

// A harvested record as the catalogue takes it: its MARCXML metadata
// described (copies by `mapping`), under the local id from its identifier.
// A record without a 001 (OJS, some Koha set-ups) gets that id as its 001,
// since repositories identify records by their identifier, not by 001.
Result<CatalogueRecord> DescribeHarvested(const HarvestedItem& item, const HoldingsMapping& mapping,
                                          std::string_view library);

// `stamp` as a `from` the repository takes: its day at day granularity
// ("2026-12-06T10:11:12Z" → "2026-12-06"), whole seconds otherwise.
std::string AtGranularity(std::string_view stamp, std::string_view granularity);

}  // namespace iblsync::protocols::oai
