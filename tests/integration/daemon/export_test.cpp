// `iblctl export`, the KB delivery: the catalogue of a real node (real MARC
// records loaded with iblctl import, a JSON record and availability pushed
// over the API) as MARCXML that xmllint validates against the MARC 21 slim
// schema, with 852 per copy; incremental exports from the head an export
// reports; NDJSON; and the errors.

#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kMann = "NL-0000000401", kPush = "NL-0000000402";


class ExportTest : public ::testing::Test {
protected:
    void SetUp() override {
        NodeConfig cfg;
        cfg.conninfo = schema_.conninfo();
        daemon_ = std::make_unique<DaemonProcess>(dir_, cfg);
        ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
        auto imported = RunCommand({IblctlPath(), "import", "--db", schema_.conninfo(), "--library", kMann, "--name",
                                    "Bibliotheek Mann", "--rejects", dir_.File("rejects"),
                                    SourceDir() + "/tests/data/marc/slices/thomas-mann-shared-71.xml"});
        ASSERT_EQ(imported.exit_code, 0) << imported.err;
        ASSERT_EQ(daemon_->Iblctl({"library", "add", kPush, "--name", "Bibliotheek Push"}).exit_code, 0);
        auto t = daemon_->Iblctl({"--json", "token", "issue", kPush});
        rapidjson::Document d;
        d.Parse(t.out.c_str());
        ASSERT_TRUE(d.IsObject() && d.HasMember("token")) << t.out << t.err;
        token_ = d["token"].GetString();
        ASSERT_EQ(Put("j1", R"({"id":"j1","title":"De avonden","isbn":"9789023466772","holdings":[)"
                            R"({"barcode":"J1","branch":"Centrale","shelfmark":"REVE"},{"barcode":"J2"}]})"),
                  201);
        ASSERT_EQ(Put("j2", R"({"id":"j2","title":"Het bureau","holdings":[{"barcode":"J3"}]})"), 201);
    }

    int Put(const std::string& id, const std::string& body) {
        auto r = HttpCall(daemon_->port(), "PUT", fmt::format("/v1/libraries/{}/records/{}", kPush, id),
                          {{"Authorization", "Bearer " + token_}, {"Content-Type", "application/json"}}, body);
        return r ? r->status : 0;
    }
    int Availability(const std::string& body) {
        auto r = HttpCall(daemon_->port(), "POST", fmt::format("/v1/libraries/{}/availability", kPush),
                          {{"Authorization", "Bearer " + token_}, {"Content-Type", "application/json"}}, body);
        return r ? r->status : 0;
    }
    CommandResult Export(std::vector<std::string> args, bool json = false) {
        args.insert(args.begin(), {"export", "--db", schema_.conninfo()});
        if (json) args.insert(args.begin(), "--json");
        args.insert(args.begin(), IblctlPath());
        return RunCommand(args);
    }
    std::string Valid(const std::string& file) {
        auto r = RunCommand({"/usr/bin/xmllint", "--noout", "--nonet", "--schema",
                             SourceDir() + "/tests/data/schemas/marc/MARC21slim.xsd", file});
        return r.exit_code == 0 ? "" : r.err;
    }
    long long Count(const std::string& sql) { return std::stoll(schema_.Query1(sql)); }

    TempDir dir_;
    TestSchema schema_;
    std::unique_ptr<DaemonProcess> daemon_;
    std::string token_;
};

