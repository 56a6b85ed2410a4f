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

std::string IblViewColumns();
IblRequestView IblViewOf(const pqxx::row& r);

}  // namespace iblsync::storage::detail
