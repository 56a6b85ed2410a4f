// File drops by a real daemon: a library's system leaves exports in a
// directory, the daemon loads each one and moves it to done/ or failed/ with
// a report. The exports are real MARC records (tests/data/marc/PROVENANCE.md)
// and records generated from them (tools/gen-records); the database is a
// real PostgreSQL.

#include <signal.h>

#include <filesystem>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kLibrary = "NL-0000000301";

std::string Data(const std::string& name) { return SourceDir() + "/tests/data/marc/" + name; }
std::string Mann() { return Data("slices/thomas-mann-shared-71.xml"); }

// The distinct 001s of a MARCXML file.
std::set<std::string> Ids(const std::string& file) {
    std::set<std::string> out;
    const std::string text = ReadFile(file);
    const std::string tag = "<controlfield tag=\"001\">";
    for (auto p = text.find(tag); p != std::string::npos; p = text.find(tag, p + 1)) {
        auto start = p + tag.size();
        out.insert(text.substr(start, text.find('<', start) - start));
    }
    return out;
}

// The records of a MARCXML collection from `first` on, `count` of them.
std::string Slice(const std::string& file, std::size_t first, std::size_t count) {
    const std::string text = ReadFile(file);
    std::vector<std::pair<std::size_t, std::size_t>> records;
    for (auto p = text.find("<record"); p != std::string::npos; p = text.find("<record", p + 1)) {
        auto end = text.find("</record>", p) + 9;
        records.emplace_back(p, end);
        p = end;
    }
    std::string out = text.substr(0, records.front().first);
    for (std::size_t i = first; i < records.size() && i < first + count; ++i)
        out += text.substr(records[i].first, records[i].second - records[i].first) + "\n";
    return out + "</collection>\n";
}

