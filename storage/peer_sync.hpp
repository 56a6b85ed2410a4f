#pragma once
// Node-to-node synchronisation: the national node aggregates each POI's
// change feed, and POI nodes follow the national node's feed for the rest of
// the country. A peer page is applied in one transaction with the peer's
// cursor. Each peer may write only the libraries it serves: at the national
// node a POI peer writes the libraries whose POI it is; at a POI node the
// national peer writes every library but the POI's own. So a POI's own
// changes coming back from the national node are refused, and nothing loops.

#include <optional>
#include <string>
#include <vector>

#include "protocols/change_feed.hpp"
#include "storage/catalogue_writer.hpp"

namespace iblsync::storage {

class Database;

enum class PeerDirection {
    kAggregate,  // the peer is a POI; we are the national node
    kFollow,     // the peer is the national node; we are a POI
};
const char* ToString(PeerDirection direction);

struct PeerSpec {  // what the config says about a peer
    std::string name, url, isil;
    PeerDirection direction = PeerDirection::kAggregate;
};

// Makes sync_peer agree with the config. A peer whose ISIL changed starts
// again from the beginning of its feed (a cursor belongs to one feed).
void SyncPeers(Database& db, const std::vector<PeerSpec>& peers);

struct PeerCursor {
    long long cursor = 0;
    bool paused = false;
};
std::optional<PeerCursor> ReadPeerCursor(Database& db, const std::string& peer);

// One record state of a page, described for the merge.
struct PeerRecord {
    std::string library;
    RecordChange change;  // an upsert carries the record's complete copy list (holdings_given)
};

struct PeerPage {
    long long expected_cursor = 0;  // where the caller read from
    long long next_cursor = 0;
    long long peer_head = 0;
    long long changes = 0;           // change rows the page held
    std::string last_change_at;      // the peer's commit time of the last row ("" if none)
    std::vector<protocols::feed::Library> libraries;
    std::vector<PeerRecord> records;
};

struct PeerApplied {
    ImportSummary summary;
    long long refused = 0;                  // record states of libraries the peer does not serve
    std::vector<std::string> refused_libraries;
    std::vector<std::string> registered;    // libraries first seen in this page and registered
};

// Applies a page and moves the cursor, in one transaction. Throws
// PeerConflict if the cursor is not at expected_cursor (another consumer of
// the same database moved it): nothing is written.
PeerApplied ApplyPeerPage(Database& db, const std::string& peer, const PeerPage& page);

// A long-poll that came back empty: the peer is reachable and we are at its head.
void RecordPeerHead(Database& db, const std::string& peer, long long head);
void RecordPeerFailure(Database& db, const std::string& peer, const std::string& error);
bool PausePeer(Database& db, const std::string& peer, bool paused);

struct PeerStatus {
    std::string name, url, isil, direction;
    bool configured = true, paused = false;
    long long cursor = 0, peer_head = 0;
    long long changes_total = 0, records_total = 0, refused_total = 0, errors_total = 0;
    int errors_in_row = 0;
    std::string last_success_at, last_change_at, last_error, last_error_at;
    long long seconds_since_success = -1;  // -1: never
};
std::vector<PeerStatus> PeerStatuses(Database& db);

// --- convergence ---------------------------------------------------------

// Per library: live records and their copies, with order-independent sums
// of hashes of (id, checksum) and of each copy's state. `origin` limits it
// to the libraries a POI serves ("" all).
std::vector<protocols::feed::LibraryDigest> LibraryDigests(Database& db, const std::string& origin);
// One library's live records, sorted by local id.
std::vector<protocols::feed::RecordDigest> RecordDigests(Database& db, const std::string& library);

}  // namespace iblsync::storage
