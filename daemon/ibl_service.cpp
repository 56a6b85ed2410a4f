#include "daemon/ibl_service.hpp"

#include <strings.h>

#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/ibl_courier.hpp"
#include "daemon/log.hpp"
#include "protocols/iso18626.hpp"
#include "storage/access.hpp"
#include "storage/database.hpp"
#include "storage/ibl.hpp"

namespace iblsync::daemon {

namespace iso = protocols::iso18626;

namespace {

HttpResponse Problem(int status, const std::string& slug, std::string title, std::string detail) {
    auto r = ProblemResponse(protocols::MakeProblem(status, slug, std::move(title), std::move(detail)));
    r.route = kIso18626Path;
    return r;
}

HttpResponse Xml(const iso::Message& m) {
    HttpResponse r;
    r.content_type = "application/xml";
    r.body = iso::Write(m);
    r.route = kIso18626Path;
    return r;
}

iso::Time Now() { return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()); }

const char* KindOf(const iso::Message& m) {
    switch (m.index()) {
        case 0: return "request";
        case 2: return "supplyingAgencyMessage";
        case 4: return "requestingAgencyMessage";
        default: return "confirmation";
    }
}

const iso::Header* HeaderOf(const iso::Message& m) {
    if (const auto* r = std::get_if<iso::Request>(&m)) return &r->header;
    if (const auto* s = std::get_if<iso::SupplyingAgencyMessage>(&m)) return &s->header;
    if (const auto* q = std::get_if<iso::RequestingAgencyMessage>(&m)) return &q->header;
    return nullptr;
}

}  // namespace

struct IblService::Impl {
    storage::Database& db;
    DbExecutor& exec;
    IblCourier& courier;
};

IblService::IblService(storage::Database& db, DbExecutor& exec, IblCourier& courier)
    : impl_(new Impl{db, exec, courier}) {}
IblService::~IblService() = default;

// g++ 12 warns falsely about the coroutine frame's operator delete.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
net::awaitable<HttpResponse> IblService::Handle(const HttpRequest& req) {
    const auto received = Now();
    if (req.method != "POST") {
        auto r = Problem(405, "method-not-allowed", "Method not allowed",
                         "ISO 18626 messages are sent with POST, the XML document as the body");
        r.headers.emplace_back("Allow", "POST");
        co_return r;
    }
    const auto type = req.MediaType();
    if (type != "application/xml" && type != "text/xml")
        co_return Problem(415, "unsupported-media-type", "Unsupported media type",
                          fmt::format("send the message as application/xml or text/xml, not {}",
                                      type.empty() ? "without a Content-Type" : type));
    if (req.body.size() > iso::kMaxMessageBytes)
        co_return Problem(413, "message-too-large", "Message too large",
                          fmt::format("an ISO 18626 message may have {} bytes at most; this one has {}",
                                      iso::kMaxMessageBytes, req.body.size()));
    // Who sends: a library system with its library's token, or a POI node
    // with its node token (issued to the node's ISIL).
    const std::string auth = req.Header("Authorization");
    if (auth.size() < 8 || strncasecmp(auth.c_str(), "Bearer ", 7) != 0) {
        auto r = Problem(401, "unauthorized", "Token required",
                         "send the library's or the POI node's token as 'Authorization: Bearer iblt_…' (an admin "
                         "issues one with 'iblctl token issue ISIL')");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"iblsync\"");
        co_return r;
    }
    std::string token = auth.substr(7);
    while (!token.empty() && token.front() == ' ') token.erase(0, 1);
    while (!token.empty() && token.back() == ' ') token.pop_back();
    std::optional<storage::TokenIdentity> who;
    try {
        who = co_await impl_->exec.Run([&] { return storage::Authenticate(impl_->db, token); });
    } catch (const storage::DatabaseError&) {
        who.reset();
        token.clear();  // marks the failure; no co_await inside a catch
    }
    if (token.empty()) {
        auto r = Problem(503, "database-unavailable", "Database unavailable",
                         "the node cannot reach its database; nothing was taken. Send the message again later");
        r.headers.emplace_back("Retry-After", "5");
        co_return r;
    }
    if (!who) {
        auto r = Problem(401, "invalid-token", "Invalid token",
                         "the token is unknown, revoked or wrong; ask the node's admin for a new one");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"iblsync\", error=\"invalid_token\"");
        co_return r;
    }
    if (!who->library_enabled)
        co_return Problem(403, "library-disabled", "Library disabled",
                          fmt::format("{} is disabled on this node; its admin can enable it again", who->library));

    auto parsed = iso::Parse(req.body);
    if (auto* failure = std::get_if<iso::ParseError>(&parsed)) {
        auto confirmation = iso::ConfirmationOf(*failure, received, Now());
        spdlog::info("iso18626 message refused sender={} kind={} request_id={} error={} value={}", who->library,
                     failure->kind.empty() ? "unknown" : failure->kind,
                     Quote(failure->requesting_agency_request_id), iso::ToString(failure->error.type),
                     Quote(failure->error.value));
        if (!confirmation)
            co_return Problem(400, "not-iso18626", "Not an ISO 18626 message",
                              fmt::format("the body is not an ISO 18626 request, supplyingAgencyMessage or "
                                          "requestingAgencyMessage: {}",
                                          failure->error.value));
        co_return Xml(*confirmation);
    }
    const auto& message = std::get<iso::Parsed>(parsed).message;
    const auto* header = HeaderOf(message);
    if (!header)
        co_return Problem(400, "confirmation-not-expected", "A confirmation is not a message",
                          "a confirmation answers a message in the HTTP response to it; it is never sent on its own");
    storage::InboundOutcome outcome;
    std::string failed;
    const auto settings = impl_->courier.Settings();
    try {
        outcome = co_await impl_->exec.Run(
            [&] { return storage::ApplyInbound(impl_->db, message, req.body, who->library, settings); });
    } catch (const storage::DatabaseUnavailable&) {
        failed = "unavailable";
    } catch (const std::exception& e) {
        failed = e.what();
    }
    if (!failed.empty()) {
        if (failed != "unavailable")
            spdlog::error("iso18626 message failed sender={} kind={} request_id={} error={}", who->library,
                          KindOf(message), Quote(header->requesting_agency_request_id), Quote(failed));
        // Not confirmed: the sender keeps the message and sends it again.
        auto r = failed == "unavailable"
                     ? Problem(503, "database-unavailable", "Database unavailable",
                               "the node cannot reach its database; nothing was taken. Send the message again later")
                     : Problem(500, "internal", "Internal error",
                               "the message was not taken; nothing changed. The node's log has the cause");
        r.headers.emplace_back("Retry-After", "5");
        co_return r;
    }
    if (outcome.error)
        spdlog::info("iso18626 message refused sender={} kind={} requester={} request_id={} error={} value={}",
                     who->library, KindOf(message), header->requesting_agency.value,
                     Quote(header->requesting_agency_request_id), iso::ToString(outcome.error->type),
                     Quote(outcome.error->value));
    else {
        impl_->courier.Wake();  // an Unfilled may have sent the request on to a lender of another node
        spdlog::debug("iso18626 message taken sender={} kind={} request={} state={} duplicate={}", who->library,
                      KindOf(message), outcome.request, outcome.state, outcome.duplicate);
    }
    co_return Xml(iso::ConfirmationOf(message, received, Now(), outcome.error));
}
#pragma GCC diagnostic pop

}  // namespace iblsync::daemon
