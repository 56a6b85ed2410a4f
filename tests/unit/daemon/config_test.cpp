#include "daemon/config.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace iblsync::daemon {
namespace {

const char* kValid = R"([node]
role = "poi"
isil = "nl-0001"
name = "POI Gelderland"
provinces = ["NL-GE", "ov"]

[http]
listen = ["127.0.0.1:8080", "[::1]:8081"]
max_body_bytes = 2048

[database]
conninfo = "host=/tmp dbname=poi"

[control]
socket = "/run/iblsync/control.sock"
group = "iblsync"

[log]
level = "debug"
)";

// The message for `text`, which must be rejected.
std::string ErrorFor(const std::string& text) {
    auto r = ParseConfig(text, "/etc/iblsync/iblsyncd.toml");
    EXPECT_FALSE(r.ok()) << "accepted:\n" << text;
    return r.ok() ? "" : r.error();
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
    auto pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    return text.replace(pos, from.size(), to);
}

}  // namespace

TEST(Config, ParsesAValidFile) {
    auto r = ParseConfig(kValid, "x.toml");
    ASSERT_TRUE(r.ok()) << r.error();
    const Config& c = r.value();
    EXPECT_EQ(c.role, Role::kPoi);
    EXPECT_EQ(c.isil, "NL-0001");
    EXPECT_EQ(c.name, "POI Gelderland");
    EXPECT_EQ(c.provinces, (std::vector<std::string>{"NL-GE", "NL-OV"}));
    ASSERT_EQ(c.http_listen.size(), 2u);
    EXPECT_EQ(c.http_listen[1].ToString(), "[::1]:8081");
    EXPECT_EQ(c.max_body_bytes, 2048u);
    EXPECT_EQ(c.max_header_bytes, 16u << 10);  // default
    EXPECT_EQ(c.log_level, "debug");
    EXPECT_EQ(c.path, "x.toml");
}

TEST(Config, NameDefaultsToIsilAndNationalNeedsNoProvinces) {
    auto r = ParseConfig("[node]\nrole = \"national\"\nisil = \"NL-KB\"\n[database]\nconninfo = \"x\"\n", "f");
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r->name, "NL-KB");
    EXPECT_EQ(r->role, Role::kNational);
}

TEST(Config, UnknownKeyNamesFileLineKeyAndSuggestion) {
    auto e = ErrorFor(Replace(kValid, "max_body_bytes = 2048", "max_body_byte = 2048"));
    EXPECT_EQ(e, "/etc/iblsync/iblsyncd.toml:9: http.max_body_byte: unknown key (did you mean 'max_body_bytes'?)");
}

TEST(Config, UnknownSection) {
    auto e = ErrorFor(std::string(kValid) + "\n[databse]\nx = 1\n");
    EXPECT_EQ(e, "/etc/iblsync/iblsyncd.toml:21: databse: unknown section (did you mean 'database'?)");
}

TEST(Config, WrongTypeNamesTheLine) {
    auto e = ErrorFor(Replace(kValid, "max_body_bytes = 2048", "max_body_bytes = \"2k\""));
    EXPECT_EQ(e, "/etc/iblsync/iblsyncd.toml:9: http.max_body_bytes: expected an integer, got a string");
}

TEST(Config, OutOfRange) {
    auto e = ErrorFor(Replace(kValid, "max_body_bytes = 2048", "max_body_bytes = 10"));
    EXPECT_EQ(e, "/etc/iblsync/iblsyncd.toml:9: http.max_body_bytes: 10 is out of range 1024..4294967296");
}

TEST(Config, ApiLimits) {
    // The section is optional; its keys have defaults and ranges like the others.
    auto ok = ParseConfig(kValid, "x.toml").value();
    EXPECT_EQ(ok.api_max_batch_items, 1000);
    EXPECT_EQ(ok.api_rate_per_second, 200);
    auto with = ParseConfig(std::string(kValid) + "[api]\nrate_per_second = 0\nmax_wait_seconds = 5\n", "x.toml").value();
    EXPECT_EQ(with.api_rate_per_second, 0);
    EXPECT_EQ(with.api_max_wait_seconds, 5);
    const std::string valid(kValid);
    const auto lines = std::count(valid.begin(), valid.end(), '\n');
    EXPECT_EQ(ErrorFor(std::string(kValid) + "[api]\nrate_per_second = -1\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: api.rate_per_second: -1 is out of range 0..1000000", lines + 2));
    EXPECT_EQ(ErrorFor(std::string(kValid) + "[api]\nmax_batch_items = \"many\"\n")
                  .rfind(fmt::format("/etc/iblsync/iblsyncd.toml:{}: api.max_batch_items: ", lines + 2), 0),
              0u);
    EXPECT_NE(ErrorFor(std::string(kValid) + "[api]\nmax_batch = 10\n").find("did you mean 'max_batch_items'"), std::string::npos);
}

