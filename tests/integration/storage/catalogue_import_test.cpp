// Bulk loads with the real iblctl binary into a private PostgreSQL schema,
// using real records (tests/data/marc, provenance in PROVENANCE.md there).

#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "storage/database.hpp"
#include "tests/support/test_env.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

std::string Data(const std::string& rel) { return SourceDir() + "/tests/data/marc/" + rel; }

class CatalogueImportTest : public ::testing::Test {
protected:
    void SetUp() override { storage::Database(schema_.conninfo(), 1).Migrate(); }

    CommandResult Import(const std::string& library, std::vector<std::string> files, bool full = false) {
        std::vector<std::string> argv{IblctlPath(), "--json", "import", "--db", schema_.conninfo(), "--library", library,
                                      "--name", "Bibliotheek " + library, "--province", "NL-GE",
                                      "--rejects", dir_.File(library + ".rejects")};
        if (full) argv.push_back("--full");
        argv.insert(argv.end(), files.begin(), files.end());
        return RunCommand(argv, 120s);
    }
    long long Count(const std::string& sql) { return std::stoll(schema_.Query1(sql)); }
    // Every change has exactly one log row and the numbers run 1..N without gaps.
    void ExpectGapFreeLog() {
        EXPECT_EQ(Count("SELECT count(*) FROM change_log"), Count("SELECT coalesce(max(seq), 0) FROM change_log"));
        EXPECT_EQ(Count("SELECT coalesce(max(seq), 0) FROM change_log"), Count("SELECT last_seq FROM change_counter"));
        EXPECT_EQ(Count("SELECT count(*) FROM (SELECT seq FROM change_log GROUP BY seq HAVING count(*) > 1) d"), 0);
    }
    // What no load may leave behind, whatever it did: copies, work links or
    // works that point nowhere, a live record without exactly one work, a
    // deleted record that still has a work or copies.
    void ExpectIntegrity() {
        EXPECT_EQ(Count("SELECT count(*) FROM holding h LEFT JOIN bib_record b ON b.id = h.record_id"
                        " WHERE b.id IS NULL OR b.library <> h.library OR b.deleted"), 0) << "copies without a live record";
        EXPECT_EQ(Count("SELECT count(*) FROM record_work r LEFT JOIN bib_record b ON b.id = r.record_id"
                        " WHERE b.id IS NULL OR b.deleted"), 0) << "work links of missing or deleted records";
        EXPECT_EQ(Count("SELECT count(*) FROM bib_record b WHERE NOT b.deleted"
                        " AND NOT EXISTS (SELECT 1 FROM record_work r WHERE r.record_id = b.id)"), 0) << "live records without a work";
        EXPECT_EQ(Count("SELECT count(*) FROM record_work r WHERE NOT EXISTS (SELECT 1 FROM work w WHERE w.id = r.work_id)"), 0)
            << "links to works that do not exist";
        EXPECT_EQ(Count("SELECT count(*) FROM work w WHERE NOT EXISTS (SELECT 1 FROM record_work r WHERE r.work_id = w.id)"), 0)
            << "empty works";
        EXPECT_EQ(Count("SELECT count(*) FROM bib_record b WHERE NOT EXISTS (SELECT 1 FROM library l WHERE l.isil = b.library)"), 0)
            << "records of unknown libraries";
    }
    // The partition of records into works, independent of work ids: each
    // record named by the first record of its work.
    static std::string Partition(const TestSchema& s) {
        return s.Query1(
            "WITH r AS (SELECT b.library || ':' || b.local_id AS name, w.work_id FROM bib_record b"
            "           JOIN record_work w ON w.record_id = b.id),"
            " m AS (SELECT work_id, min(name) AS first FROM r GROUP BY work_id)"
            " SELECT md5(string_agg(r.name || '>' || m.first, ',' ORDER BY r.name)) FROM r JOIN m USING (work_id)");
    }
    // This test's sessions: other tests load into the same cluster at once.
    std::string Mine() const { return "application_name = '" + schema_.name() + "'"; }
    std::string State() {
        return schema_.Query1(
            "SELECT md5(string_agg(library || ':' || local_id || ':' || checksum || ':' || deleted, ',' "
            "ORDER BY library, local_id)) FROM bib_record");
    }

    TempDir dir_;
    TestSchema schema_;
};

