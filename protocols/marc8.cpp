#include "protocols/marc8.hpp"

#include <yaz/yaz-iconv.h>

#include <fmt/format.h>

namespace iblsync::protocols::marc {
namespace {

struct Iconv {
    yaz_iconv_t cd;
    // "MARC8s" composes base letter + combining mark into one code point where
    // Unicode has one; "MARC8" leaves them as base + combining mark.
    explicit Iconv(const char* from) : cd(yaz_iconv_open("UTF-8", from)) {}
    ~Iconv() {
        if (cd) yaz_iconv_close(cd);
    }
};

}  // namespace

Result<std::string> Marc8ToUtf8(std::string_view in, Composition composition) {
    bool ascii = true;
    for (unsigned char c : in)
        if (c >= 0x80 || c == 0x1b) ascii = false;
    if (ascii) return std::string(in);

    // yaz_iconv_t keeps state: one per thread, reset per call.
    thread_local Iconv composed("MARC8s"), decomposed("MARC8");
    Iconv& conv = composition == Composition::kComposed ? composed : decomposed;
    if (!conv.cd) return Fail("MARC-8 converter is not available in this YAZ build");
    yaz_iconv(conv.cd, nullptr, nullptr, nullptr, nullptr);  // reset shift state

    std::string out(in.size() * 4 + 16, '\0');
    char* inbuf = const_cast<char*>(in.data());
    size_t inleft = in.size();
    char* outbuf = out.data();
    size_t outleft = out.size();
    if (yaz_iconv(conv.cd, &inbuf, &inleft, &outbuf, &outleft) == static_cast<size_t>(-1)) {
        int err = yaz_iconv_error(conv.cd);
        std::size_t at = in.size() - inleft;
        return Fail(fmt::format("invalid MARC-8 at byte {} ({})", at,
                                err == YAZ_ICONV_EILSEQ   ? "unknown character or escape sequence"
                                : err == YAZ_ICONV_EINVAL ? "incomplete sequence"
                                                          : "conversion failed"));
    }
    // A field may end while a non-default character set is still designated
    // (no closing ESC ( B): common in real records and harmless, since every
    // field starts afresh. The flush only emits pending characters.
    yaz_iconv(conv.cd, nullptr, nullptr, &outbuf, &outleft);
    out.resize(out.size() - outleft);
    return out;
}

}  // namespace iblsync::protocols::marc
