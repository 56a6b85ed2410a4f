#pragma once
// Small helpers for writing statements with libpqxx 6.4. Private to storage/.

#include <optional>
#include <string>

#include <pqxx/pqxx>

namespace iblsync::storage::detail {

// to_char() format of timestamps in status rows: ISO 8601, UTC, seconds.
inline constexpr const char* kIsoUtc = "YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"";

// A PostgreSQL array literal of text elements, to pass a whole batch as one
// bound parameter ($1::text[], $2::bigint[] …). nullopt becomes NULL; every
// other element is quoted, so "" stays an empty string.
class ArrayLiteral {
public:
    ArrayLiteral& Add(const std::optional<std::string>& v) {
        if (out_.size() > 1) out_ += ',';
        if (!v) {
            out_ += "NULL";
            return *this;
        }
        out_ += '"';
        for (char c : *v) {
            if (c == '"' || c == '\\') out_ += '\\';
            out_ += c;
        }
        out_ += '"';
        return *this;
    }
    ArrayLiteral& Add(long long v) { return Add(std::optional<std::string>(std::to_string(v))); }
    std::string Done() const { return out_ + "}"; }

private:
    std::string out_ = "{";
};

// Runs `sql` as the prepared statement `name` on this transaction's
// connection: parsed and planned once per connection, not per call. libpqxx
// registers it with the server on first use and again after a reconnect.
template <class... Args>
pqxx::result ExecPrepared(pqxx::transaction_base& tx,
                          const char* name,
                          const char* sql,
                          Args&&... args) {
    tx.conn().prepare(name, sql);  // a repeat with the same text is a lookup
    return tx.exec_prepared(name, std::forward<Args>(args)...);
}

}  // namespace iblsync::storage::detail