TEST_F(CatalogueImportTest, ImportReimportAndFullImport) {
    auto first = Import("NL-0001", {Data("originals/pymarc_basics/NLNZ_100_example_marc.marc"),
                                    Data("slices/thomas-mann-shared-71.xml")});
    ASSERT_EQ(first.exit_code, 0) << first.err;
    EXPECT_NE(first.out.find("\"records\":172,\"rejected\":0"), std::string::npos) << first.out;
    EXPECT_NE(first.out.find("\"new\":172,\"changed\":0,\"unchanged\":0,\"deleted\":0"), std::string::npos) << first.out;
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 172);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE op = 'insert'"), 172);
    // Two editions share the key; the title shown keeps $b ("<Der zauberberg>").
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE title_key = 'magic mountain'"), 2);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE title = 'The magic mountain <Der zauberberg>'"), 1);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE 'mann' = author_key"), 71);

    // The same files again: nothing changes and nothing is logged.
    auto again = Import("NL-0001", {Data("originals/pymarc_basics/NLNZ_100_example_marc.marc"),
                                    Data("slices/thomas-mann-shared-71.xml")});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.out.find("\"new\":0,\"changed\":0,\"unchanged\":172,\"deleted\":0"), std::string::npos) << again.out;
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 172);

    // A full load of only the Thomas Mann slice deletes the 101 NLNZ records.
    auto full = Import("NL-0001", {Data("slices/thomas-mann-shared-71.xml")}, true);
    ASSERT_EQ(full.exit_code, 0) << full.err;
    EXPECT_NE(full.out.find("\"unchanged\":71,\"deleted\":101"), std::string::npos) << full.out;
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE deleted"), 101);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE op = 'delete'"), 101);
    ExpectGapFreeLog();

    // Bringing a deleted record back is an update of it (version 3).
    auto back = Import("NL-0001", {Data("originals/pymarc_basics/NLNZ_100_example_marc.marc")});
    EXPECT_NE(back.out.find("\"new\":0,\"changed\":101"), std::string::npos) << back.out;
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE deleted"), 0);
    EXPECT_EQ(Count("SELECT min(version) FROM bib_record WHERE pub_year IS NOT NULL AND author_key <> 'mann'"), 3);
    ExpectGapFreeLog();
    ExpectIntegrity();
}

TEST_F(CatalogueImportTest, GzipIsTransparent) {
    std::string gz = dir_.File("nlnz.mrc.gz");
    ASSERT_EQ(std::system(("gzip -c '" + Data("originals/pymarc_basics/NLNZ_100_example_marc.marc") + "' > '" + gz + "'").c_str()), 0);
    auto r = Import("NL-0001", {gz});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"records\":101,\"rejected\":0"), std::string::npos) << r.out;
    auto plain = Import("NL-0001", {Data("originals/pymarc_basics/NLNZ_100_example_marc.marc")});
    EXPECT_NE(plain.out.find("\"unchanged\":101"), std::string::npos) << plain.out;  // identical records
    // A truncated gzip file is an error, and nothing is loaded from it.
    std::string cut = ReadFile(gz).substr(0, 2000);
    WriteFile(dir_.File("cut.mrc.gz"), cut);
    auto broken = Import("NL-0002", {dir_.File("cut.mrc.gz")});
    EXPECT_EQ(broken.exit_code, 6) << broken.out << broken.err;
    EXPECT_NE(broken.err.find("no records were loaded"), std::string::npos) << broken.err;
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE library = 'NL-0002'"), 0);
}

TEST_F(CatalogueImportTest, BadRecordsGoToTheRejectFileAndNeverAbortTheLoad) {
    auto r = Import("NL-0001", {Data("originals/marc4j/bad_too_long_plus_2.mrc"),
                                Data("originals/qa-catalogue/short.bnr.1993.mrc"),
                                Data("originals/marc4j/chabon-missing-controlfield-tag.xml"),
                                Data("originals/traject/bad_utf_byte.utf8.marc")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"records\":2,\"rejected\":13"), std::string::npos) << r.out;
    auto rejects = ReadFile(dir_.File("NL-0001.rejects"));
    EXPECT_NE(rejects.find("bad_too_long_plus_2.mrc\t0\t1\tleader says the record has 23375 bytes"), std::string::npos) << rejects;
    EXPECT_NE(rejects.find("short.bnr.1993.mrc\t0\t1\tlooks like UNIMARC"), std::string::npos);
    EXPECT_NE(rejects.find("chabon-missing-controlfield-tag.xml\t"), std::string::npos);
    EXPECT_NE(rejects.find("\tcontrolfield without a tag attribute"), std::string::npos);
    EXPECT_NE(rejects.find("bad_utf_byte.utf8.marc\t0\t1\tfield 300 $a: invalid UTF-8 at byte 21"), std::string::npos);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 2);
}

