#pragma once
// COPY ... FROM STDIN in text format, with lines built by the caller into
// one reused buffer. pqxx 6.4's stream_to converts, escapes and joins every
// field through temporary strings; for multi-kilobyte records that was a
// quarter of a bulk load's client time. Private to storage/.

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

namespace iblsync::storage::detail {

// COPY lines for one table, kept in an anonymous temporary file (in
// $TMPDIR) until Replay() sends them. A bulk load spools everything but its
// records this way while it parses, so that the server fills one table's
// indexes at a time instead of several tables' in turn (their pages compete
// for shared buffers; interleaved batches were 20% slower than COPYs of one
// table each).
class CopySpool {
public:
    CopySpool(std::string table, std::vector<std::string> columns);
    ~CopySpool();
    CopySpool(const CopySpool&) = delete;
    CopySpool& operator=(const CopySpool&) = delete;

    void Append(std::string_view lines);  // whole lines, each ending in '\n'
    // One COPY of everything appended so far; the spool is empty after it.
    // With `number_from`, each line is sent with a first column added:
    // number_from, number_from + 1, ... Returns the number of lines sent.
    long long Replay(pqxx::work& tx, long long number_from = -1);
    std::size_t Bytes() const { return bytes_; }

private:
    std::string table_;
    std::vector<std::string> columns_;
    std::FILE* file_ = nullptr;
    std::size_t bytes_ = 0;
};

class CopyWriter {
public:
    CopyWriter(pqxx::work& tx, const std::string& table, const std::vector<std::string>& columns);
    // Lines go to the spool instead; Complete() only hands over the rest.
    explicit CopyWriter(CopySpool& spool);
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
    CopySpool* spool_ = nullptr;
    std::string line_;  // complete lines not sent yet, then the current one
    bool first_ = true;
};

}  // namespace iblsync::storage::detail