TEST(Config, TlsListenersNeedReadableCertificateFiles) {
    const std::string http = "max_body_bytes = 2048\n";
    EXPECT_EQ(ErrorFor(Replace(kValid, http, http + "tls_listen = [\"127.0.0.1:8443\"]\n")),
              "/etc/iblsync/iblsyncd.toml: http.tls_listen: HTTPS needs a certificate; set http.tls_certificate and "
              "http.tls_private_key too");
    EXPECT_EQ(ErrorFor(Replace(kValid, http, http + "tls_certificate = \"/nonexistent/cert.pem\"\n")),
              "/etc/iblsync/iblsyncd.toml:10: http.tls_certificate: cannot read /nonexistent/cert.pem: No such file or "
              "directory");
    EXPECT_EQ(ErrorFor(Replace(kValid, http, http + "tls_private_key = \"key.pem\"\n")),
              "/etc/iblsync/iblsyncd.toml:10: http.tls_private_key: must be an absolute path");
    EXPECT_EQ(ErrorFor(Replace(kValid, http, http + "tls_listen = [\"localhost:8443\"]\n")),
              "/etc/iblsync/iblsyncd.toml:10: http.tls_listen: 'localhost' is not an IP address; give a numeric "
              "address such as 127.0.0.1");
    // Readable files (what they hold is checked when the daemon loads them).
    auto ok = ParseConfig(Replace(kValid, http,
                                  http + "tls_listen = [\"127.0.0.1:8443\"]\ntls_certificate = \"/etc/hostname\"\n"
                                         "tls_private_key = \"/etc/hostname\"\n"),
                          "x.toml");
    ASSERT_TRUE(ok.ok()) << ok.error();
    EXPECT_EQ(ok.value().tls_listen.size(), 1u);
    EXPECT_TRUE(ParseConfig(kValid, "x.toml").value().tls_listen.empty());
}

TEST(Config, SruAndRetentionKeysAreChecked) {
    const std::string valid(kValid);
    const auto line = std::count(valid.begin(), valid.end(), '\n') + 2;
    auto sru = [&](const std::string& body) { return ErrorFor(valid + "[sru]\n" + body); };
    EXPECT_EQ(sru("path = \"sru\"\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: sru.path: must be a path such as \"/sru\" (not /v1/..., no "
                          "trailing slash)",
                          line));
    EXPECT_EQ(sru("path = \"/v1/sru\"\n").rfind(fmt::format("/etc/iblsync/iblsyncd.toml:{}: sru.path: ", line), 0), 0u);
    EXPECT_EQ(sru("path = \"/healthz\"\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: sru.path: /healthz is taken by the node itself", line));
    EXPECT_EQ(sru("max_records = 0\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: sru.max_records: 0 is out of range 1..10000", line));
    EXPECT_EQ(sru("exact_count = -1\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: sru.exact_count: -1 is out of range 0..100000000", line));
    EXPECT_EQ(sru("default_records = 50\nmax_records = 20\n"),
              "/etc/iblsync/iblsyncd.toml: sru.default_records: 50 is more than sru.max_records (20)");
    EXPECT_EQ(ErrorFor(valid + "[api]\nkeep_changes_days = -3\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: api.keep_changes_days: -3 is out of range 0..36500", line));
    EXPECT_EQ(ErrorFor(valid + "[api]\nkeep_idempotency_hours = 0\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: api.keep_idempotency_hours: 0 is out of range 1..8760", line));
    auto ok = ParseConfig(valid + "[sru]\npath = \"/catalogus/sru\"\nmax_records = 500\n", "x.toml");
    ASSERT_TRUE(ok.ok()) << ok.error();
    EXPECT_EQ(ok.value().sru_path, "/catalogus/sru");
    EXPECT_EQ(ok.value().sru_max_records, 500);
    EXPECT_EQ(ParseConfig(kValid, "x.toml").value().sru_path, "/sru");
}

TEST(Config, OaiKeysAreChecked) {
    const std::string valid = kValid;
    const auto line = std::count(valid.begin(), valid.end(), '\n') + 2;
    auto oai = [&](const std::string& body) { return ErrorFor(valid + "[oai]\n" + body); };
    EXPECT_EQ(oai("path = \"/iso18626\"\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: oai.path: /iso18626 is taken by the node itself", line));
    EXPECT_EQ(oai("path = \"/sru\"\n"),
              "/etc/iblsync/iblsyncd.toml: oai.path: /sru is sru.path too; give the OAI-PMH provider a path of its own");
    EXPECT_EQ(oai("page_size = 0\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: oai.page_size: 0 is out of range 1..10000", line));
    EXPECT_EQ(oai("repository_identifier = \"iblsync\"\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: oai.repository_identifier: must be a domain name such as "
                          "\"oai.bibliotheek.nl\"",
                          line));
    EXPECT_EQ(oai("admin_email = [\"nobody\"]\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: oai.admin_email: every entry must be an e-mail address "
                          "such as \"ibl@poi.example.nl\"",
                          line));
    EXPECT_EQ(oai("admin_email = []\n"),
              fmt::format("/etc/iblsync/iblsyncd.toml:{}: oai.admin_email: expected an array of e-mail addresses",
                          line));
    EXPECT_EQ(oai("excluded_libraries = [\"XX-1\"]\n").rfind(
                  fmt::format("/etc/iblsync/iblsyncd.toml:{}: oai.excluded_libraries: XX-1: ", line), 0),
              0u);
    auto ok = ParseConfig(valid + "[oai]\npath = \"/oai2\"\npage_size = 500\nrepository_identifier = \"oai.poi.nl\"\n"
                                  "admin_email = [\"a@poi.nl\"]\nexcluded_libraries = [\"nl-0001\"]\n",
                          "x.toml");
    ASSERT_TRUE(ok.ok()) << ok.error();
    EXPECT_EQ(ok.value().oai_path, "/oai2");
    EXPECT_EQ(ok.value().oai_page_size, 500);
    EXPECT_EQ(ok.value().oai_repository_identifier, "oai.poi.nl");
    EXPECT_EQ(ok.value().oai_admin_email, std::vector<std::string>{"a@poi.nl"});
    EXPECT_EQ(ok.value().oai_excluded_libraries, std::vector<std::string>{"NL-0001"});
    EXPECT_EQ(ParseConfig(kValid, "x.toml").value().oai_path, "/oai");
}