TEST_F(CatalogueImportTest, BadArgumentsChangeNothing) {
    auto bad_isil = RunCommand({IblctlPath(), "import", "--db", schema_.conninfo(), "--library", "XX-1",
                                Data("slices/thomas-mann-shared-71.xml")});
    EXPECT_EQ(bad_isil.exit_code, 2);
    EXPECT_EQ(bad_isil.err, "iblctl: --library: ISIL 'XX-1' does not start with the Dutch prefix NL-\n");
    auto unknown = RunCommand({IblctlPath(), "import", "--db", schema_.conninfo(), "--library", "NL-0009",
                               Data("slices/thomas-mann-shared-71.xml")});
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_NE(unknown.err.find("library NL-0009 is not registered; pass --name NAME"), std::string::npos) << unknown.err;
    auto no_db = RunCommand({IblctlPath(), "import", "--config", dir_.File("missing.toml"), "--library", "NL-0009",
                             Data("slices/thomas-mann-shared-71.xml")});
    EXPECT_EQ(no_db.exit_code, 2);
    EXPECT_NE(no_db.err.find("cannot find the database"), std::string::npos) << no_db.err;
    for (const char* size : {"192", "12X", "1K", "-5M", "99999999999999G"}) {
        auto bad_size = RunCommand({IblctlPath(), "import", "--db", schema_.conninfo(), "--library", "NL-0009",
                                    "--name", "X", "--index-memory", size, Data("slices/thomas-mann-shared-71.xml")});
        EXPECT_EQ(bad_size.exit_code, 2) << size;
        EXPECT_NE(bad_size.err.find("give a size with a unit, 64K to 1T, e.g. 192M"), std::string::npos) << bad_size.err;
    }
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 0);
    EXPECT_EQ(Count("SELECT count(*) FROM library"), 0);
}

TEST_F(CatalogueImportTest, ConcurrentImportsForTwoLibraries) {
    std::vector<std::string> files{Data("originals/pymarc_basics/NLNZ_100_example_marc.marc"),
                                   Data("slices/thomas-mann-shared-71.xml")};
    CommandResult a, b;
    std::thread ta([&] { a = Import("NL-0001", files); });
    std::thread tb([&] { b = Import("NL-0002", files); });
    ta.join();
    tb.join();
    ASSERT_EQ(a.exit_code, 0) << a.err;
    ASSERT_EQ(b.exit_code, 0) << b.err;
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE library = 'NL-0001'"), 172);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE library = 'NL-0002'"), 172);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 344);
    // One library's changes are numbered together: commits do not interleave.
    EXPECT_EQ(Count("SELECT count(DISTINCT library) FROM change_log WHERE seq <= 172"), 1);
    ExpectGapFreeLog();
    // The second load to commit found the first one's works (the loads take
    // the catalogue's write lock before matching): each record shares a work
    // with its twin in the other library, and no work was made twice.
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record a JOIN bib_record b ON b.local_id = a.local_id AND b.library = 'NL-0002'"
                    " JOIN record_work wa ON wa.record_id = a.id JOIN record_work wb ON wb.record_id = b.id"
                    " WHERE a.library = 'NL-0001' AND wa.work_id <> wb.work_id"), 0);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record a JOIN bib_record b ON b.local_id = a.local_id AND b.library = 'NL-0002'"
                    " WHERE a.library = 'NL-0001'"), 172);
    EXPECT_EQ(Count("SELECT count(*) FROM work_event WHERE kind = 'merge'"), 0);
    ExpectIntegrity();
}

