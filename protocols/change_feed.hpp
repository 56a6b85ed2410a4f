#pragma once
// What one node reads from another's change feed (GET /v1/changes with
// embed=records) and digest (GET /v1/digest), as plain values. The feed page
// carries, besides the change rows, the current state of every record the
// rows touch (content and complete copy list, or deleted) and the libraries
// they belong to, all read in one snapshot: applying that state is
// idempotent, so a page applied twice changes nothing the second time.

#include <string>
#include <string_view>
#include <vector>

#include "protocols/holdings.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols::feed {

struct Change {
    long long seq = 0;
    std::string at;  // RFC 3339 UTC, when the peer committed it
    std::string entity, op, library, local_id, record_local_id;
};

struct RecordState {
    std::string library, local_id;
    bool deleted = false;
    std::string format, raw;        // "iso2709", "marcxml" or "json"; empty when deleted
    std::vector<Holding> holdings;  // all the record's copies
};

struct Library {
    std::string isil, name, province, poi;  // poi: the POI node that serves it (never empty in a feed)
};

struct Page {
    std::vector<Change> changes;
    std::vector<RecordState> records;
    std::vector<Library> libraries;
    long long next_since = 0, head = 0;
};

struct Limits {
    std::size_t max_changes = 10000;
    std::size_t max_record_bytes = 1 << 20;
};

// Checks everything a writer relies on: ISILs in canonical form, statuses,
// formats, due dates, ids within their lengths, next_since not behind the
// last change. The error names the member (a JSON pointer) at fault.
Result<Page> ParsePage(std::string_view json, const Limits& limits = {});

// --- digests: counts and order-independent sums, per library -------------

struct LibraryDigest {
    std::string isil;
    long long records = 0, holdings = 0;
    std::string records_sum, holdings_sum;  // decimal sums of 60-bit hashes
    bool operator==(const LibraryDigest&) const = default;
};

struct RecordDigest {
    std::string local_id, checksum, holdings_sum;
    long long holdings = 0;
    bool operator==(const RecordDigest&) const = default;
};

struct Digest {
    std::vector<LibraryDigest> libraries;  // sorted by ISIL
    std::vector<RecordDigest> records;     // with library=: that library's live records, sorted by id
};

Result<Digest> ParseDigest(std::string_view json);

struct Difference {
    std::string library;
    std::string what;  // "only here", "only at the peer", "records 10 here, 9 at the peer", ...
};
// Compares two per-library digests (both sorted by ISIL).
std::vector<Difference> Compare(const std::vector<LibraryDigest>& here, const std::vector<LibraryDigest>& peer);
// The local ids whose record or copies differ, at most `limit`.
std::vector<std::string> CompareRecords(const std::vector<RecordDigest>& here, const std::vector<RecordDigest>& peer,
                                        std::size_t limit, std::size_t* total = nullptr);

}  // namespace iblsync::protocols::feed
