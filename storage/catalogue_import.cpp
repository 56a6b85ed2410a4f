#include "storage/catalogue_import.hpp"

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/detail/works.hpp"
#include "storage/errors.hpp"

namespace iblsync::storage {
namespace {

// A PostgreSQL array literal of text values: {"a","b\"c"}.
std::string ArrayLiteral(const std::vector<std::string>& values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) out += ',';
        out += '"';
        for (char c : values[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

template <class F>
auto Translate(F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const DatabaseError&) {
        throw;
    } catch (const pqxx::broken_connection& e) {
        throw DatabaseUnavailable(e.what());
    } catch (const pqxx::sql_error& e) {
        throw DatabaseError(e.what(), e.sqlstate());
    } catch (const pqxx::failure& e) {
        throw DatabaseError(e.what());
    }
}

}  // namespace

bool UpsertLibrary(const std::string& conninfo, const LibraryInfo& lib) {
    return Translate([&] {
        pqxx::connection c(conninfo);
        pqxx::work tx(c);
        auto r = tx.exec_params1(
            "INSERT INTO library (isil, name, province) VALUES ($1, $2, NULLIF($3, '')) "
            "ON CONFLICT (isil) DO UPDATE SET name = EXCLUDED.name, "
            "province = coalesce(EXCLUDED.province, library.province), updated_at = now() "
            "RETURNING (xmax = 0)",
            lib.isil, lib.name, lib.province);
        tx.commit();
        return r[0].as<bool>();
    });
}

bool LibraryExists(const std::string& conninfo, const std::string& isil) {
    return Translate([&] {
        pqxx::connection c(conninfo);
        pqxx::read_transaction tx(c);
        return !tx.exec_params("SELECT 1 FROM library WHERE isil = $1", isil).empty();
    });
}

struct CatalogueImport::Impl {
    ImportOptions options;
    pqxx::connection conn;
    pqxx::work tx;
    std::unique_ptr<pqxx::stream_to> stream;
    long long received = 0;
    bool finished = false;

