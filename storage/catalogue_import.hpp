#pragma once
// Bulk load of one library's records into the catalogue. Everything happens
// in one transaction. The load first reads the library's stored checksums;
// records it does not have go straight into bib_record with COPY, the others
// into a staging table (an unchanged one without its content), written by a
// thread of its own while the caller parses on. Finish() merges in one
// set-based pass (insert new, update changed by checksum, skip unchanged,
// and with `full` mark records the load no longer contains as deleted),
// assigns works and copies, and writes a change_log row for each change. A crash or
// kill at any point before the commit leaves the catalogue as it was; running
// the same load again changes nothing and logs nothing.

#include <memory>
#include <optional>
#include <string>

#include "protocols/catalogue_record.hpp"

namespace iblsync::storage {

struct ImportOptions {
    std::string library;  // ISIL, canonical
    bool full = false;    // the load is the library's whole catalogue
    // What the loader's indexes (the library's checksums and barcodes, the
    // load's local ids and match keys) may take, in bytes. When they would
    // need more, the rest of the load is staged and merged the general way:
    // slower, but with no memory per record, so that a file of any size loads
    // in bounded memory.
    std::size_t index_memory = 192u << 20;
    // With `full`: a load that would delete more than this share of the
    // library's live records is not committed (DeletionsRefused). 100: no limit.
    int max_delete_percent = 100;
};

// A file of a drop directory (daemon/file_drop.hpp), recorded in
// file_drop_load and in the drop's state by the load that takes it.
struct DropFile {
    std::string drop;  // the drop's name
    std::string file;  // its name in the directory
    long long size = 0, mtime = 0;
    long long records = 0, rejected = 0;  // as read from the file
};

struct ImportSummary {
    long long received = 0;   // records passed to Add()
    long long duplicates = 0; // the same local id more than once (the last one counts)
    long long inserted = 0;
    long long updated = 0;
    long long unchanged = 0;
    long long deleted = 0;
    long long holdings_inserted = 0;
    long long holdings_updated = 0;
    long long holdings_deleted = 0;
    long long works_created = 0;
    long long works_merged = 0;
    long long records_moved = 0;  // records whose work changed
    long long first_seq = 0;  // change_log range written, 0 if none
    long long last_seq = 0;
    // The record from which on the load ran the general way because the
    // indexes reached ImportOptions::index_memory (0 for the first record,
    // when the library's own checksums did not fit); -1 if they did not.
    long long bounded_from = -1;
};

struct LibraryInfo {
    std::string isil;
    std::string name;
    std::string province;          // may be empty
    std::string holdings_mapping;  // empty: leave as is (new libraries: "none")
};

// Registers a library or updates its name/province/holdings mapping (empty
// fields are left as they are; without a name the library must exist).
// Returns true if it was new.
bool UpsertLibrary(const std::string& conninfo, const LibraryInfo& library);
// The library as registered, or nullopt.
std::optional<LibraryInfo> FindLibrary(const std::string& conninfo, const std::string& isil);

class CatalogueImport {
public:
    // Connects, begins the transaction, waits for other loads of the same
    // library (advisory lock) and opens the COPY stream. Throws
    // DatabaseError/DatabaseUnavailable.
    CatalogueImport(const std::string& conninfo, ImportOptions options);
    ~CatalogueImport();  // rolls back unless Finish() committed

    void Add(protocols::CatalogueRecord record);
    // Records the load as the loading of a drop's file, in its transaction.
    void RecordAsDropFile(DropFile file);
    ImportSummary Finish();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace iblsync::storage
