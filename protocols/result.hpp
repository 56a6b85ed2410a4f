#pragma once
// A small expected-like type: g++ 12 has no <expected>. Codecs return
// Result<T> so that a failure carries a reason instead of throwing.

#include <string>
#include <utility>
#include <variant>

namespace iblsync {

struct Error {
    std::string message;
    std::string pointer;  // where in the input, when it has a structure (a JSON pointer such as /holdings/2/status)
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
    Result(Error e) : v_(std::move(e)) {}      // NOLINT

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    const T& value() const& { return std::get<0>(v_); }
    T& value() & { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    const T& operator*() const& { return value(); }
    const T* operator->() const { return &value(); }
    const std::string& error() const { return std::get<1>(v_).message; }
    const std::string& error_pointer() const { return std::get<1>(v_).pointer; }

private:
    std::variant<T, Error> v_;
};

inline Error Fail(std::string message) { return Error{std::move(message), {}}; }
inline Error FailAt(std::string pointer, std::string message) { return Error{std::move(message), std::move(pointer)}; }

}  // namespace iblsync
