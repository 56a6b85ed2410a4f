#include "daemon/push_api.hpp"

#include <openssl/evp.h>

#include <strings.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <variant>
#include <chrono>
#include <list>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include "daemon/ibl_api.hpp"
#include "storage/ibl.hpp"
#include "daemon/log.hpp"
#include "protocols/catalogue_record.hpp"
#include "protocols/isil.hpp"
#include "protocols/json_record.hpp"
#include "protocols/marcxml.hpp"
#include "protocols/push_batch.hpp"
#include "protocols/url.hpp"
#include "storage/access.hpp"
#include "storage/database.hpp"
#include "storage/peer_sync.hpp"
#include "storage/push.hpp"

namespace iblsync::daemon {
namespace {

using Clock = std::chrono::steady_clock;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

HttpResponse Problem(int status, const std::string& slug, std::string title, std::string detail,
                     std::string pointer = {}) {
    auto p = protocols::MakeProblem(status, slug, std::move(title), std::move(detail));
    p.pointer = std::move(pointer);
    return ProblemResponse(p);
}

// Echoing client text into a message: printable ASCII only, bounded.
std::string Printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 120)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
}

std::string Sha256Hex(std::string_view s) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(s.data(), s.size(), digest, &len, EVP_sha256(), nullptr);
    return fmt::format("{:02x}", fmt::join(digest, digest + len, ""));
}

std::string RecordHref(const std::string& isil, const std::string& local_id) {
    return fmt::format("/v1/libraries/{}/records/{}", isil, protocols::PercentEncode(local_id));
}

std::map<std::string, std::string> ParseQuery(const std::string& q, std::string& error) {
    std::string bad;
    auto pairs = protocols::ParseFormParameters(q, &bad);
    if (!pairs) {
        error = fmt::format("malformed percent-encoding in the query near '{}'", Printable(bad));
        return {};
    }
    std::map<std::string, std::string> out;
    for (auto& [key, value] : *pairs) {
        if (out.count(key)) {
            error = fmt::format("query parameter '{}' is given twice", Printable(key));
            return {};
        }
        out[key] = std::move(value);
    }
    return out;
}

