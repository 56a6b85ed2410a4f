#include "daemon/oai_service.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocols/delivery.hpp"
#include "protocols/dublin_core.hpp"
#include "protocols/marcxml.hpp"
#include "protocols/oai_pmh.hpp"
#include "protocols/url.hpp"
#include "storage/errors.hpp"
#include "storage/oai.hpp"

namespace iblsync::daemon {

namespace oai = protocols::oai;

std::string OaiRepositoryIdentifier(const Config& config) {
    return config.oai_repository_identifier.empty() ? oai::RepositoryIdentifierFor(config.isil)
                                                    : config.oai_repository_identifier;
}

namespace {

long long Now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

HttpResponse Xml(std::string body) {
    HttpResponse r;
    r.content_type = "text/xml; charset=utf-8";
    r.body = std::move(body);
    r.route = "/oai";
    return r;
}

// The base URL as the harvester reached it: its Host header when that is a
// plain host[:port], else the first listener.
std::string BaseUrl(const Config& cfg, const HttpRequest& req) {
    std::string host = req.Header("Host");
    bool plain = !host.empty() && host.size() <= 255;
    for (char c : host)
        plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                          std::string_view("-.:[]").find(c) != std::string_view::npos);
    if (!plain) host = cfg.http_listen.empty() ? "localhost" : cfg.http_listen.front().ToString();
    return fmt::format("http://{}{}", host, cfg.oai_path);
}

std::vector<std::string> SetsOf(const storage::OaiEntry& e) {
    std::vector<std::string> sets{oai::SetSpec(oai::SetKind::kLibrary, e.library)};
    if (!e.province.empty()) sets.push_back(oai::SetSpec(oai::SetKind::kProvince, e.province));
    if (!e.poi.empty()) sets.push_back(oai::SetSpec(oai::SetKind::kPoi, e.poi));
    return sets;
}

// The metadata of a live entry in the asked format: MARC 21 slim with one
// 852 per copy and its availability, or Dublin Core. nullopt (and a log
// line) if the stored record cannot be read: the entry is then given as a
// header only, which a harvester sees rather than a broken response.
std::optional<std::string> Metadata(const storage::OaiEntry& e, std::string_view prefix) {
    auto marc = protocols::StoredAsMarc(e.format, e.raw);
    if (!marc) {
        spdlog::warn("oai stored record unreadable library={} local_id=\"{}\" error=\"{}\"", e.library, e.local_id,
                     marc.error());
        return std::nullopt;
    }
    if (prefix == "oai_dc") return protocols::dc::ToOaiDcXml(protocols::dc::FromMarc(marc.value()));
    std::vector<protocols::DeliveryCopy> copies;
    for (const auto& h : e.holdings) copies.push_back({h.barcode, h.branch, h.shelfmark, h.status, h.due_date});
    auto xml = protocols::marc::WriteMarcXmlRecord(protocols::WithCopies(std::move(marc).value(), e.library, copies),
                                                   true);
    if (!xml) {
        spdlog::warn("oai record not writable as MARCXML library={} local_id=\"{}\" error=\"{}\"", e.library,
                     e.local_id, xml.error());
        return std::nullopt;
    }
    return std::move(xml).value();
}

}  // namespace

struct OaiService::Impl {
    storage::Database& db;
    DbExecutor& exec;
    std::function<std::shared_ptr<const Config>()> config;

    static oai::Header HeaderOf(const std::string& repository, const storage::OaiEntry& e) {
        return oai::Header{oai::RecordIdentifier(repository, e.library, e.local_id), e.datestamp,
                           e.deleted, SetsOf(e)};
    }