// Bulk loads group their records into works in the loader (union-find over
// match keys); loads that repeat a local id, and later loads, assign works in
// rounds in SQL. Both must give the same clusters.
TEST_F(CatalogueImportTest, GroupedAndRoundByRoundWorkAssignmentAgree) {
    auto gen = [&](const std::string& name, int count, int seed) {
        std::string out = dir_.File(name);
        auto r = RunCommand({BinDir() + "/tools/gen-records", "--count", std::to_string(count), "--seed", std::to_string(seed),
                             "--format", "iso2709", "--out", out, Data("slices/thomas-mann-shared-71.xml"),
                             Data("originals/pymarc_basics/NLNZ_100_example_marc.marc")});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return out;
    };
    // B's first 3000 records are A's; the rest reuse some of their ISBNs.
    std::string a = gen("a.mrc", 3000, 5), b = gen("b.mrc", 4500, 5);
    // One record of each file again, in a file of its own: a repeated local
    // id makes the loader fall back to SQL rounds.
    auto first_record = [&](const std::string& path, const std::string& name) {
        std::string bytes = ReadFile(path);
        WriteFile(dir_.File(name), bytes.substr(0, std::stoul(bytes.substr(0, 5))));
        return dir_.File(name);
    };
    std::string a1 = first_record(a, "a1.mrc"), b1 = first_record(b, "b1.mrc");

    auto grouped_a = Import("NL-0001", {a});
    ASSERT_EQ(grouped_a.exit_code, 0) << grouped_a.err;
    auto grouped_b = Import("NL-0002", {b});
    ASSERT_EQ(grouped_b.exit_code, 0) << grouped_b.err;

    TestSchema rounds;
    storage::Database(rounds.conninfo(), 1).Migrate();
    auto import_into = [&](const TestSchema& s, const std::string& library, std::vector<std::string> files) {
        std::vector<std::string> argv{IblctlPath(), "--json", "import", "--db", s.conninfo(), "--library", library,
                                      "--name", "Bibliotheek " + library, "--rejects", dir_.File("r.rejects")};
        argv.insert(argv.end(), files.begin(), files.end());
        return RunCommand(argv, 120s);
    };
    auto rounds_a = import_into(rounds, "NL-0001", {a, a1});
    ASSERT_EQ(rounds_a.exit_code, 0) << rounds_a.err;
    EXPECT_NE(rounds_a.out.find("\"duplicates\":1"), std::string::npos) << rounds_a.out;
    auto rounds_b = import_into(rounds, "NL-0002", {b, b1});
    ASSERT_EQ(rounds_b.exit_code, 0) << rounds_b.err;

    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 7500);
    // Not a trivial partition: many records share works, within and across libraries.
    EXPECT_LT(Count("SELECT count(*) FROM work"), 7500 - 3000);
    EXPECT_GT(Count("SELECT count(*) FROM (SELECT work_id FROM record_work GROUP BY work_id HAVING count(*) > 2) w"), 100);
    EXPECT_EQ(Partition(schema_), Partition(rounds));
    EXPECT_EQ(Count("SELECT count(*) FROM work"), std::stoll(rounds.Query1("SELECT count(*) FROM work")));
    ExpectIntegrity();
}

// A load whose indexes outgrow --index-memory goes on the general way (staged,
// merged in SQL) from that record on, and must end exactly as a load with
// room to spare: same records, copies, works and log.
TEST_F(CatalogueImportTest, ALoadBeyondItsIndexMemoryEndsAsOneWithRoom) {
    auto gen = [&](const std::string& name, int count, int seed) {
        std::string out = dir_.File(name);
        auto r = RunCommand({BinDir() + "/tools/gen-records", "--count", std::to_string(count), "--seed", std::to_string(seed),
                             "--format", "iso2709", "--out", out, Data("slices/thomas-mann-shared-71.xml"),
                             Data("originals/pymarc_basics/NLNZ_100_example_marc.marc")});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return out;
    };
    std::string a = gen("a.mrc", 6000, 7), b = gen("b.mrc", 8000, 7);
    auto roomy_a = Import("NL-0001", {a});
    ASSERT_EQ(roomy_a.exit_code, 0) << roomy_a.err;
    EXPECT_NE(roomy_a.out.find("\"bounded_from\":-1,"), std::string::npos) << roomy_a.out;
    ASSERT_EQ(Import("NL-0002", {b}).exit_code, 0);

    TestSchema tight;
    storage::Database(tight.conninfo(), 1).Migrate();
    auto import_into = [&](const std::string& library, const std::string& file, const std::string& memory) {
        return RunCommand({IblctlPath(), "--json", "import", "--db", tight.conninfo(), "--library", library,
                           "--name", "Bibliotheek " + library, "--province", "NL-GE", "--rejects",
                           dir_.File("t.rejects"), "--index-memory", memory, file}, 120s);
    };
    auto bounded_from = [](const std::string& json) {
        auto p = json.find("\"bounded_from\":");
        return p == std::string::npos ? -2 : std::stoll(json.substr(p + 15));
    };
    auto tight_a = import_into("NL-0001", a, "256K");
    ASSERT_EQ(tight_a.exit_code, 0) << tight_a.err;
    // The budget is reached part way through the file, not at its start.
    EXPECT_GT(bounded_from(tight_a.out), 0) << tight_a.out;
    EXPECT_LT(bounded_from(tight_a.out), 6000) << tight_a.out;
    auto tight_b = import_into("NL-0002", b, "256K");
    ASSERT_EQ(tight_b.exit_code, 0) << tight_b.err;
    EXPECT_GT(bounded_from(tight_b.out), 0) << tight_b.out;

    auto same = [&](const std::string& sql) { EXPECT_EQ(schema_.Query1(sql), tight.Query1(sql)) << sql; };
    same("SELECT md5(string_agg(library || local_id || checksum || version || deleted, ',' ORDER BY library, local_id))"
         " FROM bib_record");
    same("SELECT md5(string_agg(h.library || b.local_id || h.barcode || h.status, ',' ORDER BY h.library, h.barcode))"
         " FROM holding h JOIN bib_record b ON b.id = h.record_id");
    same("SELECT count(*) FROM work");
    same("SELECT count(*) || ' ' || max(seq) FROM change_log");
    // The same changes, though not necessarily in the same order.
    same("SELECT md5(string_agg(entity || op || library || local_id || coalesce(version, 0), ','"
         " ORDER BY library, local_id, entity, op, version)) FROM change_log");
    EXPECT_EQ(Partition(schema_), Partition(tight));
    EXPECT_LT(Count("SELECT count(*) FROM work"), 14000 - 6000);

    // The library's own checksums alone exceed half the budget: the whole
    // load goes the general way, and a reload is still all unchanged.
    auto again = import_into("NL-0001", a, "64K");
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(bounded_from(again.out), 0) << again.out;
    EXPECT_NE(again.out.find("\"new\":0,\"changed\":0,\"unchanged\":6000,\"deleted\":0"), std::string::npos)
        << again.out;
    same("SELECT count(*) || ' ' || max(seq) FROM change_log");
}

