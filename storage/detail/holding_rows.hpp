#pragma once
// Copies (holding rows) read the same way wherever storage returns them:
// the API, the change feed and search. Private to storage/.

#include <string>

#include <pqxx/pqxx>

#include "storage/push.hpp"

namespace iblsync::storage::detail {

// The columns HoldingFrom reads, for the holding table under `alias`.
std::string HoldingColumns(const char* alias);
// The copy in the HoldingColumns columns of `row`, starting at column `at`.
StoredHolding HoldingFrom(const pqxx::row& row, int at);
// A text column; "" for NULL.
std::string Str(const pqxx::field& f);

}  // namespace iblsync::storage::detail
