#pragma once
// One mapping from libpqxx's exceptions to storage's own (errors.hpp), used
// by every storage entry point so that callers above storage/ never see pqxx.

#include <functional>
#include <string>

namespace iblsync::storage::detail {

// Call inside a catch block: rethrows the exception being handled as
// DatabaseUnavailable (the session is gone or in an unknown state; on_lost is
// called first with the reason) or DatabaseError (the statement failed, the
// session is fine). storage's own exceptions pass through unchanged.
[[noreturn]] void RethrowTranslated(const std::function<void(const std::string&)>& on_lost = {});

// Runs f() with RethrowTranslated() on failure.
template <class F>
auto Translated(F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (...) {
        RethrowTranslated();
    }
}

}  // namespace iblsync::storage::detail