    net::awaitable<HttpResponse> Handle(const HttpRequest& req) {
        const auto cfg = config();
        std::string text;
        if (req.method == "GET") {
            text = req.query;
        } else if (req.method == "POST" && req.MediaType() == "application/x-www-form-urlencoded") {
            text = req.body;
        } else {
            auto r = ProblemResponse(protocols::MakeProblem(
                req.method == "POST" ? 415 : 405, req.method == "POST" ? "unsupported-media-type" : "method-not-allowed",
                req.method == "POST" ? "Unsupported media type" : "Method not allowed",
                fmt::format("{} takes GET, or POST with an application/x-www-form-urlencoded form", cfg->oai_path)));
            if (req.method != "POST") r.headers.emplace_back("Allow", "GET, POST");
            r.route = "/oai";
            co_return r;
        }
        const std::string base = BaseUrl(*cfg, req);
        std::string bad;
        auto params = protocols::ParseFormParameters(text, &bad);
        if (!params)
            co_return Xml(oai::ErrorResponse(Now(), base, {},
                                             {oai::ErrorCode::kBadArgument, "an argument has a malformed %-escape"}));
        auto parsed = oai::ParseRequest(*params);
        if (auto* e = std::get_if<oai::OaiError>(&parsed)) co_return Xml(oai::ErrorResponse(Now(), base, *params, *e));
        try {
            co_return Xml(co_await Answer(*cfg, std::get<oai::Request>(parsed), *params, base));
        } catch (const storage::DatabaseError& e) {
            spdlog::warn("oai request failed error=\"{}\" action=\"the harvester is told to retry in 10 s\"", e.what());
            HttpResponse r;
            r.status = 503;
            r.content_type = "text/plain; charset=utf-8";
            r.body = "The catalogue database cannot be reached now; retry after 10 seconds.\n";
            r.headers.emplace_back("Retry-After", "10");
            r.route = "/oai";
            co_return r;
        }
    }

    net::awaitable<std::string> Answer(const Config& cfg, const oai::Request& r, const oai::Params& params,
                                       const std::string& base) {
        const long long now = Now();
        auto error = [&](oai::ErrorCode code, std::string message) {
            return oai::ErrorResponse(now, base, params, {code, std::move(message)});
        };
        auto respond = [&](const std::string& body) { return oai::Response(now, base, &params, body); };
        const std::string repository = OaiRepositoryIdentifier(cfg);
        const auto& excluded = cfg.oai_excluded_libraries;
        switch (r.verb) {
            case oai::Verb::kIdentify: {
                auto facts = co_await exec.Run([&] { return storage::ReadOaiRepositoryFacts(db, excluded); });
                oai::IdentifyInfo info;
                info.repository_name = cfg.oai_repository_name.empty()
                                           ? fmt::format("Joint catalogue at {} ({})", cfg.name, cfg.isil)
                                           : cfg.oai_repository_name;
                info.base_url = base;
                info.repository_identifier = repository;
                info.admin_emails = cfg.oai_admin_email;
                if (info.admin_emails.empty()) info.admin_emails.push_back("iblsync@" + repository);
                info.earliest_datestamp = facts.earliest;
                info.sample_local = facts.sample_library.empty()
                                        ? "NL-0000000000:1"
                                        : fmt::format("{}:{}", protocols::PercentEncode(facts.sample_library),
                                                      protocols::PercentEncode(facts.sample_local_id));
                co_return respond(oai::IdentifyXml(info));
            }
            case oai::Verb::kListMetadataFormats: {
                if (!r.identifier.empty()) {
                    auto entry = co_await Find(cfg, r.identifier);
                    if (!entry)
                        co_return error(oai::ErrorCode::kIdDoesNotExist,
                                        "no record of this repository has that identifier");
                }
                co_return respond(oai::ListMetadataFormatsXml(oai::Formats()));
            }
            case oai::Verb::kListSets: {
                auto facts = co_await exec.Run([&] { return storage::ReadOaiRepositoryFacts(db, excluded); });
                std::vector<oai::SetInfo> sets{{"library", "Libraries"}};
                std::vector<std::string> provinces, pois;
                for (const auto& l : facts.libraries) {
                    sets.push_back({oai::SetSpec(oai::SetKind::kLibrary, l.isil), fmt::format("{} ({})", l.name, l.isil)});
                    if (!l.province.empty()) provinces.push_back(l.province);
                    if (!l.poi.empty()) pois.push_back(l.poi);
                }
                for (auto* list : {&provinces, &pois}) {
                    std::sort(list->begin(), list->end());
                    list->erase(std::unique(list->begin(), list->end()), list->end());
                }
                if (!provinces.empty()) sets.push_back({"province", "Provinces"});
                for (const auto& p : provinces)
                    sets.push_back({oai::SetSpec(oai::SetKind::kProvince, p), "Libraries in province " + p});
                if (!pois.empty()) sets.push_back({"poi", "Provincial support organisations (POIs)"});
                for (const auto& p : pois)
                    sets.push_back({oai::SetSpec(oai::SetKind::kPoi, p), "Libraries served by the POI " + p});
                co_return respond(oai::ListSetsXml(sets));
            }
            case oai::Verb::kGetRecord: {
                auto entry = co_await Find(cfg, r.identifier);
                if (!entry)
                    co_return error(oai::ErrorCode::kIdDoesNotExist, "no record of this repository has that identifier");
                std::string metadata;
                if (!entry->deleted) {
                    auto m = Metadata(*entry, r.list.metadata_prefix);
                    if (!m)
                        co_return error(oai::ErrorCode::kCannotDisseminateFormat,
                                        "the stored record cannot be given in this format");
                    metadata = std::move(*m);
                }
                co_return respond("<GetRecord>" + oai::RecordXml(HeaderOf(repository, *entry), metadata) + "</GetRecord>\n");
            }
            case oai::Verb::kListIdentifiers:
            case oai::Verb::kListRecords: co_return co_await List(cfg, r, params, base, now);
        }
        co_return error(oai::ErrorCode::kBadVerb, "unknown verb");
    }

