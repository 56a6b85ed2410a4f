#pragma once
// Reading record files for a bulk load: MARCXML, ISO 2709 and NDJSON (the
// JSON record format), each possibly gzip-compressed, told apart by their
// first byte. `iblctl import` and the daemon's file drops read files through
// this, so that a file loads the same way by hand and from a drop directory.
// Parsing is the protocols' (pure) work; this adds the file and the stream.

#include <functional>
#include <string>

#include "protocols/catalogue_record.hpp"
#include "protocols/holdings.hpp"

namespace iblsync::storage {

// A record that was rejected, or kept with a warning.
struct RecordNote {
    long long offset = 0;  // byte offset of the record in the (uncompressed) file
    long long index = 0;   // 1-based position of the record in the file
    std::string text;
    bool warning = false;  // true: the record was kept
};

struct RecordFileCounts {
    long long records = 0;   // passed to `add`
    long long rejected = 0;
    long long warnings = 0;
    long long file_bytes = 0;  // of the file as stored (compressed)
};

struct RecordFileSink {
    std::function<void(protocols::CatalogueRecord&&)> add;
    std::function<void(const RecordNote&)> note;  // optional
    // Called after each record with the compressed bytes read so far; optional.
    std::function<void(long long records, long long file_bytes)> progress;
};

// Reads `path` and passes its records, described for `library` with
// `mapping` (MARC records; JSON records carry their copies themselves), to
// the sink. Returns "" when the file was read to its end, else why not
// (cannot open, truncated gzip, read error): the caller should then not
// commit what it was given.
std::string ReadRecordFile(const std::string& path, const protocols::HoldingsMapping& mapping,
                           const std::string& library, const RecordFileSink& sink, RecordFileCounts& counts);

}  // namespace iblsync::storage