// A file that names a new record twice: the last occurrence counts, also for
// its copies, though the first one's copies were already written.
TEST_F(CatalogueImportTest, ARepeatedNewRecordKeepsOnlyTheCopiesOfItsLastOccurrence) {
    std::string file = dir_.File("twice.ndjson");
    WriteFile(file,
              R"({"id":"R1","title":"De avonden","holdings":[{"barcode":"A1"},{"barcode":"B1"},{"barcode":"C1"}]})" "\n"
              R"({"id":"R2","title":"Het stenen bruidsbed","holdings":[{"barcode":"D1"}]})" "\n"
              R"({"id":"R1","title":"De avonden","holdings":[{"barcode":"A1","status":"on_loan"},{"barcode":"E1"}]})" "\n"
              R"({"id":"R2","title":"Het stenen bruidsbed"})" "\n");
    auto r = Import("NL-0001", {file});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"new\":2,\"changed\":0,\"unchanged\":0,\"deleted\":0,\"duplicates\":2,"
                         "\"copies_new\":3,\"copies_changed\":1,\"copies_deleted\":0"), std::string::npos) << r.out;
    EXPECT_EQ(schema_.Query1("SELECT string_agg(b.local_id || ':' || h.barcode || ':' || h.status, ' '"
                             " ORDER BY h.barcode) FROM holding h JOIN bib_record b ON b.id = h.record_id"),
              "R1:A1:on_loan R2:D1:available R1:E1:available");
    // The log tells what a follower must know to end in the same state: two
    // records and the three copies that exist (A1 as first written, then
    // changed), nothing of B1 or C1, which never existed outside the load.
    EXPECT_EQ(schema_.Query1("SELECT string_agg(entity || ' ' || op || ' ' || local_id, ', '"
                             " ORDER BY entity, local_id, op) FROM change_log"),
              "holding insert A1, holding update A1, holding insert D1, holding insert E1, record insert R1, "
              "record insert R2");
    ExpectGapFreeLog();
    ExpectIntegrity();
    auto again = Import("NL-0001", {file});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 6) << again.out;
}

