#pragma once
// The state of file drops (daemon/file_drop.hpp): per drop directory, what
// `iblctl sync status` shows, and per file taken, one file_drop_load row.
// A loaded file's row is written by the load itself
// (CatalogueImport::RecordAsDropFile); the functions here write the rest.

#include <string>
#include <vector>

namespace iblsync::storage {

class Database;

struct FileDropSpec {  // what the config says about a drop
    std::string name;
    std::string library;
    std::string directory;
};

// Makes file_drop agree with the config; drops no longer configured are
// marked so (their state is kept).
void SyncFileDrops(Database& db, const std::vector<FileDropSpec>& drops);

// Whether this file (same name, size and modification time) was loaded
// already: a node stopped between the commit and moving the file away finds
// it again.
bool DropFileLoaded(Database& db, const std::string& drop, const std::string& file, long long size,
                    long long mtime);

// A file that cannot be loaded (unreadable, no records, too many deletions):
// recorded as failed and counted.
void RecordDropFileFailed(Database& db, const std::string& drop, const std::string& file, long long size,
                          long long mtime, long long records, long long rejected, const std::string& why);

// A failure of the drop itself (database down, library not registered): the
// file stays where it is and is tried again.
void RecordDropError(Database& db, const std::string& drop, const std::string& why);

// The drop's own failure is over (its directory is there again and nothing
// waits): it is no longer failing.
void ClearDropError(Database& db, const std::string& drop);

// iblctl sync pause|resume. False if there is no such drop.
bool PauseFileDrop(Database& db, const std::string& drop, bool paused);

struct FileDropStatus {
    std::string name, library, directory;
    bool configured = true, paused = false;
    std::string last_success_at, last_file, last_error, last_error_at;
    long long files_loaded = 0, files_failed = 0, records_total = 0, errors_total = 0;
    int errors_in_row = 0;
    long long seconds_since_success = -1;  // -1: never
};
std::vector<FileDropStatus> FileDropStatuses(Database& db);

}  // namespace iblsync::storage
