#include "protocols/identifiers.hpp"

#include <gtest/gtest.h>

#include "tests/unit/protocols/marc_test_util.hpp"

namespace iblsync::protocols {
namespace {

TEST(Isbn, NormalisesTenAndThirteenDigitForms) {
    EXPECT_EQ(NormalizeIsbn("90-274-3964-8 (geb.)").value(), "9789027439642");
    EXPECT_EQ(NormalizeIsbn("978-90-274-3964-2 : € 19,95").value(), "9789027439642");
    EXPECT_EQ(NormalizeIsbn("0-306-40615-2").value(), "9780306406157");
    EXPECT_EQ(NormalizeIsbn("0-8044-2957-X").value(), "9780804429573");
    EXPECT_EQ(NormalizeIsbn("080442957x").value(), "9780804429573");
    EXPECT_EQ(NormalizeIsbn("90 274 3964 8").value(), "9789027439642");
    EXPECT_EQ(NormalizeIsbn("9791032305690").value(), "9791032305690");
}

TEST(Isbn, RejectsWrongCheckDigitsAndNonIsbns) {
    EXPECT_EQ(NormalizeIsbn("90-274-3964-0").error(), "ISBN-10 '9027439640' has a wrong check digit (expected 8)");
    EXPECT_EQ(NormalizeIsbn("9789027439645").error(), "ISBN-13 '9789027439645' has a wrong check digit (expected 2)");
    EXPECT_EQ(NormalizeIsbn("4006381333931").error(), "'4006381333931' is an EAN-13 but not an ISBN (prefix must be 978 or 979)");
    EXPECT_NE(NormalizeIsbn("(pbk.)").error().find("has 0 digits"), std::string::npos);
    EXPECT_NE(NormalizeIsbn("12345").error().find("has 5 digits"), std::string::npos);
    EXPECT_EQ(NormalizeIsbn("X0-274-3964-0").error(), "ISBN-10 'X027439640' has an X before its check digit");
}

TEST(Issn, ValidatesCheckDigit) {
    EXPECT_EQ(NormalizeIssn("0028-0836").value(), "0028-0836");
    EXPECT_EQ(NormalizeIssn("1050-124x (print)").value(), "1050-124X");
    EXPECT_EQ(NormalizeIssn("0028-0837").error(), "ISSN '0028-0837' has a wrong check digit (expected 6)");
    EXPECT_FALSE(NormalizeIssn("28-0836").ok());
}

TEST(Identifiers, ExtractsEveryIsbnOfARealRecord) {
    // pymarc's multi_isbn.dat: one record with several 020 fields.
    auto items = marc::testing::ReadFile(marc::testing::DataDir() + "/originals/pymarc/multi_isbn.dat");
    ASSERT_EQ(items.size(), 1u);
    ASSERT_TRUE(items[0].record.ok());
    auto ids = ExtractIdentifiers(items[0].record.value());
    EXPECT_GE(ids.isbns.size(), 2u);
    for (const auto& isbn : ids.isbns) {
        EXPECT_EQ(isbn.size(), 13u);
        EXPECT_TRUE(NormalizeIsbn(isbn).ok());
    }
}

TEST(Identifiers, ReadsOclcAndPpnFrom035) {
    marc::Record r;
    r.leader = "00000nam a2200000 a 4500";
    r.fields.push_back({"035", ' ', ' ', "", {{'a', "(OCoLC)ocm00012345"}}});
    r.fields.push_back({"035", ' ', ' ', "", {{'a', "(OCoLC)on1234567890"}}});
    r.fields.push_back({"035", ' ', ' ', "", {{'a', "(NL-LeOCL)12345678X"}}});
    r.fields.push_back({"022", ' ', ' ', "", {{'a', "0028-0837"}}});
    auto ids = ExtractIdentifiers(r);
    EXPECT_EQ(ids.oclc, (std::vector<std::string>{"12345", "1234567890"}));
    EXPECT_EQ(ids.ppn, (std::vector<std::string>{"12345678X"}));
    ASSERT_EQ(ids.rejected.size(), 1u);
    EXPECT_EQ(ids.rejected[0], "022 $a: ISSN '0028-0837' has a wrong check digit (expected 6)");
}

}  // namespace
}  // namespace iblsync::protocols