// A later new record of the same load lists a copy that an earlier one
// brought: the copy moves, and the log says so in two steps (inserted under
// R1 as the load first wrote it, then updated to R2), numbered without gaps.
TEST_F(CatalogueImportTest, ACopyTakenOverWithinALoadIsLoggedAsInsertedThenMoved) {
    std::string file = dir_.File("takeover.ndjson");
    WriteFile(file,
              R"({"id":"R1","title":"De avonden","holdings":[{"barcode":"A1"},{"barcode":"B1"}]})" "\n"
              R"({"id":"R2","title":"Het stenen bruidsbed","holdings":[{"barcode":"A1","status":"on_loan"}]})" "\n");
    auto r = Import("NL-0001", {file});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"new\":2,\"changed\":0,\"unchanged\":0,\"deleted\":0,\"duplicates\":0,"
                         "\"copies_new\":2,\"copies_changed\":1,\"copies_deleted\":0"), std::string::npos) << r.out;
    EXPECT_EQ(schema_.Query1("SELECT string_agg(b.local_id || ':' || h.barcode || ':' || h.status || ':' || h.version, ' '"
                             " ORDER BY h.barcode) FROM holding h JOIN bib_record b ON b.id = h.record_id"),
              "R2:A1:on_loan:2 R1:B1:available:1");
    EXPECT_EQ(schema_.Query1("SELECT string_agg(concat_ws(' ', entity, op, local_id, record_local_id, version), ', '"
                             " ORDER BY seq) FROM change_log"),
              "record insert R1 1, record insert R2 1, holding insert A1 R1 1, holding insert B1 R1 1, "
              "holding update A1 R2 2");
    ExpectGapFreeLog();
    ExpectIntegrity();
    auto again = Import("NL-0001", {file});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 5) << again.out;
}

// The load's spool file cannot be made: the load stops before it changes
// anything and says where it tried.
TEST_F(CatalogueImportTest, NoRoomForTheSpoolChangesNothing) {
    auto first = Import("NL-0001", {Data("originals/pymarc_basics/NLNZ_100_example_marc.marc")});
    ASSERT_EQ(first.exit_code, 0) << first.err;
    std::string before = State();
    auto r = RunCommand({IblctlPath(), "import", "--db", schema_.conninfo(), "--library", "NL-0001", "--full",
                         "--rejects", dir_.File("x.rejects"), Data("slices/thomas-mann-shared-71.xml")},
                        60s, [] { setenv("TMPDIR", "/nonexistent/spool", 1); });
    EXPECT_EQ(r.exit_code, 1) << r.out;
    EXPECT_NE(r.err.find("iblctl: import failed, nothing was changed: cannot create the load's spool file in "
                         "/nonexistent/spool"), std::string::npos) << r.err;
    EXPECT_EQ(State(), before);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 101);
    ExpectIntegrity();
}

// Writes `copies` versions of a real MARCXML file, each record with a new 001.
std::string BigFile(const TempDir& dir, int copies) {
    std::string src = ReadFile(Data("slices/thomas-mann-shared-71.xml"));
    auto start = src.find("<record"), end = src.rfind("</record>") + 9;
    std::string body = src.substr(start, end - start);
    std::string path = dir.File("big.xml");
    std::ofstream out(path);
    out << "<collection xmlns=\"http://www.loc.gov/MARC21/slim\">\n";
    for (int i = 0; i < copies; ++i) {
        std::string copy = body;
        for (std::size_t p = copy.find("<controlfield tag=\"001\">"); p != std::string::npos;
             p = copy.find("<controlfield tag=\"001\">", p + 1))
            copy.insert(p + 24, fmt::format("c{}-", i));
        out << copy;
    }
    out << "</collection>\n";
    return path;
}

TEST_F(CatalogueImportTest, KillNineDuringALoadLeavesNothingAndARerunMatchesACleanRun) {
    std::string file = BigFile(dir_, 300);  // 21,300 records
    auto first = Import("NL-0001", {Data("originals/pymarc_basics/NLNZ_100_example_marc.marc")});
    ASSERT_EQ(first.exit_code, 0) << first.err;
    std::string before = State();

    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(IblctlPath().c_str(), "iblctl", "import", "--db", schema_.conninfo().c_str(), "--library", "NL-0001",
              "--full", "--rejects", dir_.File("killed.rejects").c_str(), file.c_str(), nullptr);
        _exit(127);
    }
    // Kill while the COPY is running.
    ASSERT_TRUE(WaitFor([&] {
        return Count(fmt::format("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY bib_record%' "
                                 "AND state = 'active' AND {}", Mine())) > 0;
    }, 60s));
    std::this_thread::sleep_for(200ms);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the load finished before it could be killed";
    // PostgreSQL rolls the transaction back when the client's connection drops.
    ASSERT_TRUE(WaitFor([&] {
        return Count("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %' AND " + Mine()) == 0;
    }, 30s));
    EXPECT_EQ(State(), before);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 101);

    auto rerun = Import("NL-0001", {file}, true);
    ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
    // A clean run of the same load in a schema of its own.
    TestSchema clean;
    storage::Database(clean.conninfo(), 1).Migrate();
    auto clean_import = [&](const std::string& f, bool full) {
        std::vector<std::string> argv{IblctlPath(), "import", "--db", clean.conninfo(), "--library", "NL-0001",
                                      "--name", "Bibliotheek NL-0001", "--province", "NL-GE",
                                      "--rejects", dir_.File("clean.rejects"), f};
        if (full) argv.push_back("--full");
        return RunCommand(argv, 120s);
    };
    ASSERT_EQ(clean_import(Data("originals/pymarc_basics/NLNZ_100_example_marc.marc"), false).exit_code, 0);
    ASSERT_EQ(clean_import(file, true).exit_code, 0);
    auto state_of = [](const TestSchema& s) {
        return s.Query1("SELECT md5(string_agg(local_id || ':' || checksum || ':' || deleted || ':' || version, ',' "
                        "ORDER BY local_id)) FROM bib_record");
    };
    EXPECT_EQ(state_of(schema_), state_of(clean));
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record WHERE NOT deleted"), 21300);
    ExpectGapFreeLog();
    ExpectIntegrity();
}

