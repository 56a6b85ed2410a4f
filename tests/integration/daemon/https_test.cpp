// HTTPS on the daemon's own listener (http.tls_listen): a real TLS handshake
// with a certificate made for the test by the openssl command, driven by
// curl, which checks the certificate as any client would.

#include <csignal>
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

// A self-signed certificate for 127.0.0.1 (and its key) in `dir`.
void MakeCertificate(const TempDir& dir, const std::string& name, const std::string& cn) {
    auto r = RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                         "-nodes", "-days", "2", "-subj", "/CN=" + cn, "-addext", "subjectAltName=IP:127.0.0.1",
                         "-keyout", dir.File(name + ".key"), "-out", dir.File(name + ".pem")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
}

class HttpsTest : public ::testing::Test {
protected:
    void SetUp() override {
        MakeCertificate(dir_, "first", "iblsync test one");
        MakeCertificate(dir_, "second", "iblsync test two");
        cfg_.conninfo = schema_.conninfo();
        cfg_.http_toml = TlsToml("first");
    }

    std::string TlsToml(const std::string& cert) const {
        return fmt::format("tls_listen = [\"127.0.0.1:0\"]\ntls_certificate = \"{}\"\ntls_private_key = \"{}\"\n",
                           dir_.File(cert + ".pem"), dir_.File(cert + ".key"));
    }

    int HttpsPort(DaemonProcess& d) const {
        const std::string log = d.Log();
        const auto at = log.find("https=127.0.0.1:");
        EXPECT_NE(at, std::string::npos) << log;
        return at == std::string::npos ? 0 : std::stoi(log.substr(at + 16));
    }

    // curl trusting only `ca`; returns "<status> <body>" or curl's error.
    CommandResult Curl(int port, const std::string& ca, const std::string& path,
                       std::vector<std::string> extra = {}) const {
        std::vector<std::string> argv{"/usr/bin/curl", "-sS", "--max-time", "10", "-w", " %{http_code}"};
        if (!ca.empty()) argv.insert(argv.end(), {"--cacert", dir_.File(ca + ".pem")});
        argv.insert(argv.end(), extra.begin(), extra.end());
        argv.push_back(fmt::format("https://127.0.0.1:{}{}", port, path));
        return RunCommand(argv);
    }

    TempDir dir_;
    TestSchema schema_;
    NodeConfig cfg_;
};

