// ISO 2709, MARC-8 and MARCXML readers and writers on real records written by
// others (tests/data/marc, provenance in PROVENANCE.md there).

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "protocols/marc8.hpp"
#include "tests/unit/protocols/marc_test_util.hpp"

namespace iblsync::protocols::marc {
namespace {

using testing::DataDir;
using testing::ReadFile;

// What differs between two records, ignoring the leader positions that
// describe the serialisation (length, coding, base address).
std::string Difference(const Record& a, const Record& b) {
    for (std::size_t i : {5, 6, 7, 8, 17, 18, 19})
        if (a.leader[i] != b.leader[i]) return fmt::format("leader/{:02} '{}' vs '{}'", i, a.leader[i], b.leader[i]);
    if (a.fields.size() != b.fields.size()) return fmt::format("{} fields vs {}", a.fields.size(), b.fields.size());
    for (std::size_t i = 0; i < a.fields.size(); ++i) {
        const auto &f = a.fields[i], &g = b.fields[i];
        if (f.tag != g.tag) return fmt::format("field {}: tag {} vs {}", i, f.tag, g.tag);
        if (f.data != g.data) return fmt::format("field {}: '{}' vs '{}'", f.tag, f.data, g.data);
        if (f.ind1 != g.ind1 || f.ind2 != g.ind2) return fmt::format("field {}: indicators differ", f.tag);
        if (f.subfields.size() != g.subfields.size()) return fmt::format("field {}: subfield count differs", f.tag);
        for (std::size_t k = 0; k < f.subfields.size(); ++k)
            if (f.subfields[k].code != g.subfields[k].code || f.subfields[k].value != g.subfields[k].value)
                return fmt::format("field {} ${}: '{}' vs ${} '{}'", f.tag, f.subfields[k].code, f.subfields[k].value,
                                   g.subfields[k].code, g.subfields[k].value);
    }
    return {};
}

// MARCXML puts control fields first; the order is otherwise kept.
Record ControlFieldsFirst(Record r) {
    std::stable_partition(r.fields.begin(), r.fields.end(), [](const Field& f) { return f.IsControl(); });
    return r;
}

// yaz-marcdump converted every clean ISO 2709 original (MARC-8 or UTF-8) to
// MARCXML; our reader must produce the same records from the originals. YAZ
// leaves MARC-8 diacritics decomposed, so we read them decomposed here too.
TEST(Iso2709Reader, AgreesWithYazOnEveryCleanFile) {
    int files = 0, records = 0;
    for (const auto& entry : std::filesystem::directory_iterator(DataDir() + "/marcxml")) {
        std::string name = entry.path().filename().string();
        auto sep = name.find("__");
        ASSERT_NE(sep, std::string::npos) << name;
        std::string original = DataDir() + "/originals/" + name.substr(0, sep) + "/" +
                               name.substr(sep + 2, name.size() - sep - 2 - 4);
        if (!std::filesystem::exists(original)) continue;  // converted from a file we do not keep
        // Its directory offsets are wrong, so YAZ converted misaligned bytes;
        // we reject it (see MalformedInput below).
        if (name == "marc4j__incomplete_esc_seq.mrc.xml") continue;
        auto ours = ReadFile(original, Composition::kDecomposed);
        auto yaz = ReadFile(entry.path().string());
        SCOPED_TRACE(original);
        ASSERT_EQ(ours.size(), yaz.size());
        for (std::size_t i = 0; i < ours.size(); ++i) {
            EXPECT_TRUE(yaz[i].record.ok()) << "record " << i << ": " << yaz[i].record.error();
            EXPECT_TRUE(ours[i].record.ok()) << "record " << i << ": " << ours[i].record.error();
            if (!yaz[i].record.ok() || !ours[i].record.ok()) continue;
            EXPECT_EQ(Difference(ours[i].record.value(), yaz[i].record.value()), "") << "record " << i;
            ++records;
        }
        ++files;
    }
    EXPECT_GE(files, 40);
    EXPECT_GE(records, 600);
}

TEST(MarcCodecs, EveryGoodRecordRoundTripsThroughBothFormats) {
    int checked = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(DataDir() + "/originals")) {
        if (!entry.is_regular_file()) continue;
        std::string ext = entry.path().extension().string();
        if (ext == ".mrk" || ext == ".lif" || ext == ".json" || ext == ".txt") continue;
        for (const auto& item : ReadFile(entry.path().string())) {
            if (!item.record.ok()) continue;
            const Record& r = item.record.value();
            SCOPED_TRACE(fmt::format("{} at byte {}", entry.path().string(), item.raw.offset));
            auto iso = WriteIso2709(r);
            EXPECT_TRUE(iso.ok()) << iso.error();
            if (!iso.ok()) continue;
            auto back = ParseIso2709(iso.value());
            ASSERT_TRUE(back.ok()) << back.error();
            EXPECT_EQ(Difference(r, back.value()), "");
            auto xml = WriteMarcXmlRecord(r);
            ASSERT_TRUE(xml.ok()) << xml.error();
            auto again = ParseMarcXmlRecord(xml.value());
            ASSERT_TRUE(again.ok()) << again.error();
            EXPECT_EQ(Difference(ControlFieldsFirst(r), again.value()), "");
            ++checked;
        }
    }
    EXPECT_GE(checked, 640);
}

struct Damage {
    const char* file;
    std::size_t record;  // index of the damaged record in the file
    const char* reason;  // expected part of the error
};

void PrintTo(const Damage& d, std::ostream* os) { *os << d.file << " #" << d.record; }

class MalformedInput : public ::testing::TestWithParam<Damage> {};

TEST_P(MalformedInput, IsRejectedWithASpecificReasonAndSparesTheOthers) {
    const Damage& d = GetParam();
    auto items = ReadFile(DataDir() + "/originals/" + d.file);
    ASSERT_GT(items.size(), d.record);
    ASSERT_FALSE(items[d.record].record.ok()) << "accepted a damaged record";
    EXPECT_NE(items[d.record].record.error().find(d.reason), std::string::npos) << items[d.record].record.error();
}

INSTANTIATE_TEST_SUITE_P(
    RealFiles, MalformedInput,
    ::testing::Values(
        Damage{"marc4j/error.mrc", 0, "leader says the record has 714 bytes, but it has 715"},
        Damage{"marc4j/bad_too_long_plus_2.mrc", 0, "leader says the record has 23375 bytes"},
        Damage{"marc4j/not_unimarc_errors_3.mrc", 0, "field 776 has an invalid subfield code (byte 0xb9)"},
        Damage{"marc4j/not_unimarc_errors_3.mrc", 2, "field 880 has an invalid subfield code (byte 0xa4)"},
        Damage{"marc4j/incomplete_esc_seq.mrc", 0, "field 880 $a: invalid MARC-8"},
        Damage{"openlibrary/upei_short_008.mrc", 0, "directory does not end with a field terminator at byte 156"},
        Damage{"openlibrary/new_poganucpeoplethe00stowuoft_meta.mrc", 0, "leader says the record has 515 bytes"},
        Damage{"pymarc/bad_indicator.dat", 0, "directory entry 0 has an invalid tag '0 2'"},
        Damage{"pymarc/bad_subfield_code.dat", 0, "leader says the record has 755 bytes, but it has 756"},
        Damage{"ruby-marc/utf8_with_bad_bytes.marc", 0, "field 245 $a: invalid UTF-8 at byte 68"},
        Damage{"traject/bad_utf_byte.utf8.marc", 0, "field 300 $a: invalid UTF-8 at byte 21"},
        Damage{"marc-perl/marc-record_t_badldr.usmarc", 2, "shorter than a leader"},
        Damage{"marc-perl/marc-record_t_badldr.usmarc", 7, "stream ends inside a record"},
        Damage{"marc4j/chabon-missing-controlfield-tag.xml", 0, "controlfield without a tag attribute"},
        Damage{"marc4j/chabon-missing-datafield-tag.xml", 0, "datafield 020 contains <subfields>"},
        Damage{"marc4j/chabon-missing-subfield-code.xml", 0, "subfield without a one-character code"},
        Damage{"pymarc/bad_tag.xml", 0, "leader has 17 characters, not 24"},
        Damage{"qa-catalogue/wrong-marcxml.xml", 2, "leader has 23 characters, not 24"}));

TEST(MalformedInput, GoodRecordsAroundADamagedOneAreKept) {
    auto items = ReadFile(DataDir() + "/originals/marc4j/bad_too_long_plus_2.mrc");
    ASSERT_EQ(items.size(), 3u);
    EXPECT_TRUE(items[1].record.ok()) << items[1].record.error();
    EXPECT_TRUE(items[2].record.ok()) << items[2].record.error();
    auto badldr = ReadFile(DataDir() + "/originals/marc-perl/marc-record_t_badldr.usmarc");
    int good = 0;
    for (const auto& it : badldr) good += it.record.ok();
    EXPECT_EQ(good, 6);
}

TEST(Iso2709Splitter, SkipsLineBreaksBetweenRecords) {
    auto items = ReadFile(DataDir() + "/originals/qa-catalogue/000-line-seperated.mrc");
    ASSERT_EQ(items.size(), 20u);
    for (const auto& it : items) EXPECT_TRUE(it.record.ok()) << it.record.error();
}

TEST(Iso2709Splitter, BoundsARecordWithoutTerminator) {
    std::string junk(250000, 'x');
    std::istringstream in(junk + "\x1d");
    Iso2709Splitter s(in);
    RawRecord raw;
    ASSERT_TRUE(s.Next(raw));
    EXPECT_EQ(raw.error, "no record terminator within 99999 bytes; skipped to the next one");
    EXPECT_TRUE(raw.bytes.empty());  // nothing of it was kept
    EXPECT_FALSE(s.Next(raw));
}

TEST(Marc8, ConvertsDiacriticsAndScripts) {
    // ANSEL acute (0xE2) before its letter; composed by default, decomposed on request.
    EXPECT_EQ(Marc8ToUtf8("D\xE8usseldorf").value(), "D\xC3\xBCsseldorf");
    EXPECT_EQ(Marc8ToUtf8("Caf\xE2" "e", Composition::kDecomposed).value(), "Cafe\xCC\x81");
    // Basic Cyrillic via ESC ( N; its 0x41-0x5A are the lower-case letters.
    EXPECT_EQ(Marc8ToUtf8("\x1b(NMOSKWA\x1b(B").value(), "\xD0\xBC\xD0\xBE\xD1\x81\xD0\xBA\xD0\xB2\xD0\xB0");
    EXPECT_EQ(Marc8ToUtf8("plain ASCII").value(), "plain ASCII");
}

TEST(Iso2709Writer, RefusesWhatIso2709CannotHold) {
    Record r;
    r.leader = "00000nam a2200000 a 4500";
    r.fields.push_back(Field{"245", '1', '0', "", {Subfield{'a', std::string(10000, 'x')}}});
    EXPECT_NE(WriteIso2709(r).error().find("field 245 is too long for ISO 2709"), std::string::npos);
    r.fields[0].subfields[0].value = "a\x1e" "b";
    EXPECT_EQ(WriteIso2709(r).error(), "field 245 $a contains a MARC delimiter byte");
    r.leader = "short";
    EXPECT_EQ(WriteIso2709(r).error(), "leader has 5 characters, not 24");
}

}  // namespace
}  // namespace iblsync::protocols::marc
