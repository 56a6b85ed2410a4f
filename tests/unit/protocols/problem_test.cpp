#include "protocols/problem.hpp"

#include <rapidjson/document.h>

#include <gtest/gtest.h>

namespace iblsync::protocols {

TEST(Problem, SerialisesRfc9457Members) {
    auto p = MakeProblem(413, "body-too-large", "Request body too large", "limit is \"1\" byte");
    rapidjson::Document d;
    d.Parse(ToJson(p).c_str());
    ASSERT_FALSE(d.HasParseError());
    EXPECT_STREQ(d["type"].GetString(), "urn:iblsync:problem:body-too-large");
    EXPECT_STREQ(d["title"].GetString(), "Request body too large");
    EXPECT_EQ(d["status"].GetInt(), 413);
    EXPECT_STREQ(d["detail"].GetString(), "limit is \"1\" byte");
}

}  // namespace iblsync::protocols
