#include "daemon/ibl_api.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "daemon/ibl_courier.hpp"
#include "protocols/code128.hpp"
#include "protocols/identifiers.hpp"
#include "protocols/marcxml.hpp"  // XmlEscape
#include "protocols/isil.hpp"
#include "storage/ibl.hpp"
#include "storage/ibl_admin.hpp"

namespace iblsync::daemon {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

HttpResponse Problem(int status, const std::string& slug, std::string title, std::string detail,
                     std::string pointer = {}) {
    auto p = protocols::MakeProblem(status, slug, std::move(title), std::move(detail));
    p.pointer = std::move(pointer);
    return ProblemResponse(p);
}

void Key(Writer& w, const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void WriteRequest(Writer& w, const storage::IblRequestView& r) {
    w.StartObject();
    if (r.role == "supplier") {
        w.Key("task");
        w.Int64(r.task);
    }
    Key(w, "id", r.request_id);
    Key(w, "requester", r.requester);
    Key(w, "lender", r.lender);
    Key(w, "state", r.state);
    w.Key("cancel_pending");
    w.Bool(r.cancel_pending);
    w.Key("renew_pending");
    w.Bool(r.renew_pending);
    w.Key("received");
    w.Bool(r.received);
    w.Key("shipped_return");
    w.Bool(r.shipped_return);
    w.Key("conditions_to_accept");
    w.Bool(r.conditional);
    Key(w, "service", r.service_type);
    Key(w, "title", r.title);
    Key(w, "isbn", r.isbn);
    Key(w, "patron_ref", r.patron_ref);
    Key(w, "pickup", r.pickup);
    if (r.work_id > 0) {
        w.Key("work_id");
        w.Int64(r.work_id);
    }
    if (!r.rota.empty()) {
        w.Key("lenders");
        w.StartArray();
        for (const auto& l : r.rota) w.String(l.c_str());
        w.EndArray();
        w.Key("lender_index");
        w.Int(r.rota_index);
    }
    if (!r.due_date.empty()) Key(w, "due_date", r.due_date);
    if (!r.answer_by.empty()) Key(w, "answer_by", r.answer_by);
    if (!r.offered_cost.empty()) Key(w, "offered_cost", r.offered_cost);
    if (!r.loan_condition.empty()) Key(w, "loan_condition", r.loan_condition);
    if (!r.item_id.empty()) Key(w, "item_barcode", r.item_id);
    Key(w, "created_at", r.created_at);
    Key(w, "updated_at", r.updated_at);
    w.EndObject();
}

std::string Html(const std::string& s) { return protocols::marc::XmlEscape(s); }

// The slip that travels with the item in its envelope: who sends it to
// whom, for which request, and the two barcodes the POI's sorting scans.
std::string SlipPage(const storage::IblSlip& s) {
    const auto& r = s.request;
    auto row = [](const char* k, const std::string& v) {
        return fmt::format("<tr><th>{}</th><td>{}</td></tr>", k, v.empty() ? "&#8211;" : Html(v));
    };
    std::string page = fmt::format(
        "<!DOCTYPE html>\n<html lang=\"nl\"><head><meta charset=\"utf-8\"><title>IBL {}</title>"
        "<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}"
        "th{{text-align:left;padding-right:1em}}.code{{margin:1em 0}}@media print{{body{{margin:0}}}}</style>"
        "</head><body><h1>Interbibliothecair leenverkeer</h1><table>",
        Html(r.request_id));
    page += row("Van / from", fmt::format("{} ({})", s.lender_name, r.lender));
    page += row("Naar / to", fmt::format("{} ({})", s.requester_name, r.requester));
    page += row("Afhaalpunt / pickup", r.pickup);
    page += row("Aanvraag / request", r.request_id);
    page += row("Titel / title", r.title);
    page += row("Exemplaar / item", r.item_id);
    page += row("Terug op / due", r.due_date.substr(0, 10));
    page += row("Voorwaarden / conditions", r.loan_condition);
    page += "</table>";
    page += fmt::format("<h2>Heen / outbound</h2><div class=\"code\">{}</div>", protocols::code128::Svg(s.outbound));
    page += fmt::format("<h2>Terug / return</h2><div class=\"code\">{}</div>", protocols::code128::Svg(s.back));
    page += "</body></html>\n";
    return page;
}

// A patron reference is the library system's own opaque id for the
// patron's request: never a name, an e-mail address or a card number.
bool GoodPatronRef(const std::string& s) {
    if (s.empty() || s.size() > 64) return false;
    for (unsigned char c : s)
        if (!std::isalnum(c) && c != '-' && c != '_' && c != '.' && c != ':') return false;
    return true;
}

// The request's JSON, checked field by field; a problem response if it is not right.
std::variant<storage::NewIblRequest, HttpResponse> ReadNewRequest(const HttpRequest& req, const std::string& library) {
    auto bad = [](const std::string& detail, const std::string& pointer = {}) {
        return Problem(400, "invalid-ibl-request", "Invalid IBL request", detail, pointer);
    };
    if (req.MediaType() != "application/json")
        return Problem(415, "unsupported-media-type", "Unsupported media type",
                       "send the request as application/json");
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(req.body.data(), req.body.size());
    if (d.HasParseError()) return bad("the body is not JSON (or not valid UTF-8)");
    if (!d.IsObject()) return bad("the body must be a JSON object");
    storage::NewIblRequest out;
    out.library = library;
    for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) {
        const std::string name(it->name.GetString(), it->name.GetStringLength());
        const auto& v = it->value;
        const std::string pointer = "/" + name;
        auto text = [&](std::size_t max, std::string* to) -> std::optional<HttpResponse> {
            if (!v.IsString()) return bad(fmt::format("{} must be a string", name), pointer);
            if (v.GetStringLength() > max)
                return bad(fmt::format("{} may have {} characters at most", name, max), pointer);
            to->assign(v.GetString(), v.GetStringLength());
            return std::nullopt;
        };
        std::optional<HttpResponse> problem;
        if (name == "isbn") {
            std::string raw;
            problem = text(40, &raw);
            if (!problem) {
                auto isbn = protocols::NormalizeIsbn(raw);
                if (!isbn) problem = bad(fmt::format("isbn: {}", isbn.error()), pointer);
                else out.isbn = isbn.value();
            }
        } else if (name == "record") {
            if (!v.IsObject() || !v.HasMember("library") || !v.HasMember("id") || !v["library"].IsString() ||
                !v["id"].IsString() || v.MemberCount() != 2)
                problem = bad("record must be {\"library\": ISIL, \"id\": the record's id at that library}", pointer);
            else {
                auto isil = protocols::NormalizeIsil(v["library"].GetString());
                if (!isil) problem = bad(fmt::format("record.library: {}", isil.error()), pointer + "/library");
                else {
                    out.record_library = isil.value();
                    out.record_id = v["id"].GetString();
                    if (out.record_id.empty() || out.record_id.size() > 200)
                        problem = bad("record.id must have 1 to 200 characters", pointer + "/id");
                }
            }
        } else if (name == "patron_ref") {
            problem = text(64, &out.patron_ref);
            if (!problem && !GoodPatronRef(out.patron_ref))
                problem = bad("patron_ref must be your system's opaque reference (1-64 letters, digits, '-', '_', "
                              "'.', ':'); never send a patron's name or card number",
                              pointer);
        } else if (name == "pickup") {
            problem = text(100, &out.pickup);
        } else if (name == "note") {
            problem = text(500, &out.note);
        } else {
            problem = bad(fmt::format("unknown field '{}'; a request has isbn or record, patron_ref, pickup and note",
                                      name.substr(0, 64)),
                          pointer);
        }
        if (problem) return *problem;
    }
    if (out.isbn.empty() == out.record_id.empty())
        return bad("name the work with either isbn or record, not both and not neither");
    if (out.patron_ref.empty()) return bad("patron_ref is required", "/patron_ref");
    return out;
}

// A lender's answer, checked field by field.
std::variant<storage::TaskAnswer, HttpResponse> ReadAnswer(const HttpRequest& req) {
    auto bad = [](const std::string& detail, const std::string& pointer = {}) {
        return Problem(400, "invalid-ibl-answer", "Invalid answer", detail, pointer);
    };
    if (req.MediaType() != "application/json")
        return Problem(415, "unsupported-media-type", "Unsupported media type", "send the answer as application/json");
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(req.body.data(), req.body.size());
    if (d.HasParseError()) return bad("the body is not JSON (or not valid UTF-8)");
    if (!d.IsObject()) return bad("the body must be a JSON object");
    storage::TaskAnswer out;
    std::string answer;
    for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) {
        const std::string name(it->name.GetString(), it->name.GetStringLength());
        const auto& v = it->value;
        if (!v.IsString()) return bad(fmt::format("{} must be a string", name.substr(0, 64)), "/" + name);
        const std::string value(v.GetString(), v.GetStringLength());
        if (name == "answer") answer = value;
        else if (name == "reason") out.reason = value;
        else if (name == "due_date") out.due_date = value;
        else if (name == "retry_after") out.retry_after = value;
        else if (name == "cost") out.cost = value;
        else if (name == "conditions") out.conditions = value;
        else if (name == "item_barcode") out.item_barcode = value;
        else if (name == "note") out.note = value;
        else
            return bad(fmt::format("unknown field '{}'; an answer has answer, reason, due_date, retry_after, cost, "
                                   "conditions, item_barcode and note",
                                   name.substr(0, 64)),
                       "/" + name);
    }
    if (answer == "will_supply") out.answer = storage::LenderAnswer::kWillSupply;
    else if (answer == "expect_to_supply") out.answer = storage::LenderAnswer::kExpectToSupply;
    else if (answer == "unfilled") out.answer = storage::LenderAnswer::kUnfilled;
    else if (answer == "retry_possible") out.answer = storage::LenderAnswer::kRetryPossible;
    else if (answer == "shipped") out.answer = storage::LenderAnswer::kShipped;
    else if (answer == "overdue") out.answer = storage::LenderAnswer::kOverdue;
    else if (answer == "recalled") out.answer = storage::LenderAnswer::kRecalled;
    else if (answer == "returned") out.answer = storage::LenderAnswer::kReturned;
    else if (answer == "cancel_accepted") out.answer = storage::LenderAnswer::kCancelAccepted;
    else if (answer == "cancel_refused") out.answer = storage::LenderAnswer::kCancelRefused;
    else if (answer == "renew_granted") out.answer = storage::LenderAnswer::kRenewGranted;
    else if (answer == "renew_refused") out.answer = storage::LenderAnswer::kRenewRefused;
    else
        return bad("answer must be expect_to_supply, will_supply, unfilled, retry_possible, shipped, overdue, "
                   "recalled, returned, cancel_accepted, cancel_refused, renew_granted or renew_refused",
                   "/answer");
    if (out.reason.size() > 50 || !std::all_of(out.reason.begin(), out.reason.end(), [](unsigned char c) {
            return std::isalnum(c) != 0;
        }))
        return bad("reason is a code of letters and digits, at most 50, such as NotOnShelf", "/reason");
    if (!out.reason.empty() && out.answer != storage::LenderAnswer::kUnfilled &&
        out.answer != storage::LenderAnswer::kRetryPossible)
        return bad("reason goes with unfilled and retry_possible only", "/reason");
    if (out.note.size() > 500) return bad("note may have 500 characters at most", "/note");
    if (!out.cost.empty()) {
        // A decimal amount in euros: digits, and at most two after the point.
        const auto point = out.cost.find('.');
        const bool digits = !out.cost.empty() && out.cost.size() <= 10 &&
                            std::all_of(out.cost.begin(), out.cost.end(),
                                        [](unsigned char c) { return std::isdigit(c) != 0 || c == '.'; }) &&
                            std::count(out.cost.begin(), out.cost.end(), '.') <= 1 && point != 0 &&
                            (point == std::string::npos || (out.cost.size() - point - 1 >= 1 &&
                                                            out.cost.size() - point - 1 <= 2));
        if (!digits) return bad("cost is an amount in euros such as \"2.50\"", "/cost");
        if (out.answer != storage::LenderAnswer::kWillSupply) return bad("cost goes with will_supply only", "/cost");
    }
    if (!out.conditions.empty()) {
        if (out.conditions.size() > 50 || !std::all_of(out.conditions.begin(), out.conditions.end(),
                                                       [](unsigned char c) { return std::isalnum(c) != 0; }))
            return bad("conditions is a code of letters and digits, such as LibraryUseOnly", "/conditions");
        if (out.answer != storage::LenderAnswer::kShipped) return bad("conditions go with shipped only", "/conditions");
    }
    if (!out.item_barcode.empty()) {
        if (out.item_barcode.size() > 40 ||
            !std::all_of(out.item_barcode.begin(), out.item_barcode.end(),
                         [](unsigned char c) { return c > 32 && c < 127; }))
            return bad("item_barcode is the copy's barcode: at most 40 printable characters, no spaces",
                       "/item_barcode");
        if (out.answer != storage::LenderAnswer::kShipped)
            return bad("item_barcode goes with shipped only", "/item_barcode");
    }
    auto day = [](const std::string& dd) {
        const bool shape = dd.size() == 10 && dd[4] == '-' && dd[7] == '-';
        auto digits = [&](std::size_t a, std::size_t n) {
            return std::all_of(dd.begin() + static_cast<long>(a), dd.begin() + static_cast<long>(a + n),
                               [](unsigned char c) { return std::isdigit(c) != 0; });
        };
        return shape && digits(0, 4) && digits(5, 2) && digits(8, 2) &&
               std::chrono::year_month_day{std::chrono::year{std::stoi(dd.substr(0, 4))},
                                           std::chrono::month{static_cast<unsigned>(std::stoi(dd.substr(5, 2)))},
                                           std::chrono::day{static_cast<unsigned>(std::stoi(dd.substr(8, 2)))}}
                   .ok();
    };
    if (!out.retry_after.empty()) {
        if (out.answer != storage::LenderAnswer::kRetryPossible)
            return bad("retry_after goes with retry_possible only", "/retry_after");
        if (!day(out.retry_after)) return bad("retry_after is a day as YYYY-MM-DD", "/retry_after");
    }
    if (out.answer == storage::LenderAnswer::kRecalled && !out.due_date.empty()) {
        if (!day(out.due_date)) return bad("recalled takes a new due_date as YYYY-MM-DD", "/due_date");
    } else if (out.answer == storage::LenderAnswer::kShipped || out.answer == storage::LenderAnswer::kRenewGranted) {
        if (!day(out.due_date))
            return bad(fmt::format("{} needs due_date, a day as YYYY-MM-DD", answer), "/due_date");
    } else if (!out.due_date.empty()) {
        return bad("due_date goes with shipped, renew_granted and recalled only", "/due_date");
    }
    return out;
}

}  // namespace

