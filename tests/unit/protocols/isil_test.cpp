#include "protocols/isil.hpp"

#include <gtest/gtest.h>

namespace iblsync::protocols {

TEST(Isil, NormalisesToUpperCase) {
    auto r = NormalizeIsil("nl-0600670000");
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r.value(), "NL-0600670000");
}

TEST(Isil, AcceptsAllowedPunctuation) {
    EXPECT_TRUE(NormalizeIsil("NL-AMS/UB:1").ok());
    EXPECT_TRUE(NormalizeIsil("NL-1234567890123").ok());  // 16 characters
}

TEST(Isil, RejectsTooLong) {
    auto r = NormalizeIsil("NL-12345678901234");  // 17
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("longer than 16"), std::string::npos);
}

TEST(Isil, RejectsForeignOrMissingPrefix) {
    EXPECT_NE(NormalizeIsil("DE-101").error().find("Dutch prefix"), std::string::npos);
    EXPECT_NE(NormalizeIsil("0600670000").error().find("Dutch prefix"), std::string::npos);
    EXPECT_NE(NormalizeIsil("NL-").error().find("no identifier"), std::string::npos);
    EXPECT_EQ(NormalizeIsil("").error(), "ISIL is empty");
}

TEST(Isil, RejectsOtherCharactersNamingTheByte) {
    EXPECT_NE(NormalizeIsil("NL-06 00").error().find("0x20"), std::string::npos);
    EXPECT_NE(NormalizeIsil("NL-06'--").error().find("0x27"), std::string::npos);
    EXPECT_NE(NormalizeIsil("NL-\xc3\xa9").error().find("0xc3"), std::string::npos);
}

}  // namespace iblsync::protocols
