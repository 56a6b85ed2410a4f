#include "tests/support/test_env.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

namespace iblsync::test {
namespace {

std::string Env(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v ? v : fallback;
}

std::string Trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

std::string BaseConninfo() {
    static const std::string conninfo = [] {
        auto text = Trim(ReadFile(Env("IBLSYNC_TEST_PG_STATE", IBLSYNC_TEST_PG_STATE_DEFAULT)));
        if (text.empty())
            throw std::runtime_error("no private PostgreSQL: run the tests through ctest (fixture postgres_start)");
        return text;
    }();
    return conninfo;
}

std::string BinDir() { return Env("IBLSYNC_BIN_DIR", IBLSYNC_BIN_DIR_DEFAULT); }
std::string SourceDir() { return Env("IBLSYNC_SOURCE_DIR", IBLSYNC_SOURCE_DIR_DEFAULT); }
std::string IblsyncdPath() { return BinDir() + "/daemon/iblsyncd"; }
std::string IblctlPath() { return BinDir() + "/tools/iblctl"; }

TestSchema::TestSchema() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    name_ = fmt::format("t_{}_{}_{:x}", getpid(), counter++, rd() & 0xffffff);
    Exec("CREATE SCHEMA " + name_);
}

TestSchema::~TestSchema() {
    try {
        pqxx::connection c(BaseConninfo());
        pqxx::nontransaction tx(c);
        tx.exec("DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
    } catch (const std::exception&) {
        // The cluster may be gone in a test that stops it; the run's cleanup removes it.
    }
}

std::string TestSchema::conninfo() const {
    // The application name tells this test's sessions apart in
    // pg_stat_activity, which is cluster-wide.
    return BaseConninfo() + " application_name=" + name_ + " options='-c search_path=" + name_ + "'";
}

void TestSchema::Exec(const std::string& sql) const {
    pqxx::connection c(conninfo());
    pqxx::nontransaction tx(c);
    tx.exec(sql);
}

std::string TestSchema::Query1(const std::string& sql) const {
    pqxx::connection c(conninfo());
    pqxx::nontransaction tx(c);
    auto r = tx.exec(sql);
    if (r.empty() || r[0][0].is_null()) return {};
    return r[0][0].c_str();
}

TempDir::TempDir() {
    char tmpl[] = "/tmp/iblt.XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
    if (std::getenv("IBLSYNC_KEEP_TEMP")) return;
    std::string cmd = "rm -rf '" + path_ + "'";
    [[maybe_unused]] int rc = std::system(cmd.c_str());
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                         const std::function<void()>& child_setup) {
    // Everything the child needs is made before fork(): a test may run
    // commands from several threads, and a child forked while another
    // thread held malloc's lock would hang in malloc and never reach exec.
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe failed");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        if (child_setup) child_setup();
        execv(args[0], args.data());
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    CommandResult result;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        if (poll(fds, 2, static_cast<int>(left.count())) <= 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[4096];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) close(f.fd);
    int status = 0;
    waitpid(pid, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

long long Occurrences(const std::string& text, const std::string& what) {
    long long n = 0;
    for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
    return n;
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
}

std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void WriteFile(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
}

PrivateCluster::~PrivateCluster() { RunCommand({SourceDir() + "/tools/pgcluster", "stop", dir_, "--immediate"}); }

std::string PrivateCluster::Start() {
    auto r = RunCommand({SourceDir() + "/tools/pgcluster", "start", dir_}, std::chrono::seconds(60));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
}

void PrivateCluster::Stop() {
    auto r = RunCommand({SourceDir() + "/tools/pgcluster", "stop", dir_, "--immediate"}, std::chrono::seconds(60));
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace iblsync::test
