// Copies (holdings) and the incremental write path, against the real
// PostgreSQL cluster: MARC loads with a holdings mapping, NDJSON loads in the
// iblsync JSON format, and storage::ApplyRecordChanges as the push API and
// the harvesters will use it.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "protocols/catalogue_record.hpp"
#include "protocols/json_record.hpp"
#include "storage/catalogue_writer.hpp"
#include "storage/database.hpp"
#include "storage/errors.hpp"
#include "tests/support/test_env.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;
using storage::RecordChange;
using storage::RecordOutcome;

// A MARCXML record with copies in 852 ($a ISIL, $b branch, $h shelfmark, $p barcode).
std::string MarcWithCopies(const std::string& id, const std::string& isbn, const std::vector<std::string>& barcodes,
                           const std::string& isil = "NL-0001") {
    std::string copies;
    for (const auto& b : barcodes)
        copies += fmt::format(
            "<datafield tag=\"852\" ind1=\" \" ind2=\" \"><subfield code=\"a\">{}</subfield>"
            "<subfield code=\"b\">Centrum</subfield><subfield code=\"h\">R {}</subfield>"
            "<subfield code=\"p\">{}</subfield></datafield>",
            isil, id, b);
    return fmt::format(
        "<record><leader>00000nam a2200000 a 4500</leader><controlfield tag=\"001\">{}</controlfield>"
        "<datafield tag=\"020\" ind1=\" \" ind2=\" \"><subfield code=\"a\">{}</subfield></datafield>"
        "<datafield tag=\"245\" ind1=\"0\" ind2=\"0\"><subfield code=\"a\">Titel {}</subfield></datafield>{}</record>",
        id, isbn, id, copies);
}

protocols::CatalogueRecord FromJson(const std::string& json) {
    auto parsed = protocols::ParseJsonRecord(json);
    EXPECT_TRUE(parsed.ok()) << parsed.error_pointer() << ": " << parsed.error();
    auto d = protocols::DescribeRecord(std::move(parsed).value());
    EXPECT_TRUE(d.ok()) << d.error();
    return d.value();
}

class CatalogueWriterTest : public ::testing::Test {
protected:
    void SetUp() override {
        storage::Database(schema_.conninfo(), 1).Migrate();
        schema_.Exec("INSERT INTO library (isil, name, province) VALUES ('NL-0001', 'Bibliotheek Een', 'NL-GE'),"
                     " ('NL-0002', 'Bibliotheek Twee', 'NL-NH')");
    }
    long long Count(const std::string& sql) { return std::stoll(schema_.Query1(sql)); }
    void ExpectGapFreeLog() {
        EXPECT_EQ(Count("SELECT count(*) FROM change_log"), Count("SELECT coalesce(max(seq), 0) FROM change_log"));
        EXPECT_EQ(Count("SELECT coalesce(max(seq), 0) FROM change_log"), Count("SELECT last_seq FROM change_counter"));
    }
    CommandResult Import(const std::vector<std::string>& extra, const std::vector<std::string>& files) {
        std::vector<std::string> argv{IblctlPath(), "--json", "import", "--db", schema_.conninfo(),
                                      "--rejects", dir_.File("rejects.tsv")};
        argv.insert(argv.end(), extra.begin(), extra.end());
        argv.insert(argv.end(), files.begin(), files.end());
        return RunCommand(argv, 60s);
    }
    std::string WriteCollection(const std::string& name, const std::vector<std::string>& records) {
        std::string body = "<collection xmlns=\"http://www.loc.gov/MARC21/slim\">";
        for (const auto& r : records) body += r;
        WriteFile(dir_.File(name), body + "</collection>");
        return dir_.File(name);
    }
    std::string Holdings() {
        return schema_.Query1(
            "SELECT string_agg(b.local_id || '/' || h.barcode || '/' || h.status || '/' || h.version, ' '"
            " ORDER BY h.barcode) FROM holding h JOIN bib_record b ON b.id = h.record_id");
    }

    TempDir dir_;
    TestSchema schema_;
};