std::string IblRequestJson(const storage::IblRequestView& request) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    WriteRequest(w, request);
    return std::string(buf.GetString(), buf.GetSize());
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
net::awaitable<HttpResponse> PostIblRequest(storage::Database* db, DbExecutor* exec, IblCourier* courier,
                                            const HttpRequest* req, const std::string* library) {
    auto read = ReadNewRequest(*req, *library);
    if (auto* problem = std::get_if<HttpResponse>(&read)) co_return *problem;
    auto wanted = std::get<storage::NewIblRequest>(read);
    const auto settings = courier->Settings();
    // Lenders of other nodes whose copy is known here only from a while
    // ago are asked first whether it is still on the shelf.
    const auto to_confirm = co_await exec->Run([&] { return storage::IblLendersToConfirm(*db, wanted, settings); });
    for (const auto& lender : to_confirm) {
        const auto on_shelf = co_await courier->StillOnShelf(&lender);
        if (on_shelf && !*on_shelf) wanted.unavailable.push_back(lender.library);
    }
    auto result = co_await exec->Run([&] { return storage::CreateIblRequest(*db, wanted, settings); });
    switch (result.status) {
        case storage::CreateStatus::kCreated: {
            courier->Wake();
            auto r = JsonResponse(201, IblRequestJson(result.request));
            r.headers.emplace_back("Location", "/v1/ibl/requests/" + result.request.request_id);
            co_return r;
        }
        case storage::CreateStatus::kDuplicate: {
            auto r = Problem(409, "duplicate-ibl-request", "Duplicate request",
                             fmt::format("{} already has request {} open for this work and patron_ref ({}); follow "
                                         "that one",
                                         *library, result.request.request_id, result.request.state));
            r.headers.emplace_back("Location", "/v1/ibl/requests/" + result.request.request_id);
            co_return r;
        }
        case storage::CreateStatus::kUnknownWork:
            co_return Problem(404, "unknown-work", "Unknown work",
                              wanted.isbn.empty()
                                  ? fmt::format("the catalogue has no record {} of {}", wanted.record_id,
                                                wanted.record_library)
                                  : fmt::format("the catalogue has no record with ISBN {}", wanted.isbn));
        case storage::CreateStatus::kLimit:
            co_return Problem(409, "ibl-limit", "Too many open requests",
                              result.why + "; nothing was requested. Ask again when one has finished");
        case storage::CreateStatus::kNoLender:
            co_return Problem(409, "no-lender", "No lender",
                              "no other library this node can ask has a copy of this work available now; nothing "
                              "was requested. Try again later");
    }
    co_return Problem(500, "internal", "Internal error", "unexpected outcome");
}