    Impl(const std::string& conninfo, ImportOptions o) : options(std::move(o)), conn(conninfo), tx(conn, "import") {}
};

CatalogueImport::CatalogueImport(const std::string& conninfo, ImportOptions options) {
    Translate([&] {
        impl_ = std::make_unique<Impl>(conninfo, std::move(options));
        auto& tx = impl_->tx;
        tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('iblsync.import:' || $1))", impl_->options.library);
        if (tx.exec_params("SELECT 1 FROM library WHERE isil = $1", impl_->options.library).empty())
            throw DatabaseError(fmt::format("library {} is not registered", impl_->options.library), "IBL01");
        tx.exec0(
            "CREATE TEMP TABLE import_stage ("
            " ord bigint NOT NULL, local_id text NOT NULL, raw text NOT NULL, title text, title_key text,"
            " author_key text, pub_year integer, language text, material_type text,"
            " isbns text[], issns text[], oclc text[], ppn text[]) ON COMMIT DROP");
        impl_->stream = std::make_unique<pqxx::stream_to>(
            tx, "import_stage",
            std::vector<std::string>{"ord", "local_id", "raw", "title", "title_key", "author_key", "pub_year",
                                     "language", "material_type", "isbns", "issns", "oclc", "ppn"});
        return 0;
    });
}

CatalogueImport::~CatalogueImport() {
    if (!impl_ || impl_->finished) return;
    try {
        if (impl_->stream) impl_->stream->complete();
    } catch (...) {
        // The transaction is abandoned anyway.
    }
}

void CatalogueImport::Add(const protocols::CatalogueRecord& r) {
    Translate([&] {
        *impl_->stream << std::make_tuple(impl_->received, r.local_id, r.marcxml, r.title, r.title_key, r.author_key,
                                          r.year, r.language, r.material_type, ArrayLiteral(r.isbns),
                                          ArrayLiteral(r.issns), ArrayLiteral(r.oclc), ArrayLiteral(r.ppn));
        return 0;
    });
    ++impl_->received;
}

ImportSummary CatalogueImport::Finish() {
    return Translate([&] {
        auto& tx = impl_->tx;
        impl_->stream->complete();
        impl_->stream.reset();
        const std::string& lib = impl_->options.library;
        ImportSummary s;
        s.received = impl_->received;
        tx.exec0("CREATE TEMP TABLE import_changed (id bigint, local_id text, op text, version integer) ON COMMIT DROP");
        // The last occurrence of a local id in the load wins.
        tx.exec0(
            "CREATE TEMP TABLE import_incoming ON COMMIT DROP AS "
            "SELECT DISTINCT ON (local_id) * FROM import_stage ORDER BY local_id, ord DESC");
        long long distinct = tx.exec1("SELECT count(*) FROM import_incoming")[0].as<long long>();
        s.duplicates = s.received - distinct;
        tx.exec_params0(
            "WITH up AS ("
            " INSERT INTO bib_record AS b (library, local_id, format, raw, checksum, title, title_key, author_key,"
            "  pub_year, language, material_type, isbns, issns, oclc, ppn, search)"
            " SELECT $1, local_id, 'marcxml', raw, md5(raw), NULLIF(title, ''), NULLIF(title_key, ''),"
            "  NULLIF(author_key, ''), NULLIF(pub_year, 0), NULLIF(language, ''), NULLIF(material_type, ''),"
            "  isbns, issns, oclc, ppn,"
            "  to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(author_key, ''))"
            " FROM import_incoming"
            " ON CONFLICT (library, local_id) DO UPDATE SET"
            "  raw = EXCLUDED.raw, checksum = EXCLUDED.checksum, title = EXCLUDED.title,"
            "  title_key = EXCLUDED.title_key, author_key = EXCLUDED.author_key, pub_year = EXCLUDED.pub_year,"
            "  language = EXCLUDED.language, material_type = EXCLUDED.material_type, isbns = EXCLUDED.isbns,"
            "  issns = EXCLUDED.issns, oclc = EXCLUDED.oclc, ppn = EXCLUDED.ppn, search = EXCLUDED.search,"
            "  version = b.version + 1, deleted = false, updated_at = now()"
            "  WHERE b.checksum <> EXCLUDED.checksum OR b.deleted"
            " RETURNING b.id, b.local_id, b.version, (b.xmax = 0) AS inserted)"
            "INSERT INTO import_changed SELECT id, local_id, CASE WHEN inserted THEN 'insert' ELSE 'update' END,"
            " version FROM up",
            lib);
        if (impl_->options.full) {
            tx.exec_params0(
                "WITH gone AS ("
                " UPDATE bib_record b SET deleted = true, version = version + 1, updated_at = now()"
                " WHERE b.library = $1 AND NOT b.deleted"
                "  AND NOT EXISTS (SELECT 1 FROM import_incoming i WHERE i.local_id = b.local_id)"
                " RETURNING b.id, b.local_id, b.version)"
                "INSERT INTO import_changed SELECT id, local_id, 'delete', version FROM gone",
                lib);
        }
        auto counts = tx.exec1(
            "SELECT count(*) FILTER (WHERE op = 'insert'), count(*) FILTER (WHERE op = 'update'),"
            " count(*) FILTER (WHERE op = 'delete'), count(*) FROM import_changed");
        s.inserted = counts[0].as<long long>();
        s.updated = counts[1].as<long long>();
        s.deleted = counts[2].as<long long>();
        long long changes = counts[3].as<long long>();
        s.unchanged = distinct - s.inserted - s.updated;
        auto works = detail::AssignWorks(tx);
        s.works_created = works.created;
        s.works_merged = works.merged;
        s.records_moved = works.moved;
        if (changes > 0) {
            // Taken last and held to commit: numbers are gap-free and in commit order.
            long long last = tx.exec1("SELECT last_seq FROM change_counter FOR UPDATE")[0].as<long long>();
            tx.exec_params0(
                "INSERT INTO change_log (seq, entity, op, library, local_id, entity_id, version)"
                " SELECT $1 + row_number() OVER (ORDER BY op = 'delete', local_id), 'record', op, $2, local_id,"
                " id, version FROM import_changed",
                last, lib);
            tx.exec_params0("UPDATE change_counter SET last_seq = $1", last + changes);
            s.first_seq = last + 1;
            s.last_seq = last + changes;
        }
        tx.commit();
        impl_->finished = true;
        return s;
    });
}

}  // namespace iblsync::storage
