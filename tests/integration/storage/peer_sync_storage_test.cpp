// storage::ApplyPeerPage on the real PostgreSQL: what a peer may write, a
// page applied twice, and a page read from a cursor that moved on.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "protocols/catalogue_record.hpp"
#include "protocols/json_record.hpp"
#include "storage/database.hpp"
#include "storage/errors.hpp"
#include "storage/peer_sync.hpp"
#include "tests/support/test_env.hpp"

namespace iblsync::test {
namespace {

constexpr const char* kSelf = "NL-0000000900";   // this node: national
constexpr const char* kPoiA = "NL-0000000910";
constexpr const char* kPoiB = "NL-0000000920";

storage::PeerRecord Upsert(const std::string& library, const std::string& id, const std::vector<std::string>& copies) {
    auto parsed = protocols::ParseJsonRecord(
        fmt::format(R"({{"id":"{}","title":"Titel {}","authors":["Haasse, Hella"],"year":1948}})", id, id));
    EXPECT_TRUE(parsed.ok()) << parsed.error();
    auto described = protocols::DescribeRecord(std::move(parsed).value());
    EXPECT_TRUE(described.ok()) << described.error();
    storage::PeerRecord r{library, storage::RecordChange::Upsert(described.value())};
    r.change.record.holdings_given = true;
    for (const auto& c : copies) r.change.record.holdings.push_back({c, "Centrum", "R HAAS", {}, {}, {}});
    return r;
}

class PeerPageTest : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = std::make_unique<storage::Database>(schema_.conninfo(), 1);
        db_->Migrate();
        schema_.Exec(fmt::format("INSERT INTO node_identity (role, isil) VALUES ('national', '{}')", kSelf));
        // Library 301 is known here as POI B's.
        schema_.Exec(fmt::format("INSERT INTO library (isil, name, poi) VALUES ('NL-0000000301', 'Bibliotheek B', '{}')",
                                 kPoiB));
        storage::SyncPeers(*db_, {{"poi-a", "http://127.0.0.1:1", kPoiA, storage::PeerDirection::kAggregate}});
    }
    long long Count(const std::string& sql) { return std::stoll(schema_.Query1(sql)); }
    std::string Fingerprint() {
        return schema_.Query1(
            "SELECT (SELECT count(*) FROM bib_record) || '/' || (SELECT count(*) FROM holding) || '/' ||"
            " (SELECT last_seq FROM change_counter) || '/' || (SELECT count(*) FROM library) || '/' ||"
            " (SELECT cursor FROM sync_peer)");
    }
    storage::PeerPage Page(long long from, long long to) {
        storage::PeerPage p;
        p.expected_cursor = from;
        p.next_cursor = to;
        p.peer_head = to;
        p.changes = to - from;
        p.libraries = {{"NL-0000000211", "Bibliotheek Veluwe", "NL-GE", kPoiA},
                       {"NL-0000000301", "Bibliotheek B", "NL-UT", kPoiA},  // A claims B's library
                       {"NL-0000000302", "Bibliotheek C", "NL-UT", kPoiB}};  // and names one of B's
        return p;
    }

    TestSchema schema_;
    std::unique_ptr<storage::Database> db_;
};

TEST_F(PeerPageTest, APeerWritesOnlyItsOwnLibrariesAndAPageTwiceChangesNothing) {
    auto page = Page(0, 5);
    page.records = {Upsert("NL-0000000211", "r1", {"C1", "C2"}), Upsert("NL-0000000301", "x1", {"X1"}),
                    Upsert("NL-0000000302", "y1", {})};
    auto applied = storage::ApplyPeerPage(*db_, "poi-a", page);
    EXPECT_EQ(applied.summary.inserted, 1);
    EXPECT_EQ(applied.summary.holdings_inserted, 2);
    EXPECT_EQ(applied.refused, 2);
    EXPECT_EQ(applied.refused_libraries, (std::vector<std::string>{"NL-0000000301", "NL-0000000302"}));
    EXPECT_EQ(applied.registered, std::vector<std::string>{"NL-0000000211"});
    EXPECT_EQ(schema_.Query1("SELECT poi FROM library WHERE isil = 'NL-0000000211'"), kPoiA);
    EXPECT_EQ(schema_.Query1("SELECT poi FROM library WHERE isil = 'NL-0000000301'"), kPoiB) << "unchanged";
    EXPECT_EQ(Count("SELECT count(*) FROM library WHERE isil = 'NL-0000000302'"), 0);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE library <> 'NL-0000000211'"), 0);
    EXPECT_EQ(Count("SELECT cursor FROM sync_peer WHERE name = 'poi-a'"), 5);
    EXPECT_EQ(Count("SELECT refused_total FROM sync_peer WHERE name = 'poi-a'"), 2);

    // The same state again (a page re-read after a crash before the
    // commit's answer): nothing new, not even a change row.
    const auto seq = Count("SELECT last_seq FROM change_counter");
    auto again = Page(5, 6);
    again.records = {Upsert("NL-0000000211", "r1", {"C1", "C2"})};
    auto second = storage::ApplyPeerPage(*db_, "poi-a", again);
    EXPECT_EQ(second.summary.unchanged, 1);
    EXPECT_EQ(Count("SELECT last_seq FROM change_counter"), seq);
    EXPECT_EQ(Count("SELECT cursor FROM sync_peer WHERE name = 'poi-a'"), 6);

    // A copy gone from the state is deleted here; a deleted record goes.
    auto third = Page(6, 8);
    third.records = {Upsert("NL-0000000211", "r1", {"C2"})};
    EXPECT_EQ(storage::ApplyPeerPage(*db_, "poi-a", third).summary.holdings_deleted, 1);
    auto fourth = Page(8, 9);
    fourth.records = {{"NL-0000000211", storage::RecordChange::Delete("r1")}};
    EXPECT_EQ(storage::ApplyPeerPage(*db_, "poi-a", fourth).summary.deleted, 1);
    EXPECT_EQ(Count("SELECT count(*) FROM holding"), 0);
}

TEST_F(PeerPageTest, APageFromACursorThatMovedOnWritesNothing) {
    auto page = Page(0, 3);
    page.records = {Upsert("NL-0000000211", "r1", {"C1"})};
    storage::ApplyPeerPage(*db_, "poi-a", page);
    const auto before = Fingerprint();
    auto stale = Page(0, 4);  // read from 0 again, but the cursor is at 3
    stale.records = {Upsert("NL-0000000211", "r2", {"C2"})};
    EXPECT_THROW(storage::ApplyPeerPage(*db_, "poi-a", stale), storage::PeerConflict);
    EXPECT_THROW(storage::ApplyPeerPage(*db_, "nosuch", Page(3, 4)), storage::PeerConflict);
    EXPECT_EQ(Fingerprint(), before);
}

}  // namespace
}  // namespace iblsync::test
