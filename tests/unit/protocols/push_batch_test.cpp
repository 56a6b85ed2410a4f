// The push API's batch bodies: record batches (NDJSON, JSON arrays) and
// availability updates, item by item, with hostile input.

#include <gtest/gtest.h>

#include "protocols/push_batch.hpp"

namespace iblsync::protocols {
namespace {

TEST(JsonDepth, CountsNestingOutsideStrings) {
    EXPECT_EQ(CheckJsonDepth(R"({"a":[1,{"b":"[[[[{{{"}]})", 32).value(), 3u);
    EXPECT_EQ(CheckJsonDepth(R"("\"[[[")", 32).value(), 0u);
    auto deep = CheckJsonDepth(std::string(33, '[') + std::string(33, ']'), 32);
    ASSERT_FALSE(deep);
    EXPECT_EQ(deep.error(), "JSON nested deeper than 32 levels (at byte 32)");
    EXPECT_TRUE(CheckJsonDepth(std::string(32, '[') + std::string(32, ']'), 32));
}

TEST(RecordBatch, NdjsonItemsAreParsedOneByOne) {
    const std::string body =
        "{\"id\":\"1\",\"title\":\"Een\"}\r\n"
        "\n"
        "{\"id\":\"2\",\"title\":\n"
        "{\"id\":\"3\",\"title\":\"Drie\",\"year\":\"1999\"}\n"
        "   {\"id\":\"4\",\"title\":\"Vier\"}   ";
    auto batch = ParseRecordBatch(body, true, {});
    ASSERT_TRUE(batch) << batch.error();
    ASSERT_EQ(batch->size(), 4u);
    EXPECT_TRUE((*batch)[0].record);
    EXPECT_EQ((*batch)[0].record->id, "1");
    ASSERT_FALSE((*batch)[1].record);
    EXPECT_EQ((*batch)[1].record.error_pointer(), "/1");
    EXPECT_EQ((*batch)[1].record.error().rfind("invalid JSON", 0), 0u);
    ASSERT_FALSE((*batch)[2].record);
    EXPECT_EQ((*batch)[2].record.error_pointer(), "/2/year");
    EXPECT_EQ((*batch)[3].record->id, "4");
}

TEST(RecordBatch, ArraysAndLimits) {
    auto batch = ParseRecordBatch(R"([{"id":"1","title":"Een"},{"id":"2"},7])", false, {});
    ASSERT_TRUE(batch) << batch.error();
    ASSERT_EQ(batch->size(), 3u);
    EXPECT_TRUE((*batch)[0].record);
    EXPECT_EQ((*batch)[1].record.error_pointer(), "/1/title");
    EXPECT_EQ((*batch)[2].record.error_pointer(), "/2");

    BatchLimits two;
    two.max_items = 2;
    auto many = ParseRecordBatch(R"([{"id":"1","title":"a"},{"id":"2","title":"b"},{"id":"3","title":"c"}])", false, two);
    ASSERT_FALSE(many);
    EXPECT_EQ(many.error(), "3 records in one batch; the limit is 2");
    auto many_lines = ParseRecordBatch("{}\n{}\n{}\n", true, two);
    ASSERT_FALSE(many_lines);
    EXPECT_EQ(many_lines.error(), "more than 2 records in one batch; split it");

    EXPECT_EQ(ParseRecordBatch("[]", false, {}).error(), "the batch holds no records");
    EXPECT_EQ(ParseRecordBatch("\n\n", true, {}).error(), "the batch holds no records");
    EXPECT_EQ(ParseRecordBatch(R"({"id":"1"})", false, {}).error().rfind("a batch of records must be a JSON array", 0), 0u);
    EXPECT_EQ(ParseRecordBatch("[{\"id\":\"\xff\"}]", false, {}).error().rfind("invalid JSON", 0), 0u);
    EXPECT_EQ(ParseRecordBatch(std::string(40, '[') + std::string(40, ']'), false, {}).error(),
              "JSON nested deeper than 32 levels (at byte 32)");
}

TEST(AvailabilityBatch, EachUpdateIsCheckedOnItsOwn) {
    auto batch = ParseAvailabilityBatch(
        R"([{"barcode":"B1","status":"on_loan","due_date":"20261224","changed_at":"2026-12-04T10:00:00+01:00"},)"
        R"({"item_id":42,"status":"available","due_date":null},)"
        R"({"status":"missing"},)"
        R"({"barcode":"B2","item_id":3,"status":"missing"},)"
        R"({"barcode":"B3","status":"lost"},)"
        R"({"barcode":"B4"},)"
        R"({"barcode":"B5","status":"reserved","colour":"red"},)"
        R"({"barcode":"B6","status":"reserved","changed_at":"yesterday"},)"
        R"({"barcode":"B7","status":"reserved","status":"missing"},)"
        R"({"item_id":-1,"status":"available"},)"
        R"("B8"])",
        {});
    ASSERT_TRUE(batch) << batch.error();
    ASSERT_EQ(batch->size(), 11u);
    const auto& b = *batch;
    ASSERT_TRUE(b[0]) << b[0].error();
    EXPECT_EQ(b[0]->barcode, "B1");
    EXPECT_EQ(b[0]->status, ItemStatus::kOnLoan);
    EXPECT_EQ(b[0]->due_date, "2026-12-24");
    EXPECT_EQ(b[0]->changed_at, "2026-12-04T09:00:00Z");
    ASSERT_TRUE(b[1]) << b[1].error();
    EXPECT_EQ(b[1]->item_id, 42);
    EXPECT_EQ(b[1]->due_date, "");
    EXPECT_EQ(b[2].error(), "give the copy's 'barcode' or its 'item_id' (one of the two)");
    EXPECT_EQ(b[2].error_pointer(), "/2");
    EXPECT_EQ(b[3].error_pointer(), "/3");
    EXPECT_EQ(b[4].error_pointer(), "/4/status");
    EXPECT_EQ(b[5].error(), "'status' is required");
    EXPECT_EQ(b[6].error(), "unknown member 'colour'");
    EXPECT_EQ(b[6].error_pointer(), "/6/colour");
    EXPECT_EQ(b[7].error_pointer(), "/7/changed_at");
    EXPECT_EQ(b[8].error(), "member 'status' appears twice");
    EXPECT_EQ(b[9].error(), "must be a positive integer");
    EXPECT_EQ(b[10].error(), "an availability update must be an object");
}

TEST(AvailabilityBatch, WholeBodyErrors) {
    EXPECT_EQ(ParseAvailabilityBatch(R"({"barcode":"B1"})", {}).error(), "availability updates must be a JSON array of objects");
    EXPECT_EQ(ParseAvailabilityBatch("[]", {}).error(), "the batch holds no updates");
    EXPECT_EQ(ParseAvailabilityBatch("[{\"barcode\":", {}).error().rfind("invalid JSON at byte", 0), 0u);
    BatchLimits one;
    one.max_items = 1;
    EXPECT_EQ(ParseAvailabilityBatch(R"([{"barcode":"1","status":"available"},{"barcode":"2","status":"available"}])", one)
                  .error(),
              "2 updates in one batch; the limit is 1");
    // Control characters are refused, not stored.
    auto ctl = ParseAvailabilityBatch(R"([{"barcode":"B\u0001","status":"available"}])", {});
    ASSERT_TRUE(ctl);
    EXPECT_EQ((*ctl)[0].error(), "control character U+0001 is not allowed");
}

}  // namespace
}  // namespace iblsync::protocols
