#pragma once
// Reading the catalogue out for delivery (`iblctl export`): every live
// record, or every record a change after a cursor touched, each with its
// copies, all read in one snapshot together with the change log's head, so
// that an incremental export from that head continues exactly where this
// one ended. Records are read in batches; memory does not grow with the
// catalogue.

#include <functional>
#include <string>
#include <vector>

#include "storage/push.hpp"

namespace iblsync::storage {

struct ExportFilter {
    std::string library;   // ISIL; "" for all libraries
    long long since = -1;  // -1: everything live; else the records changes after this seq touched
};

struct ExportedRecord {
    std::string library, local_id, format, raw;
    bool deleted = false;
    std::vector<StoredHolding> holdings;
};

struct ExportSummary {
    long long head = 0;  // the change log's head in the export's snapshot: the next --since
    long long records = 0, deleted = 0, copies = 0;
};

// Throws DatabaseError (sqlstate IBL03) when `since` is older than the
// changes still kept (a full export is needed), or beyond the head.
ExportSummary ExportRecords(const std::string& conninfo, const ExportFilter& filter,
                            const std::function<void(const ExportedRecord&)>& each);

}  // namespace iblsync::storage
