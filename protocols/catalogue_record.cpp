#include "protocols/catalogue_record.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "protocols/identifiers.hpp"
#include "protocols/iso2709.hpp"
#include "protocols/marcxml.hpp"
#include "protocols/normalize.hpp"

namespace iblsync::protocols {

Result<CatalogueRecord> DescribeRecord(const marc::Record& r) {
    const char type = r.leader.size() == 24 ? r.leader[6] : ' ';
    if (type == 'u' || type == 'v' || type == 'x' || type == 'y')
        return Fail("this is a MARC 21 holdings record (leader/06 u, v, x or y), not a bibliographic one");
    if (type == 'z') return Fail("this is a MARC 21 authority record (leader/06 z), not a bibliographic one");
    if (!r.First("245")) {
        if (const auto* f200 = r.First("200"); f200 && !f200->subfields.empty())
            return Fail("looks like UNIMARC (title in field 200, no 245); only MARC 21 is accepted");
        return Fail("record has no title field 245");
    }
    CatalogueRecord out;
    out.local_id = r.ControlNumber();
    while (!out.local_id.empty() && out.local_id.back() == ' ') out.local_id.pop_back();
    while (!out.local_id.empty() && out.local_id.front() == ' ') out.local_id.erase(0, 1);
    if (out.local_id.empty()) return Fail("record has no control number (001); the catalogue keys records by it");
    if (out.local_id.size() > 200) return Fail(fmt::format("control number (001) is {} bytes; the limit is 200", out.local_id.size()));

    // Stored as ISO 2709 in UTF-8: a third of the size of the same record
    // in MARCXML, so the catalogue's largest table and every load moves a
    // third of the bytes. Only a record too long for ISO 2709 stays MARCXML.
    if (auto iso = marc::WriteIso2709(r)) {
        out.format = "iso2709";
        out.raw = std::move(iso).value();
    } else {
        auto xml = marc::WriteMarcXmlRecord(r, false);
        if (!xml) return Fail(xml.error());
        out.format = "marcxml";
        out.raw = std::move(xml).value();
    }
    out.title = r.First("245")->Join("abnp");
    while (!out.title.empty() && (out.title.back() == ' ' || out.title.back() == '/' || out.title.back() == ':'))
        out.title.pop_back();
    out.title_key = TitleKey(r);
    out.author_key = AuthorKey(r);
    out.year = PublicationYear(r);
    out.language = Language(r);
    out.material_type = MaterialType(r);
    out.search = SearchTextOf(r);
    auto ids = ExtractIdentifiers(r);
    out.isbns = std::move(ids.isbns);
    out.issns = std::move(ids.issns);
    out.oclc = std::move(ids.oclc);
    out.ppn = std::move(ids.ppn);
    out.warnings = std::move(ids.rejected);
    out.match_keys = MatchKeys(out);
    return out;
}

std::vector<std::string> MatchKeys(const CatalogueRecord& r) {
    std::vector<std::string> keys;
    for (const auto& [kind, values] : {std::pair{"isbn:", &r.isbns}, std::pair{"issn:", &r.issns},
                                       std::pair{"oclc:", &r.oclc}, std::pair{"ppn:", &r.ppn}})
        for (const auto& v : *values) keys.push_back(kind + v);
    if (!r.title_key.empty() && !r.author_key.empty() && r.year > 0 && !r.material_type.empty())
        keys.push_back(fmt::format("tay:{}|{}|{}|{}", r.title_key, r.author_key, r.year, r.material_type));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
}

Result<CatalogueRecord> DescribeRecord(const marc::Record& record, const HoldingsMapping& mapping,
                                       std::string_view library) {
    auto out = DescribeRecord(record);
    if (!out || !mapping.Enabled()) return out;
    auto copies = ExtractHoldings(record, mapping, library);
    out.value().holdings_given = true;
    out.value().holdings = std::move(copies.holdings);
    for (auto& w : copies.warnings) out.value().warnings.push_back(std::move(w));
    return out;
}

Result<marc::Record> StoredMarc(std::string_view format, std::string_view raw) {
    if (format == "iso2709") return marc::ParseIso2709(raw);
    if (format == "marcxml") return marc::ParseMarcXmlRecord(raw);
    return Fail(fmt::format("a record stored as {} is not MARC", format));
}

Result<CatalogueRecord> DescribeRecord(JsonRecord record) {
    auto out = DescribeRecord(record.marc);
    if (!out) return out;
    auto& r = out.value();
    r.format = "json";
    r.raw = std::move(record.canonical);
    r.material_type = record.material_type;
    r.match_keys = MatchKeys(r);
    r.holdings_given = record.holdings_given;
    r.holdings = std::move(record.holdings);
    return out;
}

Result<CatalogueRecord> DescribeStored(std::string_view format, std::string_view raw) {
    Result<CatalogueRecord> out = Fail("");
    if (format == "json") {
        auto json = ParseJsonRecord(raw);
        if (!json) return Fail(json.error());
        out = DescribeRecord(std::move(json).value());
    } else {
        auto marc = StoredMarc(format, raw);
        if (!marc) return Fail(marc.error());
        out = DescribeRecord(marc.value());
    }
    if (!out) return out;
    auto& r = out.value();
    r.format = std::string(format);
    r.raw = std::string(raw);
    r.holdings_given = false;
    r.holdings.clear();
    return out;
}

marc::Record BriefRecord(const marc::Record& record) {
    static const std::set<std::string_view> kKept = {
        "015", "016", "020", "022", "024", "028", "035", "041", "100", "110", "111", "130", "240", "245", "246",
        "250", "260", "264", "300", "336", "337", "338", "490", "700", "710", "711", "730", "740", "800", "830"};
    marc::Record out;
    out.leader = record.leader;
    for (const auto& f : record.fields)
        if (marc::IsControlTag(f.tag) || kKept.count(f.tag)) out.fields.push_back(f);
    return out;
}

Result<CatalogueRecord> DescribeStoredBrief(std::string_view format, std::string_view raw) {
    if (format == "json") return DescribeStored(format, raw);
    auto marc = StoredMarc(format, raw);
    if (!marc) return Fail(marc.error());
    auto out = DescribeRecord(BriefRecord(marc.value()));
    if (!out) return out;
    out.value().holdings_given = false;
    out.value().holdings.clear();
    return out;
}

}  // namespace iblsync::protocols