    net::awaitable<std::optional<storage::OaiEntry>> Find(const Config& cfg, const std::string& identifier) {
        auto key = oai::ParseRecordIdentifier(OaiRepositoryIdentifier(cfg), identifier);
        if (!key) co_return std::nullopt;
        co_return co_await exec.Run(
            [&] { return storage::ReadOaiEntry(db, key->first, key->second, cfg.oai_excluded_libraries); });
    }

    net::awaitable<std::string> List(const Config& cfg, const oai::Request& r, const oai::Params& params,
                                     const std::string& base, long long now) {
        const bool records = r.verb == oai::Verb::kListRecords;
        const std::string repository = OaiRepositoryIdentifier(cfg);  // once, not per item
        storage::OaiListRequest q;
        if (!r.list.set.empty()) q.set = *oai::ParseSetSpec(r.list.set);
        if (r.list.from) q.from = r.list.from->seconds;
        q.until = r.list.UntilSeconds();
        q.after = r.list.after;
        q.limit = cfg.oai_page_size;
        q.content = records;
        q.count = !r.resumed;
        q.excluded = cfg.oai_excluded_libraries;
        auto page = co_await exec.Run([&] { return storage::ListOaiEntries(db, q); });
        if (page.entries.empty()) {
            // Only possible after a token when the repository changed under
            // the list (a library excluded since); the schema wants an error.
            co_return oai::ErrorResponse(now, base, params,
                                         {oai::ErrorCode::kNoRecordsMatch,
                                          r.resumed ? "no record is left in this list after this token"
                                                    : "no record matches these arguments"});
        }
        std::string body = records ? "<ListRecords>\n" : "<ListIdentifiers>\n";
        for (const auto& e : page.entries) {
            auto header = HeaderOf(repository, e);
            if (!records) {
                body += oai::HeaderXml(header) + "\n";
                continue;
            }
            std::string metadata;
            if (!e.deleted) {
                auto m = Metadata(e, r.list.metadata_prefix);
                if (!m) continue;  // logged; leaving it out keeps the response valid
                metadata = std::move(*m);
            }
            body += oai::RecordXml(header, metadata);
        }
        const long long size = r.resumed ? r.list.complete_list_size : page.count;
        const long long given = r.list.cursor + static_cast<long long>(page.entries.size());
        if (page.more) {
            oai::ListQuery next = r.list;
            next.after = page.entries.back().position;
            next.cursor = given;
            next.complete_list_size = size;
            body += oai::ResumptionTokenXml(oai::EncodeToken(next), std::max(size, given + 1), r.list.cursor);
        } else if (r.resumed) {
            body += oai::ResumptionTokenXml("", given, r.list.cursor);
        }
        body += records ? "</ListRecords>\n" : "</ListIdentifiers>\n";
        co_return oai::Response(now, base, &params, body);
    }
};

OaiService::OaiService(storage::Database& db, DbExecutor& exec, std::function<std::shared_ptr<const Config>()> config)
    : impl_(std::make_unique<Impl>(Impl{db, exec, std::move(config)})) {}
OaiService::~OaiService() = default;

net::awaitable<HttpResponse> OaiService::Handle(const HttpRequest& request) { return impl_->Handle(request); }

}  // namespace iblsync::daemon
