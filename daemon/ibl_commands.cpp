#include "daemon/ibl_commands.hpp"

#include <cctype>
#include <charconv>

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include "daemon/control_reply.hpp"
#include "daemon/ibl_api.hpp"
#include "daemon/ibl_courier.hpp"
#include "daemon/log.hpp"
#include "protocols/isil.hpp"
#include "protocols/normalize.hpp"
#include "storage/database.hpp"
#include "storage/errors.hpp"
#include "storage/ibl.hpp"
#include "storage/ibl_admin.hpp"

namespace iblsync::daemon {
namespace {

using control::Ok;
using control::Refuse;
using control::Str;
using control::Writer;
using protocols::ControlResponse;

// A request as the JSON API shows it, inside `w`.
void Raw(Writer& w, const storage::IblRequestView& v) {
    const auto json = IblRequestJson(v);
    w.RawValue(json.c_str(), json.size(), rapidjson::kObjectType);
}

bool Month(const std::string& m) {
    return m.size() == 7 && m[4] == '-' && std::isdigit(static_cast<unsigned char>(m[0])) &&
           std::isdigit(static_cast<unsigned char>(m[1])) && std::isdigit(static_cast<unsigned char>(m[2])) &&
           std::isdigit(static_cast<unsigned char>(m[3])) &&
           ((m[5] == '0' && m[6] >= '1' && m[6] <= '9') || (m[5] == '1' && m[6] >= '0' && m[6] <= '2'));
}

// YYYY-MM-DD, as far as the shape goes (the database refuses a day that
// does not exist, such as 2026-02-30).
bool Day(const std::string& d) {
    return d.size() == 10 && Month(d.substr(0, 7)) && d[7] == '-' && std::isdigit(static_cast<unsigned char>(d[8])) &&
           std::isdigit(static_cast<unsigned char>(d[9])) && d.substr(8) >= "01" && d.substr(8) <= "31";
}

}  // namespace

// g++ 12 warns falsely about the coroutine frame's operator delete.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
net::awaitable<std::optional<ControlResponse>> HandleIblCommand(const protocols::ControlRequest& req,
                                                                storage::Database& db, DbExecutor& exec,
                                                                IblCourier& courier) {
    const std::string& cmd = req.command;
    if (cmd.rfind("ibl.", 0) != 0) co_return std::nullopt;
    std::optional<ControlResponse> out;
    std::string failed;
    try {
        if (cmd == "ibl.list") {
            storage::IblListFilter f;
            f.library = req.Arg("library");
            if (!f.library.empty()) {
                auto isil = protocols::NormalizeIsil(f.library);
                if (!isil) co_return Refuse(fmt::format("'{}' is not an ISIL: {}", f.library.substr(0, 60), isil.error()),
                                            "give a library as NL-…");
                f.library = *isil;
            }
            if (!req.Arg("state").empty()) f.state = req.Arg("state");
            const auto limit = req.Arg("limit");
            if (!limit.empty()) {
                auto [end, ec] = std::from_chars(limit.data(), limit.data() + limit.size(), f.limit);
                if (ec != std::errc{} || end != limit.data() + limit.size() || f.limit < 1 || f.limit > 10000)
                    co_return Refuse("limit must be 1..10000", "for example --limit 50");
            }
            auto rows = co_await exec.Run([&] { return storage::ListIblRequests(db, f); });
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            Str(w, "state", f.state);
            w.Key("requests");
            w.StartArray();
            for (const auto& r : rows) {
                w.StartObject();
                w.Key("request");
                Raw(w, r.request);
                w.Key("unsent");
                w.Int(r.unsent);
                Str(w, "last_error", r.last_error);
                w.EndObject();
            }
            w.EndArray();
            w.EndObject();
            out = Ok(buf);
        } else if (cmd == "ibl.show") {
            const std::string id = req.Arg("id");
            auto found = co_await exec.Run([&] { return storage::ShowIblRequest(db, id); });
            if (found.empty())
                co_return Refuse(fmt::format("no IBL request {} on this node", id.substr(0, 100)),
                                 "'iblctl ibl list --state all' lists them");
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            Str(w, "id", found.front().request.request_id);
            w.Key("transactions");
            w.StartArray();
            for (const auto& t : found) {
                w.StartObject();
                w.Key("request");
                Raw(w, t.request);
                Str(w, "superseded_by", t.superseded_by);
                w.Key("events");
                w.StartArray();
                for (const auto& e : t.events) {
                    w.StartObject();
                    w.Key("id");
                    w.Int64(e.id);
                    Str(w, "direction", e.direction);
                    Str(w, "kind", e.kind);
                    Str(w, "what", e.what);
                    Str(w, "state_after", e.state_after);
                    Str(w, "at", e.at);
                    Str(w, "delivery", e.delivery);
                    w.Key("attempts");
                    w.Int(e.attempts);
                    Str(w, "error", e.error);
                    w.EndObject();
                }
                w.EndArray();
                w.EndObject();
            }
            w.EndArray();
            w.EndObject();
            out = Ok(buf);
        } else if (cmd == "ibl.reroute") {
            const std::string id = req.Arg("id");
            const auto settings = courier.Settings();
            auto r = co_await exec.Run([&] { return storage::RerouteIblRequest(db, id, settings); });
            if (r.status == storage::AnswerStatus::kUnknownTask)
                co_return Refuse(fmt::format("no request {} of this node's libraries", id.substr(0, 100)),
                                 "'iblctl ibl list' lists the open ones");
            if (r.status != storage::AnswerStatus::kDone)
                co_return Refuse("cannot reroute: " + r.why, "'iblctl ibl show " + id + "' shows where it stands");
            courier.Wake();
            spdlog::info("ibl request rerouted request={} from={} to={} peer_uid={}", id, r.from, r.to,
                         req.Arg("_peer_uid"));
            out = Ok(fmt::format(R"({{"id":"{}","from":"{}","to":"{}"}})", id, r.from, r.to));
        } else if (cmd == "ibl.cancel") {
            const std::string id = req.Arg("id");
            auto library = co_await exec.Run([&] { return storage::IblRequester(db, id); });
            if (!library)
                co_return Refuse(fmt::format("no request {} of this node's libraries", id.substr(0, 100)),
                                 "'iblctl ibl list' lists the open ones");
            const std::string note = "Cancelled by the POI's admin.";
            auto r = co_await exec.Run([&] {
                return storage::ActOnIblRequest(db, *library, id, storage::RequesterAction::kCancel, note);
            });
            if (r.status != storage::AnswerStatus::kDone)
                co_return Refuse("cannot cancel: " + r.why, "'iblctl ibl show " + id + "' shows where it stands");
            courier.Wake();
            spdlog::info("ibl request cancel sent request={} library={} peer_uid={}", id, *library,
                         req.Arg("_peer_uid"));
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            w.Key("request");
            Raw(w, r.request);
            Str(w, "lender_state", r.lender_state);
            w.EndObject();
            out = Ok(buf);
        } else if (cmd == "ibl.manifest") {
            const std::string date = req.Arg("date");
            if (!Day(date))
                co_return Refuse("date must be YYYY-MM-DD", "for example --date 2026-12-07");
            auto rows = co_await exec.Run([&] { return storage::IblManifest(db, date); });
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            Str(w, "date", date);
            w.Key("items");
            w.StartArray();
            for (const auto& m : rows) {
                w.StartObject();
                Str(w, "route", m.route);
                Str(w, "direction", m.direction);
                Str(w, "from", m.from);
                Str(w, "to", m.to);
                Str(w, "requester", m.requester);
                Str(w, "request_id", m.request_id);
                Str(w, "item_barcode", m.item_barcode);
                Str(w, "slip", m.slip);
                Str(w, "sent_at", m.at);
                w.EndObject();
            }
            w.EndArray();
            w.EndObject();
            out = Ok(buf);
        } else if (cmd == "ibl.invoice") {
            const std::string month = req.Arg("month");
            if (!Month(month)) co_return Refuse("month must be YYYY-MM", "for example --month 2026-11");
            auto lines = co_await exec.Run([&] { return storage::IblInvoice(db, month); });
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            Str(w, "month", month);
            Str(w, "currency", "EUR");
            w.Key("lines");
            w.StartArray();
            for (const auto& l : lines) {
                w.StartObject();
                Str(w, "library", l.library);
                Str(w, "side", l.side);
                Str(w, "counterpart", l.counterpart);
                Str(w, "requester", l.requester);
                Str(w, "request_id", l.request_id);
                Str(w, "kind", l.kind);
                Str(w, "tariff", l.tariff);
                Str(w, "completed_at", l.completed_at);
                w.Key("cents");
                w.Int64(l.cents);
                w.EndObject();
            }
            w.EndArray();
            w.EndObject();
            out = Ok(buf);
        } else if (cmd == "ibl.close" || cmd == "ibl.reopen" || cmd == "ibl.closures") {
            std::string library = req.Arg("library");
            if (!library.empty() || cmd != "ibl.closures") {
                auto isil = protocols::NormalizeIsil(library);
                if (!isil)
                    co_return Refuse(fmt::format("'{}' is not an ISIL: {}", library.substr(0, 60), isil.error()),
                                     "give the library as NL-…");
                library = *isil;
            }
            if (cmd == "ibl.close") {
                storage::IblClosure closure{0, library, req.Arg("from"), req.Arg("until"), req.Arg("reason")};
                if (!Day(closure.starts) || !Day(closure.ends))
                    co_return Refuse("from and until must be days as YYYY-MM-DD", "for example --from 2026-12-24 "
                                                                                  "--until 2027-01-02");
                if (closure.reason.size() > 200) co_return Refuse("reason may have 200 characters at most", "");
                auto status = co_await exec.Run([&] { return storage::AddIblClosure(db, closure); });
                if (status == storage::ClosureStatus::kUnknownLibrary)
                    co_return Refuse(fmt::format("{} is not a library of this node", library),
                                     "'iblctl library list' lists them");
                if (status == storage::ClosureStatus::kBadDates)
                    co_return Refuse("until is before from (or a day that does not exist)",
                                     "a closure runs from its first day through its last");
                spdlog::info("ibl lender closed library={} from={} until={} peer_uid={}", library, closure.starts,
                             closure.ends, req.Arg("_peer_uid"));
            } else if (cmd == "ibl.reopen") {
                const long long n = co_await exec.Run([&] { return storage::ReopenIblLender(db, library); });
                spdlog::info("ibl lender reopened library={} closures={} peer_uid={}", library, n,
                             req.Arg("_peer_uid"));
            }
            auto list = co_await exec.Run([&] { return storage::ListIblClosures(db, library); });
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            Str(w, "library", library);
            w.Key("closures");
            w.StartArray();
            for (const auto& c : list) {
                w.StartObject();
                w.Key("id");
                w.Int64(c.id);
                Str(w, "library", c.library);
                Str(w, "from", c.starts);
                Str(w, "until", c.ends);
                Str(w, "reason", c.reason);
                w.EndObject();
            }
            w.EndArray();
            w.EndObject();
            out = Ok(buf);
        } else if (cmd == "ibl.lends") {
            auto isil = protocols::NormalizeIsil(req.Arg("library"));
            if (!isil)
                co_return Refuse(fmt::format("'{}' is not an ISIL: {}", req.Arg("library").substr(0, 60), isil.error()),
                                 "give the library as NL-…");
            const std::string library = *isil;
            if (req.Arg("set") == "true") {
                std::vector<std::string> types;
                const std::string list = req.Arg("not");
                for (std::size_t at = 0; at < list.size();) {
                    auto comma = list.find(',', at);
                    if (comma == std::string::npos) comma = list.size();
                    const std::string t = list.substr(at, comma - at);
                    if (!protocols::IsMaterialType(t))
                        co_return Refuse(fmt::format("'{}' is not a material type", t.substr(0, 40)),
                                         "use book, large_print, braille, audiobook, music, video, serial, map, "
                                         "score or other");
                    types.push_back(t);
                    at = comma + 1;
                }
                const bool known = co_await exec.Run([&] { return storage::SetIblNotLent(db, library, types); });
                if (!known)
                    co_return Refuse(fmt::format("{} is not a library of this node", library),
                                     "'iblctl library list' lists them");
                spdlog::info("ibl lending set library={} not_lent={} peer_uid={}", library, Quote(list),
                             req.Arg("_peer_uid"));
            }
            auto types = co_await exec.Run([&] { return storage::IblNotLent(db, library); });
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            Str(w, "library", library);
            w.Key("not_lent");
            w.StartArray();
            for (const auto& t : types) w.String(t.c_str());
            w.EndArray();
            w.EndObject();
            out = Ok(buf);
        } else if (cmd == "ibl.stats") {
            const std::string month = req.Arg("month");
            if (!Month(month)) co_return Refuse("month must be YYYY-MM", "for example --month 2026-11");
            auto rows = co_await exec.Run([&] { return storage::IblMonthStats(db, month); });
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            Str(w, "month", month);
            w.Key("libraries");
            w.StartArray();
            for (const auto& s : rows) {
                w.StartObject();
                Str(w, "library", s.library);
                Str(w, "province", s.province);
                for (auto [k, v] : {std::pair{"requested", s.requested}, std::pair{"supplied", s.supplied},
                                    std::pair{"unfilled", s.unfilled}, std::pair{"asked", s.asked},
                                    std::pair{"lent", s.lent}, std::pair{"declined", s.declined}}) {
                    w.Key(k);
                    w.Int64(v);
                }
                w.Key("mean_hours_to_supply");
                w.Double(s.mean_hours_to_supply);
                w.EndObject();
            }
            w.EndArray();
            w.EndObject();
            out = Ok(buf);
        } else {
            co_return std::nullopt;
        }
    } catch (const storage::DatabaseError& e) {
        failed = e.what();
    }
    if (!failed.empty())
        co_return Refuse("database: " + failed, "'iblctl status' shows whether the database is reachable");
    co_return out;
}
#pragma GCC diagnostic pop

}  // namespace iblsync::daemon
