#include "daemon/sru_service.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocols/delivery.hpp"
#include "protocols/catalogue_record.hpp"
#include "protocols/json_record.hpp"
#include "protocols/marcxml.hpp"
#include "protocols/sru.hpp"
#include "protocols/url.hpp"
#include "storage/errors.hpp"
#include "storage/search.hpp"

namespace iblsync::daemon {
namespace {

namespace sru = protocols::sru;

HttpResponse Xml(sru::Version version, std::string body) {
    HttpResponse r;
    r.content_type = sru::ContentType(version);
    r.body = std::move(body);
    r.route = "/sru";
    return r;
}

// The record as MARC, whatever it is stored as.
Result<protocols::marc::Record> AsMarc(const storage::SearchHit& hit) {
    return protocols::StoredAsMarc(hit.format, hit.raw);
}

sru::ResultRecord Render(const storage::SearchHit& hit, const sru::Request& req) {
    sru::ResultRecord out;
    out.position = hit.position;
    out.identifier = hit.library + ":" + hit.local_id;
    auto marc = AsMarc(hit);
    if (!marc) {
        spdlog::warn("sru stored record unreadable library={} local_id={} error=\"{}\"", hit.library, hit.local_id,
                     marc.error());
        out.surrogate = sru::Diagnostic{67, out.identifier, "Record not available in this schema: the stored record "
                                                            "cannot be read"};
        return out;
    }
    switch (req.schema) {
        case sru::Schema::kMarcXml: {
            auto xml = protocols::marc::WriteMarcXmlRecord(marc.value(), true);
            if (!xml) {
                out.surrogate = sru::Diagnostic{67, out.identifier, "Record not available in this schema"};
                return out;
            }
            out.data = std::move(xml).value();
            break;
        }
        case sru::Schema::kDublinCore: out.data = sru::SrwDublinCore(marc.value()); break;
        case sru::Schema::kJson:
            out.data = sru::MarcInJson(marc.value());
            out.data_is_xml = false;
            break;
    }
    for (const auto& h : hit.holdings)
        out.copies.push_back({h.library, h.barcode, h.branch, h.shelfmark, h.status, h.due_date, h.changed_at});
    return out;
}

}  // namespace

struct SruService::Impl {
    storage::Database& db;
    DbExecutor& exec;
    std::function<std::shared_ptr<const Config>()> config;

    sru::Limits LimitsOf(const Config& c) const {
        sru::Limits l;
        l.default_maximum_records = c.sru_default_records;
        l.maximum_records = c.sru_max_records;
        return l;
    }

    std::string ExplainRecord(const Config& c, const HttpRequest& req) const {
        sru::ExplainInfo info;
        std::string host = req.Header("Host");
        info.port = 80;
        if (auto colon = host.rfind(':'); colon != std::string::npos && host.find(']', colon) == std::string::npos) {
            info.port = std::atoi(host.c_str() + colon + 1);
            host = host.substr(0, colon);
        }
        info.host = host.empty() ? c.http_listen.front().host : host;
        if (host.empty()) info.port = c.http_listen.front().port;
        info.database = c.sru_path.substr(1);
        info.title = c.sru_title.empty() ? fmt::format("Joint catalogue at {}", c.name) : c.sru_title;
        info.description = fmt::format(
            "The records and copies of the libraries this {} node ({}) serves, with the availability of every "
            "copy, searched with CQL.",
            RoleName(c.role), c.isil);
        for (const auto& s : storage::ContextSets()) info.sets.push_back({s.prefix, s.identifier});
        for (const auto& i : storage::SearchIndexes())
            info.indexes.push_back({i.set, i.name, i.title, i.sortable, i.scannable});
        info.limits = LimitsOf(c);
        return sru::ExplainRecord(info);
    }

    net::awaitable<HttpResponse> Handle(const HttpRequest& req) {
        const auto cfg = config();
        std::string params_text;
        if (req.method == "GET") {
            params_text = req.query;
        } else if (req.method == "POST") {
            const std::string type = req.MediaType();
            if (type == "text/xml" || type == "application/soap+xml") {
                // SRW: the same request in a SOAP envelope, answered in one.
                std::string error;
                auto soap = sru::ParseSoapRequest(req.body, error);
                sru::Request fallback;
                fallback.version = sru::Version::k12;
                if (!soap)
                    co_return Soap(sru::DiagnosticResponse(fallback, {6, "", "Unsupported parameter value: " + error}, {}));
                if (std::none_of(soap->begin(), soap->end(), [](const auto& p) { return p.first == "version"; }))
                    soap->emplace_back("version", "1.2");
                auto answer = co_await Answer(*soap, req, *cfg);
                co_return Soap(std::move(answer.body));
            }
            if (type != "application/x-www-form-urlencoded") {
                sru::Request r;
                co_return Xml(r.version, sru::DiagnosticResponse(
                                             r, {6, "Content-Type", "Unsupported parameter value: POST the "
                                                                    "parameters as application/x-www-form-urlencoded, "
                                                                    "or an SRW request as text/xml"},
                                             {}));
            }
            params_text = req.body;
        } else {
            auto r = ProblemResponse(protocols::MakeProblem(
                405, "method-not-allowed", "Method not allowed",
                fmt::format("{} takes GET, or POST with a form", cfg->sru_path)));
            r.headers.emplace_back("Allow", "GET, POST");
            r.route = "/sru";
            co_return r;
        }
        std::string bad;
        auto params = protocols::ParseFormParameters(params_text, &bad);
        if (!params) {
            sru::Request r;
            co_return Xml(r.version,
                          sru::DiagnosticResponse(r, {6, "", "Unsupported parameter value: malformed percent-encoding"},
                                                  {}));
        }
        co_return co_await Answer(*params, req, *cfg);
    }

