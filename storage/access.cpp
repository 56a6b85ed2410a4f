#include "storage/access.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <charconv>

#include <fmt/format.h>

#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/sql.hpp"
#include "storage/detail/write.hpp"

namespace iblsync::storage {
namespace {

constexpr std::string_view kTokenPrefix = "iblt_";
constexpr std::size_t kSecretBytes = 32;
constexpr std::size_t kSecretChars = 43;  // base64url of 32 bytes, unpadded

std::string Base64Url(const unsigned char* data, std::size_t n) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (std::size_t i = 0; i < n; ++i) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += kAlphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
    return out;
}

std::string Sha256(std::string_view s) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(s.data(), s.size(), digest, &len, EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string NewSecret() {
    unsigned char raw[kSecretBytes];
    if (RAND_bytes(raw, sizeof raw) != 1) throw DatabaseError("the system's random number generator failed");
    return Base64Url(raw, sizeof raw);
}

void Audit(pqxx::work& tx, const std::string& library, const Actor& actor, const std::string& action,
           const std::string& detail) {
    tx.exec_params0("INSERT INTO audit_log (library, actor, action, detail) VALUES ($1, $2, $3, $4)", library,
                    actor.name, action, detail);
}

IssuedToken Issue(pqxx::work& tx, const std::string& isil, const std::string& label) {
    IssuedToken out;
    out.library = isil;
    const std::string secret = NewSecret();
    const std::string hash = Sha256(secret);
    pqxx::binarystring blob(hash);
    out.id = tx.exec_params1("INSERT INTO library_token (library, secret_hash, label) VALUES ($1, $2, $3) RETURNING id",
                             isil, blob, label)[0]
                 .as<long long>();
    out.token = fmt::format("{}{}_{}", kTokenPrefix, out.id, secret);
    return out;
}

Library LibraryFromRow(const pqxx::row& r) {
    Library l;
    l.isil = r[0].as<std::string>();
    l.name = r[1].as<std::string>();
    l.province = r[2].as<std::string>();
    l.poi = r[3].as<std::string>();
    l.enabled = r[4].as<bool>();
    l.records = r[5].as<long long>();
    l.copies = r[6].as<long long>();
    l.live_tokens = r[7].as<long long>();
    l.pushes = r[8].as<long long>();
    l.last_push_at = r[9].as<std::string>();
    l.created_at = r[10].as<std::string>();
    return l;
}

constexpr const char* kLibrarySelect =
    "SELECT l.isil, l.name, coalesce(l.province, ''), coalesce(l.poi, ''), l.enabled,"
    " (SELECT count(*) FROM bib_record b WHERE b.library = l.isil AND NOT b.deleted),"
    " (SELECT count(*) FROM holding h WHERE h.library = l.isil),"
    " (SELECT count(*) FROM library_token t WHERE t.library = l.isil"
    "   AND (t.revoked_at IS NULL OR t.revoked_at > now())),"
    " coalesce(p.pushes, 0),"
    " coalesce(to_char(p.last_push_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
    " to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM library l LEFT JOIN library_push p ON p.library = l.isil";

}  // namespace

void AddLibrary(Database& db, const Library& lib, const Actor& actor) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "libraryadd");
        auto r = tx.exec_params(
            "INSERT INTO library (isil, name, province, poi, holdings_mapping)"
            " VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), coalesce(NULLIF($5, ''), 'none'))"
            " ON CONFLICT (isil) DO NOTHING",
            lib.isil, lib.name, lib.province, lib.poi, lib.holdings_mapping);
        if (r.affected_rows() == 0)
            throw DatabaseError(fmt::format("library {} is registered already", lib.isil), "IBL02");
        Audit(tx, lib.isil, actor, "library.add",
              fmt::format("name={} province={} poi={} holdings={}", lib.name, lib.province, lib.poi,
                          lib.holdings_mapping.empty() ? "none" : lib.holdings_mapping));
        tx.commit();
    });
}

std::vector<Library> ListLibraries(Database& db) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "librarylist");
        std::vector<Library> out;
        for (const auto& r : tx.exec(std::string(kLibrarySelect) + " ORDER BY l.isil")) out.push_back(LibraryFromRow(r));
        return out;
    });
}

std::vector<Library> ListPushes(Database& db) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "librarypushes");
        std::vector<Library> out;
        for (const auto& r : tx.exec(
                 "SELECT l.isil, coalesce(p.pushes, 0),"
                 " coalesce(to_char(p.last_push_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
                 " FROM library l LEFT JOIN library_push p ON p.library = l.isil ORDER BY l.isil")) {
            Library l;
            l.isil = r[0].as<std::string>();
            l.pushes = r[1].as<long long>();
            l.last_push_at = r[2].as<std::string>();
            out.push_back(std::move(l));
        }
        return out;
    });
}