TEST(Config, BadRole) {
    auto e = ErrorFor(Replace(kValid, "role = \"poi\"", "role = \"province\""));
    EXPECT_EQ(e, "/etc/iblsync/iblsyncd.toml:2: node.role: must be \"poi\" or \"national\"");
}

TEST(Config, BadIsil) {
    auto e = ErrorFor(Replace(kValid, "isil = \"nl-0001\"", "isil = \"DE-0001\""));
    EXPECT_EQ(e, "/etc/iblsync/iblsyncd.toml:3: node.isil: ISIL 'DE-0001' does not start with the Dutch prefix NL-");
}

TEST(Config, BadProvinceAndDuplicate) {
    EXPECT_NE(ErrorFor(Replace(kValid, "\"ov\"", "\"XX\"")).find(":5: node.provinces: 'XX' is not a Dutch province"),
              std::string::npos);
    EXPECT_NE(ErrorFor(Replace(kValid, "\"ov\"", "\"ge\"")).find("NL-GE is listed twice"), std::string::npos);
}

TEST(Config, PoiWithoutProvinces) {
    auto e = ErrorFor(Replace(kValid, "provinces = [\"NL-GE\", \"ov\"]\n", ""));
    EXPECT_NE(e.find("node.provinces: a node with role \"poi\" must list"), std::string::npos) << e;
}

TEST(Config, MissingRequiredKey) {
    auto e = ErrorFor(Replace(kValid, "conninfo = \"host=/tmp dbname=poi\"", ""));
    EXPECT_EQ(e, "/etc/iblsync/iblsyncd.toml: database.conninfo: required key is missing; add conninfo = ... under [database]");
}

TEST(Config, BadListenAddresses) {
    EXPECT_NE(ErrorFor(Replace(kValid, "\"127.0.0.1:8080\"", "\"localhost:8080\"")).find(":8: http.listen: 'localhost' is not an IP address"),
              std::string::npos);
    EXPECT_NE(ErrorFor(Replace(kValid, "\"127.0.0.1:8080\"", "\"127.0.0.1:99999\"")).find("not a port number"),
              std::string::npos);
    EXPECT_NE(ErrorFor(Replace(kValid, "\"127.0.0.1:8080\"", "\"127.0.0.1\"")).find("is not HOST:PORT"),
              std::string::npos);
    EXPECT_NE(ErrorFor(Replace(kValid, "listen = [\"127.0.0.1:8080\", \"[::1]:8081\"]", "listen = []")).find("non-empty array"),
              std::string::npos);
}

TEST(Config, BadLogLevelAndSocket) {
    EXPECT_EQ(ErrorFor(Replace(kValid, "level = \"debug\"", "level = \"loud\"")),
              "/etc/iblsync/iblsyncd.toml:19: log.level: 'loud' is not one of trace, debug, info, warn, error, off");
    EXPECT_NE(ErrorFor(Replace(kValid, "socket = \"/run/iblsync/control.sock\"", "socket = \"control.sock\"")).find(
                  ":15: control.socket: must be an absolute path"),
              std::string::npos);
}

TEST(Config, SyntaxErrorNamesTheLine) {
    auto e = ErrorFor(Replace(kValid, "max_body_bytes = 2048", "max_body_bytes = "));
    EXPECT_EQ(e.rfind("/etc/iblsync/iblsyncd.toml:9: syntax error:", 0), 0u) << e;
}

TEST(Config, SectionThatIsNotATable) {
    EXPECT_EQ(ErrorFor("log = 3\n"), "/etc/iblsync/iblsyncd.toml:1: log: must be a table [log]");
}

TEST(Config, MissingFileIsReportedWithItsPath) {
    auto r = LoadConfig("/nonexistent/iblsyncd.toml");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "/nonexistent/iblsyncd.toml: cannot open config file: No such file or directory");
}

TEST(Config, DiffSeparatesReloadableFromRestartOnly) {
    auto a = ParseConfig(kValid, "x").value();
    auto text = Replace(Replace(Replace(kValid, "level = \"debug\"", "level = \"warn\""),
                                "max_body_bytes = 2048", "max_body_bytes = 4096"),
                        "dbname=poi", "dbname=other");
    auto b = ParseConfig(text, "x").value();
    auto d = Diff(a, b);
    EXPECT_EQ(d.applied, (std::vector<std::string>{"http.max_body_bytes", "log.level"}));
    EXPECT_EQ(d.need_restart, (std::vector<std::string>{"database.conninfo"}));
    auto merged = MergeReloadable(a, b);
    EXPECT_EQ(merged.log_level, "warn");
    EXPECT_EQ(merged.max_body_bytes, 4096u);
    EXPECT_EQ(merged.db_conninfo, "host=/tmp dbname=poi");  // restart-only keeps the running value
}

}  // namespace iblsync::daemon