    static HttpResponse Soap(std::string body) {
        HttpResponse r;
        r.content_type = "text/xml; charset=utf-8";
        r.body = sru::SoapEnvelope(body);
        r.route = "/sru";
        return r;
    }

    net::awaitable<HttpResponse> Answer(const std::vector<std::pair<std::string, std::string>>& params,
                                        const HttpRequest& req, const Config& cfg) {
        auto parsed = sru::ParseRequest(params, LimitsOf(cfg));
        const auto& r = parsed.request;
        if (parsed.diagnostic)
            co_return Xml(r.version, sru::DiagnosticResponse(r, *parsed.diagnostic,
                                                             r.operation == sru::Operation::kExplain
                                                                 ? ExplainRecord(cfg, req)
                                                                 : std::string()));
        switch (r.operation) {
            case sru::Operation::kExplain: co_return Xml(r.version, sru::ExplainResponse(r, ExplainRecord(cfg, req)));
            case sru::Operation::kScan: co_return co_await Scan(r);
            case sru::Operation::kSearchRetrieve: co_return co_await Search(r, cfg);
        }
        co_return Xml(r.version, "");
    }

    static std::optional<sru::Diagnostic> FromStorage(const storage::SearchDiagnostic& d) {
        return sru::Diagnostic{d.code, d.details,
                               fmt::format("{}: {}", sru::StandardMessage(d.code), d.message)};
    }

    static sru::Diagnostic Unavailable(const std::exception& e) {
        spdlog::warn("sru search failed error=\"{}\"", e.what());
        return {1, "database", "General system error: the catalogue database cannot be reached now; try again"};
    }

    net::awaitable<HttpResponse> Search(const sru::Request& r, const Config& cfg) {
        storage::SearchRequest s;
        s.query = &*r.cql;
        s.start = r.start_record;
        s.maximum = r.maximum_records;
        s.holdings = r.holdings;
        s.exact_count_limit = cfg.sru_exact_count;
        if (!r.sort_keys.empty()) {
            std::string error;
            for (const auto& k : sru::ParseSortKeys(r.sort_keys, error).value_or(std::vector<sru::SortKeySpec>{})) {
                storage::SortKey key{k.path, k.ascending, k.case_sensitive, k.missing};
                if (!k.missing.empty() && k.missing != "missingLow" && k.missing != "missingHigh")
                    co_return Xml(r.version,
                                  sru::DiagnosticResponse(r, {92, k.missing, "Unsupported missing value action: use "
                                                                             "missingLow or missingHigh"},
                                                          {}));
                s.sort.push_back(std::move(key));
            }
        }
        sru::SearchResult result;
        try {
            auto found = co_await exec.Run([&] { return storage::Search(db, s); });
            if (found.diagnostic) {
                result.diagnostics.push_back(*FromStorage(*found.diagnostic));
            } else {
                result.total = found.total;
                result.exact = found.exact;
                result.more = found.more;
                if (found.hits.empty() && r.start_record > 1 && r.maximum_records > 0)
                    result.diagnostics.push_back(
                        {61, std::to_string(r.start_record),
                         fmt::format("First record position out of range: startRecord {} is past the {} records found",
                                     r.start_record, found.total)});
                for (const auto& hit : found.hits) result.records.push_back(Render(hit, r));
            }
        } catch (const storage::DatabaseError& e) {
            result.diagnostics.push_back(Unavailable(e));
        }
        co_return Xml(r.version, sru::SearchRetrieveResponse(r, result));
    }

    net::awaitable<HttpResponse> Scan(const sru::Request& r) {
        std::vector<sru::ScanTerm> terms;
        std::vector<sru::Diagnostic> diags;
        try {
            auto scanned = co_await exec.Run(
                [&] { return storage::Scan(db, *r.scan_cql, r.response_position, r.maximum_terms); });
            if (scanned.diagnostic) diags.push_back(*FromStorage(*scanned.diagnostic));
            for (auto& t : scanned.terms) terms.push_back({t.value, t.display, t.records});
        } catch (const storage::DatabaseError& e) {
            diags.push_back(Unavailable(e));
        }
        co_return Xml(r.version, sru::ScanResponse(r, terms, diags));
    }
};

SruService::SruService(storage::Database& db, DbExecutor& exec, std::function<std::shared_ptr<const Config>()> config)
    : impl_(std::make_unique<Impl>(Impl{db, exec, std::move(config)})) {}
SruService::~SruService() = default;

net::awaitable<HttpResponse> SruService::Handle(const HttpRequest& request) {
    // Whatever goes wrong is still an SRU answer, never an HTTP 500.
    HttpResponse r;
    std::exception_ptr failure;
    try {
        r = co_await impl_->Handle(request);
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            spdlog::error("sru request failed error=\"{}\"", e.what());
        }
        sru::Request req;
        r = Xml(req.version, sru::DiagnosticResponse(req, {1, "", "General system error: see the node's log"}, {}));
    }
    co_return r;
}

}  // namespace iblsync::daemon