TEST_F(CatalogueWriterTest, MarcLoadWithAHoldingsMappingKeepsCopiesInStep) {
    auto file1 = WriteCollection("1.xml", {MarcWithCopies("r1", "0-306-40615-2", {"A1", "A2"}),
                                           MarcWithCopies("r2", "90-274-3964-8", {"A3"})});
    auto first = Import({"--library", "NL-0001", "--holdings", "marc21"}, {file1});
    ASSERT_EQ(first.exit_code, 0) << first.err;
    EXPECT_NE(first.out.find("\"copies_new\":3,\"copies_changed\":0,\"copies_deleted\":0"), std::string::npos)
        << first.out;
    EXPECT_EQ(Holdings(), "r1/A1/available/1 r1/A2/available/1 r2/A3/available/1");
    EXPECT_EQ(schema_.Query1("SELECT branch || '|' || shelfmark FROM holding WHERE barcode = 'A3'"), "Centrum|R r2");
    EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'holding' AND op = 'insert'"), 3);
    EXPECT_EQ(schema_.Query1("SELECT record_local_id FROM change_log WHERE local_id = 'A3'"), "r2");
    // The mapping is kept for the library: later loads need not repeat it.
    EXPECT_EQ(schema_.Query1("SELECT holdings_mapping FROM library WHERE isil = 'NL-0001'"), "marc21");

    // The same load again changes and logs nothing.
    auto again = Import({"--library", "NL-0001"}, {file1});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.out.find("\"unchanged\":2"), std::string::npos) << again.out;
    EXPECT_NE(again.out.find("\"copies_new\":0,\"copies_changed\":0,\"copies_deleted\":0"), std::string::npos);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 5);

    // A2 withdrawn, A4 added, A3 moved from r2 to r1 (relinked in the ILS).
    auto file2 = WriteCollection("2.xml", {MarcWithCopies("r1", "0-306-40615-2", {"A1", "A3", "A4"}),
                                           MarcWithCopies("r2", "90-274-3964-8", {})});
    auto second = Import({"--library", "NL-0001"}, {file2});
    ASSERT_EQ(second.exit_code, 0) << second.err;
    EXPECT_NE(second.out.find("\"copies_new\":1,\"copies_changed\":1,\"copies_deleted\":1"), std::string::npos)
        << second.out;
    EXPECT_EQ(Holdings(), "r1/A1/available/1 r1/A3/available/2 r1/A4/available/1");

    // A full load without r1 deletes it, and its copies go with it.
    auto third = Import({"--library", "NL-0001", "--full"}, {WriteCollection("3.xml", {MarcWithCopies("r2", "90-274-3964-8", {})})});
    ASSERT_EQ(third.exit_code, 0) << third.err;
    EXPECT_NE(third.out.find("\"deleted\":1"), std::string::npos) << third.out;
    EXPECT_NE(third.out.find("\"copies_deleted\":3"), std::string::npos) << third.out;
    EXPECT_EQ(Count("SELECT count(*) FROM holding"), 0);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'holding' AND op = 'delete'"), 4);
    ExpectGapFreeLog();
}

TEST_F(CatalogueWriterTest, WithoutAMappingMarcLoadsLeaveCopiesAlone) {
    // NL-0001 sends availability through the API; its MARC exports carry 852s
    // that must not be taken for the list of copies.
    auto api = storage::ApplyRecordChanges(schema_.conninfo(), "NL-0001",
                                           {RecordChange::Upsert(FromJson(
                                               R"({"id":"r1","title":"Titel r1","isbn":"0-306-40615-2",)"
                                               R"("holdings":[{"barcode":"API1","status":"on_loan","due_date":"2026-12-01"}]})"))});
    ASSERT_EQ(api.summary.holdings_inserted, 1);
    auto r = Import({"--library", "NL-0001"}, {WriteCollection("1.xml", {MarcWithCopies("r1", "0-306-40615-2", {"X9"})})});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"changed\":1"), std::string::npos) << r.out;  // JSON record replaced by MARC
    EXPECT_EQ(Holdings(), "r1/API1/on_loan/1");
}

