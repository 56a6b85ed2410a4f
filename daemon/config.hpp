#pragma once
// iblsyncd's configuration, read from one TOML file. Every setting is listed
// once in the table in config.cpp with its type, default and whether SIGHUP
// can change it; systemd/iblsyncd.toml.example documents them for operators.

#include <cstdint>
#include <string>
#include <vector>

#include "protocols/result.hpp"

namespace iblsync::daemon {

enum class Role { kPoi, kNational };
const char* RoleName(Role role);

struct ListenAddress {
    std::string host;  // an IP literal: 127.0.0.1, ::1, 0.0.0.0
    std::uint16_t port = 0;
    std::string ToString() const;  // "127.0.0.1:8080", "[::1]:8080"
};

// One [[harvest]] table: an SRU server to harvest one library's records from.
struct HarvestSource {
    std::string name;     // [a-z0-9][a-z0-9_-]*, unique; iblctl sync names it
    std::string library;  // ISIL, canonical
    std::string url;      // SRU or OAI-PMH base URL, http://
    std::string protocol = "sru";  // type: "sru" or "oai"
    std::string metadata_prefix = "marc21";  // OAI-PMH: the format asked for (MARCXML inside)
    std::string set;                         // OAI-PMH: a setSpec to harvest; "" for the whole repository
    std::string version = "1.2";
    std::string record_schema = "marcxml";
    std::string query = "cql.allRecords=1";  // a full run
    std::string incremental_query;           // with {since}; empty: every run is full
    int page_size = 100;
    int concurrency = 1;                     // pages asked for at once, each on its own connection
    int interval_minutes = 60;               // between the starts of runs
    int full_interval_hours = 168;           // a full run (deletions) at least this often; 0: only on request
    int timeout_seconds = 30;                // per page: connect, send, answer
    int retry_max_seconds = 300;             // longest wait between retries of a failing source
    int max_delete_percent = 50;             // a full run deleting more of the library is held back
    std::uint64_t max_page_bytes = 64 << 20;
    std::string username, password;          // HTTP Basic credentials; both or neither
    int line = 0;                            // where it is in the file, for messages
    bool operator==(const HarvestSource&) const = default;
};

// One [[peer]] table: another node whose change feed this one applies. At
// the national node every POI node is a peer; a POI node has the national
// node as its one peer.
struct Peer {
    std::string name;   // as for [[harvest]]; iblctl sync names it
    std::string isil;   // the peer node's ISIL (its [node] isil)
    std::string url;    // the peer's base URL, http://host:port
    std::string token;  // an API token issued on the peer (iblctl token issue), sent as Bearer
    int page_size = 500;        // changes per request (the peer caps it at its api.max_changes)
    int wait_seconds = 25;      // long-poll: how long the peer holds a request without changes
    int timeout_seconds = 60;   // per request, on top of wait_seconds
    int retry_max_seconds = 60; // longest wait between retries of a failing peer
    std::uint64_t max_page_bytes = 256ULL << 20;
    // follow = "availability": a POI node keeps the other provinces' records
    // brief (what works and descriptions need) with all their copies, not
    // whole (follow = "all", the default).
    bool brief = false;
    int line = 0;
    bool operator==(const Peer&) const = default;
};

// One [[drop]] table: a directory where a library's system leaves exports
// (MARCXML, ISO 2709 or NDJSON, gzip or not), each loaded like `iblctl import`
// and then moved to done/ or failed/ beside a report.
struct FileDrop {
    std::string name;       // as for [[harvest]]; iblctl sync names it
    std::string library;    // ISIL, canonical
    std::string directory;  // absolute; done/ and failed/ are made inside it
    bool full = false;      // mode = "full": each file is the whole catalogue (what it lacks is deleted)
    int poll_seconds = 10;  // how often the directory is looked at
    int settle_seconds = 5; // a file is taken once it has not changed for this long
    int max_delete_percent = 50;  // a full file deleting more of the library goes to failed/
    int line = 0;
    bool operator==(const FileDrop&) const = default;
};

// One [[ibl_peer]] table: another POI node that IBL requests go to (its
// libraries lend to ours) or come from. ISO 18626 messages for the
// libraries it serves (library.poi = isil) are POSTed to url + /iso18626.
struct IblPeer {
    std::string name;   // as for [[harvest]]
    std::string isil;   // the peer node's ISIL (its [node] isil)
    std::string url;    // the peer's base URL, http://host:port
    std::string token;  // issued on the peer for this node's ISIL (iblctl token issue)
    int timeout_seconds = 10;     // per message: connect, send, confirmation
    int retry_max_seconds = 300;  // longest wait between tries of a message the peer did not confirm
    int line = 0;
    bool operator==(const IblPeer&) const = default;
};

// One [[ibl_tariff]] table: what a finished IBL transaction costs the
// requesting library (and brings the lender), by the lender's and the
// requester's province. The most specific match wins.
struct IblTariff {
    std::string name;                  // optional, for people
    std::string from = "*", to = "*";  // the lender's and the requester's province, or "*"
    std::string kind = "loan";         // loan (the item came back) or lost (CompletedWithoutReturn)
    long long cents = 0;               // amount = "3.50" (euros)
    int line = 0;
    bool operator==(const IblTariff&) const = default;
};

struct Config {
    std::string path;  // the file it was read from