net::awaitable<HttpResponse> GetIblRequest(storage::Database* db, DbExecutor* exec, const std::string* library,
                                           const std::string* request_id) {
    auto found = co_await exec->Run([&] { return storage::GetIblRequest(*db, *library, *request_id); });
    if (!found)
        co_return Problem(404, "unknown-ibl-request", "Unknown request",
                          fmt::format("{} has no IBL request with id {}", *library, request_id->substr(0, 100)));
    co_return JsonResponse(200, IblRequestJson(*found));
}

std::string IblInboxJson(const std::string& library, const std::vector<storage::IblRequestView>& tasks,
                         long long cursor) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    Key(w, "library", library);
    w.Key("cursor");
    w.Int64(cursor);
    w.Key("requests");
    w.StartArray();
    for (const auto& t : tasks) WriteRequest(w, t);
    w.EndArray();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}
net::awaitable<HttpResponse> PostIblAnswer(storage::Database* db, DbExecutor* exec, IblCourier* courier,
                                           const HttpRequest* req, const std::string* library,
                                           const std::string* task) {
    long long id = 0;
    if (task->empty() || task->size() > 18 ||
        !std::all_of(task->begin(), task->end(), [](unsigned char c) { return std::isdigit(c) != 0; }) ||
        (id = std::stoll(*task)) <= 0)
        co_return Problem(404, "unknown-ibl-task", "Unknown task",
                          "a task is named by the number the inbox gives it (\"task\")");
    auto read = ReadAnswer(*req);
    if (auto* problem = std::get_if<HttpResponse>(&read)) co_return *problem;
    const auto& answer = std::get<storage::TaskAnswer>(read);
    const auto settings = courier->Settings();
    auto result = co_await exec->Run([&] { return storage::AnswerIblTask(*db, *library, id, answer, settings); });
    switch (result.status) {
        case storage::AnswerStatus::kUnknownTask:
            co_return Problem(404, "unknown-ibl-task", "Unknown task",
                              fmt::format("{} has no task {} in its inbox", *library, id));
        case storage::AnswerStatus::kNotAllowed:
            co_return Problem(409, "ibl-answer-not-allowed", "Not allowed now",
                              fmt::format("the request is not in a state for this answer: {}", result.why));
        case storage::AnswerStatus::kDone: break;
    }
    courier->Wake();
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("task");
    WriteRequest(w, result.task);
    if (!result.requester_state.empty()) Key(w, "requester_state", result.requester_state);
    if (!result.next_lender.empty()) Key(w, "next_lender", result.next_lender);
    w.EndObject();
    co_return JsonResponse(200, std::string(buf.GetString(), buf.GetSize()));
}
net::awaitable<HttpResponse> PostIblAction(storage::Database* db, DbExecutor* exec, IblCourier* courier,
                                           const HttpRequest* req, const std::string* library,
                                           const std::string* request_id) {
    auto bad = [](const std::string& detail, const std::string& pointer = {}) {
        return Problem(400, "invalid-ibl-action", "Invalid action", detail, pointer);
    };
    if (req->MediaType() != "application/json")
        co_return Problem(415, "unsupported-media-type", "Unsupported media type",
                          "send the action as application/json");
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(req->body.data(), req->body.size());
    if (d.HasParseError() || !d.IsObject()) co_return bad("the body must be a JSON object (and valid UTF-8)");
    std::string action, note;
    for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) {
        const std::string name(it->name.GetString(), it->name.GetStringLength());
        if (!it->value.IsString()) co_return bad(fmt::format("{} must be a string", name.substr(0, 64)), "/" + name);
        if (name == "action") action = it->value.GetString();
        else if (name == "note") note = it->value.GetString();
        else co_return bad(fmt::format("unknown field '{}'; an action has action and note", name.substr(0, 64)),
                           "/" + name);
    }
    if (note.size() > 500) co_return bad("note may have 500 characters at most", "/note");
    storage::RequesterAction what;
    if (action == "received") what = storage::RequesterAction::kReceived;
    else if (action == "shipped_return") what = storage::RequesterAction::kShippedReturn;
    else if (action == "cancel") what = storage::RequesterAction::kCancel;
    else if (action == "renew") what = storage::RequesterAction::kRenew;
    else if (action == "accept_conditions") what = storage::RequesterAction::kAcceptConditions;
    else co_return bad("action must be received, shipped_return, cancel, renew or accept_conditions", "/action");
    auto result =
        co_await exec->Run([&] { return storage::ActOnIblRequest(*db, *library, *request_id, what, note); });
    switch (result.status) {
        case storage::AnswerStatus::kUnknownTask:
            co_return Problem(404, "unknown-ibl-request", "Unknown request",
                              fmt::format("{} has no IBL request with id {}", *library, request_id->substr(0, 100)));
        case storage::AnswerStatus::kNotAllowed:
            co_return Problem(409, "ibl-action-not-allowed", "Not allowed now",
                              fmt::format("the request is not in a state for this action: {}", result.why));
        case storage::AnswerStatus::kDone: break;
    }
    courier->Wake();
    co_return JsonResponse(200, IblRequestJson(result.request));
}
net::awaitable<HttpResponse> GetIblSlip(storage::Database* db, DbExecutor* exec, const std::string* library,
                                        const std::string* id, bool as_lender) {
    std::optional<storage::IblSlip> slip;
    if (as_lender) {
        long long task = 0;
        if (!id->empty() && id->size() < 18 &&
            std::all_of(id->begin(), id->end(), [](unsigned char c) { return std::isdigit(c) != 0; }))
            task = std::stoll(*id);
        if (task > 0) slip = co_await exec->Run([&] { return storage::IblSlipForTask(*db, *library, task); });
        if (!slip)
            co_return Problem(404, "unknown-ibl-task", "Unknown task",
                              fmt::format("{} has no task {}; a task is named by the number the inbox gives it",
                                          *library, id->substr(0, 40)));
    } else {
        slip = co_await exec->Run([&] { return storage::IblSlipForRequest(*db, *library, *id); });
        if (!slip)
            co_return Problem(404, "unknown-ibl-request", "Unknown request",
                              fmt::format("{} has no IBL request with id {}", *library, id->substr(0, 100)));
    }
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = SlipPage(*slip);
    co_return r;
}
#pragma GCC diagnostic pop

}  // namespace iblsync::daemon