std::vector<std::string> Listing(const std::string& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

class FileDropTest : public ::testing::Test {
protected:
    void SetUp() override {
        incoming_ = dir_.File("drop");
        fs::create_directories(incoming_);
    }

    NodeConfig Config(const std::string& more = "") {
        NodeConfig cfg;
        cfg.conninfo = schema_.conninfo();
        cfg.extra_toml = fmt::format(
            "\n[[drop]]\nname = \"ede-export\"\nlibrary = \"{}\"\ndirectory = \"{}\"\npoll_seconds = 1\n"
            "settle_seconds = 0\n{}",
            kLibrary, incoming_, more);
        return cfg;
    }
    void Register(DaemonProcess& d) {
        auto r = d.Iblctl({"library", "add", kLibrary, "--name", "Bibliotheek Drop", "--province", "NL-GE"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }

    long long Count(const std::string& sql) { return std::stoll(schema_.Query1(sql)); }
    long long Live() {
        return Count(fmt::format("SELECT count(*) FROM bib_record WHERE library = '{}' AND NOT deleted", kLibrary));
    }
    long long LogRows() { return Count("SELECT count(*) FROM change_log"); }
    std::string Drop(const std::string& what) {
        return schema_.Query1(fmt::format("SELECT {} FROM file_drop WHERE name = 'ede-export'", what));
    }
    std::string In(const std::string& sub, const std::string& name) { return incoming_ + "/" + sub + "/" + name; }
    bool WaitMoved(const std::string& sub, const std::string& name, std::chrono::milliseconds timeout = 60s) {
        return WaitFor([&] { return fs::exists(In(sub, name) + ".report") && fs::exists(In(sub, name)); }, timeout);
    }
    // Every record once in the log, and the log numbered without gaps.
    void ExpectNoDuplicateLog() {
        EXPECT_EQ(Count("SELECT count(*) - count(DISTINCT local_id) FROM change_log WHERE entity = 'record'"
                        " AND op = 'insert'"),
                  0);
        EXPECT_EQ(Count("SELECT coalesce(max(seq) - min(seq) + 1 - count(*), 0) FROM change_log"), 0);
    }

    TempDir dir_;
    TestSchema schema_;
    std::string incoming_;
};

// A library not yet registered: the file waits. Registered: a file still
// being written (.part) is left alone; renamed, it loads, moves to done/ with
// a report, and shows in sync status, the metrics and STATUS. A second,
// gzip-compressed ISO 2709 file with a broken record loads the good ones
// and lists the broken one in its report.
TEST_F(FileDropTest, LoadsExportsAndMovesThemToDoneWithAReport) {
    DaemonProcess d(dir_, Config());
    ASSERT_TRUE(d.Start()) << d.Log();
    fs::copy_file(Mann(), incoming_ + "/mann.xml");
    ASSERT_TRUE(WaitFor([&] { return Drop("errors_in_row") != "" && Drop("errors_in_row") != "0"; }, 20s)) << d.Log();
    EXPECT_NE(Drop("last_error").find("library NL-0000000301 is not registered (register it: iblctl library add"),
              std::string::npos)
        << Drop("last_error");
    EXPECT_TRUE(fs::exists(incoming_ + "/mann.xml"));
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 0);
    EXPECT_TRUE(d.WaitForNotification("drops=1 drops_failing=1", 10s));
    auto table = d.Iblctl({"sync", "status"});
    EXPECT_NE(table.out.find("ede-export          NL-0000000301    failing"), std::string::npos) << table.out;

    // A .part file is still being written.
    fs::rename(incoming_ + "/mann.xml", incoming_ + "/mann.xml.part");
    Register(d);
    ASSERT_TRUE(d.Iblctl({"sync", "run", "ede-export"}).exit_code == 0);
    ASSERT_TRUE(WaitFor([&] { return Drop("errors_in_row") == "0"; }, 20s)) << d.Log();
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 0);
    EXPECT_TRUE(fs::exists(incoming_ + "/mann.xml.part"));

    fs::rename(incoming_ + "/mann.xml.part", incoming_ + "/mann.xml");
    ASSERT_TRUE(WaitMoved("done", "mann.xml")) << d.Log();
    const auto ids = Ids(Mann());
    EXPECT_EQ(Live(), static_cast<long long>(ids.size()));
    EXPECT_FALSE(fs::exists(incoming_ + "/mann.xml"));
    const std::string report = ReadFile(In("done", "mann.xml") + ".report");
    EXPECT_NE(report.find("file        mann.xml\n"), std::string::npos) << report;
    EXPECT_NE(report.find("drop        ede-export (library NL-0000000301, mode incremental)\n"), std::string::npos);
    EXPECT_NE(report.find("outcome     loaded\n"), std::string::npos) << report;
    EXPECT_NE(report.find("records     71 read, 0 rejected"), std::string::npos) << report;
    EXPECT_NE(report.find(fmt::format("new         {}\n", ids.size())), std::string::npos) << report;
    EXPECT_EQ(Count("SELECT count(*) FROM file_drop_load WHERE outcome = 'loaded' AND file = 'mann.xml' AND records = 71"),
              1);
    EXPECT_EQ(Drop("files_loaded"), "1");
    EXPECT_EQ(Drop("last_file"), "mann.xml");

    // gzip-compressed ISO 2709 with one record whose leader is garbage.
    const std::string iso = ReadFile(Data("originals/pymarc/marc.dat"));
    ASSERT_GT(iso.size(), 100u);
    const std::string first = iso.substr(0, std::stoul(iso.substr(0, 5)));
    WriteFile(dir_.File("mixed.mrc"), iso + "00099xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\x1d" + first);
    ASSERT_EQ(RunCommand({"/bin/gzip", "-n", dir_.File("mixed.mrc")}).exit_code, 0);
    const long long before = Live();
    fs::rename(dir_.File("mixed.mrc.gz"), incoming_ + "/mixed.mrc.gz");
    ASSERT_TRUE(WaitMoved("done", "mixed.mrc.gz")) << d.Log();
    const std::string mixed = ReadFile(In("done", "mixed.mrc.gz") + ".report");
    EXPECT_NE(mixed.find("outcome     loaded\n"), std::string::npos) << mixed;
    EXPECT_NE(mixed.find(", 1 rejected"), std::string::npos) << mixed;
    EXPECT_NE(mixed.find("# byte offset\trecord number\treason\n"), std::string::npos) << mixed;
    EXPECT_NE(mixed.find("duplicates  1 (the last occurrence counts)"), std::string::npos) << mixed;
    EXPECT_GT(Live(), before);
    EXPECT_EQ(Drop("files_loaded"), "2");
    ExpectNoDuplicateLog();

    auto json = d.Iblctl({"--json", "sync", "status"});
    EXPECT_NE(json.out.find(R"("name":"ede-export","library":"NL-0000000301")"), std::string::npos) << json.out;
    EXPECT_NE(json.out.find(R"("state":"watching")"), std::string::npos) << json.out;
    EXPECT_NE(json.out.find(R"("files_loaded":2,"files_failed":0)"), std::string::npos) << json.out;
    table = d.Iblctl({"sync", "status"});
    EXPECT_NE(table.out.find("DROP                LIBRARY          STATE"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("ede-export          NL-0000000301    watching"), std::string::npos) << table.out;
    auto metrics = HttpGet(d.port(), "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("iblsync_drop_files_total{drop=\"ede-export\",outcome=\"loaded\"} 2"),
              std::string::npos);
    EXPECT_NE(metrics->body.find("iblsync_drop_failing{drop=\"ede-export\"} 0"), std::string::npos);
    EXPECT_TRUE(d.WaitForNotification("drops=1 drops_failing=0", 10s));
    EXPECT_EQ(Listing(incoming_), (std::vector<std::string>{"done", "failed"}));
}

// Files that cannot be loaded go to failed/ with the reason, and change
// nothing: garbage, an XML bomb, a truncated gzip whose first records parse,
// an empty file. A good file afterwards clears the failing state.
TEST_F(FileDropTest, BadFilesGoToFailedAndChangeNothing) {
    DaemonProcess d(dir_, Config());
    ASSERT_TRUE(d.Start()) << d.Log();
    Register(d);
    fs::copy_file(Mann(), incoming_ + "/mann.xml");
    ASSERT_TRUE(WaitMoved("done", "mann.xml")) << d.Log();
    const long long live = Live(), log = LogRows();
    const std::string checksum = schema_.Query1("SELECT md5(string_agg(checksum::text, ',' ORDER BY local_id)) FROM bib_record");

    WriteFile(dir_.File("garbage.mrc"), std::string(5000, '\x7f') + "\xff\xfe not a record");
    WriteFile(dir_.File("bomb.xml"),
              "<?xml version=\"1.0\"?>\n<!DOCTYPE c [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">"
              "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">]>\n"
              "<collection xmlns=\"http://www.loc.gov/MARC21/slim\"><record><leader>&d;</leader>"
              "<controlfield tag=\"001\">&d;</controlfield></record></collection>\n");
    WriteFile(dir_.File("empty.xml"), "");
    // Half of a gzip file: its first records read well, then the stream ends.
    fs::copy_file(Mann(), dir_.File("cut.xml"));
    ASSERT_EQ(RunCommand({"/bin/gzip", "-n", dir_.File("cut.xml")}).exit_code, 0);
    const std::string gz = ReadFile(dir_.File("cut.xml.gz"));
    WriteFile(dir_.File("cut.xml.gz"), gz.substr(0, gz.size() / 2));
    for (const char* f : {"garbage.mrc", "bomb.xml", "empty.xml", "cut.xml.gz"})
        fs::rename(dir_.File(f), incoming_ + "/" + f);

    for (const char* f : {"garbage.mrc", "bomb.xml", "empty.xml", "cut.xml.gz"})
        ASSERT_TRUE(WaitMoved("failed", f)) << f << "\n" << d.Log();
    auto report = [&](const char* f) { return ReadFile(In("failed", f) + ".report"); };
    EXPECT_NE(report("garbage.mrc").find("outcome     failed: no record of the file could be read (see the reasons "
                                         "below); nothing was loaded\n"),
              std::string::npos)
        << report("garbage.mrc");
    EXPECT_NE(report("bomb.xml").find("outcome     failed: no record of the file could be read"), std::string::npos)
        << report("bomb.xml");
    EXPECT_NE(report("empty.xml").find("outcome     failed: the file holds no records; nothing was loaded\n"),
              std::string::npos)
        << report("empty.xml");
    const std::string cut = report("cut.xml.gz");
    EXPECT_NE(cut.find("outcome     failed: "), std::string::npos) << cut;
    EXPECT_NE(cut.find("cut.xml.gz: unexpected end of file; nothing was loaded"), std::string::npos) << cut;

    EXPECT_EQ(Live(), live);
    EXPECT_EQ(LogRows(), log);
    EXPECT_EQ(schema_.Query1("SELECT md5(string_agg(checksum::text, ',' ORDER BY local_id)) FROM bib_record"), checksum);
    EXPECT_EQ(Count("SELECT count(*) FROM file_drop_load WHERE outcome = 'failed'"), 4);
    EXPECT_EQ(Drop("files_failed"), "4");
    EXPECT_NE(Drop("errors_in_row"), "0");
    auto table = d.Iblctl({"sync", "status"});
    EXPECT_NE(table.out.find("ede-export          NL-0000000301    failing"), std::string::npos) << table.out;
    EXPECT_TRUE(d.WaitForLog("drop file failed drop=ede-export", 1s));

    // A good file: the drop is well again.
    WriteFile(dir_.File("again.xml"), Slice(Mann(), 0, 5));
    fs::rename(dir_.File("again.xml"), incoming_ + "/again.xml");
    ASSERT_TRUE(WaitMoved("done", "again.xml")) << d.Log();
    EXPECT_TRUE(WaitFor([&] { return Drop("errors_in_row") == "0"; }, 5s));
    EXPECT_EQ(LogRows(), log);  // the same records again: nothing changed
    EXPECT_TRUE(d.WaitForLog("drop recovered drop=ede-export", 5s));
}

// mode = "full": what a file lacks is deleted, unless that is more than
// max_delete_percent of the library; then the file goes to failed/ and
// nothing changes.
TEST_F(FileDropTest, FullModeDeletesWhatTheFileLacksAndRefusesAMassDeletion) {
    DaemonProcess d(dir_, Config("mode = \"full\"\nmax_delete_percent = 20\n"));
    ASSERT_TRUE(d.Start()) << d.Log();
    Register(d);
    fs::copy_file(Mann(), incoming_ + "/day1.xml");
    ASSERT_TRUE(WaitMoved("done", "day1.xml")) << d.Log();
    const long long all = Live();
    ASSERT_EQ(all, static_cast<long long>(Ids(Mann()).size()));

    // Without its first 3 records: 3 deleted.
    WriteFile(dir_.File("day2.xml"), Slice(Mann(), 3, 1000));
    const long long remaining = static_cast<long long>(Ids(dir_.File("day2.xml")).size());
    fs::rename(dir_.File("day2.xml"), incoming_ + "/day2.xml");
    ASSERT_TRUE(WaitMoved("done", "day2.xml")) << d.Log();
    EXPECT_EQ(Live(), remaining);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'record' AND op = 'delete'"), all - remaining);
    EXPECT_NE(ReadFile(In("done", "day2.xml") + ".report").find(fmt::format("deleted     {}\n", all - remaining)),
              std::string::npos);

    // Only 5 records: the rest would go. Refused.
    const long long log = LogRows();
    WriteFile(dir_.File("day3.xml"), Slice(Mann(), 3, 5));
    const long long would_delete = remaining - static_cast<long long>(Ids(dir_.File("day3.xml")).size());
    fs::rename(dir_.File("day3.xml"), incoming_ + "/day3.xml");
    ASSERT_TRUE(WaitMoved("failed", "day3.xml")) << d.Log();
    const std::string report = ReadFile(In("failed", "day3.xml") + ".report");
    EXPECT_NE(report.find(fmt::format("outcome     failed: the full load would delete {} of the library's {} records "
                                      "(more than 20%); if the library really lost that much, "
                                      "load the file with iblctl import --full; nothing was loaded\n",
                                      would_delete, remaining)),
              std::string::npos)
        << report;
    EXPECT_EQ(Live(), remaining);
    EXPECT_EQ(LogRows(), log);
    EXPECT_NE(Drop("last_error").find("day3.xml: the full load would delete"), std::string::npos) << Drop("last_error");
}

// kill -9 while a large export loads: nothing of it is committed and the
// file stays; after the restart it loads once. A file that was committed but
// not moved away (found again with the same name, size and time) is only
// moved: loaded once, never twice.
TEST_F(FileDropTest, KilledMidLoadLoadsTheFileOnceAfterRestart) {
    const std::string big = dir_.File("big.mrc");
    auto gen = RunCommand({BinDir() + "/tools/gen-records", "--count", "60000", "--seed", "7", "--format", "iso2709",
                           "--out", big, Mann(), Data("originals/pymarc_basics/NLNZ_100_example_marc.marc")});
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    auto d = std::make_unique<DaemonProcess>(dir_, Config());
    ASSERT_TRUE(d->Start()) << d->Log();
    Register(*d);
    fs::rename(big, incoming_ + "/big.mrc");
    ASSERT_TRUE(d->WaitForLog("drop file loading drop=ede-export file=big.mrc", 30s)) << d->Log();
    std::this_thread::sleep_for(300ms);
    d->Signal(SIGKILL);
    EXPECT_EQ(d->WaitExit(10s), 128 + SIGKILL);
    EXPECT_EQ(Count("SELECT count(*) FROM bib_record"), 0) << "the load committed before the kill; make the file larger";
    EXPECT_EQ(LogRows(), 0);
    EXPECT_TRUE(fs::exists(incoming_ + "/big.mrc"));

    d = std::make_unique<DaemonProcess>(dir_, Config());
    ASSERT_TRUE(d->Start()) << d->Log();
    ASSERT_TRUE(WaitMoved("done", "big.mrc", 300s)) << d->Log();
    const long long live = Live();
    EXPECT_GT(live, 50000);
    EXPECT_EQ(Count("SELECT count(*) FROM change_log WHERE entity = 'record' AND op = 'insert'"), live);
    ExpectNoDuplicateLog();
    EXPECT_EQ(Count("SELECT count(*) FROM file_drop_load WHERE file = 'big.mrc' AND outcome = 'loaded'"), 1);

    // As if the node had stopped after the commit, before the move: the same
    // file (name, size, modification time) back in the directory.
    const long long log = LogRows();
    fs::copy_file(In("done", "big.mrc"), incoming_ + "/big.mrc.part");
    fs::last_write_time(incoming_ + "/big.mrc.part", fs::last_write_time(In("done", "big.mrc")));
    fs::rename(incoming_ + "/big.mrc.part", incoming_ + "/big.mrc");
    ASSERT_TRUE(WaitMoved("done", "big.mrc.2")) << d->Log();
    EXPECT_NE(ReadFile(In("done", "big.mrc.2") + ".report").find("outcome     loaded before the node restarted"),
              std::string::npos);
    EXPECT_EQ(LogRows(), log);
    EXPECT_EQ(Count("SELECT count(*) FROM file_drop_load WHERE file = 'big.mrc'"), 1);
}

}  // namespace
}  // namespace iblsync::test