TEST_F(HttpsTest, ServesTheApiOverTlsAndTakesARenewedCertificateOnReload) {
    DaemonProcess d(dir_, cfg_);
    ASSERT_TRUE(d.Start()) << d.Log();
    const int port = HttpsPort(d);
    ASSERT_GT(port, 0);

    auto health = Curl(port, "first", "/healthz");
    EXPECT_EQ(health.exit_code, 0) << health.err;
    EXPECT_EQ(health.out, "{\"status\":\"ok\"} 200");
    // A client that does not trust the certificate refuses it (curl exit 60).
    EXPECT_EQ(Curl(port, "", "/healthz").exit_code, 60);
    // The plain listener stays plain.
    EXPECT_EQ(HttpGet(d.port(), "/healthz")->status, 200);

    // A write over HTTPS.
    ASSERT_EQ(d.Iblctl({"library", "add", "NL-0000000101", "--name", "A"}).exit_code, 0);
    auto issued = d.Iblctl({"--json", "token", "issue", "NL-0000000101"});
    const auto t = issued.out.find("iblt_");
    ASSERT_NE(t, std::string::npos) << issued.out;
    const std::string token = issued.out.substr(t, issued.out.find('"', t) - t);
    auto put = Curl(port, "first", "/v1/libraries/NL-0000000101/records/r1",
                    {"-X", "PUT", "-H", "Authorization: Bearer " + token, "-H", "Content-Type: application/json",
                     "--data-binary", R"({"id":"r1","title":"De avonden","year":1947})"});
    EXPECT_EQ(put.out.substr(put.out.size() - 4), " 201") << put.out << put.err;
    EXPECT_EQ(schema_.Query1("SELECT title FROM bib_record WHERE local_id = 'r1'"), "De avonden");

    // The certificate is renewed in place; a reload reads it again.
    std::filesystem::copy_file(dir_.File("second.pem"), dir_.File("first.pem"),
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(dir_.File("second.key"), dir_.File("first.key"),
                               std::filesystem::copy_options::overwrite_existing);
    // Still the old one until the reload...
    EXPECT_EQ(Curl(port, "second", "/healthz").exit_code, 60);
    ASSERT_EQ(d.Iblctl({"reload"}).exit_code, 0);
    auto renewed = Curl(port, "second", "/healthz");
    EXPECT_EQ(renewed.exit_code, 0) << renewed.err;
    EXPECT_EQ(renewed.out, "{\"status\":\"ok\"} 200");
}

TEST_F(HttpsTest, PlainHttpOnTheTlsPortIsDroppedAndTheNodeStaysUp) {
    DaemonProcess d(dir_, cfg_);
    ASSERT_TRUE(d.Start()) << d.Log();
    const int port = HttpsPort(d);
    RawConnection plain(port);
    ASSERT_TRUE(plain.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_FALSE(plain.Read(5s).has_value());
    EXPECT_TRUE(plain.WaitClosed(5s));
    EXPECT_EQ(Curl(port, "first", "/healthz").exit_code, 0);
    auto metrics = HttpGet(d.port(), "/metrics");
    EXPECT_NE(metrics->body.find("iblsync_http_rejected_total{reason=\"tls_handshake\"} 1"), std::string::npos)
        << metrics->body;
}

TEST_F(HttpsTest, ABadCertificateStopsStartAndAReloadKeepsTheOldOne) {
    // A key that does not belong to the certificate: exit 78, naming the key.
    cfg_.http_toml = fmt::format("tls_listen = [\"127.0.0.1:0\"]\ntls_certificate = \"{}\"\ntls_private_key = \"{}\"\n",
                                 dir_.File("first.pem"), dir_.File("second.key"));
    {
        DaemonProcess d(dir_, cfg_);
        EXPECT_FALSE(d.Start());
        EXPECT_EQ(d.exit_code(), 78);
        EXPECT_NE(d.Log().find("http.tls_private_key: " + dir_.File("second.key") +
                               " does not belong to the certificate in " + dir_.File("first.pem")),
                  std::string::npos)
            << d.Log();
    }
    // Not PEM at all.
    WriteFile(dir_.File("junk.pem"), "this is not a certificate\n");
    cfg_.http_toml = fmt::format("tls_listen = [\"127.0.0.1:0\"]\ntls_certificate = \"{}\"\ntls_private_key = \"{}\"\n",
                                 dir_.File("junk.pem"), dir_.File("first.key"));
    {
        DaemonProcess d(dir_, cfg_);
        EXPECT_FALSE(d.Start());
        EXPECT_EQ(d.exit_code(), 78);
        EXPECT_NE(d.Log().find("http.tls_certificate: " + dir_.File("junk.pem") + " is not a PEM certificate chain"),
                  std::string::npos)
            << d.Log();
    }
    // Running with a good one, then a reload that names a broken one: refused,
    // and the good certificate is still served.
    cfg_.http_toml = TlsToml("first");
    DaemonProcess d(dir_, cfg_);
    ASSERT_TRUE(d.Start()) << d.Log();
    const int port = HttpsPort(d);
    auto text = ReadFile(d.config_path());
    const auto at = text.find(dir_.File("first.pem"));
    ASSERT_NE(at, std::string::npos);
    d.RewriteConfig(text.replace(at, dir_.File("first.pem").size(), dir_.File("junk.pem")));
    auto reload = d.Iblctl({"reload"});
    EXPECT_EQ(reload.exit_code, 1) << reload.out << reload.err;
    EXPECT_NE((reload.out + reload.err).find("is not a PEM certificate chain"), std::string::npos) << reload.err;
    EXPECT_EQ(Curl(port, "first", "/healthz").exit_code, 0);
}

// iblctl source add when the node refuses the reload: the certificate file
// was overwritten with junk after the start, which the config reader (it
// checks that the file can be read) lets through and the reload does not.
// The config file is written back as it was, and no source starts.
TEST_F(HttpsTest, ASourceAddTheNodeRefusesToReloadLeavesTheConfigAsItWas) {
    DaemonProcess d(dir_, cfg_);
    ASSERT_TRUE(d.Start()) << d.Log();
    const std::string before = ReadFile(d.config_path());
    WriteFile(dir_.File("first.pem"), "this is not a certificate\n");
    auto add = d.Iblctl({"source", "add", "zebra", "--library", "NL-0000000201", "--url", "http://127.0.0.1:9/sru"});
    EXPECT_EQ(add.exit_code, 1) << add.out << add.err;
    EXPECT_EQ(add.err.rfind("iblctl: source add: not added: the node refused the config: ", 0), 0u) << add.err;
    EXPECT_NE(add.err.find(dir_.File("first.pem") + " is not a PEM certificate chain"), std::string::npos) << add.err;
    EXPECT_NE(add.err.find("\niblctl: source add: " + d.config_path() + " is as it was\n"), std::string::npos)
        << add.err;
    EXPECT_EQ(ReadFile(d.config_path()), before);
    EXPECT_EQ(schema_.Query1("SELECT count(*) FROM harvest_source"), "0");
    EXPECT_EQ(d.Log().find("harvest source added"), std::string::npos) << d.Log();
}

}  // namespace
}  // namespace iblsync::test
