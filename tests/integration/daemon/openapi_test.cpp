// docs/api/openapi.yaml matches the server: the same routes both ways, every
// route answers, and every example in it gives the documented status.

#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "daemon/push_api.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/openapi_file.hpp"
#include "tests/support/raw_http.hpp"

namespace iblsync::test {
namespace {

std::string OpenApiPath() { return SourceDir() + "/docs/api/openapi.yaml"; }

TEST(OpenApi, DescribesExactlyTheServersRoutes) {
    auto file = ReadOpenApi(OpenApiPath());
    ASSERT_EQ(file.error, "");
    std::set<std::pair<std::string, std::string>> documented, served;
    for (const auto& op : file.operations) documented.insert({op.method, op.path});
    for (const auto& r : daemon::ApiRoutes()) served.insert({r.method, r.path});
    EXPECT_EQ(documented, served);
    EXPECT_EQ(documented.size(), file.operations.size()) << "an operation is listed twice";
}

class OpenApiExamples : public ::testing::Test {
protected:
    void SetUp() override {
        NodeConfig cfg;
        cfg.conninfo = schema_.conninfo();
        daemon_ = std::make_unique<DaemonProcess>(dir_, cfg);
        ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
        ASSERT_EQ(daemon_->Iblctl({"library", "add", "NL-0000000101", "--name", "Voorbeeld"}).exit_code, 0);
        auto issued = daemon_->Iblctl({"--json", "token", "issue", "NL-0000000101"});
        rapidjson::Document d;
        d.Parse(issued.out.c_str());
        ASSERT_TRUE(d.IsObject() && d.HasMember("token")) << issued.out;
        auth_ = std::string("Bearer ") + d["token"].GetString();
    }
    TempDir dir_;
    TestSchema schema_;
    std::unique_ptr<DaemonProcess> daemon_;
    std::string auth_;
};

TEST_F(OpenApiExamples, EveryExampleGivesItsDocumentedStatus) {
    auto file = ReadOpenApi(OpenApiPath());
    ASSERT_EQ(file.error, "");
    ASSERT_GE(file.examples.size(), 10u);
    std::set<std::string> covered;
    for (const auto& e : file.examples) {
        std::vector<std::pair<std::string, std::string>> headers{{"Authorization", auth_}};
        if (!e.body.empty()) headers.emplace_back("Content-Type", e.content_type);
        auto r = HttpCall(daemon_->port(), e.method, e.path, headers, e.body);
        ASSERT_TRUE(r) << "example " << e.order << ": no answer";
        EXPECT_EQ(r->status, e.status) << "example " << e.order << " " << e.method << " " << e.path << ": " << r->body;
        covered.insert(e.method);
    }
    // Each method the API has is exercised by at least one example.
    EXPECT_EQ(covered, (std::set<std::string>{"GET", "PUT", "POST", "DELETE"}));
}

TEST_F(OpenApiExamples, EveryServedRouteAnswersAndOtherMethodsGet405) {
    for (const auto& r : daemon::ApiRoutes()) {
        std::string path = r.path;
        auto fill = [&](const std::string& name, const std::string& value) {
            if (auto at = path.find(name); at != std::string::npos) path.replace(at, name.size(), value);
        };
        fill("{isil}", "NL-0000000101");
        fill("{id}", r.path.rfind("/v1/works/", 0) == 0 ? "1" : "probe");
        std::vector<std::pair<std::string, std::string>> headers{{"Authorization", auth_},
                                                                 {"Content-Type", "application/json"}};
        auto reply = HttpCall(daemon_->port(), r.method, path, headers, r.method == "GET" || r.method == "DELETE" ? "" : "[]");
        ASSERT_TRUE(reply) << r.method << " " << path;
        EXPECT_NE(reply->status, 405) << r.method << " " << path << ": " << reply->body;
        EXPECT_EQ(reply->body.find("there is no resource"), std::string::npos) << r.method << " " << path;
        auto patch = HttpCall(daemon_->port(), "PATCH", path, headers, "{}");
        ASSERT_TRUE(patch);
        EXPECT_EQ(patch->status, 405) << path;
        EXPECT_NE(patch->headers["allow"].find(r.method), std::string::npos) << path << " Allow: " << patch->headers["allow"];
    }
}

}  // namespace
}  // namespace iblsync::test
