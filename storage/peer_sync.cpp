#include "storage/peer_sync.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/merge.hpp"
#include "storage/detail/sql.hpp"
#include "storage/detail/write.hpp"
#include "storage/errors.hpp"

namespace iblsync::storage {
namespace {

using detail::kIsoUtc;

// 60 bits of an md5, as a bigint: summed, they give a digest that does not
// depend on row order, so both nodes can compute it in one pass.
std::string Hash60(const std::string& expr) {
    return fmt::format("('x' || substr(md5({}), 1, 15))::bit(60)::bigint", expr);
}
const std::string kRecordHash = Hash60("b.local_id || E'\\x1f' || b.checksum");
const std::string kHoldingHash =
    Hash60("h.barcode || E'\\x1f' || b.local_id || E'\\x1f' || h.status || E'\\x1f' || coalesce(h.due_date::text, '')"
           " || E'\\x1f' || coalesce(h.branch, '') || E'\\x1f' || coalesce(h.shelfmark, '')");

void Add(ImportSummary& to, const ImportSummary& s) {
    to.received += s.received;
    to.inserted += s.inserted;
    to.updated += s.updated;
    to.unchanged += s.unchanged;
    to.deleted += s.deleted;
    to.holdings_inserted += s.holdings_inserted;
    to.holdings_updated += s.holdings_updated;
    to.holdings_deleted += s.holdings_deleted;
    to.works_created += s.works_created;
    to.works_merged += s.works_merged;
    to.records_moved += s.records_moved;
    if (s.first_seq && !to.first_seq) to.first_seq = s.first_seq;
    if (s.last_seq) to.last_seq = s.last_seq;
}

}  // namespace

const char* ToString(PeerDirection d) { return d == PeerDirection::kAggregate ? "aggregate" : "follow"; }

void SyncPeers(Database& db, const std::vector<PeerSpec>& peers) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "sync peers");
        detail::ArrayLiteral names;
        for (const auto& p : peers) {
            names.Add(p.name);
            tx.exec_params(
                "INSERT INTO sync_peer AS p (name, url, peer_isil, direction) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (name) DO UPDATE SET configured = true, url = EXCLUDED.url,"
                "  peer_isil = EXCLUDED.peer_isil, direction = EXCLUDED.direction,"
                "  cursor = CASE WHEN p.peer_isil = EXCLUDED.peer_isil THEN p.cursor ELSE 0 END,"
                "  peer_head = CASE WHEN p.peer_isil = EXCLUDED.peer_isil THEN p.peer_head ELSE 0 END",
                p.name, p.url, p.isil, ToString(p.direction));
        }
        tx.exec_params("UPDATE sync_peer SET configured = false WHERE NOT (name = ANY($1::text[]))", names.Done());
        tx.commit();
        return 0;
    });
}

std::optional<PeerCursor> ReadPeerCursor(Database& db, const std::string& peer) {
    return db.Pool().With([&](pqxx::connection& c) -> std::optional<PeerCursor> {
        pqxx::read_transaction tx(c, "peer cursor");
        auto r = tx.exec_params("SELECT cursor, paused FROM sync_peer WHERE name = $1", peer);
        if (r.empty()) return std::nullopt;
        return PeerCursor{r[0][0].as<long long>(), r[0][1].as<bool>()};
    });
}