TEST_F(CatalogueWriterTest, NdjsonImportWithCopiesAndARejectedLine) {
    std::string ndjson =
        R"({"id":"j1","title":"De avonden","authors":["Reve, Gerard"],"year":1947,"language":"dut","isbn":["9789023466024"],)"
        R"("holdings":[{"barcode":"J1","status":"available"},{"barcode":"J2","status":"on_loan","due_date":"2026-12-01"}]})"
        "\n\n"
        R"({"id":"j2","title":"Max Havelaar","type":"audiobook","holdings":[{"barcode":"J3","status":"lost"}]})"
        "\r\n"
        R"({"id":"j3","title":"Het diner","authors":"Koch, Herman","year":2009})"
        "\n";
    WriteFile(dir_.File("records.ndjson"), ndjson);
    auto r = Import({"--library", "NL-0002"}, {dir_.File("records.ndjson")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"records\":2,\"rejected\":1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"copies_new\":2"), std::string::npos) << r.out;
    auto rejects = ReadFile(dir_.File("rejects.tsv"));
    EXPECT_NE(rejects.find("\t2\t/holdings/0/status: 'lost' is not a status"), std::string::npos) << rejects;
    EXPECT_EQ(schema_.Query1("SELECT format || '|' || title_key || '|' || author_key || '|' || material_type"
                             " FROM bib_record WHERE local_id = 'j1'"),
              "json|avonden|reve|book");
    EXPECT_EQ(schema_.Query1("SELECT raw FROM bib_record WHERE local_id = 'j3'"),
              R"({"id":"j3","type":"book","title":"Het diner","authors":["Koch, Herman"],"year":2009})");
    EXPECT_EQ(schema_.Query1("SELECT status || ' ' || due_date FROM holding WHERE barcode = 'J2'"), "on_loan 2026-12-01");
}

TEST_F(CatalogueWriterTest, BatchResultsPerEntryAndIdempotence) {
    std::vector<RecordChange> batch{
        RecordChange::Upsert(FromJson(R"({"id":"a","title":"Eerste versie","isbn":"0-306-40615-2"})")),
        RecordChange::Upsert(FromJson(R"({"id":"b","title":"Bee","holdings":[{"barcode":"B1"}]})")),
        RecordChange::Upsert(FromJson(R"({"id":"a","title":"Tweede versie","isbn":"0-306-40615-2"})")),
        RecordChange::Delete("nope"),
    };
    auto first = storage::ApplyRecordChanges(schema_.conninfo(), "NL-0001", batch);
    ASSERT_EQ(first.records.size(), 4u);
    EXPECT_EQ(first.records[0].outcome, RecordOutcome::kSuperseded);
    EXPECT_EQ(first.records[1].outcome, RecordOutcome::kInserted);
    EXPECT_EQ(first.records[1].holdings_changed, 1);
    EXPECT_EQ(first.records[2].outcome, RecordOutcome::kInserted);
    EXPECT_EQ(first.records[2].version, 1);
    EXPECT_GT(first.records[2].work_id, 0);
    EXPECT_EQ(first.records[3].outcome, RecordOutcome::kNotFound);
    EXPECT_EQ(first.summary.duplicates, 1);
    EXPECT_EQ(schema_.Query1("SELECT title FROM bib_record WHERE local_id = 'a'"), "Tweede versie");
    const long long logged = Count("SELECT count(*) FROM change_log");
    EXPECT_EQ(logged, 3);  // two records, one copy

    // The same batch again (a client retry): nothing changes, nothing is logged.
    auto retry = storage::ApplyRecordChanges(schema_.conninfo(), "NL-0001", batch);
    EXPECT_EQ(retry.records[1].outcome, RecordOutcome::kUnchanged);
    EXPECT_EQ(retry.records[1].holdings_changed, 0);
    EXPECT_EQ(retry.records[2].outcome, RecordOutcome::kUnchanged);
    EXPECT_EQ(retry.records[2].record_id, first.records[2].record_id);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), logged);

    // Delete b: the record is marked deleted (version 2) and its copy removed.
    auto del = storage::ApplyRecordChanges(schema_.conninfo(), "NL-0001", {RecordChange::Delete("b")});
    EXPECT_EQ(del.records[0].outcome, RecordOutcome::kDeleted);
    EXPECT_EQ(del.records[0].version, 2);
    EXPECT_EQ(del.summary.holdings_deleted, 1);
    EXPECT_EQ(Count("SELECT count(*) FROM holding"), 0);
    auto del_again = storage::ApplyRecordChanges(schema_.conninfo(), "NL-0001", {RecordChange::Delete("b")});
    EXPECT_EQ(del_again.records[0].outcome, RecordOutcome::kNotFound);
    EXPECT_EQ(schema_.Query1("SELECT string_agg(entity || ':' || op || ':' || local_id, ' ' ORDER BY seq)"
                             " FROM change_log WHERE seq > 3"),
              "record:delete:b holding:delete:B1");
    ExpectGapFreeLog();
}