// The database side of a load dies (the backend is terminated, as when
// PostgreSQL restarts or an admin kills the session): iblctl reports it,
// nothing of the load is committed, and a rerun gives the clean result.
TEST_F(CatalogueImportTest, ABackendKilledMidLoadLeavesNothingAndARerunCompletes) {
    std::string file = BigFile(dir_, 300);
    auto first = Import("NL-0001", {Data("originals/pymarc_basics/NLNZ_100_example_marc.marc")});
    ASSERT_EQ(first.exit_code, 0) << first.err;
    std::string before = State();
    CommandResult killed;
    std::thread load([&] { killed = Import("NL-0001", {file}, true); });
    bool copying = WaitFor([&] {
        return Count("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY bib_record%' AND state = 'active' AND " +
                     Mine()) > 0;
    }, 60s);
    std::string terminated = schema_.Query1(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'COPY %' AND pid <> pg_backend_pid()"
        " AND " + Mine());
    load.join();
    ASSERT_TRUE(copying) << "the load finished before the backend could be terminated";
    EXPECT_EQ(terminated, "1");
    EXPECT_EQ(killed.exit_code, 1) << killed.out;
    EXPECT_NE(killed.err.find("iblctl: import failed, nothing was changed: "), std::string::npos) << killed.err;
    EXPECT_EQ(State(), before);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log"), 101);
    ExpectIntegrity();

    auto rerun = Import("NL-0001", {file}, true);
    ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
    EXPECT_NE(rerun.out.find("\"new\":21300,\"changed\":0,\"unchanged\":0,\"deleted\":101"), std::string::npos) << rerun.out;
    ExpectGapFreeLog();
    ExpectIntegrity();
}

}  // namespace
}  // namespace iblsync::test

