#pragma once
// Shared helpers for tests that need the private PostgreSQL cluster, temp
// directories, or to run the project's binaries.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace iblsync::test {

// Conninfo of the run's private cluster (written by support/pg_fixture.sh).
std::string BaseConninfo();
std::string BinDir();     // the build directory
std::string SourceDir();  // the source tree
std::string IblsyncdPath();
std::string IblctlPath();

// A schema of its own for one test, dropped afterwards. conninfo() selects it
// through search_path, so the daemon under test creates its tables there.
class TestSchema {
public:
    TestSchema();
    ~TestSchema();
    const std::string& name() const { return name_; }
    std::string conninfo() const;
    void Exec(const std::string& sql) const;
    std::string Query1(const std::string& sql) const;  // first column of the first row ("" if none)

private:
    std::string name_;
};

class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }
    std::string File(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

struct CommandResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};

// Runs argv[0] with arguments; `child_setup` runs in the child before exec
// (e.g. to drop privileges). Kills it after `timeout`.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30),
                         const std::function<void()>& child_setup = {});

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout);
// How often `what` occurs in `text` (overlaps counted).
long long Occurrences(const std::string& text, const std::string& what);
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

// A PostgreSQL cluster of a test's own (tools/pgcluster, listening only on
// a Unix socket in its directory), for tests that stop it under a daemon.
// Durable settings: an immediate stop must not lose what was committed.
class PrivateCluster {
public:
    explicit PrivateCluster(const TempDir& dir) : dir_(dir.File("pg")) {}
    ~PrivateCluster();
    std::string Start();  // its conninfo line; a failure is a test failure
    void Stop();          // immediate: as a crash
    std::string Conninfo() const { return "host=" + dir_ + " port=55433 user=postgres dbname=postgres"; }

private:
    std::string dir_;
};

}  // namespace iblsync::test
