// The pure part of the OAI-PMH provider: arguments as the protocol allows
// them, each fault with its error code, datestamps, the resumption token,
// identifiers, set specs, and responses that validate (xmllint) against the
// OAI-PMH schema with the schemas of what they carry.

#include "protocols/oai_pmh.hpp"

#include <gtest/gtest.h>

#include "protocols/dublin_core.hpp"
#include "protocols/marcxml.hpp"
#include "tests/unit/protocols/xml_schema.hpp"

namespace iblsync::protocols::oai {
namespace {

std::string Valid(const std::string& xml) {
    std::string out;
    int rc = testing::Xmllint(testing::SchemaDir() + "/oai-pmh/responses.local.xsd", xml, out);
    return rc == 0 ? "" : out;
}

OaiError ErrorOf(const Params& p) {
    auto r = ParseRequest(p);
    if (std::holds_alternative<Request>(r)) return OaiError{ErrorCode::kNoMetadataFormats, "(accepted)"};
    return std::get<OaiError>(r);
}

Request Accepted(const Params& p) {
    auto r = ParseRequest(p);
    if (auto* e = std::get_if<OaiError>(&r)) ADD_FAILURE() << CodeName(e->code) << ": " << e->message;
    return std::holds_alternative<Request>(r) ? std::get<Request>(r) : Request{};
}

TEST(OaiDatestamp, DaysAndSecondsAreReadAndWrittenBack) {
    auto d = ParseDatestamp("2026-12-06");
    ASSERT_TRUE(d);
    EXPECT_TRUE(d->day);
    EXPECT_EQ(FormatDatestamp(d->seconds), "2026-12-06T00:00:00Z");
    auto s = ParseDatestamp("2024-02-29T23:59:58Z");
    ASSERT_TRUE(s);
    EXPECT_FALSE(s->day);
    EXPECT_EQ(FormatDatestamp(s->seconds), "2024-02-29T23:59:58Z");
    EXPECT_EQ(ParseDatestamp("1970-01-01T00:00:00Z")->seconds, 0);
    EXPECT_EQ(FormatDatestamp(ParseDatestamp("0001-01-01")->seconds), "0001-01-01T00:00:00Z");
    EXPECT_EQ(FormatDatestamp(ParseDatestamp("9999-12-31T23:59:59Z")->seconds), "9999-12-31T23:59:59Z");
    for (const char* bad : {"", "2026-12-6", "2026-13-01", "2026-00-10", "2023-02-29", "2026-04-31", "0000-01-01",
                            "2026-12-06T24:00:00Z", "2026-12-06T10:00:00", "2026-12-06T10:00:00+01:00",
                            "2026-12-06T10:00:00.5Z", "2026-12-06 10:00:00Z", "20261206", "10000-01-01",
                            "2026-12-06T10:60:00Z", "２０２６-12-06"})
        EXPECT_FALSE(ParseDatestamp(bad)) << bad;
}

TEST(OaiRequest, EachVerbTakesItsArguments) {
    auto id = Accepted({{"verb", "Identify"}});
    EXPECT_EQ(id.verb, Verb::kIdentify);
    auto lr = Accepted({{"verb", "ListRecords"}, {"metadataPrefix", "marc21"}, {"from", "2026-01-01T00:00:00Z"},
                        {"until", "2026-12-31T23:59:59Z"}, {"set", "library:NL-0001"}});
    EXPECT_EQ(lr.verb, Verb::kListRecords);
    EXPECT_EQ(lr.list.metadata_prefix, "marc21");
    EXPECT_EQ(lr.list.set, "library:NL-0001");
    EXPECT_EQ(FormatDatestamp(lr.list.from->seconds), "2026-01-01T00:00:00Z");
    EXPECT_EQ(lr.list.UntilSeconds(), ParseDatestamp("2026-12-31T23:59:59Z")->seconds);
    auto days = Accepted({{"verb", "ListIdentifiers"}, {"metadataPrefix", "oai_dc"}, {"until", "2026-12-31"}});
    EXPECT_EQ(FormatDatestamp(days.list.UntilSeconds()), "2026-12-31T23:59:59Z");
    auto get = Accepted({{"verb", "GetRecord"}, {"identifier", "oai:x.y:NL-1:2"}, {"metadataPrefix", "oai_dc"}});
    EXPECT_EQ(get.identifier, "oai:x.y:NL-1:2");
    Accepted({{"verb", "ListMetadataFormats"}});
    Accepted({{"verb", "ListMetadataFormats"}, {"identifier", "oai:x.y:NL-1:2"}});
    Accepted({{"verb", "ListSets"}});
}

TEST(OaiRequest, EveryFaultHasItsCode) {
    struct Case {
        Params params;
        ErrorCode code;
        std::string message;
    };
    const std::vector<Case> cases{
        {{}, ErrorCode::kBadVerb, "the verb argument is missing"},
        {{{"verb", "Identify"}, {"verb", "Identify"}}, ErrorCode::kBadVerb, "the verb argument is repeated"},
        {{{"verb", "ListAll"}}, ErrorCode::kBadVerb, "'ListAll' is not an OAI-PMH verb"},
        {{{"verb", "identify"}}, ErrorCode::kBadVerb, "'identify' is not an OAI-PMH verb"},
        {{{"verb", "Identify\x01"}}, ErrorCode::kBadVerb, "arguments must be UTF-8 text without control characters"},
        {{{"verb", "Identify"}, {"x", "\xff"}}, ErrorCode::kBadArgument,
         "arguments must be UTF-8 text without control characters"},
        {{{"verb", "Identify"}, {"metadataPrefix", "marc21"}}, ErrorCode::kBadArgument,
         "Identify takes no argument 'metadataPrefix'"},
        {{{"verb", "ListRecords"}, {"metadataPrefix", "marc21"}, {"colour", "red"}}, ErrorCode::kBadArgument,
         "ListRecords takes no argument 'colour'"},
        {{{"verb", "ListRecords"}, {"metadataPrefix", "marc21"}, {"metadataPrefix", "marc21"}},
         ErrorCode::kBadArgument, "the argument 'metadataPrefix' is repeated"},
        {{{"verb", "ListRecords"}}, ErrorCode::kBadArgument, "ListRecords needs the argument metadataPrefix"},
        {{{"verb", "ListIdentifiers"}, {"set", "library"}}, ErrorCode::kBadArgument,
         "ListIdentifiers needs the argument metadataPrefix"},
        {{{"verb", "GetRecord"}, {"metadataPrefix", "marc21"}}, ErrorCode::kBadArgument,
         "GetRecord needs the argument identifier"},
        {{{"verb", "GetRecord"}, {"identifier", "oai:a.b:NL-1:1"}}, ErrorCode::kBadArgument,
         "GetRecord needs the argument metadataPrefix"},
        {{{"verb", "ListRecords"}, {"metadataPrefix", "marc21"}, {"from", "2026-12-06T10:00:00+01:00"}},
         ErrorCode::kBadArgument, "from '2026-12-06T10:00:00+01:00' is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDThh:mm:ssZ)"},
        {{{"verb", "ListRecords"}, {"metadataPrefix", "marc21"}, {"from", "2026-12-06"},
          {"until", "2026-12-07T00:00:00Z"}},
         ErrorCode::kBadArgument, "from and until are given at different granularities"},
        {{{"verb", "ListRecords"}, {"metadataPrefix", "marc21"}, {"from", "2026-12-07"}, {"until", "2026-12-06"}},
         ErrorCode::kBadArgument, "from is later than until"},
        {{{"verb", "ListRecords"}, {"metadataPrefix", "marc21"}, {"set", "colour:red"}}, ErrorCode::kBadArgument,
         "'colour:red' is not a setSpec of this repository"},
        {{{"verb", "ListRecords"}, {"metadataPrefix", "marc21"}, {"set", "library:"}}, ErrorCode::kBadArgument,
         "'library:' is not a setSpec of this repository"},
        {{{"verb", "ListRecords"}, {"metadataPrefix", "marc21"}, {"set", "library:' OR 1=1 --"}},
         ErrorCode::kBadArgument, "'library:' OR 1=1 --' is not a setSpec of this repository"},
        {{{"verb", "ListRecords"}, {"metadataPrefix", "mods"}}, ErrorCode::kCannotDisseminateFormat,
         "metadataPrefix 'mods' is not offered here; ListMetadataFormats lists the ones that are"},
        {{{"verb", "GetRecord"}, {"identifier", "oai:a.b:NL-1:1"}, {"metadataPrefix", "marcxml "}},
         ErrorCode::kCannotDisseminateFormat,
         "metadataPrefix 'marcxml ' is not offered here; ListMetadataFormats lists the ones that are"},
        {{{"verb", "ListRecords"}, {"resumptionToken", "abc"}, {"metadataPrefix", "marc21"}}, ErrorCode::kBadArgument,
         "resumptionToken is an exclusive argument: give it alone"},
        {{{"verb", "ListRecords"}, {"resumptionToken", "abc"}}, ErrorCode::kBadResumptionToken,
         "the resumption token is not one this repository issued; start the list again"},
        {{{"verb", "ListSets"}, {"resumptionToken", "abc"}}, ErrorCode::kBadResumptionToken,
         "this repository lists its sets in one response"},
        {{{"verb", "Identify"}, {"resumptionToken", "abc"}}, ErrorCode::kBadArgument,
         "Identify takes no argument 'resumptionToken'"},
    };
    for (const auto& c : cases) {
        auto e = ErrorOf(c.params);
        EXPECT_EQ(CodeName(e.code), CodeName(c.code)) << c.message;
        EXPECT_EQ(e.message, c.message);
    }
}

TEST(OaiToken, RoundTripsAndRefusesAnythingElse) {
    ListQuery q;
    q.metadata_prefix = "marc21";
    q.set = "province:NL-GE";
    q.from = ParseDatestamp("2026-01-01");
    q.until = ParseDatestamp("2026-06-30");
    q.after = 123456789;
    q.cursor = 500;
    q.complete_list_size = 1000000;
    const std::string token = EncodeToken(q);
    auto back = DecodeToken(token);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->metadata_prefix, "marc21");
    EXPECT_EQ(back->set, "province:NL-GE");
    EXPECT_EQ(back->from->seconds, q.from->seconds);
    EXPECT_TRUE(back->until->day);
    EXPECT_EQ(back->after, 123456789);
    EXPECT_EQ(back->cursor, 500);
    EXPECT_EQ(back->complete_list_size, 1000000);
    // The token goes through ParseRequest as it came.
    auto r = Accepted({{"verb", "ListIdentifiers"}, {"resumptionToken", token}});
    EXPECT_TRUE(r.resumed);
    EXPECT_EQ(r.list.after, 123456789);