namespace iblsync::daemon {

// [[harvest]] tables: defaults, and every refusal names file, line and
// which source's key (counted from 1).
TEST(ConfigHarvest, SourcesWithDefaultsAndTheirMistakes) {
    const std::string two = std::string(kValid) +
                            "\n[[harvest]]\nname = \"zebra-ede\"\nlibrary = \"nl-demo-ede\"\n"
                            "url = \"http://127.0.0.1:8899/Default\"\n"
                            "\n[[harvest]]\nname = \"wise\"\nlibrary = \"NL-0002\"\nurl = \"http://10.0.0.5/sru\"\n"
                            "version = \"2.0\"\nincremental_query = \"rec.lastModificationDate > {since}\"\n"
                            "page_size = 50\ninterval_minutes = 5\nmax_delete_percent = 10\n";
    auto r = ParseConfig(two, "f.toml");
    ASSERT_TRUE(r.ok()) << r.error();
    ASSERT_EQ(r->harvest.size(), 2u);
    const auto& a = r->harvest[0];
    EXPECT_EQ(a.name, "zebra-ede");
    EXPECT_EQ(a.library, "NL-DEMO-EDE");
    EXPECT_EQ(a.version, "1.2");
    EXPECT_EQ(a.query, "cql.allRecords=1");
    EXPECT_EQ(a.page_size, 100);
    EXPECT_EQ(a.interval_minutes, 60);
    EXPECT_EQ(a.max_delete_percent, 50);
    EXPECT_EQ(a.concurrency, 1);
    EXPECT_EQ(a.line, 21);
    EXPECT_EQ(ErrorFor(two + "concurrency = 9\n"),
              "/etc/iblsync/iblsyncd.toml:35: harvest[2].concurrency: 9 is out of range 1..8");
    EXPECT_EQ(ParseConfig(two + "concurrency = 3\n", "f").value().harvest[1].concurrency, 3);
    const auto& b = r->harvest[1];
    EXPECT_EQ(b.version, "2.0");
    EXPECT_EQ(b.page_size, 50);
    EXPECT_EQ(b.max_delete_percent, 10);

    const std::string base = std::string(kValid) + "\n[[harvest]]\nname = \"s1\"\nlibrary = \"NL-0001\"\n"
                                                   "url = \"http://127.0.0.1:1/sru\"\n";
    const char* f = "/etc/iblsync/iblsyncd.toml";
    EXPECT_EQ(ErrorFor(base + "page_size = 0\n"), fmt::format("{}:25: harvest[1].page_size: 0 is out of range 1..10000", f));
    EXPECT_EQ(ErrorFor(base + "pagesize = 10\n"),
              fmt::format("{}:25: harvest[1].pagesize: unknown key (did you mean 'page_size'?)", f));
    EXPECT_EQ(ErrorFor(base + "version = \"3.0\"\n"),
              fmt::format("{}:25: harvest[1].version: must be \"1.1\", \"1.2\" or \"2.0\"", f));
    EXPECT_EQ(ErrorFor(base + "incremental_query = \"rec.lastModificationDate > 2026\"\n"),
              fmt::format("{}:25: harvest[1].incremental_query: must contain {{since}}, e.g. "
                          "\"rec.lastModificationDate > {{since}}\"",
                          f));
    EXPECT_EQ(ErrorFor(Replace(base, "http://127.0.0.1:1/sru", "https://sru.example.nl/")),
              fmt::format("{}:24: harvest[1].url: https sources are not supported yet; use an http:// URL (or a "
                          "TLS-terminating proxy)",
                          f));
    const std::string isil = ErrorFor(Replace(base, "\"NL-0001\"", "\"DE-0001\""));
    EXPECT_EQ(isil.rfind(fmt::format("{}:23: harvest[1].library: ", f), 0), 0u) << isil;
    EXPECT_EQ(ErrorFor(Replace(base, "\"s1\"", "\"Zebra Ede\"")),
              fmt::format("{}:22: harvest[1].name: must be 1..64 of a-z 0-9 - _, starting with a letter or digit", f));
    EXPECT_EQ(ErrorFor(base + "\n[[harvest]]\nname = \"s1\"\nlibrary = \"NL-0002\"\nurl = \"http://h/\"\n"),
              fmt::format("{}:26: harvest[2].name: 's1' is already the name of the entry at line 21", f));
    EXPECT_EQ(ErrorFor(std::string(kValid) + "\n[[harvest]]\nname = \"s1\"\nlibrary = \"NL-0001\"\n"),
              fmt::format("{}:21: harvest[1].url: required key is missing", f));
    EXPECT_EQ(ErrorFor(std::string(kValid) + "\n[harvest]\nname = \"s1\"\n"),
              fmt::format("{}:21: harvest: must be written as [[harvest]] tables, one each", f));

    EXPECT_EQ(ErrorFor(base + "username = \"iblsync\"\n"),
              fmt::format("{}:21: harvest.password: HTTP Basic needs both username and password", f));
    EXPECT_EQ(ErrorFor(base + "username = \"a:b\"\npassword = \"x\"\n"),
              fmt::format("{}:25: harvest[1].username: must be 1..256 characters without ':' (HTTP Basic)", f));
    EXPECT_TRUE(ParseConfig(base + "username = \"iblsync\"\npassword = \"s3cret\"\n", "f").ok());

    // OAI-PMH sources.
    auto oai = ParseConfig(base + "type = \"oai\"\nmetadata_prefix = \"marcxml\"\nset = \"library:NL-0001\"\n", "f");
    ASSERT_TRUE(oai.ok()) << oai.error();
    EXPECT_EQ(oai->harvest[0].protocol, "oai");
    EXPECT_EQ(oai->harvest[0].metadata_prefix, "marcxml");
    EXPECT_EQ(oai->harvest[0].set, "library:NL-0001");
    EXPECT_EQ(ParseConfig(base, "f").value().harvest[0].protocol, "sru");
    EXPECT_EQ(ParseConfig(base + "type = \"oai\"\n", "f").value().harvest[0].metadata_prefix, "marc21");
    EXPECT_EQ(ErrorFor(base + "type = \"z3950\"\n"),
              fmt::format("{}:25: harvest[1].type: must be \"sru\" or \"oai\" (OAI-PMH)", f));
    EXPECT_EQ(ErrorFor(base + "type = \"oai\"\nconcurrency = 2\n"),
              fmt::format("{}:21: harvest.concurrency: an OAI-PMH list comes one page after the other (each page's "
                          "resumption token asks for the next); leave concurrency out",
                          f));
    EXPECT_EQ(ErrorFor(base + "set = \"library:NL-0001\"\n"),
              fmt::format("{}:21: harvest.set: only for type = \"oai\"; an SRU source takes query and record_schema",
                          f));
    EXPECT_EQ(ErrorFor(base + "type = \"oai\"\nset = \"a b\"\n"),
              fmt::format("{}:26: harvest[1].set: must be an OAI-PMH setSpec such as \"library:NL-0600670000\"", f));

    // A changed source needs a restart; moving it in the file changes nothing.
    auto before = ParseConfig(base, "f").value();
    auto moved = ParseConfig("\n\n" + base, "f").value();
    EXPECT_TRUE(Diff(before, moved).need_restart.empty());
    auto changed = ParseConfig(base + "page_size = 7\n", "f").value();
    EXPECT_EQ(Diff(before, changed).need_restart, std::vector<std::string>{"harvest"});
}

TEST(ConfigPeer, APoiFollowsOneNationalNode) {
    const std::string base = std::string(kValid) +
                             "\n[[peer]]\nname = \"kb\"\nisil = \"nl-kb\"\nurl = \"http://127.0.0.1:8100\"\n"
                             "token = \"iblt_1_secret\"\n";
    auto r = ParseConfig(base, "f.toml");
    ASSERT_TRUE(r.ok()) << r.error();
    ASSERT_EQ(r->peers.size(), 1u);
    EXPECT_EQ(r->peers[0].isil, "NL-KB");
    EXPECT_EQ(r->peers[0].page_size, 500);
    EXPECT_EQ(r->peers[0].wait_seconds, 25);
    EXPECT_EQ(r->peers[0].line, 21);
    const char* f = "/etc/iblsync/iblsyncd.toml";
    EXPECT_EQ(ErrorFor(Replace(base, "iblt_1_secret", "secret")),
              fmt::format("{}:25: peer[1].token: must be an API token iblt_…, issued on the peer with iblctl token "
                          "issue",
                          f));
    EXPECT_EQ(ErrorFor(Replace(base, "token = \"iblt_1_secret\"\n", "")),
              fmt::format("{}:21: peer[1].token: required key is missing", f));
    EXPECT_EQ(ErrorFor(base + "wait = 3\n"),
              fmt::format("{}:26: peer[1].wait: unknown key (did you mean 'wait_seconds'?)", f));
    EXPECT_EQ(ErrorFor(Replace(base, "nl-kb", "nl-0001")), fmt::format("{}:21: peer.isil: NL-0001 is this node's own ISIL", f));
    EXPECT_EQ(ErrorFor(base + "\n[[peer]]\nname = \"kb2\"\nisil = \"nl-kb2\"\nurl = \"http://h\"\ntoken = \"iblt_2_x\"\n"),
              fmt::format("{}:27: peer[2]: a POI node follows one national node; it has 2 [[peer]] tables", f));
    EXPECT_FALSE(r->peers[0].brief);
    EXPECT_TRUE(ParseConfig(base + "follow = \"availability\"\n", "f").value().peers[0].brief);
    EXPECT_EQ(ErrorFor(base + "follow = \"works\"\n"),
              fmt::format("{}:26: peer[1].follow: must be \"all\" (whole records) or \"availability\" (brief records "
                          "with all their copies)",
                          f));
    const std::string national = Replace(Replace(base, "role = \"poi\"", "role = \"national\""), "nl-kb", "nl-poi");
    EXPECT_EQ(ErrorFor(national + "follow = \"availability\"\n"),
              fmt::format("{}:21: peer.follow: the national node keeps whole records of every POI; follow = "
                          "\"availability\" is for a POI node's national peer",
                          f));
    auto changed = ParseConfig(base + "page_size = 7\n", "f").value();
    EXPECT_EQ(Diff(r.value(), changed).need_restart, std::vector<std::string>{"peer"});
}

TEST(ConfigIbl, PeersForIblAndTheAnswerDeadline) {
    const std::string base = std::string(kValid) +
                             "\n[[ibl_peer]]\nname = \"holland\"\nisil = \"nl-0002\"\nurl = \"http://127.0.0.1:8102\"\n"
                             "token = \"iblt_3_secret\"\n";
    auto r = ParseConfig(base, "f.toml");
    ASSERT_TRUE(r.ok()) << r.error();
    ASSERT_EQ(r->ibl_peers.size(), 1u);
    EXPECT_EQ(r->ibl_peers[0].isil, "NL-0002");
    EXPECT_EQ(r->ibl_peers[0].timeout_seconds, 10);
    EXPECT_EQ(r->ibl_peers[0].retry_max_seconds, 300);
    EXPECT_EQ(r->ibl_answer_within_minutes, 2880);
    const char* f = "/etc/iblsync/iblsyncd.toml";
    EXPECT_EQ(ErrorFor(Replace(base, "iblt_3_secret", "secret")),
              fmt::format("{}:25: ibl_peer[1].token: must be an API token iblt_…, issued on the peer for this node's "
                          "ISIL with iblctl token issue",
                          f));
    EXPECT_EQ(ErrorFor(Replace(base, "url = \"http://127.0.0.1:8102\"\n", "")),
              fmt::format("{}:21: ibl_peer[1].url: required key is missing", f));
    EXPECT_EQ(ErrorFor(base + "timeout_seconds = 0\n"),
              fmt::format("{}:26: ibl_peer[1].timeout_seconds: 0 is out of range 1..600", f));
    EXPECT_EQ(ErrorFor(Replace(base, "nl-0002", "nl-0001")),
              fmt::format("{}:21: ibl_peer.isil: NL-0001 is this node's own ISIL", f));
    EXPECT_EQ(ErrorFor(base + "\n[[ibl_peer]]\nname = \"zh\"\nisil = \"NL-0002\"\nurl = \"http://h\"\n"
                              "token = \"iblt_4_x\"\n"),
              fmt::format("{}:27: ibl_peer.isil: NL-0002 is also the node of the [[ibl_peer]] at line 21", f));
    const std::string valid(kValid);
    const auto line = std::count(valid.begin(), valid.end(), '\n') + 2;
    EXPECT_EQ(ErrorFor(valid + "[ibl]\nanswer_within_minutes = -1\n"),
              fmt::format("{}:{}: ibl.answer_within_minutes: -1 is out of range 0..43200", f, line));
    EXPECT_EQ(ErrorFor(valid + "[ibl]\nanonymise_after_days = 4000\n"),
              fmt::format("{}:{}: ibl.anonymise_after_days: 4000 is out of range 0..3650", f, line));
    EXPECT_EQ(ErrorFor(valid + "[ibl]\nanswer_within = 5\n"),
              fmt::format("{}:{}: ibl.answer_within: unknown key (did you mean 'answer_within_minutes'?)", f, line));
    EXPECT_EQ(r->ibl_confirm_after_minutes, 60);
    EXPECT_EQ(ParseConfig(valid + "[ibl]\nconfirm_after_minutes = 0\nlast_resort = \"nl-0009\"\n"
                                  "excluded_lenders = [\"nl-0007\"]\n",
                          "f")
                  .value()
                  .ibl_last_resort,
              "NL-0009");
    EXPECT_EQ(ErrorFor(valid + "[ibl]\nexcluded_lenders = [\"kb\"]\n").find("ibl.excluded_lenders: kb: "),
              fmt::format("{}:{}: ", f, line).size());
    auto deadline = ParseConfig(valid + "[ibl]\nanswer_within_minutes = 60\n", "f").value();
    EXPECT_EQ(deadline.ibl_answer_within_minutes, 60);
    EXPECT_EQ(Diff(ParseConfig(valid, "f").value(), deadline).applied,
              std::vector<std::string>{"ibl.answer_within_minutes"});
    auto changed = ParseConfig(base + "retry_max_seconds = 7\n", "f").value();
    EXPECT_EQ(Diff(r.value(), changed).need_restart, std::vector<std::string>{"ibl_peer"});

    // Tariffs: amounts in euros as strings, provinces or "*", one per pair and kind.
    const std::string tariffs = valid + "\n[[ibl_tariff]]\nfrom = \"ut\"\nto = \"NL-GE\"\namount = \"4.5\"\n"
                                        "\n[[ibl_tariff]]\nkind = \"lost\"\namount = \"35\"\n";
    auto t = ParseConfig(tariffs, "f");
    ASSERT_TRUE(t.ok()) << t.error();
    ASSERT_EQ(t->ibl_tariffs.size(), 2u);
    EXPECT_EQ(t->ibl_tariffs[0].from, "NL-UT");
    EXPECT_EQ(t->ibl_tariffs[0].cents, 450);
    EXPECT_EQ(t->ibl_tariffs[1].from, "*");
    EXPECT_EQ(t->ibl_tariffs[1].cents, 3500);
    const auto table = line, tline = line + 1;  // the [[ibl_tariff]] line, and its first key's
    EXPECT_EQ(ErrorFor(valid + "\n[[ibl_tariff]]\namount = 3.5\n"),
              fmt::format("{}:{}: ibl_tariff[1].amount: must be an amount in euros as a string, such as \"3.50\"", f,
                          tline));
    EXPECT_NE(ErrorFor(valid + "\n[[ibl_tariff]]\namount = \"3.505\"\n").find("ibl_tariff[1].amount: must be"),
              std::string::npos);
    EXPECT_EQ(ErrorFor(valid + "\n[[ibl_tariff]]\nfrom = \"NL-XX\"\namount = \"1\"\n"),
              fmt::format("{}:{}: ibl_tariff[1].from: must be a province code such as \"NL-GE\", or \"*\" for any", f,
                          tline));
    EXPECT_EQ(ErrorFor(valid + "\n[[ibl_tariff]]\nkind = \"copy\"\namount = \"1\"\n"),
              fmt::format("{}:{}: ibl_tariff[1].kind: must be \"loan\" (the item came back) or \"lost\" (it did not)",
                          f, tline));
    EXPECT_EQ(ErrorFor(valid + "\n[[ibl_tariff]]\nfrom = \"NL-GE\"\n"),
              fmt::format("{}:{}: ibl_tariff[1].amount: required key is missing", f, table));
    EXPECT_EQ(ErrorFor(tariffs + "\n[[ibl_tariff]]\nto = \"ge\"\nfrom = \"NL-UT\"\namount = \"2\"\n"),
              fmt::format("{}:{}: ibl_tariff: the [[ibl_tariff]] at line {} has the same from, to and kind (NL-UT to "
                          "NL-GE, loan)",
                          f, table + 9, table));
    auto cheaper = ParseConfig(Replace(tariffs, "4.5", "4.25"), "f").value();
    EXPECT_EQ(Diff(t.value(), cheaper).applied, std::vector<std::string>{"ibl_tariff"});
    EXPECT_EQ(MergeReloadable(t.value(), cheaper).ibl_tariffs[0].cents, 425);
}

TEST(ConfigDrop, ADirectoryPerLibrary) {
    const std::string base = std::string(kValid) +
                             "\n[[drop]]\nname = \"ede\"\nlibrary = \"nl-0001\"\ndirectory = \"/srv/drops/ede/\"\n";
    auto r = ParseConfig(base, "f.toml");
    ASSERT_TRUE(r.ok()) << r.error();
    ASSERT_EQ(r->drops.size(), 1u);
    EXPECT_EQ(r->drops[0].library, "NL-0001");
    EXPECT_EQ(r->drops[0].directory, "/srv/drops/ede");
    EXPECT_FALSE(r->drops[0].full);
    EXPECT_EQ(r->drops[0].poll_seconds, 10);
    EXPECT_EQ(r->drops[0].settle_seconds, 5);
    EXPECT_EQ(r->drops[0].max_delete_percent, 50);
    EXPECT_TRUE(ParseConfig(base + "mode = \"full\"\n", "f").value().drops[0].full);
    const char* f = "/etc/iblsync/iblsyncd.toml";
    EXPECT_EQ(ErrorFor(base + "mode = \"all\"\n"),
              fmt::format("{}:25: drop[1].mode: must be \"incremental\" (files add and change records) or \"full\" "
                          "(each file is the whole catalogue)",
                          f));
    EXPECT_EQ(ErrorFor(Replace(base, "/srv/drops/ede/", "drops/ede")),
              fmt::format("{}:24: drop[1].directory: must be an absolute path", f));
    EXPECT_EQ(ErrorFor(Replace(base, "directory = \"/srv/drops/ede/\"\n", "")),
              fmt::format("{}:21: drop[1].directory: required key is missing", f));
    EXPECT_EQ(ErrorFor(base + "poll_seconds = 0\n"),
              fmt::format("{}:25: drop[1].poll_seconds: 0 is out of range 1..3600", f));
    EXPECT_EQ(ErrorFor(base + "\n[[drop]]\nname = \"ede2\"\nlibrary = \"nl-0002\"\ndirectory = \"/srv/drops/ede\"\n"),
              fmt::format("{}:26: drop.directory: /srv/drops/ede is also the directory of the [[drop]] at line 21", f));
    EXPECT_EQ(ErrorFor(base + "\n[[harvest]]\nname = \"ede\"\nlibrary = \"NL-0001\"\nurl = \"http://h/\"\n"),
              fmt::format("{}:21: drop.name: 'ede' is already the name of the [[harvest]] at line 26", f));
    auto changed = ParseConfig(base + "poll_seconds = 7\n", "f").value();
    EXPECT_EQ(Diff(r.value(), changed).need_restart, std::vector<std::string>{"drop"});
}

}  // namespace iblsync::daemon

