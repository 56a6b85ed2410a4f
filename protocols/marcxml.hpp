#pragma once
// MARCXML (MARC 21 slim, namespace http://www.loc.gov/MARC21/slim): a
// <collection> of <record>s or a single <record>, with or without a namespace
// prefix. Read as a stream: the scanner cuts out one <record> element at a
// time and only that element becomes a DOM, so a 1 GB collection is read in
// bounded memory. DTDs and entity declarations are refused outright (no
// entity expansion, no external loading); only UTF-8 is accepted.

#include <istream>
#include <string>
#include <string_view>

#include "protocols/iso2709.hpp"  // RawRecord
#include "protocols/marc_record.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols::marc {

inline constexpr const char* kMarcXmlNamespace = "http://www.loc.gov/MARC21/slim";
inline constexpr std::size_t kMaxMarcXmlRecord = 4 << 20;  // bytes of markup for one record

// Parses one <record> element (the text from "<record" to "</record>").
Result<Record> ParseMarcXmlRecord(std::string_view xml);

// Serialises one record as a <record> element. With `with_namespace` it
// carries xmlns="http://www.loc.gov/MARC21/slim" itself (for a record on its
// own); inside WriteMarcXmlCollection the collection declares it.
Result<std::string> WriteMarcXmlRecord(const Record& record, bool with_namespace = true);

// Opening and closing text of a collection document.
std::string MarcXmlCollectionStart();
std::string MarcXmlCollectionEnd();

// Escapes text for XML element content and attribute values.
std::string XmlEscape(std::string_view text);

class MarcXmlSplitter {
public:
    explicit MarcXmlSplitter(std::istream& in) : in_(in) {}
    // False at the end of the stream. An out.error that ends the stream (a
    // DTD, a non-UTF-8 encoding) is followed by false on the next call.
    bool Next(RawRecord& out);

private:
    bool More();                                   // reads another chunk; false at EOF
    std::size_t Find(std::size_t from, std::string_view needle);  // npos at EOF
    void Compact(std::size_t keep_from);

    std::istream& in_;
    std::string buf_;
    std::size_t pos_ = 0;
    std::uint64_t dropped_ = 0;  // stream offset of buf_[0]
    bool fatal_ = false;
};

}  // namespace iblsync::protocols::marc
