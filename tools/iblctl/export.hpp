#pragma once
// `iblctl export`: the catalogue with its copies and their availability, for
// the KB's delivery (Wsob art. 11) or any other full copy: MARCXML with 852
// per copy, or NDJSON; everything live, or what changed after a cursor.
// Like `iblctl import` it reads PostgreSQL directly.

#include <string>

namespace iblsync::iblctl {

struct ExportArgs {
    std::string library;   // ISIL; empty: all
    long long since = -1;  // -1: full
    std::string format = "marcxml";  // or "json"
    std::string out;       // file; empty: stdout
    std::string conninfo;  // --db, else from `config`
    std::string config;
    bool json = false;     // summary as JSON
};

// 0 done, 1 the export failed (no file left behind), 2 usage, 6 cannot write.
int RunExport(const ExportArgs& args);

}  // namespace iblsync::iblctl