namespace iblsync::daemon {
namespace {

// iblctl source add: the table appended is read back as given, checked as
// the node reads it, and a reload starts it without a restart.
TEST(ConfigSourceAdd, AppendsATableTheNodeReadsBackAndAReloadStarts) {
    const std::string text = std::string(kValid) +
                             "\n[[harvest]]\nname = \"s1\"\nlibrary = \"NL-0001\"\nurl = \"http://127.0.0.1:1/sru\"\n"
                             "\n[[drop]]\nname = \"ede\"\nlibrary = \"nl-0001\"\ndirectory = \"/srv/drops/ede/\"\n";
    const char* f = "/etc/iblsync/iblsyncd.toml";
    HarvestSource s;
    s.name = "koha-ede";
    s.library = "nl-0002";
    s.url = "http://koha.example.nl/cgi-bin/koha/oai.pl";
    s.protocol = "oai";
    s.set = "odd\"set\\name";  // a quote and a backslash, escaped in TOML
    s.interval_minutes = 15;
    auto next = WithHarvestSource(text, f, s);
    ASSERT_TRUE(next.ok()) << next.error();
    EXPECT_EQ(next->substr(0, text.size()), text) << "the file as it was, then the table";
    EXPECT_EQ(next->substr(text.size()),
              "\n[[harvest]]\nname = \"koha-ede\"\nlibrary = \"NL-0002\"\ntype = \"oai\"\n"
              "url = \"http://koha.example.nl/cgi-bin/koha/oai.pl\"\nmetadata_prefix = \"marc21\"\n"
              "set = \"odd\\\"set\\\\name\"\ninterval_minutes = 15\n");
    auto before = ParseConfig(text, f).value();
    auto after = ParseConfig(next.value(), f).value();
    ASSERT_EQ(after.harvest.size(), 2u);
    EXPECT_EQ(after.harvest[1].set, s.set);
    EXPECT_EQ(after.harvest[1].library, "NL-0002");
    EXPECT_EQ(after.harvest[1].line, 31);

    // A reload takes the new source; nothing waits for a restart.
    auto d = Diff(before, after);
    EXPECT_EQ(d.applied, std::vector<std::string>{"harvest.koha-ede"});
    EXPECT_TRUE(d.need_restart.empty());
    auto added = AddedHarvestSources(before, after);
    ASSERT_EQ(added.size(), 1u);
    EXPECT_EQ(added[0].name, "koha-ede");
    EXPECT_EQ(MergeReloadable(before, after).harvest, after.harvest);

    // Added and changed at once: the new one starts, the change waits.
    auto changed = ParseConfig(Replace(next.value(), "http://127.0.0.1:1/sru", "http://127.0.0.1:2/sru"), f).value();
    d = Diff(before, changed);
    EXPECT_EQ(d.applied, std::vector<std::string>{"harvest.koha-ede"});
    EXPECT_EQ(d.need_restart, std::vector<std::string>{"harvest"});
    auto merged = MergeReloadable(before, changed);
    ASSERT_EQ(merged.harvest.size(), 2u);
    EXPECT_EQ(merged.harvest[0].url, "http://127.0.0.1:1/sru");
    EXPECT_EQ(merged.harvest[1].name, "koha-ede");
    // Taken out: a restart.
    EXPECT_EQ(Diff(after, before).need_restart, std::vector<std::string>{"harvest"});
    EXPECT_TRUE(Diff(after, before).applied.empty());

    // An SRU source: type and metadata_prefix left at their defaults.
    HarvestSource sru;
    sru.name = "zebra";
    sru.library = "NL-0002";
    sru.url = "http://127.0.0.1:9999/Default";
    sru.page_size = 50;
    EXPECT_EQ(WithHarvestSource(text, f, sru)->substr(text.size()),
              "\n[[harvest]]\nname = \"zebra\"\nlibrary = \"NL-0002\"\nurl = \"http://127.0.0.1:9999/Default\"\n"
              "page_size = 50\n");
}

TEST(ConfigSourceAdd, RefusesWhatTheNodeWouldRefuseAndSaysWhy) {
    const std::string text = std::string(kValid) +
                             "\n[[harvest]]\nname = \"s1\"\nlibrary = \"NL-0001\"\nurl = \"http://127.0.0.1:1/sru\"\n"
                             "\n[[drop]]\nname = \"ede\"\nlibrary = \"nl-0001\"\ndirectory = \"/srv/drops/ede/\"\n";
    const char* f = "/etc/iblsync/iblsyncd.toml";
    auto error = [&](HarvestSource s) {
        auto r = WithHarvestSource(text, f, s);
        EXPECT_FALSE(r.ok()) << *r;
        return r.ok() ? "" : r.error();
    };
    HarvestSource good;
    good.name = "koha";
    good.library = "NL-0002";
    good.url = "http://koha.example.nl/oai";
    good.protocol = "oai";
    auto with = [&](auto change) {
        HarvestSource s = good;
        change(s);
        return s;
    };
    EXPECT_EQ(error(with([](auto& s) { s.name = "s1"; })),
              fmt::format("'s1' is already the name of the [[harvest]] at {}:21", f));
    EXPECT_EQ(error(with([](auto& s) { s.name = "ede"; })),
              fmt::format("'ede' is already the name of the [[drop]] at {}:26", f));
    // Errors in the new table name its key, not a line the file lacks.
    EXPECT_EQ(error(with([](auto& s) { s.url = "https://koha.example.nl/oai"; })),
              "harvest[2].url: https sources are not supported yet; use an http:// URL (or a TLS-terminating proxy)");
    EXPECT_EQ(error(with([](auto& s) { s.name = "Koha Ede"; })),
              "harvest[2].name: must be 1..64 of a-z 0-9 - _, starting with a letter or digit");
    EXPECT_EQ(error(with([](auto& s) { s.library = "DE-0001"; })).rfind("harvest[2].library: ", 0), 0u);
    EXPECT_EQ(error(with([](auto& s) { s.set = "a b"; })),
              "harvest[2].set: must be an OAI-PMH setSpec such as \"library:NL-0600670000\"");
    EXPECT_EQ(error(with([](auto& s) { s.protocol = "sru"; s.set = "x"; })),
              "harvest.set: only for type = \"oai\"; an SRU source takes query and record_schema");
    EXPECT_EQ(error(with([](auto& s) { s.name = "new\nline"; })),
              "harvest[2].name: must be 1..64 of a-z 0-9 - _, starting with a letter or digit");
    // A file the node would not read is not added to.
    auto r = WithHarvestSource(text + "bogus = 1\n", f, good);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), fmt::format("{}:30: drop[1].bogus: unknown key (fix the config file first)", f));
}

}  // namespace
}  // namespace iblsync::daemon
