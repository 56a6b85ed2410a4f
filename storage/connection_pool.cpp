#include "storage/detail/connection_pool.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "storage/detail/errors.hpp"

namespace iblsync::storage::detail {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{200};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

std::string FirstLine(const std::string& s) {
    auto end = s.find('\n');
    return end == std::string::npos ? s : s.substr(0, end);
}

}  // namespace

ConnectionPool::ConnectionPool(std::string conninfo, int size) : conninfo_(std::move(conninfo)) {
    for (int i = 0; i < std::max(size, 1); ++i) slots_.push_back(std::make_unique<Slot>());
}

ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Lease::~Lease() {
    std::lock_guard lock(pool->mu_);
    pool->slots_[index]->busy = false;
    pool->cv_.notify_one();
}

ConnectionPool::Lease ConnectionPool::Acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] {
        return std::any_of(slots_.begin(), slots_.end(), [](auto& s) { return !s->busy; });
    });
    // Prefer a free slot that already has an open connection.
    int index = -1;
    for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
        if (slots_[i]->busy) continue;
        if (index < 0 || (slots_[i]->conn && !slots_[index]->conn)) index = i;
    }
    Slot& slot = *slots_[index];
    slot.busy = true;
    if (slot.conn) return Lease(this, index);  // Lease's destructor takes mu_ itself

    auto release = [&] {  // called with mu_ held
        slot.busy = false;
        cv_.notify_one();
    };
    if (std::chrono::steady_clock::now() < next_attempt_) {
        release();
        throw DatabaseUnavailable(fmt::format("database unreachable: {}", last_error_));
    }
    lock.unlock();
    std::unique_ptr<pqxx::connection> conn;
    try {
        conn = std::make_unique<pqxx::connection>(conninfo_);
    } catch (const std::exception& e) {
        lock.lock();
        release();
        up_ = false;
        ++failures_;
        last_error_ = FirstLine(e.what());
        backoff_ = backoff_.count() == 0 ? kFirstBackoff : std::min(backoff_ * 2, kMaxBackoff);
        next_attempt_ = std::chrono::steady_clock::now() + backoff_;
        throw DatabaseUnavailable(fmt::format("database unreachable: {}", last_error_));
    }
    lock.lock();
    slot.conn = std::move(conn);
    if (ever_connected_ && !up_) ++reconnects_;
    ever_connected_ = true;
    up_ = true;
    backoff_ = std::chrono::milliseconds{0};
    lock.unlock();
    return Lease(this, index);
}

void ConnectionPool::Drop(int index, const std::string& why) {
    std::unique_ptr<pqxx::connection> dead;
    std::lock_guard lock(mu_);
    dead = std::move(slots_[index]->conn);
    up_ = false;
    ++failures_;
    last_error_ = FirstLine(why);
    // Reconnect attempts start right away; the backoff only grows on failed connects.
    next_attempt_ = std::chrono::steady_clock::time_point{};
}

void ConnectionPool::Translate(Lease& lease) {
    RethrowTranslated([&](const std::string& why) { Drop(lease.index, why); });
}

void ConnectionPool::CancelAll() {
    std::lock_guard lock(mu_);
    for (auto& slot : slots_) {
        if (!slot->busy || !slot->conn) continue;
        try {
            slot->conn->cancel_query();  // PQcancel: safe from another thread
        } catch (const std::exception&) {
            // Nothing more to do at shutdown.
        }
    }
}

PoolStats ConnectionPool::Stats() const {
    std::lock_guard lock(mu_);
    PoolStats s;
    s.size = static_cast<int>(slots_.size());
    for (auto& slot : slots_) {
        s.in_use += slot->busy ? 1 : 0;
        s.open += slot->conn ? 1 : 0;
    }
    s.up = up_;
    s.reconnects = reconnects_;
    s.failures = failures_;
    s.last_error = last_error_;
    return s;
}

}  // namespace iblsync::storage::detail
