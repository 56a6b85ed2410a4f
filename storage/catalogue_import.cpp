#include "storage/catalogue_import.hpp"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include <openssl/evp.h>

#include <cstring>

#include <pqxx/pqxx>

#include <fmt/format.h>

#include "storage/detail/errors.hpp"
#include "storage/detail/copy_writer.hpp"
#include "storage/detail/merge.hpp"
#include "storage/detail/write.hpp"
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

namespace {

// Batches are written when they reach either size: large enough that the
// per-COPY round trips do not count, small enough to keep memory flat.
constexpr std::size_t kBatchRecords = 2000;
constexpr std::size_t kBatchBytes = 8u << 20;

std::uint64_t IdHash(const std::string& local_id) { return std::hash<std::string_view>{}(local_id); }

using Digest = std::array<std::uint8_t, 16>;

bool HexDigest(const std::string& hex, Digest& out) {
    if (hex.size() != 32) return false;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < 16; ++i) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return true;
}

// What the library has before the load: per local id (by a 64-bit hash)
// the stored checksum. 32 bytes a record, so a library of a million
// records costs 32 MB, whatever the size of the file being loaded.
class StoredChecksums {
public:
    struct Entry {
        std::uint64_t id_hash;
        Digest digest;
        bool live;  // not deleted, and the checksum parsed
    };
    void Add(const std::string& local_id, const std::string& checksum, bool deleted) {
        Entry e{IdHash(local_id), {}, !deleted};
        if (!HexDigest(checksum, e.digest)) e.live = false;
        entries_.push_back(e);
    }
    void Seal() {
        std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) { return a.id_hash < b.id_hash; });
    }
    enum class Verdict { kNew, kUnchanged, kOther };
    // kNew only when no stored local id has this hash; kUnchanged only when
    // exactly one has, live with the same checksum. Anything in doubt is
    // left to the server (kOther: staged with its content).
    Verdict Classify(std::uint64_t id_hash, const std::string& checksum) const {
        auto [lo, hi] = std::equal_range(entries_.begin(), entries_.end(), Entry{id_hash, {}, false},
                                         [](const Entry& a, const Entry& b) { return a.id_hash < b.id_hash; });
        if (lo == hi) return Verdict::kNew;
        Digest d;
        if (hi - lo == 1 && lo->live && HexDigest(checksum, d) && d == lo->digest) return Verdict::kUnchanged;
        return Verdict::kOther;
    }
    std::size_t size() const { return entries_.size(); }
    std::size_t Bytes() const { return entries_.capacity() * sizeof(Entry); }
    void Release() { std::vector<Entry>().swap(entries_); }

private:
    std::vector<Entry> entries_;
};

// The local ids seen so far in this load (open addressing over their
// hashes). A false "seen" only sends a record the general way.
class SeenIds {
public:
    // Returns false if the hash was there already.
    bool Insert(std::uint64_t h) {
        if (h == 0) h = 1;  // 0 marks an empty slot
        if ((used_ + 1) * 4 > slots_.size() * 3) Grow();
        std::size_t mask = slots_.size() - 1, i = h & mask;
        while (slots_[i] != 0) {
            if (slots_[i] == h) return false;
            i = (i + 1) & mask;
        }
        slots_[i] = h;
        ++used_;
        return true;
    }
    std::size_t Bytes() const { return slots_.capacity() * sizeof(std::uint64_t); }
    // Whether `more` inserts may double the table (it then holds the old
    // and the new one at once).
    bool MayGrow(std::size_t more) const { return (used_ + more) * 4 > slots_.size() * 3; }
    void Release() {
        std::vector<std::uint64_t>().swap(slots_);
        used_ = 0;
    }

private:
    void Grow() {
        std::vector<std::uint64_t> old = std::move(slots_);
        slots_.assign(old.empty() ? 1024 : old.size() * 2, 0);
        used_ = 0;
        for (auto h : old)
            if (h) Insert(h);
    }
    std::vector<std::uint64_t> slots_;
    std::size_t used_ = 0;
};

