#include "protocols/province.hpp"

#include <gtest/gtest.h>

namespace iblsync::protocols {

TEST(Province, AcceptsShortAndLongCodesInAnyCase) {
    EXPECT_EQ(NormalizeProvince("ge").value(), "NL-GE");
    EXPECT_EQ(NormalizeProvince("NL-zh").value(), "NL-ZH");
    EXPECT_EQ(ProvinceName("NL-FR"), "Fryslân");
}

TEST(Province, RejectsUnknownCodesWithAnExample) {
    auto r = NormalizeProvince("NL-XX");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("NL-GE"), std::string::npos);
    EXPECT_FALSE(NormalizeProvince("Gelderland").ok());
    EXPECT_FALSE(NormalizeProvince("").ok());
    EXPECT_EQ(ProvinceName("NL-XX"), "");
}

}  // namespace iblsync::protocols