namespace iblsync::test {
namespace {

// Precision and recall of the work clusters on pairs judged by hand
// (tests/data/dedupe/judged-pairs.tsv).
TEST_F(CatalogueImportTest, DeduplicationOnHandJudgedPairs) {
    std::vector<std::string> files{Data("originals/pymarc_basics/NLNZ_100_example_marc.marc"),
                                   Data("slices/thomas-mann-shared-71.xml")};
    ASSERT_EQ(Import("NL-0001", files).exit_code, 0);
    auto second = Import("NL-0002", {Data("slices/thomas-mann-shared-71.xml")});
    ASSERT_EQ(second.exit_code, 0) << second.err;
    EXPECT_NE(second.out.find("\"works_created\":0"), std::string::npos) << second.out;  // all joined library A's works

    std::istringstream pairs(ReadFile(SourceDir() + "/tests/data/dedupe/judged-pairs.tsv"));
    std::string line;
    int tp = 0, fp = 0, fn = 0, tn = 0;
    while (std::getline(pairs, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::vector<std::string> col;
        std::istringstream cells(line);
        for (std::string c; std::getline(cells, c, '\t');) col.push_back(c);
        ASSERT_GE(col.size(), 8u) << line;
        auto work = [&](const std::string& lib, const std::string& id) {
            return schema_.Query1(fmt::format("SELECT w.work_id FROM bib_record b JOIN record_work w ON w.record_id = b.id"
                                              " WHERE b.library = '{}' AND b.local_id = '{}'", lib, id));
        };
        std::string a = work(col[0], col[2]), b = work(col[3], col[5]);
        ASSERT_FALSE(a.empty() || b.empty()) << "record not loaded: " << line;
        bool predicted = a == b, judged = col[6] == "yes";
        tp += predicted && judged;
        fp += predicted && !judged;
        fn += !predicted && judged;
        tn += !predicted && !judged;
        if (predicted != judged) std::cout << (predicted ? "false merge: " : "missed: ") << col[7] << "\n";
    }
    double precision = tp + fp ? static_cast<double>(tp) / (tp + fp) : 1.0;
    double recall = tp + fn ? static_cast<double>(tp) / (tp + fn) : 1.0;
    std::cout << fmt::format("dedupe on {} judged pairs: precision {:.2f}, recall {:.2f} (tp={} fp={} fn={} tn={})\n",
                             tp + fp + fn + tn, precision, recall, tp, fp, fn, tn);
    EXPECT_EQ(fp, 0) << "records judged different were put in one work";
    EXPECT_GE(recall, 0.75);
    EXPECT_EQ(Count("SELECT count(*) FROM work w WHERE NOT EXISTS (SELECT 1 FROM record_work r WHERE r.work_id = w.id)"), 0);
}

TEST_F(CatalogueImportTest, ARecordThatChangesItsIsbnMovesAndSharedIsbnsMergeWorks) {
    auto record = [](const std::string& id, const std::string& isbn, const std::string& title) {
        return fmt::format(
            "<record><leader>00000nam a2200000 a 4500</leader><controlfield tag=\"001\">{}</controlfield>"
            "<datafield tag=\"020\" ind1=\" \" ind2=\" \"><subfield code=\"a\">{}</subfield></datafield>"
            "<datafield tag=\"245\" ind1=\"0\" ind2=\"0\"><subfield code=\"a\">{}</subfield></datafield></record>",
            id, isbn, title);
    };
    auto write = [&](const std::string& name, const std::vector<std::string>& recs) {
        std::string body = "<collection xmlns=\"http://www.loc.gov/MARC21/slim\">";
        for (const auto& r : recs) body += r;
        WriteFile(dir_.File(name), body + "</collection>");
        return dir_.File(name);
    };
    // Two works: {a1, b1} share ISBN X; c1 has ISBN Y.
    ASSERT_EQ(Import("NL-0001", {write("1.xml", {record("a1", "0-306-40615-2", "One"), record("c1", "90-274-3964-8", "Two")})}).exit_code, 0);
    ASSERT_EQ(Import("NL-0002", {write("2.xml", {record("b1", "0-306-40615-2", "One again")})}).exit_code, 0);
    auto work_of = [&](const std::string& id) { return schema_.Query1("SELECT w.work_id FROM bib_record b JOIN record_work w ON w.record_id = b.id"
                              " WHERE b.local_id = '" + id + "'"); };
    EXPECT_EQ(work_of("a1"), work_of("b1"));
    EXPECT_NE(work_of("a1"), work_of("c1"));
    // a1 is re-catalogued with ISBN Y: it moves to c1's work; b1 stays.
    std::string b1_work = work_of("b1");
    auto moved = Import("NL-0001", {write("3.xml", {record("a1", "90-274-3964-8", "One"), record("c1", "90-274-3964-8", "Two")})});
    EXPECT_NE(moved.out.find("\"records_moved\":1"), std::string::npos) << moved.out;
    EXPECT_EQ(work_of("a1"), work_of("c1"));
    EXPECT_EQ(work_of("b1"), b1_work);
    EXPECT_EQ(Count("SELECT count(*) FROM work_event WHERE kind = 'move'"), 1);
    // b1 gains ISBN Y as a second ISBN: it connects the two works, which merge.
    auto both = fmt::format(
        "<record><leader>00000nam a2200000 a 4500</leader><controlfield tag=\"001\">b1</controlfield>"
        "<datafield tag=\"020\" ind1=\" \" ind2=\" \"><subfield code=\"a\">0-306-40615-2</subfield></datafield>"
        "<datafield tag=\"020\" ind1=\" \" ind2=\" \"><subfield code=\"a\">90-274-3964-8</subfield></datafield>"
        "<datafield tag=\"245\" ind1=\"0\" ind2=\"0\"><subfield code=\"a\">One again</subfield></datafield></record>");
    auto merged = Import("NL-0002", {write("4.xml", {both})});
    EXPECT_EQ(work_of("b1"), work_of("c1"));
    EXPECT_EQ(Count("SELECT count(DISTINCT work_id) FROM record_work"), 1);
    EXPECT_EQ(Count("SELECT count(*) FROM work"), 1);  // the emptied work is gone
    EXPECT_GE(Count("SELECT count(*) FROM work_event WHERE kind IN ('merge', 'move')"), 2);
    ExpectIntegrity();
}

}  // namespace
}  // namespace iblsync::test