PeerApplied ApplyPeerPage(Database& db, const std::string& peer, const PeerPage& page) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "peer page");
        const auto me = tx.exec_params(
            "SELECT p.cursor, p.direction, p.peer_isil, n.isil FROM sync_peer p, node_identity n WHERE p.name = $1"
            " FOR UPDATE OF p",
            peer);
        if (me.empty()) throw PeerConflict(fmt::format("peer {} is not registered", peer));
        if (me[0][0].as<long long>() != page.expected_cursor)
            throw PeerConflict(fmt::format("peer {}: the cursor is at {}, not {}", peer, me[0][0].as<long long>(),
                                           page.expected_cursor));
        const bool aggregate = me[0][1].as<std::string>() == "aggregate";
        const std::string peer_isil = me[0][2].as<std::string>();
        const std::string self = me[0][3].as<std::string>();
        // May this peer write `poi`'s libraries?
        auto serves = [&](const std::string& poi) { return aggregate ? poi == peer_isil : poi != self; };

        std::map<std::string, std::vector<RecordChange>> by_library;
        for (const auto& r : page.records) by_library[r.library];
        detail::ArrayLiteral isils;
        for (const auto& [lib, _] : by_library) isils.Add(lib);
        std::map<std::string, std::string> known;  // library -> the POI serving it, as registered here
        for (const auto& r : tx.exec_params(
                 "SELECT isil, coalesce(poi, (SELECT isil FROM node_identity)) FROM library"
                 " WHERE isil = ANY($1::text[])",
                 isils.Done()))
            known[r[0].as<std::string>()] = r[1].as<std::string>();

        PeerApplied out;
        std::set<std::string> allowed;
        for (auto& [lib, _] : by_library) {
            auto it = known.find(lib);
            if (it == known.end()) {
                // First seen: registered as the peer describes it, if the
                // peer says it serves it (the first claim wins; a later
                // contrary claim by another peer is refused).
                auto info = std::find_if(page.libraries.begin(), page.libraries.end(),
                                         [&](const auto& l) { return l.isil == lib; });
                if (info == page.libraries.end() || !serves(info->poi)) continue;
                tx.exec_params(
                    "INSERT INTO library (isil, name, province, poi) VALUES ($1, $2, NULLIF($3, ''), $4)"
                    " ON CONFLICT (isil) DO NOTHING",
                    lib, info->name, info->province, info->poi);
                tx.exec_params(
                    "INSERT INTO audit_log (library, actor, action, detail) VALUES ($1, $2, 'library.add', $3)", lib,
                    "peer:" + peer, fmt::format("name={} province={} poi={}", info->name, info->province, info->poi));
                out.registered.push_back(lib);
                allowed.insert(lib);
            } else if (serves(it->second)) {
                allowed.insert(lib);
            }
        }
        for (const auto& r : page.records) {
            if (allowed.count(r.library)) by_library[r.library].push_back(r.change);
            else ++out.refused;
        }
        for (const auto& [lib, changes] : by_library)
            if (!allowed.count(lib)) out.refused_libraries.push_back(lib);

        // All library locks first, in ISIL order (std::map), before the
        // merge takes the catalogue-wide one: a pusher holds one library
        // lock and then the catalogue lock, so this order cannot deadlock.
        for (const auto& lib : allowed) detail::LockLibrary(tx, lib);
        bool staged = false;
        for (const auto& lib : allowed) {
            const auto& changes = by_library[lib];
            if (changes.empty()) continue;
            if (staged) detail::ClearStage(tx);
            Add(out.summary, detail::ApplyChanges(tx, lib, changes).summary);
            staged = true;
        }
        tx.exec_params(
            "UPDATE sync_peer SET cursor = $2::bigint, peer_head = greatest($3::bigint, $2::bigint),"
            " last_success_at = now(), last_change_at = coalesce(NULLIF($4, '')::timestamptz, last_change_at),"
            " changes_total = changes_total + $5::bigint, records_total = records_total + $6::bigint,"
            " refused_total = refused_total + $7::bigint, errors_in_row = 0 WHERE name = $1",
            peer, page.next_cursor, page.peer_head, page.last_change_at, page.changes,
            static_cast<long long>(page.records.size()) - out.refused, out.refused);
        tx.commit();
        return out;
    });
}

void RecordPeerHead(Database& db, const std::string& peer, long long head) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "peer head");
        tx.exec_params(
            "UPDATE sync_peer SET peer_head = $2, last_success_at = now(), errors_in_row = 0 WHERE name = $1", peer,
            head);
        tx.commit();
        return 0;
    });
}

void RecordPeerFailure(Database& db, const std::string& peer, const std::string& error) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "peer failure");
        tx.exec_params(
            "UPDATE sync_peer SET errors_in_row = errors_in_row + 1, errors_total = errors_total + 1,"
            " last_error = $2, last_error_at = now() WHERE name = $1",
            peer, error.substr(0, 1000));
        tx.commit();
        return 0;
    });
}

