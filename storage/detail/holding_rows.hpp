#pragma once
// Copies (holding rows) read the same way wherever storage returns them:
// the API, the change feed, search and exports; and where the change log
// stands. Private to storage/.

#include <string>

#include <pqxx/pqxx>

#include "storage/push.hpp"

namespace iblsync::storage::detail {

// The change log's head (last number committed) and its oldest kept number
// (head + 1 when it is empty), read in `tx`'s snapshot: the change feed and
// exports refuse cursors outside them.
struct FeedBounds {
    long long head = 0, oldest = 0;
};
FeedBounds ReadFeedBounds(pqxx::transaction_base& tx);

// The columns HoldingFrom reads, for the holding table under `alias`.
std::string HoldingColumns(const char* alias);
// The copy in the HoldingColumns columns of `row`, starting at column `at`.
StoredHolding HoldingFrom(const pqxx::row& row, int at);
// A text column; "" for NULL.
std::string Str(const pqxx::field& f);

}  // namespace iblsync::storage::detail