std::optional<long long> ParseInt(const std::string& s) {
    long long v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

std::string Str(const rapidjson::StringBuffer& b) { return std::string(b.GetString(), b.GetSize()); }

void Key(Writer& w, const char* k, const std::string& v) {
    w.Key(k);
    w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
}
void KeyOpt(Writer& w, const char* k, const std::string& v) {
    w.Key(k);
    if (v.empty()) w.Null();
    else w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
}
void Strings(Writer& w, const char* k, const std::vector<std::string>& v) {
    w.Key(k);
    w.StartArray();
    for (const auto& s : v) w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
    w.EndArray();
}

void WriteHolding(Writer& w, const storage::StoredHolding& h) {
    w.StartObject();
    w.Key("item_id");
    w.Int64(h.id);
    Key(w, "library", h.library);
    Key(w, "barcode", h.barcode);
    KeyOpt(w, "branch", h.branch);
    KeyOpt(w, "shelfmark", h.shelfmark);
    Key(w, "status", h.status);
    KeyOpt(w, "due_date", h.due_date);
    KeyOpt(w, "changed_at", h.changed_at);
    Key(w, "updated_at", h.updated_at);
    w.Key("version");
    w.Int(h.version);
    w.EndObject();
}

void WriteRecord(Writer& w, const storage::StoredRecord& r, bool with_holdings) {
    w.StartObject();
    Key(w, "library", r.library);
    Key(w, "id", r.local_id);
    Key(w, "href", RecordHref(r.library, r.local_id));
    w.Key("record_id");
    w.Int64(r.id);
    w.Key("version");
    w.Int(r.version);
    w.Key("deleted");
    w.Bool(r.deleted);
    w.Key("work_id");
    if (r.work_id) w.Int64(r.work_id);
    else w.Null();
    Key(w, "title", r.title);
    KeyOpt(w, "material_type", r.material_type);
    w.Key("year");
    if (r.pub_year) w.Int(r.pub_year);
    else w.Null();
    Strings(w, "isbns", r.isbns);
    Strings(w, "issns", r.issns);
    Strings(w, "oclc", r.oclc);
    Strings(w, "ppn", r.ppn);
    Key(w, "updated_at", r.updated_at);
    if (r.format == "json") {
        Key(w, "format", "json");
        w.Key("record");
        w.RawValue(r.raw.c_str(), r.raw.size(), rapidjson::kObjectType);
    } else {
        Key(w, "format", "marcxml");
        auto marc = protocols::StoredMarc(r.format, r.raw);
        auto xml = marc ? protocols::marc::WriteMarcXmlRecord(marc.value()) : Result<std::string>(Fail(marc.error()));
        w.Key("marcxml");
        if (xml) w.String(xml->c_str(), static_cast<rapidjson::SizeType>(xml->size()));
        else w.Null();
    }
    if (with_holdings) {
        w.Key("holdings");
        w.StartArray();
        for (const auto& h : r.holdings) WriteHolding(w, h);
        w.EndArray();
    }
    w.EndObject();
}

// An If-Match value: "*" -> 0, "\"7\"" or W/"7" -> 7; nullopt if it names no version we issue.
std::optional<int> ParseEtag(std::string v) {
    if (v == "*") return 0;
    if (v.rfind("W/", 0) == 0) v = v.substr(2);
    if (v.size() < 3 || v.front() != '"' || v.back() != '"') return std::nullopt;
    auto n = ParseInt(v.substr(1, v.size() - 2));
    if (!n || *n <= 0 || *n > 1'000'000'000) return std::nullopt;
    return static_cast<int>(*n);
}

// A batch body refused as a whole (protocols/push_batch.hpp's messages).
HttpResponse BatchProblem(const std::string& m, const char* schema_title) {
    if (m.find("the limit is") != std::string::npos || m.find("split it") != std::string::npos)
        return Problem(413, "batch-too-large", "Batch too large", m);
    if (m.rfind("JSON nested deeper", 0) == 0) return Problem(400, "json-too-deep", "JSON nested too deeply", m);
    if (m.rfind("invalid JSON", 0) == 0) return Problem(400, "invalid-json", "Invalid JSON", m);
    return Problem(422, "schema-violation", schema_title, m);
}

std::string Etag(int version) { return fmt::format("\"{}\"", version); }

int StatusOf(storage::RecordOutcome o) {
    switch (o) {
        case storage::RecordOutcome::kInserted: return 201;
        case storage::RecordOutcome::kNotFound: return 404;
        default: return 200;
    }
}

// Why an item of a batch or a single record body was refused, as problem
// parts: a record parser's error text tells the kinds apart.
struct ItemError {
    int status;
    std::string slug, title, detail, pointer;
};

ItemError RecordError(const std::string& message, const std::string& pointer) {
    if (message.rfind("invalid JSON", 0) == 0) return {400, "invalid-json", "Invalid JSON", message, pointer};
    if (message.rfind("record of ", 0) == 0) return {413, "record-too-large", "Record too large", message, pointer};
    if (message.rfind("JSON nested deeper", 0) == 0) return {400, "json-too-deep", "JSON nested too deeply", message, pointer};
    return {422, "schema-violation", "The record does not follow the format", message, pointer};
}

HttpResponse ProblemFrom(const ItemError& e) { return Problem(e.status, e.slug, e.title, e.detail, e.pointer); }

void WriteItemError(Writer& w, const ItemError& e) {
    w.Key("status");
    w.Int(e.status);
    w.Key("error");
    w.StartObject();
    Key(w, "type", "urn:iblsync:problem:" + e.slug);
    Key(w, "title", e.title);
    Key(w, "detail", e.detail);
    if (!e.pointer.empty()) Key(w, "pointer", e.pointer);
    w.EndObject();
}

struct TokenBucket {
    double tokens = 0;
    Clock::time_point at{};
};

}  // namespace

struct PushApi::Impl {
    storage::Database& db;
    DbExecutor& exec;
    std::function<std::shared_ptr<const Config>()> config;
    IblCourier& courier;
    std::unordered_map<long long, TokenBucket> buckets;
    std::list<net::steady_timer*> waiters;  // long-polls of /v1/changes
    bool stopped = false;

    Impl(storage::Database& d, DbExecutor& e, std::function<std::shared_ptr<const Config>()> c, IblCourier& i)
        : db(d), exec(e), config(std::move(c)), courier(i) {}

    void WakeWaiters() {
        for (auto* t : waiters) t->cancel();
    }

    // Storage failures as problems; anything unexpected is logged with the request.
    HttpResponse Failure(const HttpRequest& req, const std::exception_ptr& ep) {
        try {
            std::rethrow_exception(ep);
        } catch (const storage::DatabaseUnavailable& e) {
            auto r = Problem(503, "database-unavailable", "Database unavailable",
                             "the node cannot reach its database; nothing was written. Retry later (the same "
                             "Idempotency-Key makes a retry safe)");
            r.headers.emplace_back("Retry-After", "5");
            return r;
        } catch (const storage::DatabaseError& e) {
            if (e.sqlstate() == "IBL01")
                return Problem(404, "unknown-library", "Unknown library", e.what());
            spdlog::error("api request failed method={} path={} error={}", req.method, Quote(Printable(req.path)),
                          Quote(e.what()));
            return Problem(500, "internal", "Internal error",
                           "the write failed and was rolled back; nothing was written. The node's log has the cause");
        } catch (const std::exception& e) {
            spdlog::error("api request failed method={} path={} error={}", req.method, Quote(Printable(req.path)),
                          Quote(e.what()));
            return Problem(500, "internal", "Internal error",
                           "the request failed; nothing was written. The node's log has the cause");
        }
    }

    // Bearer token -> identity, or the 401/403/429 to send.
    net::awaitable<std::variant<storage::TokenIdentity, HttpResponse>> Authenticate(const HttpRequest& req) {
        const std::string auth = req.Header("Authorization");
        auto unauthorized = [](const std::string& slug, const std::string& title, const std::string& detail,
                               const char* challenge) {
            auto r = Problem(401, slug, title, detail);
            r.headers.emplace_back("WWW-Authenticate", challenge);
            return r;
        };
        if (auth.empty())
            co_return unauthorized("unauthorized", "Token required",
                                   "send the library's API token as 'Authorization: Bearer iblt_…' (an admin issues "
                                   "one with 'iblctl token issue ISIL')",
                                   "Bearer realm=\"iblsync\"");
        if (auth.size() < 7 || strncasecmp(auth.c_str(), "Bearer ", 7) != 0)
            co_return unauthorized("unauthorized", "Token required",
                                   "only bearer tokens are accepted: 'Authorization: Bearer iblt_…'",
                                   "Bearer realm=\"iblsync\"");
        std::string token = auth.substr(7);
        while (!token.empty() && token.front() == ' ') token.erase(0, 1);
        while (!token.empty() && token.back() == ' ') token.pop_back();
        auto who = co_await exec.Run([&] { return storage::Authenticate(db, token); });
        if (!who)
            co_return unauthorized("invalid-token", "Invalid token",
                                   "the token is unknown, revoked or wrong; ask the node's admin for a new one",
                                   "Bearer realm=\"iblsync\", error=\"invalid_token\"");
        if (!who->library_enabled)
            co_return Problem(403, "library-disabled", "Library disabled",
                              fmt::format("library {} is disabled on this node; its admin can enable it again",
                                          who->library));
        auto cfg = config();
        if (cfg->api_rate_per_second > 0) {
            auto& b = buckets[who->token_id];
            const auto now = Clock::now();
            const double rate = cfg->api_rate_per_second, burst = cfg->api_rate_burst;
            if (b.at == Clock::time_point{}) b.tokens = burst;
            else b.tokens = std::min(burst, b.tokens + rate * std::chrono::duration<double>(now - b.at).count());
            b.at = now;
            if (b.tokens < 1) {
                auto r = Problem(429, "rate-limited", "Too many requests",
                                 fmt::format("this token may send {} requests per second (bursts of {}); slow down "
                                             "or batch the updates",
                                             cfg->api_rate_per_second, cfg->api_rate_burst));
                r.headers.emplace_back("Retry-After",
                                       std::to_string(std::max(1, static_cast<int>(std::ceil((1 - b.tokens) / rate)))));
                co_return r;
            }
            b.tokens -= 1;
        }
        co_return *who;
    }

    // The write's idempotency parts, or a 400 for a malformed key.
    std::optional<HttpResponse> WriteContextFor(const HttpRequest& req, const storage::TokenIdentity& who,
                                                const std::string& action, bool atomic, storage::WriteContext& ctx) {
        ctx.token_id = who.token_id;
        ctx.action = action;
        ctx.all_or_nothing = atomic;
        ctx.idempotency_key = req.Header("Idempotency-Key");
        if (!ctx.idempotency_key.empty()) {
            bool ok = ctx.idempotency_key.size() <= 255 &&
                      std::all_of(ctx.idempotency_key.begin(), ctx.idempotency_key.end(),
                                  [](char c) { return c > 0x20 && c < 0x7f; });
            if (!ok)
                return Problem(400, "bad-idempotency-key", "Bad Idempotency-Key",
                               "an Idempotency-Key is 1 to 255 printable ASCII characters without spaces, e.g. a UUID");
            ctx.request_hash = Sha256Hex(req.method + " " + req.path + "\n" + req.Header("Content-Type") + "\n" +
                                         req.Header("If-Match") + "\n" + req.Header("If-None-Match") + "\n" + req.body);
        }
        return std::nullopt;
    }

    static HttpResponse Answer(const storage::StoredAnswer& a, bool replayed) {
        HttpResponse r;
        r.status = a.status;
        r.content_type = a.content_type;
        r.body = a.body;
        if (replayed) r.headers.emplace_back("Idempotency-Replayed", "true");
        return r;
    }

    static HttpResponse KeyReused() {
        return Problem(422, "idempotency-key-reused", "Idempotency-Key used for another request",
                       "this Idempotency-Key was used before with a different request; nothing was written. Use a "
                       "new key for a new request");
    }

    // --- records ---------------------------------------------------------

    // The record in a PUT body, described for the catalogue.
    std::variant<protocols::CatalogueRecord, ItemError> RecordFromBody(const HttpRequest& req,
                                                                       const storage::TokenIdentity& who,
                                                                       const Config& cfg) {
        const std::string type = req.MediaType();
        if (req.body.size() > cfg.api_max_record_bytes)
            return ItemError{413, "record-too-large", "Record too large",
                             fmt::format("the record has {} bytes; this node accepts {} at most", req.body.size(),
                                         cfg.api_max_record_bytes),
                             ""};
        if (type == "application/json") {
            if (auto d = protocols::CheckJsonDepth(req.body, 32); !d) return RecordError(d.error(), "");
            protocols::JsonRecordLimits limits;
            limits.max_bytes = cfg.api_max_record_bytes;
            auto parsed = protocols::ParseJsonRecord(req.body, limits);
            if (!parsed) return RecordError(parsed.error(), parsed.error_pointer());
            auto described = protocols::DescribeRecord(std::move(parsed).value());
            if (!described) return ItemError{422, "schema-violation", "The record does not follow the format", described.error(), ""};
            return std::move(described).value();
        }
        if (type == "application/marcxml+xml" || type == "application/xml" || type == "text/xml") {
            auto marc = protocols::marc::ParseMarcXmlRecord(req.body);
            if (!marc) return ItemError{400, "invalid-marcxml", "Invalid MARCXML", marc.error(), ""};
            auto mapping = protocols::ParseHoldingsMapping(who.holdings_mapping);
            if (!mapping) mapping = protocols::ParseHoldingsMapping("none");
            auto described = protocols::DescribeRecord(marc.value(), mapping.value(), who.library);
            if (!described)
                return ItemError{422, "schema-violation", "The record does not follow the format", described.error(), ""};
            return std::move(described).value();
        }
        return ItemError{415, "unsupported-media-type", "Unsupported media type",
                         fmt::format("send a record as application/json (iblsync JSON) or application/marcxml+xml, "
                                     "not '{}'",
                                     Printable(type.empty() ? "(none)" : type)),
                         ""};
    }

    static std::string RecordAnswer(const std::string& isil, const storage::RecordResult& r) {
        rapidjson::StringBuffer buf;
        Writer w(buf);
        w.StartObject();
        Key(w, "library", isil);
        Key(w, "id", r.local_id);
        Key(w, "href", RecordHref(isil, r.local_id));
        Key(w, "outcome", storage::ToString(r.outcome));
        w.Key("version");
        w.Int(r.version);
        w.Key("record_id");
        w.Int64(r.record_id);
        w.Key("work_id");
        if (r.work_id) w.Int64(r.work_id);
        else w.Null();
        w.Key("copies_changed");
        w.Int(r.holdings_changed);
        w.EndObject();
        return Str(buf);
    }

    net::awaitable<HttpResponse> PutOrDeleteRecord(const HttpRequest& req, const storage::TokenIdentity& who,
                                                   const std::string& isil, const std::string& local_id) {
        auto cfg = config();
        std::vector<storage::RecordChange> changes;
        const bool del = req.method == "DELETE";
        if (del) {
            changes.push_back(storage::RecordChange::Delete(local_id));
        } else {
            auto rec = RecordFromBody(req, who, *cfg);
            if (auto* e = std::get_if<ItemError>(&rec)) co_return ProblemFrom(*e);
            auto& record = std::get<protocols::CatalogueRecord>(rec);
            if (record.local_id != local_id)
                co_return Problem(422, "schema-violation", "The record does not follow the format",
                                  fmt::format("the record's id is '{}' but the URL names '{}'; they must be the same",
                                              Printable(record.local_id), Printable(local_id)),
                                  "/id");
            changes.push_back(storage::RecordChange::Upsert(std::move(record)));
        }
        storage::RecordPrecondition pre;
        if (auto m = req.Header("If-Match"); !m.empty()) {
            auto v = ParseEtag(m);
            pre.if_match = v ? *v : -1;  // an ETag we never issued matches nothing
        }
        if (auto m = req.Header("If-None-Match"); !m.empty()) {
            if (m != "*")
                co_return Problem(400, "bad-precondition", "Unsupported precondition",
                                  "on a write, If-None-Match only takes '*' (create the record only if it does not exist)");
            pre.if_none_match = true;
        }
        storage::WriteContext ctx;
        if (auto bad = WriteContextFor(req, who, fmt::format("{} {}", req.method, RecordHref(isil, local_id)), false, ctx))
            co_return *bad;
        const std::string isil_copy = isil;
        auto written = co_await exec.Run([&] {
            return storage::PushRecords(
                db, isil_copy, changes, ctx, pre, [&](const storage::BatchResult& b, bool&) {
                    const auto& r = b.records.at(0);
                    storage::StoredAnswer a;
                    if (del && r.outcome == storage::RecordOutcome::kNotFound) {
                        a.status = 404;
                        a.content_type = protocols::kProblemMediaType;
                        a.body = protocols::ToJson(protocols::MakeProblem(
                            404, "not-found", "Not found",
                            fmt::format("library {} has no record '{}' (or it is deleted already)", isil_copy,
                                        Printable(r.local_id))));
                        return a;
                    }
                    a.status = StatusOf(r.outcome);
                    a.body = RecordAnswer(isil_copy, r);
                    return a;
                });
        });
        switch (written.status) {
            case storage::WriteStatus::kKeyReused: co_return KeyReused();
            case storage::WriteStatus::kPreconditionFailed: {
                auto r = Problem(412, "precondition-failed", "Precondition failed",
                                 written.current_version == 0
                                     ? std::string("the record does not exist; nothing was written")
                                     : fmt::format("the record is at version {} (ETag \"{}\"); read it again, then "
                                                   "retry with the new ETag",
                                                   written.current_version, written.current_version));
                if (written.current_version) r.headers.emplace_back("ETag", Etag(written.current_version));
                co_return r;
            }
            default: break;
        }
        auto r = Answer(written.answer, written.status == storage::WriteStatus::kReplayed);
        if (written.status == storage::WriteStatus::kDone) {
            const auto& rr = written.result.records.at(0);
            if (rr.version > 0 && !del) r.headers.emplace_back("ETag", Etag(rr.version));
            if (rr.outcome == storage::RecordOutcome::kInserted)
                r.headers.emplace_back("Location", RecordHref(isil, local_id));
            if (written.result.summary.last_seq > 0) WakeWaiters();
        }
        co_return r;
    }

    net::awaitable<HttpResponse> PostRecords(const HttpRequest& req, const storage::TokenIdentity& who,
                                             const std::string& isil, bool atomic) {
        auto cfg = config();
        const std::string type = req.MediaType();
        if (type != "application/json" && type != "application/x-ndjson")
            co_return Problem(415, "unsupported-media-type", "Unsupported media type",
                              "send a batch as application/x-ndjson (one JSON record per line) or application/json "
                              "(an array of records)");
        protocols::BatchLimits limits;
        limits.max_items = static_cast<std::size_t>(cfg->api_max_batch_items);
        limits.record.max_bytes = cfg->api_max_record_bytes;
        auto parsed = protocols::ParseRecordBatch(req.body, type == "application/x-ndjson", limits);
        if (!parsed) co_return BatchProblem(parsed.error(), "The batch does not follow the format");
        // Valid items go to the store; invalid ones keep their error.
        std::vector<std::optional<ItemError>> errors(parsed->size());
        std::vector<std::size_t> position;  // change index -> batch position
        std::vector<storage::RecordChange> changes;
        for (std::size_t i = 0; i < parsed->size(); ++i) {
            auto& item = (*parsed)[i].record;
            if (!item) {
                errors[i] = RecordError(item.error(), item.error_pointer());
                continue;
            }
            auto described = protocols::DescribeRecord(std::move(item).value());
            if (!described) {
                errors[i] = ItemError{422, "schema-violation", "The record does not follow the format",
                                      described.error(), fmt::format("/{}", i)};
                continue;
            }
            position.push_back(i);
            changes.push_back(storage::RecordChange::Upsert(std::move(described).value()));
        }
        const bool any_invalid = changes.size() < parsed->size();
        auto render = [errors, position, atomic, any_invalid, n = parsed->size()](
                          const storage::BatchResult* b, bool& failed) {
            rapidjson::StringBuffer buf;
            Writer w(buf);
            std::vector<const storage::RecordResult*> by_pos(n, nullptr);
            if (b)
                for (std::size_t k = 0; k < position.size(); ++k) by_pos[position[k]] = &b->records[k];
            long long counts[6] = {0, 0, 0, 0, 0, 0};
            long long invalid = 0;
            w.StartObject();
            w.Key("results");
            w.StartArray();
            for (std::size_t i = 0; i < n; ++i) {
                w.StartObject();
                w.Key("position");
                w.Uint64(i);
                if (errors[i]) {
                    ++invalid;
                    WriteItemError(w, *errors[i]);
                } else if (by_pos[i]) {
                    const auto& r = *by_pos[i];
                    Key(w, "id", r.local_id);
                    Key(w, "outcome", storage::ToString(r.outcome));
                    w.Key("status");
                    w.Int(StatusOf(r.outcome));
                    w.Key("version");
                    w.Int(r.version);
                    ++counts[static_cast<int>(r.outcome)];
                } else {
                    Key(w, "outcome", "not_written");  // valid, but the batch was refused as a whole
                }
                w.EndObject();
            }
            w.EndArray();
            w.Key("inserted");
            w.Int64(counts[0]);
            w.Key("updated");
            w.Int64(counts[1]);
            w.Key("unchanged");
            w.Int64(counts[2]);
            w.Key("superseded");
            w.Int64(counts[5]);
            w.Key("invalid");
            w.Int64(invalid);
            w.Key("written");
            w.Bool(!(atomic && any_invalid));
            w.EndObject();
            failed = atomic && any_invalid;
            storage::StoredAnswer a;
            a.status = failed || b == nullptr ? 422 : 200;
            a.body = Str(buf);
            return a;
        };
        if ((atomic && any_invalid) || changes.empty()) {
            bool failed = false;
            co_return Answer(render(nullptr, failed), false);
        }
        storage::WriteContext ctx;
        if (auto bad = WriteContextFor(req, who, fmt::format("POST /v1/libraries/{}/records", isil), atomic, ctx))
            co_return *bad;
        auto written = co_await exec.Run([&] {
            return storage::PushRecords(db, isil, changes, ctx, {},
                                        [&](const storage::BatchResult& b, bool& failed) { return render(&b, failed); });
        });
        if (written.status == storage::WriteStatus::kKeyReused) co_return KeyReused();
        if (written.status == storage::WriteStatus::kDone && written.result.summary.last_seq > 0) WakeWaiters();
        co_return Answer(written.answer, written.status == storage::WriteStatus::kReplayed);
    }

    // --- availability ----------------------------------------------------

    net::awaitable<HttpResponse> PostAvailability(const HttpRequest& req, const storage::TokenIdentity& who,
                                                  const std::string& isil, bool atomic) {
        auto cfg = config();
        const std::string type = req.MediaType();
        if (type != "application/json")
            co_return Problem(415, "unsupported-media-type", "Unsupported media type",
                              "send availability updates as application/json: [{\"barcode\": …, \"status\": …}, …]");
        protocols::BatchLimits limits;
        limits.max_items = static_cast<std::size_t>(cfg->api_max_batch_items);
        auto parsed = protocols::ParseAvailabilityBatch(req.body, limits);
        if (!parsed) co_return BatchProblem(parsed.error(), "The updates do not follow the format");
        const std::size_t n = parsed->size();
        std::vector<std::optional<ItemError>> errors(n);
        std::vector<std::size_t> position;
        std::vector<storage::AvailabilityUpdate> updates;
        for (std::size_t i = 0; i < n; ++i) {
            auto& item = (*parsed)[i];
            if (!item) {
                errors[i] = ItemError{422, "schema-violation", "The update does not follow the format", item.error(),
                                      item.error_pointer()};
                continue;
            }
            storage::AvailabilityUpdate u;
            u.barcode = item->barcode;
            u.item_id = item->item_id;
            u.status = item->status;
            u.due_date = item->due_date;
            u.changed_at = item->changed_at;
            position.push_back(i);
            updates.push_back(std::move(u));
        }
        const bool any_invalid = updates.size() < n;
        auto render = [errors, position, atomic, any_invalid, n](const storage::AvailabilityBatch* b, bool& failed) {
            std::vector<const storage::AvailabilityResult*> by_pos(n, nullptr);
            if (b)
                for (std::size_t k = 0; k < position.size(); ++k) by_pos[position[k]] = &b->items[k];
            const bool refused = atomic && (any_invalid || (b && b->not_found > 0));
            rapidjson::StringBuffer buf;
            Writer w(buf);
            long long invalid = 0;
            w.StartObject();
            w.Key("results");
            w.StartArray();
            for (std::size_t i = 0; i < n; ++i) {
                w.StartObject();
                w.Key("position");
                w.Uint64(i);
                if (errors[i]) {
                    ++invalid;
                    WriteItemError(w, *errors[i]);
                } else if (by_pos[i]) {
                    const auto& r = *by_pos[i];
                    if (!r.barcode.empty()) Key(w, "barcode", r.barcode);
                    if (r.item_id) {
                        w.Key("item_id");
                        w.Int64(r.item_id);
                    }
                    Key(w, "outcome", storage::ToString(r.outcome));
                    w.Key("status");
                    w.Int(r.outcome == storage::AvailabilityOutcome::kNotFound ? 404 : 200);
                    if (r.version) {
                        w.Key("version");
                        w.Int(r.version);
                    }
                    if (!r.stored_changed_at.empty()) Key(w, "stored_changed_at", r.stored_changed_at);
                } else {
                    Key(w, "outcome", "not_written");
                }
                w.EndObject();
            }
            w.EndArray();
            auto count = [&](const char* k, long long v) {
                w.Key(k);
                w.Int64(v);
            };
            count("updated", b ? b->updated : 0);
            count("unchanged", b ? b->unchanged : 0);
            count("stale", b ? b->stale : 0);
            count("not_found", b ? b->not_found : 0);
            count("superseded", b ? b->superseded : 0);
            count("invalid", invalid);
            w.Key("written");
            w.Bool(!refused && b != nullptr);
            w.EndObject();
            failed = refused;
            storage::StoredAnswer a;
            a.status = refused || b == nullptr ? 422 : 200;
            a.body = Str(buf);
            return a;
        };
        if ((atomic && any_invalid) || updates.empty()) {
            bool failed = false;
            co_return Answer(render(nullptr, failed), false);
        }
        storage::WriteContext ctx;
        if (auto bad = WriteContextFor(req, who, fmt::format("POST /v1/libraries/{}/availability", isil), atomic, ctx))
            co_return *bad;
        auto written = co_await exec.Run([&] {
            return storage::PushAvailability(
                db, isil, updates, ctx,
                [&](const storage::AvailabilityBatch& b, bool& failed) { return render(&b, failed); });
        });
        if (written.status == storage::WriteStatus::kKeyReused) co_return KeyReused();
        if (written.status == storage::WriteStatus::kDone && written.result.last_seq > 0) WakeWaiters();
        co_return Answer(written.answer, written.status == storage::WriteStatus::kReplayed);
    }

    // --- reads -----------------------------------------------------------

    net::awaitable<HttpResponse> GetRecord(const std::string& isil, const std::string& local_id, bool holdings_only) {
        auto rec = co_await exec.Run([&] { return storage::ReadRecord(db, isil, local_id); });
        if (!rec) {
            auto lib = co_await exec.Run([&] { return storage::GetLibrary(db, isil); });
            if (!lib)
                co_return Problem(404, "unknown-library", "Unknown library",
                                  fmt::format("library {} is not registered on this node", isil));
            co_return Problem(404, "not-found", "Not found",
                              fmt::format("library {} has no record '{}'", isil, Printable(local_id)));
        }
        if (rec->deleted) {
            auto r = Problem(410, "record-deleted", "Record deleted",
                             fmt::format("record '{}' of {} was deleted (version {})", Printable(local_id), isil,
                                         rec->version));
            co_return r;
        }
        rapidjson::StringBuffer buf;
        Writer w(buf);
        if (holdings_only) {
            w.StartObject();
            Key(w, "library", isil);
            Key(w, "id", local_id);
            w.Key("holdings");
            w.StartArray();
            for (const auto& h : rec->holdings) WriteHolding(w, h);
            w.EndArray();
            w.EndObject();
        } else {
            WriteRecord(w, *rec, true);
        }
        auto r = JsonResponse(200, Str(buf));
        r.headers.emplace_back("ETag", Etag(rec->version));
        co_return r;
    }

    net::awaitable<HttpResponse> GetWork(const std::string& id_text) {
        auto id = ParseInt(id_text);
        if (!id || *id <= 0)
            co_return Problem(400, "bad-parameter", "Bad parameter",
                              fmt::format("'{}' is not a work id (a positive integer)", Printable(id_text)));
        const long long work_id = *id;
        auto records = co_await exec.Run([&] { return storage::ReadWork(db, work_id); });
        if (records.empty())
            co_return Problem(404, "not-found", "Not found",
                              fmt::format("there is no work {} (it may have merged into another one)", work_id));
        std::map<std::string, std::pair<long long, long long>> per_library;  // copies, available
        for (const auto& r : records)
            for (const auto& h : r.holdings) {
                auto& p = per_library[h.library];
                ++p.first;
                if (h.status == "available") ++p.second;
            }
        rapidjson::StringBuffer buf;
        Writer w(buf);
        w.StartObject();
        w.Key("work_id");
        w.Int64(work_id);
        w.Key("availability");
        w.StartArray();
        for (const auto& [lib, p] : per_library) {
            w.StartObject();
            Key(w, "library", lib);
            w.Key("copies");
            w.Int64(p.first);
            w.Key("available");
            w.Int64(p.second);
            w.EndObject();
        }
        w.EndArray();
        w.Key("records");
        w.StartArray();
        for (const auto& r : records) WriteRecord(w, r, true);
        w.EndArray();
        w.EndObject();
        co_return JsonResponse(200, Str(buf));
    }

    net::awaitable<HttpResponse> GetChanges(const HttpRequest& req) {
        auto cfg = config();
        std::string qerr;
        auto q = ParseQuery(req.query, qerr);
        if (!qerr.empty()) co_return Problem(400, "bad-parameter", "Bad parameter", qerr);
        for (const auto& [k, v] : q)
            if (k != "since" && k != "limit" && k != "wait" && k != "embed" && k != "origin" && k != "exclude_origin")
                co_return Problem(400, "bad-parameter", "Bad parameter",
                                  fmt::format("unknown parameter '{}'; /v1/changes takes since, limit, wait, embed, "
                                              "origin and exclude_origin",
                                              Printable(k)));
        storage::ChangeFilter filter;
        if (auto it = q.find("embed"); it != q.end()) {
            if (it->second != "records" && it->second != "none")
                co_return Problem(400, "bad-parameter", "Bad parameter", "embed takes records or none");
            filter.embed = it->second == "records";
        }
        for (auto [key, out] : {std::pair{"origin", &filter.origin}, std::pair{"exclude_origin", &filter.exclude_origin}})
            if (auto it = q.find(key); it != q.end()) {
                auto isil = protocols::NormalizeIsil(it->second);
                if (!isil)
                    co_return Problem(400, "bad-parameter", "Bad parameter",
                                      fmt::format("{}={} is not an ISIL: {}", key, Printable(it->second), isil.error()));
                *out = *isil;
            }
        auto number = [&](const char* key, long long dflt, long long lo, long long& out) -> std::optional<HttpResponse> {
            auto it = q.find(key);
            if (it == q.end()) {
                out = dflt;
                return std::nullopt;
            }
            std::string v = it->second;
            if (std::string_view(key) == "wait" && !v.empty() && v.back() == 's') v.pop_back();  // wait=30s
            auto n = ParseInt(v);
            if (!n || *n < lo)
                return Problem(400, "bad-parameter", "Bad parameter",
                               fmt::format("{}={} is not an integer of at least {}", key, Printable(it->second), lo));
            out = *n;
            return std::nullopt;
        };
        long long since = 0, limit = 0, wait = 0;
        if (auto bad = number("since", 0, 0, since)) co_return *bad;
        if (auto bad = number("limit", std::min(100, cfg->api_max_changes), 1, limit)) co_return *bad;
        if (auto bad = number("wait", 0, 0, wait)) co_return *bad;
        limit = std::min<long long>(limit, cfg->api_max_changes);
        wait = std::min<long long>(wait, cfg->api_max_wait_seconds);
        const auto deadline = Clock::now() + std::chrono::seconds(wait);
        const int lim = static_cast<int>(limit);
        for (;;) {
            auto page = co_await exec.Run([&] { return storage::ReadChanges(db, since, lim, filter); });
            if (since > page.head) {
                auto p = protocols::MakeProblem(
                    409, "since-beyond-head", "Cursor beyond the end of the feed",
                    fmt::format("since={} but this node's feed ends at {}. A cursor can only come from this feed; if "
                                "the node's database was restored from a backup, start again from a cursor it has",
                                since, page.head));
                p.extensions.emplace_back("head", std::to_string(page.head));
                co_return ProblemResponse(p);
            }
            if (since + 1 < page.oldest) {
                auto p = protocols::MakeProblem(
                    410, "changes-expired", "Changes no longer kept",
                    fmt::format("the changes after {} up to {} are no longer kept; copy the catalogue again and "
                                "follow the feed from {}",
                                since, page.oldest - 1, page.oldest - 1));
                p.extensions.emplace_back("oldest", std::to_string(page.oldest));
                co_return ProblemResponse(p);
            }
            if (!page.changes.empty() || stopped || Clock::now() >= deadline)
                co_return JsonResponse(200, ChangePageJson(page, since, filter.embed));
            // Our own commits wake us at once; another writer's (a bulk load)
            // within a second.
            net::steady_timer timer(co_await net::this_coro::executor);
            timer.expires_at(std::min(deadline, Clock::now() + std::chrono::seconds(1)));
            auto it = waiters.insert(waiters.end(), &timer);
            co_await timer.async_wait(kTuple);
            waiters.erase(it);
        }
    }


    // GET /v1/ibl/inbox[?wait=N&cursor=C]: the lender's open tasks. With
    // wait, held until a task comes or changes past `cursor` (the last
    // answer's), at most N seconds (api.max_wait_seconds).
    net::awaitable<HttpResponse> GetInbox(const HttpRequest& req, const std::string& library) {
        std::string qerr;
        auto q = ParseQuery(req.query, qerr);
        if (!qerr.empty()) co_return Problem(400, "bad-parameter", "Bad parameter", qerr);
        long long wait = 0, cursor = 0;
        for (auto& [k, v] : q) {
            long long* to = k == "wait" ? &wait : k == "cursor" ? &cursor : nullptr;
            if (!to)
                co_return Problem(400, "bad-parameter", "Bad parameter",
                                  fmt::format("unknown parameter '{}'; /v1/ibl/inbox takes wait and cursor",
                                              Printable(k.substr(0, 40))));
            std::string value = v;
            if (k == "wait" && !value.empty() && value.back() == 's') value.pop_back();
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), *to);
            if (ec != std::errc{} || end != value.data() + value.size() || *to < 0)
                co_return Problem(400, "bad-parameter", "Bad parameter",
                                  fmt::format("{} must be a whole number, 0 or more", k));
        }
        const auto cfg = config();
        wait = std::min<long long>(wait, cfg->api_max_wait_seconds);
        const auto deadline = Clock::now() + std::chrono::seconds(wait);
        for (;;) {
            long long now_cursor = 0;
            auto tasks = co_await exec.Run([&] { return storage::IblInbox(db, library, &now_cursor); });
            if (now_cursor > cursor || wait == 0 || stopped || Clock::now() >= deadline)
                co_return JsonResponse(200, IblInboxJson(library, tasks, now_cursor));
            // IBL commits of this node wake us at once (courier), others
            // within a second.
            net::steady_timer timer(co_await net::this_coro::executor);
            timer.expires_at(std::min(deadline, Clock::now() + std::chrono::seconds(1)));
            auto it = waiters.insert(waiters.end(), &timer);
            co_await timer.async_wait(kTuple);
            waiters.erase(it);
        }
    }

    // GET /v1/digest[?origin=ISIL | ?library=ISIL]: what `iblctl sync verify` compares.
    net::awaitable<HttpResponse> GetDigest(const HttpRequest& req) {
        std::string qerr;
        auto q = ParseQuery(req.query, qerr);
        if (!qerr.empty()) co_return Problem(400, "bad-parameter", "Bad parameter", qerr);
        std::string origin, library;
        for (const auto& [k, v] : q) {
            if (k != "origin" && k != "library")
                co_return Problem(400, "bad-parameter", "Bad parameter",
                                  fmt::format("unknown parameter '{}'; /v1/digest takes origin or library", Printable(k)));
            auto isil = protocols::NormalizeIsil(v);
            if (!isil)
                co_return Problem(400, "bad-parameter", "Bad parameter",
                                  fmt::format("{}={} is not an ISIL: {}", k, Printable(v), isil.error()));
            (k == "origin" ? origin : library) = *isil;
        }
        std::vector<protocols::feed::LibraryDigest> libs;
        std::vector<protocols::feed::RecordDigest> recs;
        co_await exec.Run([&] {
            libs = storage::LibraryDigests(db, origin);
            if (!library.empty()) recs = storage::RecordDigests(db, library);
            return 0;
        });
        co_return JsonResponse(200, DigestJson(libs, recs, !library.empty()));
    }

    // --- routing ---------------------------------------------------------

    net::awaitable<HttpResponse> Route(const HttpRequest& req, std::string& route) {
        std::vector<std::string> seg;
        {
            std::string_view p(req.path);
            p.remove_prefix(4);  // "/v1/"
            while (true) {
                auto slash = p.find('/');
                auto d = protocols::PercentDecode(p.substr(0, slash), false);
                if (!d)
                    co_return Problem(400, "bad-target", "Bad request target",
                                      "malformed percent-encoding in the path");
                seg.push_back(*d);
                if (slash == std::string_view::npos) break;
                p.remove_prefix(slash + 1);
            }
        }
        auto method_not_allowed = [&](const char* allow) {
            auto r = Problem(405, "method-not-allowed", "Method not allowed",
                             fmt::format("{} accepts {}", route, allow));
            r.headers.emplace_back("Allow", allow);
            return r;
        };
        auto not_found = [&] {
            return Problem(404, "not-found", "Not found",
                           fmt::format("there is no resource at {}; see docs/api/openapi.yaml for the /v1 API",
                                       Printable(req.path)));
        };
        // Which route, before anything else, so that metrics and errors name it.
        enum class R {
            kNone, kChanges, kDigest, kWork, kRecords, kRecord, kHoldings, kAvailability, kIblRequests, kIblRequest,
            kIblInbox, kIblTask, kIblAction, kIblTaskSlip, kIblRequestSlip
        } which = R::kNone;
        if (seg.size() == 1 && seg[0] == "changes") which = R::kChanges, route = "/v1/changes";
        else if (seg.size() == 2 && seg[0] == "ibl" && seg[1] == "requests")
            which = R::kIblRequests, route = "/v1/ibl/requests";
        else if (seg.size() == 3 && seg[0] == "ibl" && seg[1] == "requests" && !seg[2].empty())
            which = R::kIblRequest, route = "/v1/ibl/requests/{id}";
        else if (seg.size() == 2 && seg[0] == "ibl" && seg[1] == "inbox") which = R::kIblInbox, route = "/v1/ibl/inbox";
        else if (seg.size() == 3 && seg[0] == "ibl" && seg[1] == "inbox" && !seg[2].empty())
            which = R::kIblTask, route = "/v1/ibl/inbox/{task}";
        else if (seg.size() == 4 && seg[0] == "ibl" && seg[1] == "requests" && !seg[2].empty() && seg[3] == "actions")
            which = R::kIblAction, route = "/v1/ibl/requests/{id}/actions";
        else if (seg.size() == 4 && seg[0] == "ibl" && seg[1] == "requests" && !seg[2].empty() && seg[3] == "slip")
            which = R::kIblRequestSlip, route = "/v1/ibl/requests/{id}/slip";
        else if (seg.size() == 4 && seg[0] == "ibl" && seg[1] == "inbox" && !seg[2].empty() && seg[3] == "slip")
            which = R::kIblTaskSlip, route = "/v1/ibl/inbox/{task}/slip";
        else if (seg.size() == 1 && seg[0] == "digest") which = R::kDigest, route = "/v1/digest";
        else if (seg.size() == 2 && seg[0] == "works") which = R::kWork, route = "/v1/works/{id}";
        else if (seg.size() >= 3 && seg[0] == "libraries") {
            if (seg.size() == 3 && seg[2] == "records") which = R::kRecords, route = "/v1/libraries/{isil}/records";
            else if (seg.size() == 3 && seg[2] == "availability")
                which = R::kAvailability, route = "/v1/libraries/{isil}/availability";
            else if (seg.size() == 4 && seg[2] == "records" && !seg[3].empty())
                which = R::kRecord, route = "/v1/libraries/{isil}/records/{id}";
            else if (seg.size() == 5 && seg[2] == "records" && seg[4] == "holdings" && !seg[3].empty())
                which = R::kHoldings, route = "/v1/libraries/{isil}/records/{id}/holdings";
        }
        if (which == R::kNone) co_return not_found();
        const std::string& m = req.method;
        std::string allow;
        for (const auto& r : ApiRoutes())
            if (r.path == route) allow += (allow.empty() ? "" : ", ") + r.method;
        bool allowed = false;
        for (const auto& r : ApiRoutes()) allowed = allowed || (r.path == route && r.method == m);
        if (!allowed) co_return method_not_allowed(allow.c_str());
        auto auth = co_await Authenticate(req);
        if (auto* r = std::get_if<HttpResponse>(&auth)) co_return *r;
        const auto& who = std::get<storage::TokenIdentity>(auth);
        if (which == R::kChanges) co_return co_await GetChanges(req);
        if (which == R::kDigest) co_return co_await GetDigest(req);
        if (which == R::kWork) co_return co_await GetWork(seg[1]);
        if (which == R::kIblRequests) co_return co_await PostIblRequest(&db, &exec, &courier, &req, &who.library);
        if (which == R::kIblRequest) co_return co_await GetIblRequest(&db, &exec, &who.library, &seg[2]);
        if (which == R::kIblInbox) co_return co_await GetInbox(req, who.library);
        if (which == R::kIblTask) co_return co_await PostIblAnswer(&db, &exec, &courier, &req, &who.library, &seg[2]);
        if (which == R::kIblAction) co_return co_await PostIblAction(&db, &exec, &courier, &req, &who.library, &seg[2]);
        if (which == R::kIblTaskSlip) co_return co_await GetIblSlip(&db, &exec, &who.library, &seg[2], true);
        if (which == R::kIblRequestSlip) co_return co_await GetIblSlip(&db, &exec, &who.library, &seg[2], false);

        auto isil = protocols::NormalizeIsil(seg[1]);
        if (!isil)
            co_return Problem(400, "invalid-isil", "Invalid ISIL",
                              fmt::format("'{}' is not an ISIL of this network: {}", Printable(seg[1]), isil.error()));
        const bool write = m != "GET";
        if (write && *isil != who.library)
            co_return Problem(403, "forbidden-library", "Forbidden",
                              fmt::format("this token belongs to {} and may write only its records and copies, not "
                                          "those of {}",
                                          who.library, *isil));
        std::string qerr;
        auto q = ParseQuery(req.query, qerr);
        if (!qerr.empty()) co_return Problem(400, "bad-parameter", "Bad parameter", qerr);
        bool atomic = false;
        if (auto it = q.find("atomic"); it != q.end()) {
            if (it->second != "true" && it->second != "false")
                co_return Problem(400, "bad-parameter", "Bad parameter", "atomic takes true or false");
            atomic = it->second == "true";
        }
        switch (which) {
            case R::kRecords: co_return co_await PostRecords(req, who, *isil, atomic);
            case R::kAvailability: co_return co_await PostAvailability(req, who, *isil, atomic);
            case R::kHoldings: co_return co_await GetRecord(*isil, seg[3], true);
            case R::kRecord:
                if (m == "GET") co_return co_await GetRecord(*isil, seg[3], false);
                co_return co_await PutOrDeleteRecord(req, who, *isil, seg[3]);
            default: co_return not_found();
        }
    }
};