TEST_F(ExportTest, FullThenIncrementalAsValidMarcXmlWithCopiesIn852) {
    const std::string file = dir_.File("kb.xml");
    auto full = Export({"--out", file});
    ASSERT_EQ(full.exit_code, 0) << full.err;
    const long long live = Count("SELECT count(*) FROM bib_record WHERE NOT deleted");
    const std::string head = schema_.Query1("SELECT last_seq FROM change_counter");
    EXPECT_NE(full.out.find(fmt::format("export: {} records (0 deleted), 3 copies", live)), std::string::npos)
        << full.out;
    EXPECT_NE(full.out.find(fmt::format("head {}: the next incremental export is 'iblctl export --since {}'", head,
                                        head)),
              std::string::npos)
        << full.out;
    EXPECT_FALSE(fs::exists(file + ".part"));
    const std::string xml = ReadFile(file);
    EXPECT_EQ(Valid(file), "");
    EXPECT_EQ(Occurrences(xml, "<record>"), live);
    EXPECT_EQ(Occurrences(xml, "<datafield tag=\"852\""), 3);
    EXPECT_NE(xml.find(fmt::format("<controlfield tag=\"003\">{}</controlfield>", kMann)), std::string::npos);
    EXPECT_NE(xml.find("<datafield tag=\"852\" ind1=\" \" ind2=\" \"><subfield code=\"a\">NL-0000000402</subfield>"
                       "<subfield code=\"b\">Centrale</subfield><subfield code=\"h\">REVE</subfield>"
                       "<subfield code=\"p\">J1</subfield><subfield code=\"9\">available</subfield></datafield>"),
              std::string::npos)
        << xml.substr(xml.find("NL-0000000402") - 200, 800);
    EXPECT_NE(xml.find(fmt::format("<!-- iblsync export: head {}; the next incremental export starts after change {} -->",
                                   head, head)),
              std::string::npos);

    // J1 goes on loan, j2 is deleted: the incremental export has exactly
    // those two records, j1 with the new state and j2 as deleted.
    ASSERT_EQ(Availability(R"([{"barcode":"J1","status":"on_loan","due_date":"2027-01-15"}])"), 200);
    auto del = HttpCall(daemon_->port(), "DELETE", fmt::format("/v1/libraries/{}/records/j2", kPush),
                        {{"Authorization", "Bearer " + token_}});
    ASSERT_TRUE(del && del->status / 100 == 2) << (del ? del->body : "");
    const std::string next = dir_.File("kb-next.xml");
    auto inc = Export({"--since", head, "--out", next}, true);
    ASSERT_EQ(inc.exit_code, 0) << inc.err;
    EXPECT_NE(inc.out.find(R"("records":2,"deleted":1,"copies":2,"left_out":0)"), std::string::npos) << inc.out;
    const std::string delta = ReadFile(next);
    EXPECT_EQ(Valid(next), "");
    EXPECT_EQ(Occurrences(delta, "<record>"), 2);
    EXPECT_NE(delta.find("<subfield code=\"p\">J1</subfield><subfield code=\"9\">on_loan</subfield>"
                         "<subfield code=\"d\">2027-01-15</subfield>"),
              std::string::npos)
        << delta;
    EXPECT_NE(delta.find("<leader>00000dam a2200000 a 4500</leader><controlfield tag=\"001\">j2</controlfield>"),
              std::string::npos)
        << delta;
    // Nothing changed since: an empty but valid collection.
    const std::string now = schema_.Query1("SELECT last_seq FROM change_counter");
    auto none = Export({"--since", now, "--out", dir_.File("none.xml")});
    ASSERT_EQ(none.exit_code, 0) << none.err;
    EXPECT_EQ(Occurrences(ReadFile(dir_.File("none.xml")), "<record>"), 0);
    EXPECT_EQ(Valid(dir_.File("none.xml")), "");
}

TEST_F(ExportTest, NdjsonOneLibraryAndClearErrors) {
    auto json = Export({"--format", "json", "--library", "nl-0000000402"});
    ASSERT_EQ(json.exit_code, 0) << json.err;
    std::vector<std::string> lines;
    for (std::size_t p = 0, e; (e = json.out.find('\n', p)) != std::string::npos; p = e + 1)
        lines.push_back(json.out.substr(p, e - p));
    ASSERT_EQ(lines.size(), 2u) << json.out;
    rapidjson::Document d;
    d.Parse(lines[0].c_str());
    ASSERT_TRUE(d.IsObject()) << lines[0];
    EXPECT_EQ(std::string(d["library"].GetString()), kPush);
    EXPECT_EQ(std::string(d["id"].GetString()), "j1");
    EXPECT_FALSE(d["deleted"].GetBool());
    ASSERT_TRUE(d["record"].IsObject());
    EXPECT_TRUE(d["record"].HasMember("leader"));
    ASSERT_EQ(d["copies"].Size(), 2u);
    EXPECT_EQ(std::string(d["copies"][0]["barcode"].GetString()), "J1");
    EXPECT_EQ(std::string(d["copies"][0]["status"].GetString()), "available");
    EXPECT_NE(json.err.find("export: 2 records (0 deleted), 3 copies"), std::string::npos) << json.err;

    // Errors: exit code, message, and no file left behind.
    const std::string out = dir_.File("x.xml");
    auto beyond = Export({"--since", "999999", "--out", out});
    EXPECT_EQ(beyond.exit_code, 1);
    EXPECT_NE(beyond.err.find("iblctl: export failed: --since 999999 is beyond this node's last change"),
              std::string::npos)
        << beyond.err;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out + ".part"));
    schema_.Exec("DELETE FROM change_log WHERE seq <= 10");  // as retention does
    auto expired = Export({"--since", "3"});
    EXPECT_EQ(expired.exit_code, 1);
    EXPECT_NE(expired.err.find("changes after 3 are no longer kept (the oldest kept is 11); make a full export"),
              std::string::npos)
        << expired.err;
    auto bad_isil = Export({"--library", "not an isil"});
    EXPECT_EQ(bad_isil.exit_code, 2);
    EXPECT_EQ(bad_isil.err.rfind("iblctl: --library: ", 0), 0u) << bad_isil.err;
    EXPECT_EQ(Export({"--format", "mods"}).exit_code, 2);
    EXPECT_EQ(Export({"--since", "-5"}).exit_code, 2);
    auto no_db = RunCommand({IblctlPath(), "export", "--config", dir_.File("missing.toml")});
    EXPECT_EQ(no_db.exit_code, 2);
    EXPECT_NE(no_db.err.find("iblctl: cannot find the database: "), std::string::npos) << no_db.err;
}

}  // namespace
}  // namespace iblsync::test
