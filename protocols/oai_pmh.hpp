#pragma once
// OAI-PMH 2.0, the pure part of the provider: a request's arguments checked
// as the protocol says (which verb takes which argument, repeated and
// unknown arguments, datestamps at the repository's granularity), the
// stateless resumption token, OAI identifiers and set specs for this
// network, and the XML of responses. No I/O and no SQL.
//
// Datestamps here have seconds granularity (YYYY-MM-DDThh:mm:ssZ); a
// harvester may also give days (YYYY-MM-DD), as the protocol requires every
// repository to accept.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "protocols/result.hpp"

namespace iblsync::protocols::oai {

enum class Verb { kIdentify, kListMetadataFormats, kListSets, kListIdentifiers, kListRecords, kGetRecord };
std::string_view VerbName(Verb verb);

enum class ErrorCode {
    kBadArgument,
    kBadResumptionToken,
    kBadVerb,
    kCannotDisseminateFormat,
    kIdDoesNotExist,
    kNoRecordsMatch,
    kNoMetadataFormats,
    kNoSetHierarchy,
};
std::string_view CodeName(ErrorCode code);

struct OaiError {
    ErrorCode code;
    std::string message;
};

// Seconds since 1970-01-01T00:00:00Z. `day` when it was given as a date.
struct Datestamp {
    long long seconds = 0;
    bool day = false;
};
// "YYYY-MM-DD" or "YYYY-MM-DDThh:mm:ssZ", years 0001 to 9999, real dates.
std::optional<Datestamp> ParseDatestamp(std::string_view text);
std::string FormatDatestamp(long long seconds);  // YYYY-MM-DDThh:mm:ssZ

// A selective list: what ListRecords and ListIdentifiers were asked for, and
// how far the harvester got. It travels in the resumption token, so that a
// list goes on after a restart of the daemon and on any node's replica.
struct ListQuery {
    std::string metadata_prefix;
    std::string set;                         // "" for all
    std::optional<Datestamp> from, until;    // inclusive bounds
    long long after = 0;                     // the position (change sequence) of the last item given
    long long cursor = 0;                    // how many items were given before this page
    long long complete_list_size = -1;       // counted on the first page; -1 unknown
    // The last second the list covers: `until`, or the end of its day.
    long long UntilSeconds() const;
};
std::string EncodeToken(const ListQuery& query);
// nullopt for anything EncodeToken did not make: a changed character, a cut
// token, another version.
std::optional<ListQuery> DecodeToken(std::string_view token);

struct Request {
    Verb verb = Verb::kIdentify;
    std::string identifier;  // GetRecord, ListMetadataFormats
    ListQuery list;          // ListRecords, ListIdentifiers; metadata_prefix also for GetRecord
    bool resumed = false;    // `list` came from a resumptionToken
};

using Params = std::vector<std::pair<std::string, std::string>>;

// The arguments of a GET query or a POSTed form, checked against what the
// verb takes. An error is the one the protocol names for the fault.
std::variant<Request, OaiError> ParseRequest(const Params& params);

// --- identifiers and sets ---------------------------------------------------

// oai:<repository>:<ISIL>:<local id>, the ISIL and the local id
// percent-encoded (an ISIL may hold ':' and '/', a local id anything).
std::string RecordIdentifier(std::string_view repository, std::string_view isil, std::string_view local_id);
// The ISIL and local id of an identifier of this repository; nullopt if it
// is not one.
std::optional<std::pair<std::string, std::string>> ParseRecordIdentifier(std::string_view repository,
                                                                         std::string_view identifier);
// A repository identifier (a domain name, as the oai-identifier scheme
// wants) made from a node's ISIL: "nl-ge-poi.iblsync".
std::string RepositoryIdentifierFor(std::string_view isil);
bool ValidRepositoryIdentifier(std::string_view id);

// Sets: "library", "library:<ISIL>", "province", "province:<code>",
// "poi", "poi:<ISIL>". An ISIL's '/' is written '.' and ':' '_' (a setSpec
// allows neither; an ISIL has neither '.' nor '_').
enum class SetKind { kNone, kLibrary, kProvince, kPoi };
struct SetFilter {
    SetKind kind = SetKind::kNone;
    std::string value;  // ISIL or province code; "" for the whole top-level set
};
std::string SetSpec(SetKind kind, std::string_view value);
std::optional<SetFilter> ParseSetSpec(std::string_view spec);

// --- responses ---------------------------------------------------------------

struct Header {
    std::string identifier;
    long long datestamp = 0;
    bool deleted = false;
    std::vector<std::string> sets;
};

// <OAI-PMH> with responseDate and the request element, then `body`. The
// request element repeats the arguments (`echo`), except after badVerb and
// badArgument, where the protocol wants the base URL alone (pass null).
std::string Response(long long response_date, std::string_view base_url, const Params* echo, std::string_view body);
std::string ErrorResponse(long long response_date, std::string_view base_url, const Params& params,
                          const OaiError& error);

std::string HeaderXml(const Header& header);
// <record> with header and, unless deleted, the metadata XML (one element
// in its own namespace).
std::string RecordXml(const Header& header, std::string_view metadata);
// The resumption token element: with `token` "" the list's last page.
std::string ResumptionTokenXml(std::string_view token, long long complete_list_size, long long cursor);

struct IdentifyInfo {
    std::string repository_name, base_url, repository_identifier;
    std::vector<std::string> admin_emails;
    long long earliest_datestamp = 0;
    std::string sample_local;  // "<isil>:<id>" for the sample identifier
};
std::string IdentifyXml(const IdentifyInfo& info);

struct MetadataFormat {
    std::string prefix, schema, ns;
};
// The formats this provider offers: marc21 (MARC 21 slim with the copies
// in 852) and oai_dc.
const std::vector<MetadataFormat>& Formats();
const MetadataFormat* FindFormat(std::string_view prefix);
std::string ListMetadataFormatsXml(const std::vector<MetadataFormat>& formats);

struct SetInfo {
    std::string spec, name;
};
std::string ListSetsXml(const std::vector<SetInfo>& sets);

}  // namespace iblsync::protocols::oai
