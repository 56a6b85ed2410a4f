#include "storage/catalogue_import.hpp"

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/detail/errors.hpp"
#include "storage/detail/merge.hpp"
#include "storage/errors.hpp"

namespace iblsync::storage {

using detail::Translated;

bool UpsertLibrary(const std::string& conninfo, const LibraryInfo& lib) {
    return Translated([&] {
        pqxx::connection c(conninfo);
        pqxx::work tx(c);
        bool fresh = false;
        if (lib.name.empty()) {
            // Only settings of a library that must exist already.
            auto r = tx.exec_params(
                "UPDATE library SET province = coalesce(NULLIF($2, ''), province),"
                " holdings_mapping = coalesce(NULLIF($3, ''), holdings_mapping), updated_at = now() WHERE isil = $1",
                lib.isil, lib.province, lib.holdings_mapping);
            if (r.affected_rows() == 0)
                throw DatabaseError(fmt::format("library {} is not registered", lib.isil), "IBL01");
        } else {
            fresh = tx.exec_params1(
                          "INSERT INTO library (isil, name, province, holdings_mapping)"
                          " VALUES ($1, $2, NULLIF($3, ''), coalesce(NULLIF($4, ''), 'none'))"
                          " ON CONFLICT (isil) DO UPDATE SET name = EXCLUDED.name,"
                          " province = coalesce(EXCLUDED.province, library.province),"
                          " holdings_mapping = CASE WHEN $4 = '' THEN library.holdings_mapping"
                          "  ELSE EXCLUDED.holdings_mapping END,"
                          " updated_at = now() RETURNING (xmax = 0)",
                          lib.isil, lib.name, lib.province, lib.holdings_mapping)[0]
                        .as<bool>();
        }
        tx.commit();
        return fresh;
    });
}

std::optional<LibraryInfo> FindLibrary(const std::string& conninfo, const std::string& isil) {
    return Translated([&]() -> std::optional<LibraryInfo> {
        pqxx::connection c(conninfo);
        pqxx::read_transaction tx(c);
        auto r = tx.exec_params("SELECT isil, name, coalesce(province, ''), holdings_mapping FROM library WHERE isil = $1",
                                isil);
        if (r.empty()) return std::nullopt;
        return LibraryInfo{r[0][0].as<std::string>(), r[0][1].as<std::string>(), r[0][2].as<std::string>(),
                           r[0][3].as<std::string>()};
    });
}

struct CatalogueImport::Impl {
    ImportOptions options;
    pqxx::connection conn;
    pqxx::work tx;
    std::unique_ptr<detail::Stager> stage;
    long long received = 0;
    bool finished = false;

    Impl(const std::string& conninfo, ImportOptions o) : options(std::move(o)), conn(conninfo), tx(conn, "import") {}
};

CatalogueImport::CatalogueImport(const std::string& conninfo, ImportOptions options) {
    Translated([&] {
        impl_ = std::make_unique<Impl>(conninfo, std::move(options));
        auto& tx = impl_->tx;
        // One writer per library at a time: the push API and harvesters take
        // the same lock (catalogue_writer.cpp).
        tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('iblsync.import:' || $1))", impl_->options.library);
        if (tx.exec_params("SELECT 1 FROM library WHERE isil = $1", impl_->options.library).empty())
            throw DatabaseError(fmt::format("library {} is not registered", impl_->options.library), "IBL01");
        impl_->stage = detail::BeginStage(tx);
        return 0;
    });
}

CatalogueImport::~CatalogueImport() = default;  // an unfinished transaction rolls back

void CatalogueImport::Add(const protocols::CatalogueRecord& r) {
    Translated([&] {
        impl_->stage->Upsert(impl_->received, r);
        return 0;
    });
    ++impl_->received;
}

ImportSummary CatalogueImport::Finish() {
    return Translated([&] {
        impl_->stage->Complete();
        impl_->stage.reset();
        auto m = detail::Merge(impl_->tx, impl_->options.library, impl_->options.full);
        impl_->tx.commit();
        impl_->finished = true;
        ImportSummary s;
        s.received = impl_->received;
        s.duplicates = m.duplicates;
        s.inserted = m.inserted;
        s.updated = m.updated;
        s.unchanged = m.unchanged;
        s.deleted = m.deleted;
        s.holdings_inserted = m.holdings_inserted;
        s.holdings_updated = m.holdings_updated;
        s.holdings_deleted = m.holdings_deleted;
        s.works_created = m.works_created;
        s.works_merged = m.works_merged;
        s.records_moved = m.records_moved;
        s.first_seq = m.first_seq;
        s.last_seq = m.last_seq;
        return s;
    });
}

}  // namespace iblsync::storage
