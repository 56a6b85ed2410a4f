// The control socket and iblctl against the real daemon.

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "storage/migrations.hpp"
#include "tests/support/daemon_process.hpp"

namespace iblsync::test {
namespace {

using namespace std::chrono_literals;

// Sends raw bytes to a Unix socket and returns the first line of the answer.
std::string RawControl(const std::string& path, const std::string& bytes) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return "connect failed";
    }
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    [[maybe_unused]] auto n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    std::string in;
    char buf[4096];
    ssize_t got;
    while (in.find('\n') == std::string::npos && (got = recv(fd, buf, sizeof buf, 0)) > 0)
        in.append(buf, static_cast<std::size_t>(got));
    close(fd);
    return in.substr(0, in.find('\n'));
}

class ControlTest : public ::testing::Test {
protected:
    void SetUp() override {
        NodeConfig cfg;
        cfg.conninfo = schema_.conninfo();
        daemon_ = std::make_unique<DaemonProcess>(dir_, cfg);
        ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
    }
    TempDir dir_;
    TestSchema schema_;
    std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(ControlTest, StatusForPeopleAndForScripts) {
    auto human = daemon_->Iblctl({"status"});
    ASSERT_EQ(human.exit_code, 0) << human.err;
    EXPECT_NE(human.out.find("  isil              NL-0000000001\n"), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("  role              poi\n"), std::string::npos);
    EXPECT_NE(human.out.find("  state             ready\n"), std::string::npos);
    EXPECT_NE(human.out.find(fmt::format("  schema            version {0} (this build expects {0})\n", storage::LatestKnownVersion())), std::string::npos);
    EXPECT_NE(human.out.find("  http              127.0.0.1:" + std::to_string(daemon_->port())), std::string::npos);

    auto json = daemon_->Iblctl({"--json", "status"});
    ASSERT_EQ(json.exit_code, 0) << json.err;
    EXPECT_EQ(json.out.front(), '{');
    EXPECT_NE(json.out.find("\"node\":{\"role\":\"poi\",\"isil\":\"NL-0000000001\""), std::string::npos) << json.out;
    EXPECT_NE(json.out.find("\"provinces\":[\"NL-GE\"]"), std::string::npos);
    EXPECT_NE(json.out.find("\"pid\":" + std::to_string(daemon_->pid())), std::string::npos);
}

TEST_F(ControlTest, ReloadReportsWhatChangedOrWhyNot) {
    auto unchanged = daemon_->Iblctl({"reload"});
    EXPECT_EQ(unchanged.exit_code, 0) << unchanged.err;
    EXPECT_EQ(unchanged.out, "configuration reloaded; changed: nothing\n");

    daemon_->config().log_level = "warn";
    daemon_->config().role = "national";  // restart-only
    daemon_->RewriteConfig(daemon_->config().ToToml());
    auto changed = daemon_->Iblctl({"reload"});
    EXPECT_EQ(changed.exit_code, 0) << changed.err;
    EXPECT_EQ(changed.out,
              "configuration reloaded; changed: log.level\n"
              "these changes take effect only after a restart: node.role, node.provinces\n");

    daemon_->RewriteConfig("[node]\nrole = \"poi\"\n");
    auto rejected = daemon_->Iblctl({"reload"});
    EXPECT_EQ(rejected.exit_code, 1);
    EXPECT_NE(rejected.err.find("iblctl: reload failed: config rejected: " + daemon_->config_path() +
                                ": node.isil: required key is missing"),
              std::string::npos)
        << rejected.err;
    EXPECT_NE(rejected.err.find("hint: fix the file and run 'iblctl reload' again"), std::string::npos);
    auto json = daemon_->Iblctl({"--json", "reload"});
    EXPECT_EQ(json.exit_code, 1);
    EXPECT_EQ(json.out.rfind("{\"ok\":false,\"error\":\"config rejected:", 0), 0u) << json.out;
}

TEST_F(ControlTest, MalformedAndUnknownCommandsGetSpecificErrors) {
    const auto& sock = daemon_->control_socket();
    EXPECT_EQ(RawControl(sock, "status\n").rfind(R"({"ok":false,"error":"control message is not valid JSON:)", 0), 0u);
    EXPECT_EQ(RawControl(sock, "{\"command\":\"explode\"}\n"),
              R"({"ok":false,"error":"unknown command 'explode'","hint":"'iblctl commands' lists the commands"})");
    EXPECT_EQ(RawControl(sock, "{\"command\":\"st\xc3\x28tus\"}\n").rfind(R"({"ok":false,"error":"control message is not valid JSON)", 0), 0u);
    EXPECT_EQ(RawControl(sock, std::string(70000, '{')),
              R"({"ok":false,"error":"control message longer than 65536 bytes"})");
    // The daemon is unharmed.
    EXPECT_EQ(daemon_->Iblctl({"status"}).exit_code, 0);
    auto help = daemon_->Iblctl({"commands"});
    EXPECT_NE(help.out.find("  reload          re-read the config file (same as SIGHUP)"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("  token.issue     a new API token for a library (shown once)"), std::string::npos) << help.out;
}

TEST_F(ControlTest, SocketIsGroupOnlyAndOtherUsersAreRefused) {
    struct stat st{};
    ASSERT_EQ(stat(daemon_->control_socket().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    if (geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";

    // iblctl may sit in a directory 'nobody' cannot enter; give it a copy.
    std::filesystem::copy_file(IblctlPath(), dir_.File("iblctl"));
    auto as_nobody = [] {
        if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(99);
    };
    // 1. The file mode keeps 'nobody' out.
    auto denied = RunCommand({dir_.File("iblctl"), "--socket", daemon_->control_socket(), "status"}, 10s, as_nobody);
    EXPECT_EQ(denied.exit_code, 4) << denied.err;
    EXPECT_NE(denied.err.find("permission denied on " + daemon_->control_socket() + ": run iblctl as root"),
              std::string::npos)
        << denied.err;
    // 2. Even with the file opened up, the peer-credential check refuses.
    ASSERT_EQ(chmod(daemon_->control_socket().c_str(), 0666), 0);
    auto refused = RunCommand({dir_.File("iblctl"), "--socket", daemon_->control_socket(), "status"}, 10s, as_nobody);
    EXPECT_EQ(refused.exit_code, 4) << refused.err;
    EXPECT_NE(refused.err.find("permission denied: uid 65534 is not root, the daemon's user"), std::string::npos)
        << refused.err;
    EXPECT_TRUE(daemon_->WaitForLog("control peer refused uid=65534", 5s));
}

TEST(IblctlWithoutDaemon, SaysTheDaemonIsNotRunning) {
    TempDir dir;
    auto missing = RunCommand({IblctlPath(), "--socket", dir.File("none.sock"), "status"});
    EXPECT_EQ(missing.exit_code, 3);
    EXPECT_EQ(missing.err, "iblctl: no control socket at " + dir.File("none.sock") +
                               ": is iblsyncd running? Check 'systemctl status iblsyncd', or pass --socket PATH\n");
    // A socket file left behind by a daemon that died.
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, dir.File("stale.sock").c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    close(fd);
    auto stale = RunCommand({IblctlPath(), "--socket", dir.File("stale.sock"), "status"});
    EXPECT_EQ(stale.exit_code, 3);
    EXPECT_NE(stale.err.find("nothing answers on " + dir.File("stale.sock") + ": iblsyncd is not running"),
              std::string::npos)
        << stale.err;
    auto usage = RunCommand({IblctlPath(), "frobnicate"});
    EXPECT_EQ(usage.exit_code, 2);
}

TEST_F(ControlTest, ASecondDaemonOnTheSameSocketRefusesToStart) {
    TempDir other;
    NodeConfig cfg;
    cfg.conninfo = schema_.conninfo();
    cfg.socket = daemon_->control_socket();
    DaemonProcess second(other, cfg);
    EXPECT_FALSE(second.Start(10s));
    EXPECT_EQ(second.exit_code(), 1);
    EXPECT_NE(second.Log().find("another iblsyncd is running with control socket " + cfg.socket), std::string::npos)
        << second.Log();
    EXPECT_EQ(daemon_->Iblctl({"status"}).exit_code, 0);  // the first one still owns it
}

}  // namespace
}  // namespace iblsync::test
