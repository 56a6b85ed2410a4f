#pragma once
// The incremental write of catalogue_writer.cpp inside a caller's
// transaction, for writers that add their own rows to it (push.cpp: audit,
// idempotency). Private to storage/.

#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "storage/catalogue_import.hpp"
#include "storage/catalogue_writer.hpp"

namespace iblsync::storage::detail {

// Takes the library's write lock (the one bulk loads take) until the commit.
void LockLibrary(pqxx::work& tx, const std::string& library);

// Throws DatabaseError (sqlstate IBL01) if `library` is not registered.
void RequireLibrary(pqxx::work& tx, const std::string& library);

// Stages and merges `changes` (the lock must be held); does not commit.
BatchResult ApplyChanges(pqxx::work& tx, const std::string& library, const std::vector<RecordChange>& changes);

// Records a drop's file as loaded (file_drop_load, and the drop's state),
// in the transaction of the load that took it (file_drop.cpp).
void RecordDropFileLoaded(pqxx::work& tx, const DropFile& file, long long inserted, long long updated,
                          long long deleted, long long first_seq, long long last_seq);

}  // namespace iblsync::storage::detail
