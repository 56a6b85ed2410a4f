#pragma once
// Runs blocking storage calls on a small thread pool and lets coroutines on
// the event loop await them. libpqxx is synchronous, so this keeps the loop
// free while PostgreSQL works. Note: `co_await post(pool)` would resume on
// the caller's executor; co_spawn onto the pool is what moves the work.

#include <type_traits>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace iblsync::daemon {

namespace net = boost::asio;

class DbExecutor {
public:
    explicit DbExecutor(int threads) : pool_(static_cast<std::size_t>(threads)) {}

    // Runs f() on a pool thread; its result or exception comes back to the caller.
    template <class F>
    net::awaitable<std::invoke_result_t<std::decay_t<F>>> Run(F&& f) {
        using R = std::invoke_result_t<std::decay_t<F>>;
        // Callers capture by reference ([&]): g++ 12 mis-builds a lambda
        // that captures a non-trivial type (std::string, a struct of them)
        // by value when the lambda is a temporary in a co_await expression:
        // the copy in the coroutine frame is relocated bitwise, and a short
        // std::string then crashed when destroyed ("free(): invalid
        // pointer"). References into the caller's frame stay valid, since
        // that frame waits here until the work is done. The work is moved
        // into a local of this frame; the spawned coroutine gets a pointer.
        std::decay_t<F> work = std::forward<F>(f);
        auto* w = &work;
        co_return co_await net::co_spawn(
            pool_.get_executor(), [w]() -> net::awaitable<R> { co_return (*w)(); }, net::use_awaitable);
    }

    // Waits for running work to finish; queued work is dropped.
    void Stop() {
        pool_.stop();
        pool_.join();
    }

private:
    net::thread_pool pool_;
};

}  // namespace iblsync::daemon
