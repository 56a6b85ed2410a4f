// pqxx 6.4 offers raw COPY lines only through tablewriter, which it marks
// deprecated in favour of stream_to; this file is the one place that uses it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include "storage/detail/copy_writer.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <pqxx/tablewriter>

#include <fmt/format.h>

#include "storage/errors.hpp"

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

CopyWriter::CopyWriter(CopySpool& spool) : spool_(&spool) { line_.reserve(80u << 10); }

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
    if (spool_) {
        spool_->Append(line_);
        line_.clear();
        return;
    }
    line_.pop_back();  // the newline pqxx adds
    impl_->writer.write_raw_line(line_);
    line_.clear();
}

void CopyWriter::Complete() {
    Send();
    if (impl_) impl_->writer.complete();
}

namespace {

[[noreturn]] void SpoolFailed(const char* what, int err) {
    const char* dir = std::getenv("TMPDIR");
    throw SpoolError(fmt::format("cannot {} the load's spool file in {}: {}", what, dir && *dir ? dir : "/tmp",
                                 std::strerror(err)));
}

}  // namespace

CopySpool::CopySpool(std::string table, std::vector<std::string> columns)
    : table_(std::move(table)), columns_(std::move(columns)) {
    // Made at once, so that a load that cannot spool fails before it reads
    // its files. tmpfile() ignores TMPDIR; the file is unlinked at once, so
    // it goes away with the process whatever happens.
    const char* dir = std::getenv("TMPDIR");
    std::string path = fmt::format("{}/iblsync-spool.XXXXXX", dir && *dir ? dir : "/tmp");
    const int fd = ::mkstemp(path.data());
    if (fd < 0) SpoolFailed("create", errno);
    ::unlink(path.c_str());
    file_ = ::fdopen(fd, "w+");
    if (!file_) {
        const int err = errno;
        ::close(fd);
        SpoolFailed("open", err);
    }
}

CopySpool::~CopySpool() {
    if (file_) std::fclose(file_);
}

void CopySpool::Append(std::string_view lines) {
    if (std::fwrite(lines.data(), 1, lines.size(), file_) != lines.size()) SpoolFailed("write", errno);
    bytes_ += lines.size();
}

long long CopySpool::Replay(pqxx::work& tx, long long number_from) {
    if (bytes_ == 0) return 0;
    if (std::fflush(file_) != 0 || std::fseek(file_, 0, SEEK_SET) != 0) SpoolFailed("rewind", errno);
    pqxx::tablewriter writer(tx, table_, columns_.begin(), columns_.end());
    std::string chunk(1u << 20, '\0');
    std::string line;
    std::size_t held = 0;  // bytes of an unfinished line carried over
    long long lines = 0;
    for (;;) {
        const std::size_t got = std::fread(chunk.data() + held, 1, chunk.size() - held, file_);
        if (got == 0) {
            if (std::ferror(file_)) SpoolFailed("read", errno);
            break;
        }
        const std::size_t end = held + got;
        const std::string_view block(chunk.data(), end);
        const std::size_t last = block.rfind('\n');
        if (last == std::string_view::npos) {
            // One line longer than the chunk: read on.
            held = end;
            if (held == chunk.size()) chunk.resize(chunk.size() * 2);
            continue;
        }
        // Whole lines, without the final newline that pqxx adds.
        if (number_from < 0) {
            line.assign(chunk.data(), last);
            lines += std::count(block.begin(), block.begin() + static_cast<std::ptrdiff_t>(last) + 1, '\n');
        } else {
            line.clear();
            for (std::size_t at = 0; at <= last;) {
                const std::size_t nl = block.find('\n', at);
                if (at) line += '\n';
                fmt::format_to(std::back_inserter(line), "{}\t", number_from + lines++);
                line.append(block.substr(at, nl - at));
                at = nl + 1;
            }
        }
        writer.write_raw_line(line);
        held = end - last - 1;
        std::memmove(chunk.data(), chunk.data() + last + 1, held);
    }
    if (held != 0) throw std::logic_error("spool ends inside a line");
    writer.complete();
    if (std::fseek(file_, 0, SEEK_SET) != 0 || ::ftruncate(::fileno(file_), 0) != 0) SpoolFailed("truncate", errno);
    bytes_ = 0;
    return lines;
}

}  // namespace iblsync::storage::detail

#pragma GCC diagnostic pop
