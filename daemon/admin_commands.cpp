#include "daemon/admin_commands.hpp"

#include "daemon/control_reply.hpp"
#include "daemon/push_api.hpp"

#include <charconv>

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocols/holdings.hpp"
#include "protocols/isil.hpp"
#include "protocols/province.hpp"
#include "storage/access.hpp"
#include "storage/database.hpp"
#include "storage/push.hpp"

namespace iblsync::daemon {
namespace {

using control::Ok;
using control::Refuse;
using control::Str;
using control::Writer;
using protocols::ControlResponse;

void WriteLibrary(Writer& w, const storage::Library& l) {
    w.StartObject();
    Str(w, "isil", l.isil);
    Str(w, "name", l.name);
    Str(w, "province", l.province);
    Str(w, "poi", l.poi);
    w.Key("enabled");
    w.Bool(l.enabled);
    w.Key("records");
    w.Int64(l.records);
    w.Key("copies");
    w.Int64(l.copies);
    w.Key("live_tokens");
    w.Int64(l.live_tokens);
    w.Key("pushes");
    w.Int64(l.pushes);
    Str(w, "last_push_at", l.last_push_at);
    Str(w, "created_at", l.created_at);
    w.EndObject();
}

void WriteToken(Writer& w, const storage::IssuedToken& t) {
    Str(w, "library", t.library);
    w.Key("token_id");
    w.Int64(t.id);
    Str(w, "token", t.token);
}

}  // namespace

net::awaitable<std::optional<ControlResponse>> HandleAdminCommand(const protocols::ControlRequest& req,
                                                                  storage::Database& db, DbExecutor& exec) {
    const std::string& cmd = req.command;
    if (cmd == "changes") {
        long long since = 0;
        int limit = 100;
        auto s = req.Arg("since"), l = req.Arg("limit");
        auto [e1, ec1] = std::from_chars(s.data(), s.data() + s.size(), since);
        auto [e2, ec2] = std::from_chars(l.data(), l.data() + l.size(), limit);
        if ((!s.empty() && (ec1 != std::errc() || since < 0)) || (!l.empty() && (ec2 != std::errc() || limit < 1 || limit > 10000)))
            co_return Refuse("since is a sequence number >= 0 and limit 1..10000", "e.g. iblctl changes --since 0 --limit 50");
        try {
            auto page = co_await exec.Run([&] { return storage::ReadChanges(db, since, limit); });
            ControlResponse r;
            r.ok = true;
            r.result_json = ChangePageJson(page, since);
            co_return r;
        } catch (const storage::DatabaseError& e) {
            co_return Refuse(fmt::format("the database refused: {}", e.what()), "check 'iblctl status'");
        }
    }
    if (cmd.rfind("library.", 0) != 0 && cmd.rfind("token.", 0) != 0) co_return std::nullopt;
    const storage::Actor actor{fmt::format("control:uid={}", req.Arg("_peer_uid"))};

    if (cmd == "library.list") {
        auto libs = co_await exec.Run([&db] { return storage::ListLibraries(db); });
        rapidjson::StringBuffer buf;
        Writer w(buf);
        w.StartObject();
        w.Key("libraries");
        w.StartArray();
        for (const auto& l : libs) WriteLibrary(w, l);
        w.EndArray();
        w.EndObject();
        co_return Ok(buf);
    }

    auto isil = protocols::NormalizeIsil(req.Arg("isil"));
    if (!isil)
        co_return Refuse(fmt::format("'{}' is not a valid ISIL: {}", req.Arg("isil").substr(0, 40), isil.error()),
                         "an ISIL in this network looks like NL-0600670000: 'NL-' and at most 13 of A-Z 0-9 / - :");
    const std::string lib = isil.value();
    const auto not_registered = [&] {
        return Refuse(fmt::format("library {} is not registered on this node", lib),
                      fmt::format("'iblctl library add {} --name NAME --province NL-XX' registers it", lib));
    };

    try {
        if (cmd == "library.add") {
            storage::Library l;
            l.isil = lib;
            l.name = req.Arg("name");
            if (l.name.empty() || l.name.size() > 200)
                co_return Refuse("a library needs a name of 1 to 200 characters", "add --name \"Bibliotheek …\"");
            if (auto p = req.Arg("province"); !p.empty()) {
                auto prov = protocols::NormalizeProvince(p);
                if (!prov) co_return Refuse(prov.error(), "give an ISO 3166-2:NL code such as NL-GE or NL-NH");
                l.province = prov.value();
            }
            if (auto p = req.Arg("poi"); !p.empty()) {
                auto poi = protocols::NormalizeIsil(p);
                if (!poi) co_return Refuse(fmt::format("--poi: {}", poi.error()), "give the ISIL of the POI");
                l.poi = poi.value();
            }
            if (auto h = req.Arg("holdings"); !h.empty()) {
                auto mapping = protocols::ParseHoldingsMapping(h);
                if (!mapping)
                    co_return Refuse(fmt::format("--holdings: {}", mapping.error()),
                                     "give a preset (marc21, iblsync, koha, sirsi, none) or a spec (docs/formats.md)");
                l.holdings_mapping = h;
            }
            co_await exec.Run([&] {
                storage::AddLibrary(db, l, actor);
                return 0;
            });
            auto stored = co_await exec.Run([&] { return storage::GetLibrary(db, lib); });
            rapidjson::StringBuffer buf;
            Writer w(buf);
            if (stored) WriteLibrary(w, *stored);
            else w.Null();
            co_return Ok(buf);
        }
        if (cmd == "library.disable" || cmd == "library.enable") {
            const bool enable = cmd == "library.enable";
            bool found = co_await exec.Run([&] { return storage::SetLibraryEnabled(db, lib, enable, actor); });
            if (!found) co_return not_registered();
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            Str(w, "isil", lib);
            w.Key("enabled");
            w.Bool(enable);
            w.EndObject();
            co_return Ok(buf);
        }
        if (cmd == "token.issue") {
            std::string label = req.Arg("label");
            if (label.size() > 200) co_return Refuse("a token label has at most 200 characters", "shorten --label");
            auto t = co_await exec.Run([&] { return storage::IssueToken(db, lib, label, actor); });
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            WriteToken(w, t);
            w.EndObject();
            co_return Ok(buf);
        }
        if (cmd == "token.rotate") {
            int grace = 0;
            if (auto g = req.Arg("grace_seconds"); !g.empty()) {
                auto [end, ec] = std::from_chars(g.data(), g.data() + g.size(), grace);
                if (ec != std::errc() || end != g.data() + g.size() || grace < 0 || grace > 30 * 86400)
                    co_return Refuse(fmt::format("grace '{}' is not 0..2592000 seconds", g.substr(0, 20)),
                                     "e.g. --grace 3600 keeps the old tokens working for an hour");
            }
            auto t = co_await exec.Run([&] { return storage::RotateToken(db, lib, grace, actor); });
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            WriteToken(w, t);
            w.Key("replaced");
            w.StartArray();
            for (auto id : t.revoked) w.Int64(id);
            w.EndArray();
            w.Key("grace_seconds");
            w.Int(grace);
            w.EndObject();
            co_return Ok(buf);
        }
        if (cmd == "token.revoke") {
            long long id = 0;
            const std::string which = req.Arg("token_id");
            if (which != "all") {
                auto [end, ec] = std::from_chars(which.data(), which.data() + which.size(), id);
                if (which.empty() || ec != std::errc() || end != which.data() + which.size() || id <= 0)
                    co_return Refuse("say which token: a token id, or all", "--token-id N or --all");
            }
            auto n = co_await exec.Run([&] { return storage::RevokeTokens(db, lib, id, actor); });
            if (id > 0 && n == 0)
                co_return Refuse(fmt::format("library {} has no live token {}", lib, id),
                                 "'iblctl library list' shows how many live tokens each library has");
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            Str(w, "library", lib);
            w.Key("revoked");
            w.Int64(n);
            w.EndObject();
            co_return Ok(buf);
        }
    } catch (const storage::DatabaseUnavailable& e) {
        co_return Refuse(fmt::format("the database is unreachable: {}", e.what()),
                         "check 'iblctl status'; nothing was changed");
    } catch (const storage::DatabaseError& e) {
        if (e.sqlstate() == "IBL01") co_return not_registered();
        if (e.sqlstate() == "IBL02")
            co_return Refuse(e.what(), "'iblctl library list' shows it; nothing was changed");
        co_return Refuse(fmt::format("the database refused: {}", e.what()), "nothing was changed");
    }
    co_return Refuse(fmt::format("unknown command '{}'", cmd.substr(0, 64)), "'iblctl commands' lists the commands");
}

}  // namespace iblsync::daemon