std::string DigestJson(const std::vector<protocols::feed::LibraryDigest>& libraries,
                       const std::vector<protocols::feed::RecordDigest>& records, bool with_records) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("libraries");
    w.StartArray();
    for (const auto& l : libraries) {
        w.StartObject();
        Key(w, "isil", l.isil);
        w.Key("records");
        w.Int64(l.records);
        Key(w, "records_sum", l.records_sum);
        w.Key("holdings");
        w.Int64(l.holdings);
        Key(w, "holdings_sum", l.holdings_sum);
        w.EndObject();
    }
    w.EndArray();
    if (with_records) {
        w.Key("records");
        w.StartArray();
        for (const auto& r : records) {
            w.StartObject();
            Key(w, "id", r.local_id);
            Key(w, "checksum", r.checksum);
            w.Key("holdings");
            w.Int64(r.holdings);
            Key(w, "holdings_sum", r.holdings_sum);
            w.EndObject();
        }
        w.EndArray();
    }
    w.EndObject();
    return Str(buf);
}

std::string ChangePageJson(const storage::ChangePage& page, long long since, bool embed) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("changes");
    w.StartArray();
    for (const auto& c : page.changes) {
        w.StartObject();
        w.Key("seq");
        w.Int64(c.seq);
        Key(w, "at", c.changed_at);
        Key(w, "entity", c.entity);
        Key(w, "op", c.op);
        Key(w, "library", c.library);
        w.Key("version");
        w.Int(c.version);
        if (c.entity == "record") {
            Key(w, "id", c.local_id);
            w.Key("record_id");
            w.Int64(c.entity_id);
            Key(w, "href", RecordHref(c.library, c.local_id));
        } else {
            Key(w, "barcode", c.local_id);
            w.Key("item_id");
            w.Int64(c.entity_id);
            Key(w, "record", c.record_local_id);
            Key(w, "record_href", RecordHref(c.library, c.record_local_id));
            w.Key("holding");
            if (c.holding) WriteHolding(w, *c.holding);
            else w.Null();
        }
        w.EndObject();
    }
    w.EndArray();
    if (embed) {
        w.Key("records");
        w.StartArray();
        for (const auto& r : page.states) {
            w.StartObject();
            Key(w, "library", r.library);
            Key(w, "id", r.local_id);
            w.Key("deleted");
            w.Bool(r.deleted);
            if (!r.deleted) {
                Key(w, "format", r.format);
                Key(w, "raw", r.raw);
                w.Key("holdings");
                w.StartArray();
                for (const auto& h : r.holdings) WriteHolding(w, h);
                w.EndArray();
            }
            w.EndObject();
        }
        w.EndArray();
        w.Key("libraries");
        w.StartArray();
        for (const auto& l : page.libraries) {
            w.StartObject();
            Key(w, "isil", l.isil);
            Key(w, "name", l.name);
            KeyOpt(w, "province", l.province);
            Key(w, "poi", l.poi);
            w.EndObject();
        }
        w.EndArray();
    }
    w.Key("next_since");
    w.Int64(std::max(since, page.next_since));
    w.Key("head");
    w.Int64(page.head);
    w.EndObject();
    return Str(buf);
}