// Groups the records of a load that share a match key, as they arrive
// (union-find over 96 bits of the md5 of each key: two different keys of a
// load of millions collide with a chance of about 1e-17). The server then
// needs no label spreading within the load. A record's group is the smallest
// ord in it; groups that merge after some of their records were staged are
// reported by Remap(). 16 bytes a distinct key and 4 a record.
class KeyGroups {
public:
    // The group of `ord` after joining it with every earlier record that
    // shares one of `keys`.
    long long Add(long long ord, const std::vector<std::string>& keys) {
        while (static_cast<long long>(parent_.size()) <= ord)
            parent_.push_back(static_cast<std::uint32_t>(parent_.size()));
        for (const auto& key : keys) {
            Slot probe = Hash(key);
            probe.ord = static_cast<std::uint32_t>(ord);
            if ((used_ + 1) * 4 > slots_.size() * 3) Grow();
            const std::size_t mask = slots_.size() - 1;
            std::size_t i = probe.a & mask;
            while (slots_[i].ord != kEmpty && (slots_[i].a != probe.a || slots_[i].b != probe.b)) i = (i + 1) & mask;
            if (slots_[i].ord == kEmpty) {
                slots_[i] = probe;
                ++used_;
            } else {
                Union(slots_[i].ord, probe.ord);
            }
        }
        return Find(static_cast<std::uint32_t>(ord));
    }
    // (group as staged, group now) for every group that joined another.
    std::vector<std::pair<long long, long long>> Remap() {
        std::vector<std::pair<long long, long long>> out;
        for (auto g : absorbed_) out.emplace_back(g, Find(g));
        return out;
    }
    std::size_t Bytes() const {
        return slots_.capacity() * sizeof(Slot) + (parent_.capacity() + absorbed_.capacity()) * sizeof(std::uint32_t);
    }
    bool MayGrow(std::size_t keys) const { return (used_ + keys) * 4 > slots_.size() * 3; }
    void Release() { *this = KeyGroups(); }

private:
    static constexpr std::uint32_t kEmpty = UINT32_MAX;
    struct Slot {
        std::uint64_t a = 0;
        std::uint32_t b = 0;
        std::uint32_t ord = kEmpty;
    };
    static_assert(sizeof(Slot) == 16);
    static Slot Hash(const std::string& key) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_Digest(key.data(), key.size(), d, &n, EVP_md5(), nullptr);
        Slot s;
        std::memcpy(&s.a, d, 8);
        std::memcpy(&s.b, d + 8, 4);
        return s;
    }
    std::uint32_t Find(std::uint32_t x) {
        while (parent_[x] != x) {
            parent_[x] = parent_[parent_[x]];
            x = parent_[x];
        }
        return x;
    }
    void Union(std::uint32_t x, std::uint32_t y) {
        x = Find(x);
        y = Find(y);
        if (x == y) return;
        if (y < x) std::swap(x, y);
        parent_[y] = x;
        absorbed_.push_back(y);
    }
    void Grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 4096 : old.size() * 2, Slot{});
        const std::size_t mask = slots_.size() - 1;
        for (const auto& s : old) {
            if (s.ord == kEmpty) continue;
            std::size_t i = s.a & mask;
            while (slots_[i].ord != kEmpty) i = (i + 1) & mask;
            slots_[i] = s;
        }
    }
    std::vector<Slot> slots_;
    std::size_t used_ = 0;
    std::vector<std::uint32_t> parent_;
    std::vector<std::uint32_t> absorbed_;
};

}  // namespace

struct CatalogueImport::Impl {
    ImportOptions options;
    pqxx::connection conn;
    pqxx::work tx;
    StoredChecksums stored;
    SeenIds seen;
    SeenIds barcodes;  // the library's, then also those of this load
    KeyGroups groups;
    bool repeats = false;  // some local id may occur twice
    long long received = 0;
    // From this record on, everything is staged as an upsert: the indexes
    // above reached options.index_memory and were released (-1: never).
    long long bounded_from = -1;
    bool stored_known = true;  // false: the library's checksums did not fit

    // Whether the next record may go the fast way: if it makes an index
    // grow, the old and the new table of that index must both fit.
    bool IndexesFit(const protocols::CatalogueRecord& r) const {
        std::size_t growing = 0;
        if (seen.MayGrow(1)) growing = std::max(growing, seen.Bytes());
        if (barcodes.MayGrow(r.holdings.size())) growing = std::max(growing, barcodes.Bytes());
        if (groups.MayGrow(r.match_keys.size())) growing = std::max(growing, groups.Bytes());
        if (growing == 0) return true;
        const std::size_t settled = stored.Bytes() + seen.Bytes() + barcodes.Bytes() + groups.Bytes();
        return settled + 2 * growing <= options.index_memory;
    }
    // Only the general way is left: no new record is written directly, and
    // the server sorts out repeats and shared keys.
    void Bound() {
        bounded_from = received;
        seen.Release();
        barcodes.Release();
        groups.Release();
        repeats = true;
    }
    detail::LoadSpools spools;  // written by the writer thread, replayed by Finish()
    std::optional<DropFile> drop_file;
    std::unique_ptr<detail::Stager> filling;

