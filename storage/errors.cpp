#include "storage/errors.hpp"

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/detail/errors.hpp"

namespace iblsync::storage {

DeletionsRefused::DeletionsRefused(long long would_delete, long long live_before, int max_percent)
    : DatabaseError(fmt::format("the full load would delete {} of the library's {} records (more than {}%)",
                                would_delete, live_before, max_percent),
                    "IBL02"),
      would_delete_(would_delete),
      live_before_(live_before) {}

}  // namespace iblsync::storage

namespace iblsync::storage::detail {
namespace {

// SQLSTATEs after which the session is gone or unusable: connection
// exceptions (class 08) and operator intervention (57P01..57P03: shutdown,
// crash shutdown, cannot connect now).
bool IsConnectionLoss(const std::string& sqlstate) {
    return sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

std::string FirstLine(const std::string& s) {
    auto end = s.find('\n');
    return end == std::string::npos ? s : s.substr(0, end);
}

}  // namespace

void RethrowTranslated(const std::function<void(const std::string&)>& on_lost) {
    auto lost = [&](const std::string& why) {
        if (on_lost) on_lost(why);
    };
    try {
        throw;
    } catch (const DatabaseError&) {
        throw;
    } catch (const pqxx::broken_connection& e) {
        lost(e.what());
        throw DatabaseUnavailable(fmt::format("database connection lost: {}", FirstLine(e.what())));
    } catch (const pqxx::in_doubt_error& e) {
        lost(e.what());
        throw DatabaseUnavailable(fmt::format("connection lost during commit; outcome unknown: {}", FirstLine(e.what())));
    } catch (const pqxx::sql_error& e) {
        if (IsConnectionLoss(e.sqlstate())) {
            lost(e.what());
            throw DatabaseUnavailable(fmt::format("database went away: {}", FirstLine(e.what())), e.sqlstate());
        }
        throw DatabaseError(FirstLine(e.what()), e.sqlstate());
    } catch (const pqxx::failure& e) {
        // Other libpqxx failures leave the session in an unknown state.
        lost(e.what());
        throw DatabaseUnavailable(FirstLine(e.what()));
    }
}

}  // namespace iblsync::storage::detail