    ListQuery bare;
    bare.metadata_prefix = "oai_dc";
    auto b = DecodeToken(EncodeToken(bare));
    ASSERT_TRUE(b);
    EXPECT_FALSE(b->from);
    EXPECT_EQ(b->complete_list_size, -1);

    // Every single-character change, and every cut, is refused.
    int accepted = 0;
    for (std::size_t i = 0; i < token.size(); ++i) {
        for (char c : std::string("Aa0-_.z")) {
            if (token[i] == c) continue;
            std::string t = token;
            t[i] = c;
            accepted += DecodeToken(t).has_value();
        }
        accepted += DecodeToken(token.substr(0, i)).has_value();
    }
    EXPECT_EQ(accepted, 0);
    for (const char* bad : {"", ".", "x.00000000", "MXxtYXJj.12345678", "../../etc/passwd", "' OR 1=1 --"})
        EXPECT_FALSE(DecodeToken(bad)) << bad;
    EXPECT_FALSE(DecodeToken(std::string(5000, 'A')));
}

TEST(OaiIdentifier, IsilAndLocalIdSurviveAnyCharacters) {
    const std::string id = RecordIdentifier("nl-ge.iblsync", "NL-AB/C:1", "a b:c/d%e");
    EXPECT_EQ(id, "oai:nl-ge.iblsync:NL-AB%2FC%3A1:a%20b%3Ac%2Fd%25e");
    auto back = ParseRecordIdentifier("nl-ge.iblsync", id);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->first, "NL-AB/C:1");
    EXPECT_EQ(back->second, "a b:c/d%e");
    EXPECT_FALSE(ParseRecordIdentifier("other.iblsync", id));
    EXPECT_FALSE(ParseRecordIdentifier("nl-ge.iblsync", "oai:nl-ge.iblsync:NL-1"));
    EXPECT_FALSE(ParseRecordIdentifier("nl-ge.iblsync", "oai:nl-ge.iblsync:NL-1:%zz"));
    EXPECT_FALSE(ParseRecordIdentifier("nl-ge.iblsync", "oai:nl-ge.iblsync::1"));
    EXPECT_EQ(RepositoryIdentifierFor("NL-GE-POI"), "nl-ge-poi.iblsync");
    EXPECT_EQ(RepositoryIdentifierFor("NL-0001"), "nl-0001.iblsync");
    EXPECT_TRUE(ValidRepositoryIdentifier("nl-ge-poi.iblsync"));
    EXPECT_TRUE(ValidRepositoryIdentifier("oai.kb.nl"));
    for (const char* bad : {"", "iblsync", "1nl.iblsync", "nl..iblsync", "nl.iblsync.", "nl_ge.iblsync"})
        EXPECT_FALSE(ValidRepositoryIdentifier(bad)) << bad;
}