    // The writer thread sends batches with COPY while the caller parses the
    // next ones: on two cores, parsing and the server's work overlap.
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::unique_ptr<detail::Stager>> queue;  // at most one waiting
    bool closing = false;
    bool writer_busy = false;
    std::exception_ptr error;
    std::thread writer;

    Impl(const std::string& conninfo, ImportOptions o) : options(std::move(o)), conn(conninfo), tx(conn, "import") {}

    ~Impl() { StopWriter(true); }

    void StartWriter() {
        writer = std::thread([this] {
            std::unique_lock lock(mu);
            for (;;) {
                cv.wait(lock, [&] { return !queue.empty() || closing; });
                if (queue.empty()) return;
                auto batch = std::move(queue.front());
                queue.pop_front();
                writer_busy = true;
                cv.notify_all();
                lock.unlock();
                std::exception_ptr failed;
                try {
                    batch->Flush();
                } catch (...) {
                    failed = std::current_exception();
                }
                batch.reset();
                lock.lock();
                writer_busy = false;
                if (failed) {
                    error = failed;
                    queue.clear();
                    cv.notify_all();
                    return;
                }
                cv.notify_all();
            }
        });
    }
    // Abandoning drops what was not written yet; otherwise it is written first.
    void StopWriter(bool abandon = false) {
        if (!writer.joinable()) return;
        {
            std::lock_guard lock(mu);
            closing = true;
            if (abandon) queue.clear();
        }
        cv.notify_all();
        writer.join();
    }
    void Handover() {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return queue.empty() || error; });
        if (error) std::rethrow_exception(error);
        queue.push_back(std::move(filling));
        cv.notify_all();
        lock.unlock();
        filling = std::make_unique<detail::Stager>(tx, options.library, &spools);
    }
    // Waits until everything handed over is written; rethrows its failure.
    void Drain() {
        if (filling->PendingRecords() > 0) Handover();
        StopWriter();
        if (error) std::rethrow_exception(error);
    }
};

CatalogueImport::CatalogueImport(const std::string& conninfo, ImportOptions options) {
    Translated([&] {
        impl_ = std::make_unique<Impl>(conninfo, std::move(options));
        auto& tx = impl_->tx;
        // One writer per library at a time: the push API and harvesters take
        // the same lock (catalogue_writer.cpp). Under it, what is read next
        // stays true until the commit.
        tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('iblsync.import:' || $1))", impl_->options.library);
        detail::RequireLibrary(tx, impl_->options.library);
        // The merge sorts and hashes the whole load; with the default 4 MB it
        // would spill to disk. Scratch tables get buffers of their own (only
        // settable before the session first touches a temporary table).
        tx.exec0("SET LOCAL work_mem = '256MB'");
        // The merge's statements are costed high enough for JIT compilation,
        // which spends 0.2 s or more per statement on plans that run once.
        tx.exec0("SET LOCAL jit = off");
        tx.exec0("SET temp_buffers = '256MB'");
        detail::PrepareStage(tx);
        tx.exec0("DECLARE import_stored NO SCROLL CURSOR FOR SELECT local_id, checksum, deleted FROM bib_record"
                 " WHERE library = " + tx.quote(impl_->options.library));
        for (;;) {
            auto rows = tx.exec("FETCH 50000 FROM import_stored");
            if (rows.empty()) break;
            for (const auto& row : rows)
                impl_->stored.Add(row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<bool>());
            if (impl_->stored.Bytes() > impl_->options.index_memory / 2) {
                // A library too large to hold: every record goes the general way.
                impl_->stored.Release();
                impl_->stored_known = false;
                impl_->Bound();
                break;
            }
        }
        tx.exec0("CLOSE import_stored");
        if (impl_->bounded_from < 0) {
            tx.exec0("DECLARE import_barcodes NO SCROLL CURSOR FOR SELECT barcode FROM holding WHERE library = " +
                     tx.quote(impl_->options.library));
            for (;;) {
                auto rows = tx.exec("FETCH 100000 FROM import_barcodes");
                if (rows.empty()) break;
                for (const auto& row : rows) impl_->barcodes.Insert(IdHash(row[0].as<std::string>()));
                if (impl_->stored.Bytes() + 3 * impl_->barcodes.Bytes() > impl_->options.index_memory) {
                    impl_->Bound();
                    break;
                }
            }
            tx.exec0("CLOSE import_barcodes");
        }
        impl_->stored.Seal();
        impl_->filling = std::make_unique<detail::Stager>(tx, impl_->options.library, &impl_->spools);
        impl_->StartWriter();
        return 0;
    });
}

