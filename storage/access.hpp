#pragma once
// Who may write: the registered libraries, their API tokens, and the audit
// log of administrative actions. A token is "iblt_<id>_<secret>"; the
// database keeps only SHA-256(secret), and a presented token is checked
// against it in constant time.

#include <optional>
#include <string>
#include <vector>

namespace iblsync::storage {

class Database;

struct Library {
    std::string isil;
    std::string name;
    std::string province;  // "" if none
    std::string poi;       // "" if none
    std::string holdings_mapping;  // how its MARC records carry copies (preset or spec); "" for the default, none
    bool enabled = true;
    long long records = 0;  // live records
    long long copies = 0;
    long long live_tokens = 0;
    long long pushes = 0;
    std::string last_push_at;  // RFC 3339 UTC, "" if never
    std::string created_at;
};

struct IssuedToken {
    long long id = 0;
    std::string library;
    std::string token;  // the whole secret token: shown once, never stored
    std::vector<long long> revoked;  // by a rotation: the tokens it replaced (after the grace period)
};

struct TokenIdentity {
    long long token_id = 0;
    std::string library;
    bool library_enabled = true;
    std::string holdings_mapping;  // how the library's MARC records carry copies
};

// Who did an administrative action, for the audit log ("control:uid=0").
struct Actor {
    std::string name;
};

// Adds a library (canonical ISIL, name, optional province and POI). Throws
// DatabaseError with sqlstate "IBL02" if it exists already.
void AddLibrary(Database& db, const Library& library, const Actor& actor);
std::vector<Library> ListLibraries(Database& db);
// Only isil, pushes and last_push_at, without counting records and copies
// (for `iblctl status`, which must stay cheap on a large catalogue).
std::vector<Library> ListPushes(Database& db);
std::optional<Library> GetLibrary(Database& db, const std::string& isil);
// Enables or disables a library: a disabled library's tokens are refused
// (its records stay in the catalogue). Returns false if it is not registered.
bool SetLibraryEnabled(Database& db, const std::string& isil, bool enabled, const Actor& actor);

// A new token for a registered library (sqlstate "IBL01" if it is not).
IssuedToken IssueToken(Database& db, const std::string& isil, const std::string& label, const Actor& actor);
// Issues a new token and revokes the library's other live tokens: at once,
// or (grace_seconds > 0) at that time from now, so that the library system
// can switch without a moment in which neither token works.
IssuedToken RotateToken(Database& db, const std::string& isil, int grace_seconds, const Actor& actor);
// Revokes one token (token_id > 0) or all of the library's tokens; returns
// how many were live.
long long RevokeTokens(Database& db, const std::string& isil, long long token_id, const Actor& actor);

// The library a presented token belongs to, or nullopt if it is malformed,
// unknown, revoked or wrong. Never says which of these.
std::optional<TokenIdentity> Authenticate(Database& db, const std::string& token);

}  // namespace iblsync::storage