TEST(OaiSet, SpecsMapIsilsBothWays) {
    EXPECT_EQ(SetSpec(SetKind::kLibrary, "NL-AB/C:1"), "library:NL-AB.C_1");
    auto f = ParseSetSpec("library:NL-AB.C_1");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->kind, SetKind::kLibrary);
    EXPECT_EQ(f->value, "NL-AB/C:1");
    EXPECT_EQ(SetSpec(SetKind::kProvince, "NL-GE"), "province:NL-GE");
    EXPECT_EQ(SetSpec(SetKind::kPoi, ""), "poi");
    EXPECT_EQ(ParseSetSpec("poi")->kind, SetKind::kPoi);
    EXPECT_EQ(ParseSetSpec("province")->value, "");
    for (const char* bad : {"", "library:", ":NL-1", "library:NL-1:x", "shelf:NL-1", "library:NL 1"})
        EXPECT_FALSE(ParseSetSpec(bad)) << bad;
}

TEST(OaiResponse, EveryKindValidatesAgainstTheSchemas) {
    const long long now = ParseDatestamp("2026-12-06T10:11:12Z")->seconds;
    const Params echo{{"verb", "ListRecords"}, {"metadataPrefix", "oai_dc"}};
    IdentifyInfo info{"Joint catalogue", "http://127.0.0.1:8080/oai", "nl-ge.iblsync", {"poi@example.nl"},
                      ParseDatestamp("2026-01-01T00:00:00Z")->seconds, "NL-0001:123"};
    const Params identify{{"verb", "Identify"}};
    const std::string identify_xml = Response(now, info.base_url, &identify, IdentifyXml(info));
    EXPECT_EQ(Valid(identify_xml), "");
    EXPECT_NE(identify_xml.find("<request verb=\"Identify\">http://127.0.0.1:8080/oai</request>"), std::string::npos);
    EXPECT_NE(identify_xml.find("<sampleIdentifier>oai:nl-ge.iblsync:NL-0001:123</sampleIdentifier>"),
              std::string::npos);
    EXPECT_EQ(Valid(Response(now, info.base_url, &identify, ListMetadataFormatsXml(Formats()))), "");
    EXPECT_EQ(Valid(Response(now, info.base_url, &identify,
                             ListSetsXml({{"library", "Libraries"}, {"library:NL-0001", "Bibliotheek <Ede> & co"}}))),
              "");

    marc::Record rec;
    rec.leader = "00000nam a2200000 a 4500";
    rec.fields.push_back({"001", ' ', ' ', "123", {}});
    rec.fields.push_back({"245", '1', '0', "", {{'a', "Tirza"}}});
    auto marcxml = marc::WriteMarcXmlRecord(rec, true);
    ASSERT_TRUE(marcxml) << marcxml.error();
    Header live{RecordIdentifier("nl-ge.iblsync", "NL-0001", "123"), now - 60, false, {"library:NL-0001"}};
    Header gone{RecordIdentifier("nl-ge.iblsync", "NL-0001", "124"), now - 30, true, {"library:NL-0001"}};
    std::string body = "<ListRecords>\n" + RecordXml(live, marcxml.value()) + RecordXml(gone, "") +
                       ResumptionTokenXml("tok.00000000", 3, 0) + "</ListRecords>\n";
    EXPECT_EQ(Valid(Response(now, info.base_url, &echo, body)), "");
    body = "<ListRecords>\n" + RecordXml(live, dc::ToOaiDcXml(dc::FromMarc(rec))) + ResumptionTokenXml("", 3, 2) +
           "</ListRecords>\n";
    const std::string dc_xml = Response(now, info.base_url, &echo, body);
    EXPECT_EQ(Valid(dc_xml), "");
    EXPECT_NE(dc_xml.find("<resumptionToken completeListSize=\"3\" cursor=\"2\"></resumptionToken>"),
              std::string::npos);
    body = "<ListIdentifiers>\n" + HeaderXml(live) + "\n" + HeaderXml(gone) + "\n</ListIdentifiers>\n";
    EXPECT_EQ(Valid(Response(now, info.base_url, &echo, body)), "");
    EXPECT_EQ(Valid(Response(now, info.base_url, &echo, "<GetRecord>" + RecordXml(live, marcxml.value()) +
                                                            "</GetRecord>\n")),
              "");

    // A bad verb gives the base URL alone; other errors repeat the arguments.
    const Params bad{{"verb", "Nonsense"}, {"x", "<&>"}};
    const std::string bad_verb = ErrorResponse(now, info.base_url, bad, ErrorOf(bad));
    EXPECT_EQ(Valid(bad_verb), "");
    EXPECT_NE(bad_verb.find("<request>http://127.0.0.1:8080/oai</request>"), std::string::npos);
    EXPECT_NE(bad_verb.find("<error code=\"badVerb\">'Nonsense' is not an OAI-PMH verb</error>"), std::string::npos);
    const Params no_format{{"verb", "ListRecords"}, {"metadataPrefix", "mods"}};
    const std::string cannot = ErrorResponse(now, info.base_url, no_format, ErrorOf(no_format));
    EXPECT_EQ(Valid(cannot), "");
    EXPECT_NE(cannot.find("<request verb=\"ListRecords\" metadataPrefix=\"mods\">"), std::string::npos);
    for (ErrorCode code : {ErrorCode::kIdDoesNotExist, ErrorCode::kNoRecordsMatch, ErrorCode::kNoSetHierarchy,
                           ErrorCode::kNoMetadataFormats, ErrorCode::kBadResumptionToken})
        EXPECT_EQ(Valid(ErrorResponse(now, info.base_url, echo, OaiError{code, "why"})), "") << CodeName(code);
    // The schema can fail: a header without a datestamp is refused.
    EXPECT_NE(Valid(Response(now, info.base_url, &echo,
                             "<ListIdentifiers><header><identifier>x</identifier></header></ListIdentifiers>")),
              "");
}

}  // namespace
}  // namespace iblsync::protocols::oai