    // [node]
    Role role = Role::kPoi;
    std::string isil;                    // canonical, upper case
    std::string name;                    // defaults to the ISIL
    std::vector<std::string> provinces;  // ISO 3166-2:NL codes; a POI needs at least one

    // [http]
    std::vector<ListenAddress> http_listen{{"127.0.0.1", 8080}};
    std::uint64_t max_body_bytes = 1 << 20;
    std::uint64_t max_header_bytes = 16 << 10;
    int request_timeout_seconds = 30;
    int idle_timeout_seconds = 60;
    int max_connections = 512;
    int shutdown_timeout_seconds = 20;
    std::vector<ListenAddress> tls_listen;  // HTTPS listeners; empty: none
    std::string tls_certificate;            // PEM chain, leaf first
    std::string tls_private_key;            // PEM

    // [api]
    int api_max_batch_items = 1000;
    std::uint64_t api_max_record_bytes = 1 << 20;
    int api_rate_per_second = 200;  // requests per token; 0: no limit
    int api_rate_burst = 400;
    int api_max_wait_seconds = 60;  // longest long-poll of /v1/changes
    int api_max_changes = 1000;     // largest page of /v1/changes
    int api_keep_changes_days = 90;        // change_log retention; 0: keep all
    int api_keep_idempotency_hours = 24;   // how long a retry gets the first answer

    // [sru]
    std::string sru_path = "/sru";        // where the SRU server answers
    int sru_default_records = 10;         // maximumRecords when a request gives none
    int sru_max_records = 100;            // most records in one response
    int sru_exact_count = 1000;           // counted exactly up to this; estimated above
    std::string sru_title;                // explain's database title; default from the node name

    // [oai]
    std::string oai_path = "/oai";           // where the OAI-PMH provider answers
    int oai_page_size = 100;                 // records (or headers) per list response
    std::string oai_repository_name;         // Identify's name; default from the node name
    std::string oai_repository_identifier;   // in every OAI identifier; default from the node's ISIL
    std::vector<std::string> oai_admin_email;  // Identify's adminEmail; default iblsync@<repository identifier>
    std::vector<std::string> oai_excluded_libraries;  // libraries whose records the provider leaves out

    // [ibl]
    int ibl_anonymise_after_days = 30;  // finished requests lose the patron reference after this
    int ibl_answer_within_minutes = 2880;  // a lender silent this long is passed over; 0: never
    int ibl_max_open_per_library = 0;      // open requests a library may have; 0: no limit
    int ibl_max_open_per_patron = 0;       // ... one patron reference of it
    int ibl_max_open_per_lender = 0;       // a lender with this many open requests from here is skipped
    std::vector<std::string> ibl_excluded_lenders;  // never asked
    std::string ibl_last_resort;                    // asked last, or when nobody else has a copy
    int ibl_confirm_after_minutes = 60;  // another node's copy older than this is confirmed live; 0: never

    // [database]
    std::string db_conninfo;
    int db_pool_size = 4;

    // [control]
    std::string control_socket = "/run/iblsync/control.sock";
    std::string control_group = "iblsync";  // empty: only root and the daemon's own user

    // [log]
    std::string log_level = "info";

    // [[harvest]], in file order
    std::vector<HarvestSource> harvest;
    // [[peer]], in file order
    std::vector<Peer> peers;
    // [[drop]], in file order
    std::vector<FileDrop> drops;
    // [[ibl_peer]], in file order
    std::vector<IblPeer> ibl_peers;
    // [[ibl_tariff]], in file order
    std::vector<IblTariff> ibl_tariffs;
};

// Reads and validates a config file. On failure the message names the file,
// the line and the key: "/etc/iblsync/iblsyncd.toml:12: http.max_body_bytes: ...".
Result<Config> LoadConfig(const std::string& path);

// Parses config text; `path` is used in messages only.
Result<Config> ParseConfig(const std::string& text, const std::string& path);

struct ConfigDiff {
    std::vector<std::string> applied;        // changed keys that a reload takes over
    std::vector<std::string> need_restart;   // changed keys that only a restart takes over
};

// Compares two configs key by key.
ConfigDiff Diff(const Config& before, const Config& after);

// The config a reload leaves in force: `after`'s reloadable settings on top of
// `before`'s restart-only settings, and the harvest sources `after` adds.
Config MergeReloadable(const Config& before, const Config& after);

// The [[harvest]] sources in `after` whose names `before` lacks: a reload
// starts them (a source changed or removed waits for a restart).
std::vector<HarvestSource> AddedHarvestSources(const Config& before, const Config& after);

// `text` (the config file at `path`) with `source` appended as a [[harvest]]
// table, checked as the node reads it (iblctl source add). Errors in the
// new table name its key ("harvest[3].url: ..."); a name already in use
// names the table that has it.
Result<std::string> WithHarvestSource(const std::string& text, const std::string& path, const HarvestSource& source);

}  // namespace iblsync::daemon
