#include "protocols/control_message.hpp"

#include <gtest/gtest.h>

namespace iblsync::protocols {

TEST(ControlMessage, RequestRoundTrips) {
    ControlRequest in{"reload", {{"reason", "new \"limits\""}}};
    auto out = ParseControlRequest(FormatControlRequest(in));
    ASSERT_TRUE(out.ok()) << out.error();
    EXPECT_EQ(out->command, "reload");
    EXPECT_EQ(out->args.at("reason"), "new \"limits\"");
}

TEST(ControlMessage, ResponseRoundTrips) {
    ControlResponse ok{true, R"({"a":[1,2]})", "", ""};
    auto r = ParseControlResponse(FormatControlResponse(ok));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->ok);
    EXPECT_EQ(r->result_json, R"({"a":[1,2]})");
    ControlResponse err{false, "null", "no such thing", "try again"};
    r = ParseControlResponse(FormatControlResponse(err));
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->ok);
    EXPECT_EQ(r->error, "no such thing");
    EXPECT_EQ(r->hint, "try again");
}

TEST(ControlMessage, RejectsMalformedRequests) {
    EXPECT_NE(ParseControlRequest("status").error().find("not valid JSON"), std::string::npos);
    EXPECT_EQ(ParseControlRequest("[1]").error(), "control message must be a JSON object");
    EXPECT_NE(ParseControlRequest(R"({"cmd":"status"})").error().find("\"command\""), std::string::npos);
    EXPECT_NE(ParseControlRequest(R"({"command":1})").error().find("\"command\""), std::string::npos);
    EXPECT_NE(ParseControlRequest(R"({"command":"x","args":{"n":1}})").error().find("must be a string"),
              std::string::npos);
    EXPECT_NE(ParseControlRequest(R"({"command":"x","args":[]})").error().find("object"), std::string::npos);
}

TEST(ControlMessage, RejectsInvalidUtf8AndOversizedLines) {
    EXPECT_NE(ParseControlRequest("{\"command\":\"st\xff\"}").error().find("not valid JSON"),
              std::string::npos);
    std::string big = R"({"command":")" + std::string(kMaxControlLine, 'a') + "\"}";
    EXPECT_NE(ParseControlRequest(big).error().find("the limit is"), std::string::npos);
}

}  // namespace iblsync::protocols
