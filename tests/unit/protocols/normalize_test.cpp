#include "protocols/normalize.hpp"

#include <map>

#include <gtest/gtest.h>

#include "tests/unit/protocols/marc_test_util.hpp"

namespace iblsync::protocols {
namespace {

marc::Record Book(const std::string& title, char ind2 = '0', const std::string& lang = "dut") {
    marc::Record r;
    r.leader = "00000nam a2200000 a 4500";
    r.fields.push_back({"008", ' ', ' ', "970512s1997    ne            000 1 " + lang + "  ", {}});
    r.fields.push_back({"245", '1', ind2, "", {{'a', title}}});
    return r;
}

TEST(FoldForKey, FoldsCaseDiacriticsAndPunctuation) {
    EXPECT_EQ(FoldForKey("Max Havelaar, of De koffi-veilingen"), "max havelaar of de koffi veilingen");
    EXPECT_EQ(FoldForKey("Ĳsselmeer"), "ijsselmeer");
    EXPECT_EQ(FoldForKey("Straße & Œuvre: Ærø"), "strasse oeuvre aero");
    EXPECT_EQ(FoldForKey("Łódź"), "lodz");
    EXPECT_EQ(FoldForKey("Lo\xCC\x88wenbra\xCC\x88u"), "lowenbrau");  // decomposed input folds alike
    EXPECT_EQ(FoldForKey("  ...  "), "");
    EXPECT_EQ(FoldForKey("МОСКВА"), "москва");
    EXPECT_EQ(FoldForKey("ma\xCA\xBC" "alah"), "maalah");
    EXPECT_EQ(FoldForKey("日本の茶書"), "日本の茶書");
}

TEST(TitleKey, UsesTheNonfilingIndicator) {
    EXPECT_EQ(TitleKey(Book("The magic mountain /", '4', "eng")), "magic mountain");
    EXPECT_EQ(TitleKey(Book("Het achterhuis :", '4')), "achterhuis");
    EXPECT_EQ(TitleKey(Book("L'étranger", '2', "fre")), "etranger");
}

TEST(TitleKey, DropsArticlesByLanguageWhenTheIndicatorIsNotSet) {
    EXPECT_EQ(TitleKey(Book("De avonden", ' ')), "avonden");
    EXPECT_EQ(TitleKey(Book("'t Hooge nest", ' ')), "hooge nest");
    EXPECT_EQ(TitleKey(Book("Der Zauberberg", ' ', "ger")), "zauberberg");
    EXPECT_EQ(TitleKey(Book("Die Buddenbrooks", ' ', "eng")), "die buddenbrooks");  // not an English article
    // Indicator 0 says "no article": keep the word.
    EXPECT_EQ(TitleKey(Book("De avonden", '0')), "de avonden");
}

TEST(Normalize, YearLanguageAndAuthor) {
    auto r = Book("De avonden", '3');
    r.fields.push_back({"100", '1', ' ', "", {{'a', "Reve, Gerard,"}, {'d', "1923-2006."}}});
    EXPECT_EQ(PublicationYear(r), 1997);
    EXPECT_EQ(Language(r), "dut");
    EXPECT_EQ(AuthorKey(r), "reve");
    r.fields[0].data = "970512s19uu    ne            000 1 und  ";
    r.fields.push_back({"264", ' ', '1', "", {{'a', "Amsterdam :"}, {'c', "[ca. 1947]"}}});
    EXPECT_EQ(PublicationYear(r), 1947);
    EXPECT_EQ(Language(r), "");
}

TEST(MaterialType, RecognisesAangepastLezenFormats) {
    auto r = Book("x");
    EXPECT_EQ(MaterialType(r), "book");
    r.fields[0].data[23] = 'd';
    EXPECT_EQ(MaterialType(r), "large_print");
    r.fields[0].data[23] = 'f';
    EXPECT_EQ(MaterialType(r), "braille");
    r.fields[0].data[23] = 'o';
    EXPECT_EQ(MaterialType(r), "ebook");
    r.leader[6] = 'i';
    EXPECT_EQ(MaterialType(r), "audiobook");
    r.leader[6] = 'g';
    EXPECT_EQ(MaterialType(r), "video");
    r.leader[6] = 'a';
    r.leader[7] = 's';
    r.fields[0].data[23] = ' ';
    EXPECT_EQ(MaterialType(r), "serial");
}

// 71 editions and translations of Thomas Mann's works: every record gets a
// title key and the author key "mann"; editions of one translation share a key
// whatever their nonfiling indicator says.
TEST(Normalize, ThomasMannEditions) {
    auto items = marc::testing::ReadFile(marc::testing::DataDir() + "/slices/thomas-mann-shared-71.xml");
    ASSERT_EQ(items.size(), 71u);
    std::map<std::string, int> editions;
    for (const auto& it : items) {
        ASSERT_TRUE(it.record.ok()) << it.record.error();
        const auto& r = it.record.value();
        EXPECT_FALSE(TitleKey(r).empty());
        EXPECT_EQ(AuthorKey(r), "mann") << TitleKey(r);
        ++editions[TitleKey(r)];
    }
    EXPECT_EQ(editions["buddenbrooks"], 3);
    EXPECT_EQ(editions["royal highness"], 3);
    EXPECT_EQ(editions["magic mountain"], 2);     // "The magic mountain" with ind2 = 4
    EXPECT_EQ(editions["montana magica"], 2);     // "La montaña mágica" with ind2 = 3
    EXPECT_EQ(editions["tables of the law"], 2);  // 1947 and 2010
}

TEST(Normalize, SearchTextKeepsEachIndexsWordsAndSeparatesValues) {
    marc::Record r = Book("De avonden :");
    r.fields.back().subfields.push_back({'b', "een winterverhaal /"});
    r.fields.back().subfields.push_back({'c', "Gerard Reve"});  // not a title word
    r.fields.push_back({"246", '1', '3', "", {{'a', "Avonden"}}});
    r.fields.push_back({"100", '1', ' ', "", {{'a', "Reve, Gerard,"}, {'d', "1923-2006"}}});
    r.fields.push_back({"700", '1', ' ', "", {{'a', "Müller, Jürgen"}, {'4', "trl"}}});
    r.fields.push_back({"650", ' ', '7', "", {{'a', "Naoorlogse periode"}, {'z', "Nederland"}, {'2', "gtt"}}});
    r.fields.push_back({"600", '1', '0', "", {{'a', "Reve, Gerard"}, {'0', "(NL-LeOCL)068477163"}}});
    r.fields.push_back({"264", ' ', '1', "", {{'a', "Amsterdam"}, {'b', "De Bezige Bij,"}, {'c', "1947"}}});
    const auto t = SearchTextOf(r);
    EXPECT_EQ(t.title, "de avonden een winterverhaal | avonden");
    EXPECT_EQ(t.creator, "reve gerard 1923 2006 | muller jurgen");
    EXPECT_EQ(t.subject, "naoorlogse periode nederland | reve gerard");
    EXPECT_EQ(t.publisher, "de bezige bij");
    EXPECT_EQ(SearchTextOf(marc::Record{}).title, "");
}

TEST(Normalize, SearchTextOfRealRecords) {
    auto items = marc::testing::ReadFile(marc::testing::DataDir() + "/slices/thomas-mann-shared-71.xml");
    ASSERT_FALSE(items.empty());
    int with_subjects = 0;
    for (const auto& it : items) {
        ASSERT_TRUE(it.record.ok());
        const auto t = SearchTextOf(it.record.value());
        EXPECT_NE(t.creator.find("mann thomas"), std::string::npos) << t.creator;
        EXPECT_FALSE(t.title.empty());
        with_subjects += !t.subject.empty();
    }
    EXPECT_GT(with_subjects, 0);
}

}  // namespace
}  // namespace iblsync::protocols