bool PausePeer(Database& db, const std::string& peer, bool paused) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "peer pause");
        auto r = tx.exec_params("UPDATE sync_peer SET paused = $2 WHERE name = $1", peer, paused);
        tx.commit();
        return r.affected_rows() > 0;
    });
}

std::vector<PeerStatus> PeerStatuses(Database& db) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "peer status");
        std::vector<PeerStatus> out;
        auto ts = [](const char* col) {
            return fmt::format("coalesce(to_char({} AT TIME ZONE 'UTC', '{}'), '')", col, kIsoUtc);
        };
        for (const auto& r : tx.exec(fmt::format(
                 "SELECT name, url, peer_isil, direction, configured, paused, cursor, peer_head, changes_total,"
                 " records_total, refused_total, errors_total, errors_in_row, {}, {}, coalesce(last_error, ''), {},"
                 " coalesce(extract(epoch FROM now() - last_success_at)::bigint, -1)"
                 " FROM sync_peer ORDER BY name",
                 ts("last_success_at"), ts("last_change_at"), ts("last_error_at")))) {
            PeerStatus s;
            s.name = r[0].as<std::string>();
            s.url = r[1].as<std::string>();
            s.isil = r[2].as<std::string>();
            s.direction = r[3].as<std::string>();
            s.configured = r[4].as<bool>();
            s.paused = r[5].as<bool>();
            s.cursor = r[6].as<long long>();
            s.peer_head = r[7].as<long long>();
            s.changes_total = r[8].as<long long>();
            s.records_total = r[9].as<long long>();
            s.refused_total = r[10].as<long long>();
            s.errors_total = r[11].as<long long>();
            s.errors_in_row = r[12].as<int>();
            s.last_success_at = r[13].as<std::string>();
            s.last_change_at = r[14].as<std::string>();
            s.last_error = r[15].as<std::string>();
            s.last_error_at = r[16].as<std::string>();
            s.seconds_since_success = r[17].as<long long>();
            out.push_back(std::move(s));
        }
        return out;
    });
}

std::vector<protocols::feed::LibraryDigest> LibraryDigests(Database& db, const std::string& origin) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c, "digests");
        std::vector<protocols::feed::LibraryDigest> out;
        for (const auto& r : tx.exec_params(
                 fmt::format("WITH r AS (SELECT b.library, count(*) AS n, sum({}) AS s FROM bib_record b"
                             "  WHERE NOT b.deleted GROUP BY b.library),"
                             " h AS (SELECT h.library, count(*) AS n, sum({}) AS s FROM holding h"
                             "  JOIN bib_record b ON b.id = h.record_id GROUP BY h.library)"
                             " SELECT l.isil, coalesce(r.n, 0), coalesce(r.s, 0)::text, coalesce(h.n, 0),"
                             "  coalesce(h.s, 0)::text"
                             " FROM library l LEFT JOIN r ON r.library = l.isil LEFT JOIN h ON h.library = l.isil"
                             " WHERE $1 = '' OR coalesce(l.poi, (SELECT isil FROM node_identity)) = $1"
                             " ORDER BY l.isil",
                             kRecordHash, kHoldingHash),
                 origin))
            out.push_back({r[0].as<std::string>(), r[1].as<long long>(), r[3].as<long long>(),
                           r[2].as<std::string>(), r[4].as<std::string>()});
        return out;
    });
}

std::vector<protocols::feed::RecordDigest> RecordDigests(Database& db, const std::string& library) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "record digests");
        std::vector<protocols::feed::RecordDigest> out;
        for (const auto& r : tx.exec_params(
                 fmt::format("SELECT b.local_id, b.checksum, count(h.id), coalesce(sum({}) FILTER"
                             " (WHERE h.id IS NOT NULL), 0)::text"
                             " FROM bib_record b LEFT JOIN holding h ON h.record_id = b.id"
                             " WHERE b.library = $1 AND NOT b.deleted GROUP BY b.id ORDER BY b.local_id",
                             kHoldingHash),
                 library))
            out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[3].as<std::string>(),
                           r[2].as<long long>()});
        return out;
    });
}

}  // namespace iblsync::storage
