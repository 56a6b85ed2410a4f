// iblctl ibl ...: IBL requests, one request's story, monthly statistics.

#include <rapidjson/document.h>

#include <fmt/format.h>

#include "tools/iblctl/render.hpp"

namespace iblsync::iblctl {
namespace {

using Value = rapidjson::Value;

std::string S(const Value& v, const char* key) {
    if (!v.IsObject()) return {};
    auto m = v.FindMember(key);
    if (m == v.MemberEnd()) return {};
    if (m->value.IsString()) return m->value.GetString();
    if (m->value.IsInt64()) return std::to_string(m->value.GetInt64());
    if (m->value.IsBool()) return m->value.GetBool() ? "yes" : "no";
    if (m->value.IsDouble()) return fmt::format("{:.1f}", m->value.GetDouble());
    return {};
}

const Value& O(const Value& v, const char* key) {
    static const Value kNull;
    if (!v.IsObject()) return kNull;
    auto m = v.FindMember(key);
    return m == v.MemberEnd() ? kNull : m->value;
}

// "Loaned+renew": the state with what is pending (nothing once finished).
std::string StateOf(const Value& r) {
    std::string s = S(r, "state");
    for (const char* done : {"Unfilled", "LoanCompleted", "CompletedWithoutReturn", "Cancelled", "CopyCompleted"})
        if (s == done) return s;
    if (S(r, "cancel_pending") == "yes") s += "+cancel";
    if (S(r, "renew_pending") == "yes") s += "+renew";
    if (S(r, "conditions_to_accept") == "yes") s += "+conditions";
    if (S(r, "received") == "yes") s += "+received";
    if (S(r, "shipped_return") == "yes") s += "+returning";
    return s;
}

std::string Or(const std::string& s, const char* dash = "-") { return s.empty() ? dash : s; }

// RFC 4180: a field with a comma, quote or line break is quoted.
std::string Csv(const std::string& v) {
    if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

}  // namespace

std::string RenderIblList(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& rows = O(d, "requests");
    if (!rows.IsArray()) return json + "\n";
    if (rows.Empty()) return fmt::format("no IBL requests ({})\n", S(d, "state"));
    std::string out = fmt::format("{:<12}{:<10}{:<16}{:<16}{:<30}{:<21}{:<21}{}\n", "ID", "ROLE", "REQUESTER", "LENDER",
                                  "STATE", "UPDATED", "ANSWER BY", "OUTBOX");
    for (const auto& row : rows.GetArray()) {
        const auto& r = O(row, "request");
        std::string outbox = "-";
        if (S(row, "unsent") != "0")
            outbox = fmt::format("{} unsent{}", S(row, "unsent"),
                                 S(row, "last_error").empty() ? "" : ": " + S(row, "last_error").substr(0, 60));
        out += fmt::format("{:<12}{:<10}{:<16}{:<16}{:<30}{:<21}{:<21}{}\n", S(r, "id"),
                           S(r, "task").empty() ? "requester" : "supplier", S(r, "requester"), S(r, "lender"),
                           StateOf(r), S(r, "updated_at"), Or(S(r, "answer_by")), outbox);
    }
    return out;
}

std::string RenderIblShow(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& ts = O(d, "transactions");
    if (!ts.IsArray()) return json + "\n";
    std::string out = fmt::format("IBL request {}\n", S(d, "id"));
    for (const auto& t : ts.GetArray()) {
        const auto& r = O(t, "request");
        const bool supplier = r.HasMember("task");  // the API names a lender's side by its task number
        out += fmt::format("\n{} {} -> {}  {}{}\n", supplier ? "as lender's node:" : "as requester's node:",
                           S(r, "requester"), S(r, "lender"), StateOf(r),
                           S(t, "superseded_by").empty() ? "" : "  (moved on to " + S(t, "superseded_by") + ")");
        out += fmt::format("  title {}  isbn {}  patron_ref {}  pickup {}\n", Or(S(r, "title")), Or(S(r, "isbn")),
                           Or(S(r, "patron_ref")), Or(S(r, "pickup")));
        if (!S(r, "due_date").empty()) out += fmt::format("  due {}\n", S(r, "due_date"));
        if (!S(r, "answer_by").empty()) out += fmt::format("  lender must answer by {}\n", S(r, "answer_by"));
        if (!S(r, "offered_cost").empty()) out += fmt::format("  cost asked {}\n", S(r, "offered_cost"));
        if (!S(r, "loan_condition").empty()) out += fmt::format("  loan condition {}\n", S(r, "loan_condition"));
        for (const auto& e : O(t, "events").GetArray()) {
            std::string delivery;
            const auto how = S(e, "delivery");
            if (how == "delivered") delivery = "delivered";
            else if (how == "unsent")
                delivery = fmt::format("UNSENT after {} tries: {}", S(e, "attempts"), S(e, "error").substr(0, 80));
            else if (how == "refused") delivery = "REFUSED: " + S(e, "error").substr(0, 100);
            out += fmt::format("  {}  {:<3} {:<24} {:<32} -> {:<14} {}\n", S(e, "at"), S(e, "direction"),
                               S(e, "kind"), Or(S(e, "what"), ""), S(e, "state_after"), delivery);
        }
    }
    return out;
}

std::string RenderIblAction(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    if (d.HasParseError() || !d.IsObject()) return json + "\n";
    if (d.HasMember("to"))
        return fmt::format("request {} went from {} to {}; {} was sent a Cancel\n", S(d, "id"), S(d, "from"),
                           S(d, "to"), S(d, "from"));
    const auto& r = O(d, "request");
    return fmt::format("request {}: a Cancel went to {} ({}); the request is {} until the lender answers\n",
                       S(r, "id"), S(r, "lender"), S(d, "lender_state").empty() ? "through the outbox" : "here",
                       StateOf(r));
}

std::string RenderIblStats(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& libs = O(d, "libraries");
    if (!libs.IsArray()) return json + "\n";
    if (libs.Empty()) return fmt::format("no IBL activity in {}\n", S(d, "month"));
    std::string out = fmt::format("IBL in {}\n{:<17}{:<7}{:>10}{:>10}{:>10}{:>14}{:>8}{:>8}{:>10}\n", S(d, "month"),
                                  "LIBRARY", "PROV", "REQUESTED", "SUPPLIED", "UNFILLED", "HOURS TO SUP", "ASKED",
                                  "LENT", "DECLINED");
    long long t[6] = {0, 0, 0, 0, 0, 0};
    const char* keys[6] = {"requested", "supplied", "unfilled", "asked", "lent", "declined"};
    for (const auto& l : libs.GetArray()) {
        for (int i = 0; i < 6; ++i) t[i] += O(l, keys[i]).IsInt64() ? O(l, keys[i]).GetInt64() : 0;
        out += fmt::format("{:<17}{:<7}{:>10}{:>10}{:>10}{:>14}{:>8}{:>8}{:>10}\n", S(l, "library"),
                           Or(S(l, "province")), S(l, "requested"), S(l, "supplied"), S(l, "unfilled"),
                           S(l, "supplied") == "0" ? "-" : S(l, "mean_hours_to_supply"), S(l, "asked"), S(l, "lent"),
                           S(l, "declined"));
    }
    out += fmt::format("{:<17}{:<7}{:>10}{:>10}{:>10}{:>14}{:>8}{:>8}{:>10}\n", "total", "", t[0], t[1], t[2], "",
                       t[3], t[4], t[5]);
    return out;
}

std::string RenderIblManifest(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& items = O(d, "items");
    if (!items.IsArray()) return json + "\n";
    if (items.Empty()) return fmt::format("nothing travels on {}\n", S(d, "date"));
    std::string out = fmt::format("Transport manifest {}: {} item(s)\n", S(d, "date"), items.Size());
    std::string route;
    for (const auto& m : items.GetArray()) {
        if (S(m, "route") != route) {
            route = S(m, "route");
            out += fmt::format("\nroute {}\n  {:<16}{:<16}{:<10}{:<14}{:<16}{}\n", route, "FROM", "TO", "WAY", "REQUEST",
                               "ITEM", "SLIP");
        }
        out += fmt::format("  {:<16}{:<16}{:<10}{:<14}{:<16}{}\n", S(m, "from"), S(m, "to"), S(m, "direction"),
                           S(m, "request_id"), Or(S(m, "item_barcode")), S(m, "slip"));
    }
    return out;
}

namespace {

std::string Euros(long long cents) {
    return fmt::format("{}{}.{:02}", cents < 0 ? "-" : "", (cents < 0 ? -cents : cents) / 100,
                       (cents < 0 ? -cents : cents) % 100);
}

long long Cents(const Value& v) { return O(v, "cents").IsInt64() ? O(v, "cents").GetInt64() : 0; }

}  // namespace

std::string RenderIblInvoice(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& lines = O(d, "lines");
    if (!lines.IsArray()) return json + "\n";
    if (lines.Empty()) return fmt::format("no finished IBL transactions in {}\n", S(d, "month"));
    std::string out, library;
    long long pays = 0, receives = 0;
    auto close = [&] {
        if (library.empty()) return;
        out += fmt::format("  {:<60}{:>10}\n  {:<60}{:>10}\n  {:<60}{:>10}\n", "to pay", Euros(pays), "to receive",
                           Euros(receives), "balance (to pay - to receive)", Euros(pays - receives));
    };
    for (const auto& l : lines.GetArray()) {
        if (S(l, "library") != library) {
            close();
            library = S(l, "library");
            pays = receives = 0;
            out += fmt::format("{}Statement {} for {} (EUR)\n  {:<10}{:<16}{:<14}{:<6}{:<24}{:>10}\n",
                               out.empty() ? "" : "\n", S(d, "month"), library, "SIDE", "WITH", "REQUEST", "KIND",
                               "TARIFF", "AMOUNT");
        }
        (S(l, "side") == "pays" ? pays : receives) += Cents(l);
        out += fmt::format("  {:<10}{:<16}{:<14}{:<6}{:<24}{:>10}\n", S(l, "side"), S(l, "counterpart"),
                           S(l, "request_id"), S(l, "kind"), S(l, "tariff").substr(0, 23), Euros(Cents(l)));
    }
    close();
    return out;
}

std::string RenderIblClosures(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& list = O(d, "closures");
    if (!list.IsArray()) return json + "\n";
    if (list.Empty())
        return S(d, "library").empty() ? "no closures ahead; every lender is asked\n"
                                       : fmt::format("{} has no closures ahead; it is asked\n", S(d, "library"));
    std::string out = fmt::format("{:<17}{:<12}{:<12}{}\n", "LIBRARY", "FROM", "UNTIL", "REASON");
    for (const auto& c : list.GetArray())
        out += fmt::format("{:<17}{:<12}{:<12}{}\n", S(c, "library"), S(c, "from"), S(c, "until"), Or(S(c, "reason")));
    return out;
}

std::string RenderIblLends(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& list = O(d, "not_lent");
    if (!list.IsArray()) return json + "\n";
    std::string types;
    for (const auto& t : list.GetArray()) types += (types.empty() ? "" : ", ") + std::string(t.GetString());
    return types.empty() ? fmt::format("{} lends every material type that travels (not e-books)\n", S(d, "library"))
                         : fmt::format("{} does not lend: {}\n", S(d, "library"), types);
}

std::string RenderIblInvoiceCsv(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& lines = O(d, "lines");
    if (!lines.IsArray()) return json + "\n";
    std::string out = "month,library,side,counterpart,requester,request_id,kind,tariff,completed_at,amount_eur\r\n";
    for (const auto& l : lines.GetArray()) {
        out += Csv(S(d, "month"));
        for (const char* k : {"library", "side", "counterpart", "requester", "request_id", "kind", "tariff",
                              "completed_at"})
            out += "," + Csv(S(l, k));
        out += "," + Euros(Cents(l)) + "\r\n";
    }
    return out;
}

std::string RenderIblManifestCsv(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    const auto& items = O(d, "items");
    if (!items.IsArray()) return json + "\n";
    std::string out = "date,route,direction,from,to,requester,request_id,item_barcode,slip,sent_at\r\n";
    for (const auto& m : items.GetArray()) {
        out += Csv(S(d, "date"));
        for (const char* k : {"route", "direction", "from", "to", "requester", "request_id", "item_barcode", "slip",
                              "sent_at"})
            out += "," + Csv(S(m, k));
        out += "\r\n";
    }
    return out;
}

}  // namespace iblsync::iblctl