TEST_F(CatalogueWriterTest, AnOlderCopyUpdateLosesToANewerOne) {
    auto rec = [](const std::string& status, const std::string& at) {
        return RecordChange::Upsert(FromJson(fmt::format(
            R"({{"id":"r","title":"T","holdings":[{{"barcode":"C1","status":"{}","changed_at":"{}"}}]}})", status, at)));
    };
    storage::ApplyRecordChanges(schema_.conninfo(), "NL-0001", {rec("on_loan", "2026-11-24T10:00:00Z")});
    // Delivered late: a change made at 09:00, after the 10:00 one arrived.
    auto late = storage::ApplyRecordChanges(schema_.conninfo(), "NL-0001", {rec("available", "2026-11-24T09:00:00Z")});
    EXPECT_EQ(late.records[0].holdings_changed, 0);
    EXPECT_EQ(schema_.Query1("SELECT status FROM holding WHERE barcode = 'C1'"), "on_loan");
    // 12:00+01:00 is 11:00Z: newer, so it counts.
    auto newer = storage::ApplyRecordChanges(schema_.conninfo(), "NL-0001", {rec("available", "2026-11-24T12:00:00+01:00")});
    EXPECT_EQ(newer.records[0].holdings_changed, 1);
    EXPECT_EQ(schema_.Query1("SELECT status || ' ' || version || ' ' || to_char(source_changed_at AT TIME ZONE 'UTC', 'HH24:MI')"
                             " FROM holding WHERE barcode = 'C1'"),
              "available 2 11:00");
}

TEST_F(CatalogueWriterTest, UnknownLibraryWritesNothing) {
    try {
        storage::ApplyRecordChanges(schema_.conninfo(), "NL-9999", {RecordChange::Upsert(FromJson(R"({"id":"x","title":"T"})"))});
        FAIL() << "no error";
    } catch (const storage::DatabaseError& e) {
        EXPECT_EQ(e.sqlstate(), "IBL01");
        EXPECT_STREQ(e.what(), "library NL-9999 is not registered");
    }
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 0);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 0);
}

TEST_F(CatalogueWriterTest, JsonAndMarcRecordsOfOneEditionShareAWorkAndARecordThatLosesItsKeysSplitsOff) {
    // Library 1 catalogues in MARC, library 2 pushes JSON; same ISBN.
    auto r = Import({"--library", "NL-0001"}, {WriteCollection("1.xml", {MarcWithCopies("m1", "0-306-40615-2", {})})});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    storage::Database db(schema_.conninfo(), 1);
    auto j = storage::ApplyRecordChanges(db, "NL-0002", {RecordChange::Upsert(FromJson(R"({"id":"j1","title":"Other title","isbn":["9780306406157"]})"))});
    ASSERT_EQ(j.records[0].outcome, RecordOutcome::kInserted);
    const std::string shared = schema_.Query1("SELECT w.work_id FROM bib_record b JOIN record_work w ON w.record_id = b.id WHERE b.local_id = 'm1'");
    EXPECT_EQ(std::to_string(j.records[0].work_id), shared);
    // j1 was catalogued with the wrong ISBN; the fix takes it out of the work.
    auto fixed = storage::ApplyRecordChanges(db, "NL-0002", {RecordChange::Upsert(FromJson(R"({"id":"j1","title":"Other title","isbn":["9789027439642"]})"))});
    EXPECT_EQ(fixed.records[0].outcome, RecordOutcome::kUpdated);
    EXPECT_NE(std::to_string(fixed.records[0].work_id), shared);
    EXPECT_EQ(schema_.Query1("SELECT w.work_id FROM bib_record b JOIN record_work w ON w.record_id = b.id WHERE b.local_id = 'm1'"), shared);
    EXPECT_EQ(fixed.summary.records_moved, 1);
    EXPECT_EQ(fixed.summary.works_created, 1);
    EXPECT_EQ(Count(fmt::format("SELECT count(*) FROM work_event WHERE kind = 'move' AND from_work = {}", shared)), 1);
}

}  // namespace
}  // namespace iblsync::test
