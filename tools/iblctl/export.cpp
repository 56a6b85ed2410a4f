#include "tools/iblctl/export.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "protocols/delivery.hpp"
#include "protocols/isil.hpp"
#include "protocols/marcxml.hpp"
#include "storage/errors.hpp"
#include "storage/export.hpp"
#include "tools/iblctl/import.hpp"

namespace iblsync::iblctl {

int RunExport(const ExportArgs& a) {
    std::string library;
    if (!a.library.empty()) {
        auto isil = protocols::NormalizeIsil(a.library);
        if (!isil) {
            std::cerr << "iblctl: --library: " << isil.error() << "\n";
            return 2;
        }
        library = isil.value();
    }
    if (a.format != "marcxml" && a.format != "json") {
        std::cerr << "iblctl: --format: give marcxml or json\n";
        return 2;
    }
    std::string conninfo = a.conninfo;
    if (conninfo.empty()) {
        std::string error;
        conninfo = ConninfoFromConfig(a.config, error);
        if (conninfo.empty()) {
            std::cerr << "iblctl: cannot find the database: " << error << "; pass --config FILE or --db CONNINFO\n";
            return 2;
        }
    }
    // Written under a temporary name and renamed at the end: a file by the
    // export's name is always a complete export.
    const std::string part = a.out.empty() ? "" : a.out + ".part";
    std::ofstream file;
    if (!part.empty()) {
        file.open(part, std::ios::binary | std::ios::trunc);
        if (!file) {
            std::cerr << "iblctl: cannot write " << part << "\n";
            return 6;
        }
    }
    std::ostream& out = part.empty() ? std::cout : file;
    const bool xml = a.format == "marcxml";
    const bool tty = isatty(2);
    const auto start = std::chrono::steady_clock::now();
    auto last = start;
    long long unreadable = 0, written = 0;
    storage::ExportSummary summary;
    try {
        if (xml) out << protocols::marc::MarcXmlCollectionStart();
        storage::ExportFilter filter{library, a.since};
        summary = storage::ExportRecords(conninfo, filter, [&](const storage::ExportedRecord& e) {
            std::vector<protocols::DeliveryCopy> copies;
            for (const auto& h : e.holdings) copies.push_back({h.barcode, h.branch, h.shelfmark, h.status, h.due_date});
            std::optional<protocols::marc::Record> record;
            if (e.deleted) {
                record = protocols::DeletedRecord(e.library, e.local_id);
            } else if (auto marc = protocols::StoredAsMarc(e.format, e.raw)) {
                record = protocols::WithCopies(std::move(marc).value(), e.library, copies);
            } else {
                ++unreadable;
                std::cerr << fmt::format("iblctl: record {} {} cannot be read ({}); left out\n", e.library, e.local_id,
                                         marc.error());
                return;
            }
            if (xml) {
                auto text = protocols::marc::WriteMarcXmlRecord(*record, false);
                if (!text) {
                    ++unreadable;
                    std::cerr << fmt::format("iblctl: record {} {} cannot be written ({}); left out\n", e.library,
                                             e.local_id, text.error());
                    return;
                }
                out << text.value() << '\n';
            } else {
                out << protocols::DeliveryJsonLine(e.library, e.local_id, e.deleted ? nullptr : &*record, copies);
            }
            ++written;
            auto now = std::chrono::steady_clock::now();
            if (now - last > (tty ? std::chrono::milliseconds(200) : std::chrono::seconds(10))) {
                last = now;
                const double secs = std::chrono::duration<double>(now - start).count();
                const std::string line = fmt::format("export: {} records  {:.0f} records/s", written, written / secs);
                if (tty) std::cerr << "\r" << line << "\033[K" << std::flush;
                else std::cerr << line << "\n";
            }
        });
        if (tty && written) std::cerr << "\n";
        if (xml)
            out << fmt::format("<!-- iblsync export: head {}; the next incremental export starts after change {} -->\n",
                               summary.head, summary.head)
                << protocols::marc::MarcXmlCollectionEnd();
        out.flush();
        if (!out) throw storage::DatabaseError("writing the export failed (disk full?)");
    } catch (const storage::DatabaseError& e) {
        if (!part.empty()) {
            file.close();
            std::remove(part.c_str());
        }
        std::cerr << "iblctl: export failed: " << e.what() << "\n";
        return 1;
    }
    if (!part.empty()) {
        file.close();
        if (std::rename(part.c_str(), a.out.c_str()) != 0) {
            std::cerr << "iblctl: cannot rename " << part << " to " << a.out << "\n";
            return 6;
        }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::ostream& report = a.out.empty() ? std::cerr : std::cout;
    if (a.json)
        report << fmt::format(
            R"({{"records":{},"deleted":{},"copies":{},"left_out":{},"head":{},"since":{},"seconds":{:.3f}}})"
            "\n",
            summary.records - unreadable, summary.deleted, summary.copies, unreadable, summary.head, a.since, secs);
    else
        report << fmt::format(
            "export: {} records ({} deleted), {} copies{} in {:.1f} s; head {}: the next incremental export is "
            "'iblctl export --since {}'\n",
            summary.records - unreadable, summary.deleted, summary.copies,
            unreadable ? fmt::format(", {} left out (unreadable)", unreadable) : "", secs, summary.head, summary.head);
    return 0;
}

}  // namespace iblsync::iblctl
