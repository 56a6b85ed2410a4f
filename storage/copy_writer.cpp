// pqxx 6.4 offers raw COPY lines only through tablewriter, which it marks
// deprecated in favour of stream_to; this file is the one place that uses it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include "storage/detail/copy_writer.hpp"

#include <pqxx/tablewriter>

#include <fmt/format.h>

namespace iblsync::storage::detail {

struct CopyWriter::Impl {
    pqxx::tablewriter writer;
    Impl(pqxx::work& tx, const std::string& table, const std::vector<std::string>& columns)
        : writer(tx, table, columns.begin(), columns.end()) {}
};

CopyWriter::CopyWriter(pqxx::work& tx, const std::string& table, const std::vector<std::string>& columns)
    : impl_(std::make_unique<Impl>(tx, table, columns)) {
    line_.reserve(80u << 10);
}

CopyWriter::~CopyWriter() = default;

void CopyWriter::Separate() {
    if (!first_) line_ += '\t';
    first_ = false;
}

CopyWriter& CopyWriter::Text(std::string_view value) {
    Separate();
    // Runs of ordinary bytes are appended whole; only the four bytes that
    // the text format gives a meaning are escaped.
    std::size_t start = 0;
    for (std::size_t i = 0; i < value.size(); ++i) {
        const char c = value[i];
        const char* esc = c == '\\' ? "\\\\" : c == '\t' ? "\\t" : c == '\n' ? "\\n" : c == '\r' ? "\\r" : nullptr;
        if (!esc) continue;
        line_.append(value.data() + start, i - start);
        line_.append(esc, 2);
        start = i + 1;
    }
    line_.append(value.data() + start, value.size() - start);
    return *this;
}

CopyWriter& CopyWriter::Int(long long value) {
    Separate();
    fmt::format_to(std::back_inserter(line_), "{}", value);
    return *this;
}

CopyWriter& CopyWriter::Bool(bool value) {
    Separate();
    line_ += value ? 't' : 'f';
    return *this;
}

CopyWriter& CopyWriter::Null() {
    Separate();
    line_ += "\\N";
    return *this;
}

CopyWriter& CopyWriter::TextArray(const std::vector<std::string>& values) {
    // {"a","b\"c"}: quoted elements, then escaped again as a COPY field.
    std::string literal = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) literal += ',';
        literal += '"';
        for (char c : values[i]) {
            if (c == '"' || c == '\\') literal += '\\';
            literal += c;
        }
        literal += '"';
    }
    literal += '}';
    return Text(literal);
}

// Lines are sent in blocks of about 64 KB: pqxx appends the final newline
// itself and copies what it is given once more, so one call per line would
// cost a copy and a libpq call per record.
void CopyWriter::EndLine() {
    line_ += '\n';
    first_ = true;
    if (line_.size() >= (64u << 10)) Send();
}

void CopyWriter::Send() {
    if (line_.empty()) return;
    line_.pop_back();  // the newline pqxx adds
    impl_->writer.write_raw_line(line_);
    line_.clear();
}

void CopyWriter::Complete() {
    Send();
    impl_->writer.complete();
}

}  // namespace iblsync::storage::detail

#pragma GCC diagnostic pop
