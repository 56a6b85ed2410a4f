#pragma once
// COPY ... FROM STDIN in text format, with lines built by the caller into
// one reused buffer. pqxx 6.4's stream_to converts, escapes and joins every
// field through temporary strings; for multi-kilobyte records that was a
// quarter of a bulk load's client time. Private to storage/.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

namespace iblsync::storage::detail {

class CopyWriter {
public:
    CopyWriter(pqxx::work& tx, const std::string& table, const std::vector<std::string>& columns);
    ~CopyWriter();

    // Fields of the current line, in column order.
    CopyWriter& Text(std::string_view value);  // escaped for the COPY text format
    CopyWriter& Nullable(std::string_view value) { return value.empty() ? Null() : Text(value); }
    CopyWriter& Int(long long value);
    CopyWriter& Bool(bool value);
    CopyWriter& Null();
    CopyWriter& TextArray(const std::vector<std::string>& values);  // a text[] literal
    void EndLine();
    void Complete();

private:
    void Separate();
    void Send();
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string line_;  // complete lines not sent yet, then the current one
    bool first_ = true;
};

}  // namespace iblsync::storage::detail
