#include "storage/file_drop.hpp"

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/database.hpp"
#include "storage/detail/connection_pool.hpp"
#include "storage/detail/sql.hpp"
#include "storage/detail/write.hpp"

namespace iblsync::storage {

using detail::kIsoUtc;

void SyncFileDrops(Database& db, const std::vector<FileDropSpec>& drops) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "file drops");
        detail::ArrayLiteral names;
        for (const auto& d : drops) {
            names.Add(d.name);
            tx.exec_params(
                "INSERT INTO file_drop (name, library, directory) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO UPDATE SET configured = true, library = EXCLUDED.library,"
                " directory = EXCLUDED.directory",
                d.name, d.library, d.directory);
        }
        tx.exec_params("UPDATE file_drop SET configured = false WHERE NOT (name = ANY($1::text[]))", names.Done());
        tx.commit();
        return 0;
    });
}

bool DropFileLoaded(Database& db, const std::string& drop, const std::string& file, long long size,
                    long long mtime) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "drop file loaded");
        return !tx.exec_params("SELECT 1 FROM file_drop_load WHERE drop_name = $1 AND file = $2 AND size = $3"
                               " AND mtime = $4 AND outcome = 'loaded'",
                               drop, file, size, mtime)
                    .empty();
    });
}

void RecordDropFileFailed(Database& db, const std::string& drop, const std::string& file, long long size,
                          long long mtime, long long records, long long rejected, const std::string& why) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "drop file failed");
        tx.exec_params(
            "INSERT INTO file_drop_load (drop_name, file, size, mtime, outcome, records, rejected, message)"
            " VALUES ($1, $2, $3, $4, 'failed', $5, $6, left($7, 2000))",
            drop, file, size, mtime, records, rejected, why);
        tx.exec_params(
            "UPDATE file_drop SET files_failed = files_failed + 1, errors_total = errors_total + 1,"
            " errors_in_row = errors_in_row + 1,"
            " last_error = left($2, 2000), last_error_at = now() WHERE name = $1",
            drop, fmt::format("{}: {}", file, why));
        tx.commit();
        return 0;
    });
}

void RecordDropError(Database& db, const std::string& drop, const std::string& why) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "drop error");
        tx.exec_params(
            "UPDATE file_drop SET errors_in_row = errors_in_row + 1, errors_total = errors_total + 1,"
            " last_error = left($2, 2000), last_error_at = now() WHERE name = $1",
            drop, why);
        tx.commit();
        return 0;
    });
}

void ClearDropError(Database& db, const std::string& drop) {
    db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "drop error over");
        tx.exec_params("UPDATE file_drop SET errors_in_row = 0 WHERE name = $1", drop);
        tx.commit();
        return 0;
    });
}

bool PauseFileDrop(Database& db, const std::string& drop, bool paused) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::work tx(c, "drop pause");
        auto r = tx.exec_params("UPDATE file_drop SET paused = $2 WHERE name = $1", drop, paused);
        tx.commit();
        return r.affected_rows() > 0;
    });
}

std::vector<FileDropStatus> FileDropStatuses(Database& db) {
    return db.Pool().With([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c, "drop status");
        std::vector<FileDropStatus> out;
        auto ts = [](const char* col) {
            return fmt::format("coalesce(to_char({} AT TIME ZONE 'UTC', '{}'), '')", col, kIsoUtc);
        };
        for (const auto& r : tx.exec(fmt::format(
                 "SELECT name, library, directory, configured, paused, {}, coalesce(last_file, ''), files_loaded,"
                 " files_failed, records_total, errors_total, errors_in_row, coalesce(last_error, ''), {},"
                 " coalesce(extract(epoch FROM now() - last_success_at)::bigint, -1)"
                 " FROM file_drop ORDER BY name",
                 ts("last_success_at"), ts("last_error_at")))) {
            FileDropStatus s;
            s.name = r[0].as<std::string>();
            s.library = r[1].as<std::string>();
            s.directory = r[2].as<std::string>();
            s.configured = r[3].as<bool>();
            s.paused = r[4].as<bool>();
            s.last_success_at = r[5].as<std::string>();
            s.last_file = r[6].as<std::string>();
            s.files_loaded = r[7].as<long long>();
            s.files_failed = r[8].as<long long>();
            s.records_total = r[9].as<long long>();
            s.errors_total = r[10].as<long long>();
            s.errors_in_row = r[11].as<int>();
            s.last_error = r[12].as<std::string>();
            s.last_error_at = r[13].as<std::string>();
            s.seconds_since_success = r[14].as<long long>();
            out.push_back(std::move(s));
        }
        return out;
    });
}

namespace detail {

void RecordDropFileLoaded(pqxx::work& tx, const DropFile& f, long long inserted, long long updated,
                          long long deleted, long long first_seq, long long last_seq) {
    tx.exec_params(
        "INSERT INTO file_drop_load (drop_name, file, size, mtime, outcome, records, rejected, inserted, updated,"
        " deleted, first_seq, last_seq) VALUES ($1, $2, $3, $4, 'loaded', $5, $6, $7, $8, $9, $10, $11)",
        f.drop, f.file, f.size, f.mtime, f.records, f.rejected, inserted, updated, deleted, first_seq, last_seq);
    tx.exec_params(
        "UPDATE file_drop SET last_success_at = now(), last_file = $2, files_loaded = files_loaded + 1,"
        " records_total = records_total + $3, errors_in_row = 0 WHERE name = $1",
        f.drop, f.file, f.records);
}

}  // namespace detail

}  // namespace iblsync::storage