CatalogueImport::~CatalogueImport() = default;  // stops the writer; an unfinished transaction rolls back

void CatalogueImport::Add(protocols::CatalogueRecord r) {
    Translated([&] {
        auto& im = *impl_;
        const long long ord = im.received;
        std::string checksum = detail::RecordChecksum(r.raw);
        const auto h = IdHash(r.local_id);
        // Barcodes of records merged the general way are noted too, so that
        // a later new record's copy with one of them is merged after it.
        auto note_barcodes = [&] {
            for (const auto& copy : r.holdings) im.barcodes.Insert(IdHash(copy.barcode));
        };
        if (im.bounded_from < 0 && (!im.IndexesFit(r) || ord >= UINT32_MAX - 1)) im.Bound();
        if (im.bounded_from >= 0) {
            // The general way: the server classifies by local id and checksum.
            if (im.stored_known && im.stored.Classify(h, checksum) == StoredChecksums::Verdict::kUnchanged)
                im.filling->AddUnchanged(ord, r, std::move(checksum));
            else
                im.filling->AddUpsert(ord, std::move(r), std::move(checksum));
        } else if (!im.seen.Insert(h)) {
            note_barcodes();
            im.repeats = true;  // the merge will not trust the groups
            const long long group = im.groups.Add(ord, r.match_keys);
            im.filling->AddUpsert(ord, std::move(r), std::move(checksum), group);
        } else {
            switch (im.stored.Classify(h, checksum)) {
                case StoredChecksums::Verdict::kNew: {
                    std::vector<bool> direct;
                    if (r.holdings_given) {
                        direct.reserve(r.holdings.size());
                        for (const auto& h : r.holdings) direct.push_back(im.barcodes.Insert(IdHash(h.barcode)));
                    }
                    const long long group = im.groups.Add(ord, r.match_keys);
                    im.filling->AddNew(ord, std::move(r), std::move(checksum), std::move(direct), group);
                    break;
                }
                case StoredChecksums::Verdict::kUnchanged:
                    note_barcodes();
                    im.filling->AddUnchanged(ord, r, std::move(checksum));
                    break;
                case StoredChecksums::Verdict::kOther:
                    note_barcodes();
                    const long long group = im.groups.Add(ord, r.match_keys);
                    im.filling->AddUpsert(ord, std::move(r), std::move(checksum), group);
                    break;
            }
        }
        if (im.filling->PendingRecords() >= kBatchRecords || im.filling->PendingBytes() >= kBatchBytes) im.Handover();
        return 0;
    });
    ++impl_->received;
}

void CatalogueImport::RecordAsDropFile(DropFile file) { impl_->drop_file = std::move(file); }

ImportSummary CatalogueImport::Finish() {
    return Translated([&] {
        impl_->Drain();
        const std::string& library = impl_->options.library;
        const bool guarded = impl_->options.full && impl_->options.max_delete_percent < 100;
        long long live_before = 0;
        if (guarded)
            live_before = impl_->tx.exec_params1("SELECT count(*) FROM bib_record WHERE library = $1 AND NOT deleted",
                                                 library)[0]
                              .as<long long>();
        impl_->spools.Replay(impl_->tx);
        auto remap = impl_->groups.Remap();
        if (!remap.empty()) {
            detail::CopyWriter w(impl_->tx, "import_grp_remap", {"grp", "root"});
            for (const auto& [group, root] : remap) w.Int(group).Int(root).EndLine();
            w.Complete();
        }
        detail::MergeOptions merge;
        merge.full = impl_->options.full;
        merge.may_repeat = impl_->repeats;
        merge.grouped = !impl_->repeats;
        merge.direct_copies = impl_->spools.direct;
        auto m = detail::Merge(impl_->tx, library, merge);
        if (guarded && m.deleted > 0 && m.deleted * 100 > live_before * impl_->options.max_delete_percent)
            throw DeletionsRefused(m.deleted, live_before, impl_->options.max_delete_percent);
        if (const auto& f = impl_->drop_file)
            detail::RecordDropFileLoaded(impl_->tx, *f, m.inserted, m.updated, m.deleted, m.first_seq, m.last_seq);
        impl_->tx.commit();
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
        s.bounded_from = impl_->bounded_from;
        return s;
    });
}

}  // namespace iblsync::storage
