// Responses recorded from real OAI-PMH repositories (DiVA, Alma, Aleph,
// Koha, CERN's Invenio, OJS, DSpace, the KB, arXiv, Melinda; sources and
// what each file is in tests/data/oai/recorded/SOURCES.md), read the way the
// harvester reads them: the items, deletions, tokens and errors each one
// holds, and how many of the MARC records the catalogue takes.

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "protocols/catalogue_record.hpp"
#include "protocols/holdings.hpp"
#include "protocols/marcxml.hpp"
#include "protocols/oai_client.hpp"

namespace iblsync::protocols::oai {
namespace {

std::string Recorded(const std::string& name) {
    std::ifstream in(std::string(IBLSYNC_TEST_DATA_DIR) + "/oai/recorded/" + name, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    EXPECT_FALSE(s.str().empty()) << name;
    return s.str();
}

struct Expected {
    const char* file;
    std::size_t items, deleted;
    bool token;
    const char* error;  // "" for none
    long long marc_readable;  // live records the catalogue takes; -1: not MARC
};

TEST(OaiRecorded, EveryListPageReadsAsRecorded) {
    const std::vector<Expected> cases{
        {"diva-listrecords-marc21-page1.xml", 100, 14, true, "", 86},
        {"ojs-listrecords-marcxml.xml", 15, 0, false, "", 15},
        {"alma-millersville-listrecords-marc21-page1-cut.xml", 40, 0, true, "", 1},
        {"alma-millersville-listrecords-marc21-resumed-deleted.xml", 5, 1, true, "", 0},
        {"aleph-mzk-listrecords-marc21-page1.xml", 10, 0, true, "", 10},
        {"aleph-mzk-listrecords-marc21-page2-last.xml", 1, 0, false, "", 1},
        {"koha-listrecords-marcxml.xml", 2, 0, false, "", 2},
        {"cern-cds-listrecords-marcxml.xml", 2, 0, false, "", 2},
        {"melinda-listrecords-marc21-page1.xml", 3, 0, true, "", 3},
        {"mit-dspace-listrecords-oai_dc-deleted.xml", 1, 1, false, "", -1},
        {"erasmus-dspace-listrecords-oai_dc-deleted.xml", 81, 2, false, "", -1},
        {"mit-dspace-error-norecordsmatch.xml", 0, 0, false, "noRecordsMatch", -1},
        {"aleph-mzk-error-norecordsmatch.xml", 0, 0, false, "noRecordsMatch", -1},
        {"arxiv-error-norecordsmatch.xml", 0, 0, false, "noRecordsMatch", -1},
        {"melinda-error-badresumptiontoken.xml", 0, 0, false, "badResumptionToken", -1},
        {"melinda-error-cannotdisseminateformat.xml", 0, 0, false, "cannotDisseminateFormat", -1},
    };
    const auto mapping = ParseHoldingsMapping("none");
    for (const auto& c : cases) {
        auto page = ParseListRecords(Recorded(c.file));
        ASSERT_TRUE(page) << c.file << ": " << page.error();
        std::size_t deleted = 0;
        long long readable = 0;
        std::string first_problem;
        for (const auto& item : page->items) {
            deleted += item.deleted;
            if (item.deleted) continue;
            EXPECT_TRUE(LocalIdOf(item.identifier)) << c.file << " " << item.identifier;
            auto described = DescribeHarvested(item, mapping.value(), "NL-0000000000");
            if (described) ++readable;
            else if (first_problem.empty()) first_problem = item.identifier + ": " + described.error();
        }
        EXPECT_EQ(page->items.size(), c.items) << c.file;
        EXPECT_EQ(deleted, c.deleted) << c.file;
        EXPECT_EQ(!page->resumption_token.empty(), c.token) << c.file;
        EXPECT_EQ(page->errors.empty() ? "" : page->errors.front().code, c.error) << c.file;
        if (c.marc_readable != -1) {
            EXPECT_EQ(readable, c.marc_readable) << c.file << " first problem: " << first_problem;
        }
    }
}

TEST(OaiRecorded, IdentifyResponsesGiveGranularityAndDeletions) {
    struct Case {
        const char* file;
        const char* granularity;
        const char* deleted;
    };
    // Melinda writes its granularity with a lower-case t, and names its
    // earliest datestamp earliestTimestamp (so it is not found).
    for (const auto& c : std::vector<Case>{{"aleph-mzk-identify.xml", "YYYY-MM-DDThh:mm:ssZ", "transient"},
                                           {"erasmus-oaicat-identify.xml", "YYYY-MM-DDThh:mm:ssZ", "no"},
                                           {"nsdl-identify.xml", "YYYY-MM-DDThh:mm:ssZ", "no"},
                                           {"medvik-identify-day-granularity.xml", "YYYY-MM-DD", "persistent"},
                                           {"melinda-identify.xml", "YYYY-MM-DDthh:mm:ssZ", "transient"}}) {
        auto id = ParseIdentify(Recorded(c.file));
        ASSERT_TRUE(id) << c.file << ": " << id.error();
        EXPECT_EQ(id->granularity, c.granularity) << c.file;
        EXPECT_EQ(id->deleted_record, c.deleted) << c.file;
    }
    EXPECT_EQ(AtGranularity("2026-12-06T10:00:00Z", "YYYY-MM-DDthh:mm:ssZ"), "2026-12-06T10:00:00Z");
}

}  // namespace
}  // namespace iblsync::protocols::oai
