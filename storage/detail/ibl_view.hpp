#pragma once
// How storage/ibl and storage/ibl_admin read an ibl_request row into an
// IblRequestView: the select list and the reader, kept in one place.

#include <string>

#include <pqxx/pqxx>

#include "storage/ibl.hpp"

namespace iblsync::storage::detail {

// The states in which a transaction is finished, for "state NOT IN ...".
inline constexpr const char* kIblClosedStates =
    "('RetryPossible', 'Unfilled', 'CopyCompleted', 'LoanCompleted', 'CompletedWithoutReturn', 'Cancelled')";

// Which of a request's requester rows (one per lender asked) the library
// sees and acts on: one with the item on loan (a lender passed over may
// have shipped all the same), else the current one, else the newest.
inline constexpr const char* kIblRequesterRowOrder =
    "(state IN ('Loaned', 'Overdue', 'Recalled')) DESC, (superseded_by IS NULL) DESC, id DESC";

std::string IblViewColumns();
IblRequestView IblViewOf(const pqxx::row& r);

}  // namespace iblsync::storage::detail
