#pragma once
// A fixed set of libpqxx connections shared by the DB worker threads.
// Private to storage/: this is the only header that names pqxx types.
//
// Threading: With() may be called from any thread. A connection is used by
// one thread at a time. A lost connection is dropped and reopened on a later
// call; while the server is unreachable, calls fail fast for a backoff period
// (200 ms doubling to 5 s) instead of each waiting for a connect timeout.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "storage/errors.hpp"

namespace iblsync::storage::detail {

struct PoolStats {
    int size = 0;
    int in_use = 0;
    int open = 0;
    bool up = false;
    long long reconnects = 0;
    long long failures = 0;
    std::string last_error;
};

class ConnectionPool {
public:
    ConnectionPool(std::string conninfo, int size);
    ~ConnectionPool();

    // Runs f(pqxx::connection&) on a pooled connection. Translates pqxx
    // failures into storage::DatabaseError and its subclasses.
    template <class F>
    auto With(F&& f) -> decltype(f(std::declval<pqxx::connection&>())) {
        Lease lease = Acquire();
        try {
            return f(*slots_[lease.index]->conn);
        } catch (...) {
            Translate(lease);  // always throws
            throw;             // unreachable
        }
    }

    // Asks the server to cancel every statement now running (shutdown deadline).
    void CancelAll();
    PoolStats Stats() const;

private:
    struct Slot {
        std::unique_ptr<pqxx::connection> conn;
        bool busy = false;
    };
    struct Lease {
        ConnectionPool* pool = nullptr;
        int index = -1;
        Lease(ConnectionPool* p, int i) : pool(p), index(i) {}
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ~Lease();
    };

    Lease Acquire();
    [[noreturn]] void Translate(Lease& lease);
    void Drop(int index, const std::string& why);

    const std::string conninfo_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Slot>> slots_;
    bool up_ = false;
    bool ever_connected_ = false;
    long long reconnects_ = 0;
    long long failures_ = 0;
    std::string last_error_;
    std::chrono::steady_clock::time_point next_attempt_{};
    std::chrono::milliseconds backoff_{0};
};

}  // namespace iblsync::storage::detail