std::optional<Library> GetLibrary(Database& db, const std::string& isil) {
    return db.Pool().With([&](pqxx::connection& c) -> std::optional<Library> {
        pqxx::read_transaction tx(c, "libraryget");
        auto r = tx.exec_params(std::string(kLibrarySelect) + " WHERE l.isil = $1", isil);
        if (r.empty()) return std::nullopt;
        return LibraryFromRow(r[0]);
    });
}

bool SetLibraryEnabled(Database& db, const std::string& isil, bool enabled, const Actor& actor) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "libraryenable");
        auto r = tx.exec_params("UPDATE library SET enabled = $2, updated_at = now() WHERE isil = $1", isil, enabled);
        if (r.affected_rows() == 0) return false;
        Audit(tx, isil, actor, enabled ? "library.enable" : "library.disable", "");
        tx.commit();
        return true;
    });
}

IssuedToken IssueToken(Database& db, const std::string& isil, const std::string& label, const Actor& actor) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "tokenissue");
        detail::RequireLibrary(tx, isil);
        auto out = Issue(tx, isil, label);
        Audit(tx, isil, actor, "token.issue", fmt::format("token_id={} label={}", out.id, label));
        tx.commit();
        return out;
    });
}

IssuedToken RotateToken(Database& db, const std::string& isil, int grace_seconds, const Actor& actor) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "tokenrotate");
        detail::RequireLibrary(tx, isil);
        // Tokens already set to expire keep the earlier of the two times.
        auto old = tx.exec_params(
            "UPDATE library_token SET revoked_at = least(coalesce(revoked_at, 'infinity'),"
            "  now() + make_interval(secs => $2))"
            " WHERE library = $1 AND (revoked_at IS NULL OR revoked_at > now()) RETURNING id",
            isil, grace_seconds);
        auto out = Issue(tx, isil, "rotated");
        for (const auto& r : old) out.revoked.push_back(r[0].as<long long>());
        Audit(tx, isil, actor, "token.rotate",
              fmt::format("token_id={} replaced={} grace_seconds={}", out.id, out.revoked.size(), grace_seconds));
        tx.commit();
        return out;
    });
}

long long RevokeTokens(Database& db, const std::string& isil, long long token_id, const Actor& actor) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "tokenrevoke");
        detail::RequireLibrary(tx, isil);
        auto r = tx.exec_params(
            "UPDATE library_token SET revoked_at = now()"
            " WHERE library = $1 AND ($2 = 0 OR id = $2) AND (revoked_at IS NULL OR revoked_at > now())",
            isil, token_id);
        const long long n = static_cast<long long>(r.affected_rows());
        Audit(tx, isil, actor, "token.revoke", fmt::format("token_id={} revoked={}", token_id == 0 ? "all" : std::to_string(token_id), n));
        tx.commit();
        return n;
    });
}

std::optional<TokenIdentity> Authenticate(Database& db, const std::string& token) {
    // iblt_<id>_<secret>: anything else is refused before the database is asked.
    std::string_view t(token);
    if (t.size() > 64 || t.substr(0, kTokenPrefix.size()) != kTokenPrefix) return std::nullopt;
    t.remove_prefix(kTokenPrefix.size());
    auto sep = t.find('_');
    if (sep == std::string_view::npos || sep == 0 || sep > 18) return std::nullopt;
    long long id = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + sep, id);
    if (ec != std::errc() || end != t.data() + sep || id <= 0) return std::nullopt;
    const std::string_view secret = t.substr(sep + 1);
    if (secret.size() != kSecretChars) return std::nullopt;
    const std::string presented = Sha256(secret);
    return db.Pool().With([&](pqxx::connection& c) -> std::optional<TokenIdentity> {
        // One statement in autocommit: a token is checked on every request.
        pqxx::nontransaction tx(c, "authenticate");
        auto r = detail::ExecPrepared(
            tx, "authenticate",
            "SELECT t.secret_hash, t.library, l.enabled, l.holdings_mapping,"
            " t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'"
            " FROM library_token t JOIN library l ON l.isil = t.library"
            " WHERE t.id = $1 AND (t.revoked_at IS NULL OR t.revoked_at > now())",
            id);
        if (r.empty()) return std::nullopt;
        pqxx::binarystring stored(r[0][0]);
        if (stored.size() != presented.size() ||
            CRYPTO_memcmp(stored.data(), presented.data(), presented.size()) != 0)
            return std::nullopt;
        TokenIdentity who{id, r[0][1].as<std::string>(), r[0][2].as<bool>(), r[0][3].as<std::string>()};
        const bool stale = r[0][4].as<bool>();
        tx.commit();  // ends the nontransaction, so that a transaction can follow
        if (stale) {
            // Once a minute at most: the status page shows it, no request waits for it.
            pqxx::work w(c, "tokenused");
            w.exec_params0("UPDATE library_token SET last_used_at = now() WHERE id = $1", id);
            w.commit();
        }
        return who;
    });
}

}  // namespace iblsync::storage