const std::vector<ApiRoute>& ApiRoutes() {
    static const std::vector<ApiRoute> kRoutes{
        {"GET", "/v1/changes"},
        {"GET", "/v1/digest"},
        {"GET", "/v1/works/{id}"},
        {"POST", "/v1/ibl/requests"},
        {"GET", "/v1/ibl/requests/{id}"},
        {"GET", "/v1/ibl/inbox"},
        {"POST", "/v1/ibl/inbox/{task}"},
        {"POST", "/v1/ibl/requests/{id}/actions"},
        {"GET", "/v1/ibl/requests/{id}/slip"},
        {"GET", "/v1/ibl/inbox/{task}/slip"},
        {"POST", "/v1/libraries/{isil}/records"},
        {"POST", "/v1/libraries/{isil}/availability"},
        {"GET", "/v1/libraries/{isil}/records/{id}"},
        {"PUT", "/v1/libraries/{isil}/records/{id}"},
        {"DELETE", "/v1/libraries/{isil}/records/{id}"},
        {"GET", "/v1/libraries/{isil}/records/{id}/holdings"},
    };
    return kRoutes;
}

PushApi::PushApi(storage::Database& db, DbExecutor& exec, std::function<std::shared_ptr<const Config>()> config,
                 IblCourier& ibl)
    : impl_(std::make_unique<Impl>(db, exec, std::move(config), ibl)) {}
PushApi::~PushApi() = default;

net::awaitable<HttpResponse> PushApi::Handle(const HttpRequest& req) {
    std::string route = "/v1";
    HttpResponse r;
    std::exception_ptr failure;
    try {
        r = co_await impl_->Route(req, route);
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) r = impl_->Failure(req, failure);
    r.route = route;
    co_return r;
}

void PushApi::ChangesCommitted() { impl_->WakeWaiters(); }

void PushApi::Stop() {
    impl_->stopped = true;
    impl_->WakeWaiters();
}

}  // namespace iblsync::daemon
