#include "daemon/config.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <type_traits>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "protocols/isil.hpp"
#include "protocols/province.hpp"
#include "protocols/oai_pmh.hpp"
#include "protocols/sru_client.hpp"

namespace iblsync::daemon {

const char* RoleName(Role role) { return role == Role::kPoi ? "poi" : "national"; }

std::string ListenAddress::ToString() const {
    if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
    return fmt::format("{}:{}", host, port);
}

namespace {

using Problem = std::optional<std::string>;  // an error message, or nothing

struct Setting {
    std::string section;
    std::string key;
    bool reloadable;
    bool required;
    std::function<Problem(const toml::node&, Config&)> parse;
    std::function<std::string(const Config&)> show;
    std::function<void(Config&, const Config&)> copy;

    std::string Name() const { return section + "." + key; }
};

const char* TypeName(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a number";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        default: return "a date/time";
    }
}

template <class T>
Setting Make(std::string section,
             std::string key,
             bool reloadable,
             bool required,
             T Config::*field,
             std::function<Problem(const toml::node&, T&)> parse,
             std::function<std::string(const T&)> show) {
    return Setting{
        std::move(section),
        std::move(key),
        reloadable,
        required,
        [field, parse](const toml::node& n, Config& c) { return parse(n, c.*field); },
        [field, show](const Config& c) { return show(c.*field); },
        [field](Config& dst, const Config& src) { dst.*field = src.*field; },
    };
}

// Value readers, shared by the settings table and the [[harvest]] keys:
// each returns the problem with the value, or fills `out`.
template <class T>
std::function<Problem(const toml::node&, T&)> IntegerValue(long long lo, long long hi) {
    return [lo, hi](const toml::node& n, T& out) -> Problem {
        auto v = n.value_exact<int64_t>();
        if (!v) return fmt::format("expected an integer, got {}", TypeName(n));
        if (*v < lo || *v > hi) return fmt::format("{} is out of range {}..{}", *v, lo, hi);
        out = static_cast<T>(*v);
        return std::nullopt;
    };
}

using StringCheck = std::function<Problem(std::string&)>;

std::function<Problem(const toml::node&, std::string&)> StringValue(StringCheck check) {
    return [check](const toml::node& n, std::string& out) -> Problem {
        auto v = n.value_exact<std::string>();
        if (!v) return fmt::format("expected a string, got {}", TypeName(n));
        std::string s = *v;
        if (check) {
            if (auto p = check(s)) return p;
        }
        out = std::move(s);
        return std::nullopt;
    };
}

template <class T>
Setting Integer(std::string section, std::string key, bool reloadable, T Config::*field, long long lo,
                long long hi) {
    return Make<T>(std::move(section), std::move(key), reloadable, false, field, IntegerValue<T>(lo, hi),
                   [](const T& v) { return std::to_string(v); });
}

Setting String(std::string section, std::string key, bool reloadable, bool required,
               std::string Config::*field, StringCheck check) {
    return Make<std::string>(std::move(section), std::move(key), reloadable, required, field,
                             StringValue(std::move(check)), [](const std::string& v) { return v; });
}

Problem ParseListen(const std::string& s, ListenAddress& out) {
    auto colon = s.rfind(':');
    if (colon == std::string::npos || colon + 1 == s.size())
        return fmt::format("'{}' is not HOST:PORT (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")", s);
    std::string host = s.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    unsigned char buf[16];
    if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1)
        return fmt::format("'{}' is not an IP address; give a numeric address such as 127.0.0.1",
                           host);
    std::string port = s.substr(colon + 1);
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) ||
        std::stoi(port) > 65535)
        return fmt::format("'{}' is not a port number 0..65535", port);
    out = ListenAddress{host, static_cast<std::uint16_t>(std::stoi(port))};
    return std::nullopt;
}

// An array of "HOST:PORT" strings.
std::function<Problem(const toml::node&, std::vector<ListenAddress>&)> ListenList(bool may_be_empty) {
    return [may_be_empty](const toml::node& n, std::vector<ListenAddress>& out) -> Problem {
        const auto* arr = n.as_array();
        if (!arr || (arr->empty() && !may_be_empty))
            return std::string("expected a non-empty array such as [\"127.0.0.1:8080\"]");
        std::vector<ListenAddress> v;
        for (const auto& e : *arr) {
            auto str = e.value_exact<std::string>();
            if (!str) return std::string("every entry must be a \"HOST:PORT\" string");
            ListenAddress a;
            if (auto p = ParseListen(*str, a)) return p;
            v.push_back(a);
        }
        out = std::move(v);
        return std::nullopt;
    };
}

std::string ShowListen(const std::vector<ListenAddress>& v) {
    std::string out;
    for (const auto& a : v) out += (out.empty() ? "" : ",") + a.ToString();
    return out;
}

// A file the daemon reads: an absolute path it can open now. Whether it
// holds what it should is checked where it is used (the TLS files at start
// and reload).
Problem ReadableFile(std::string& v) {
    if (v.empty() || v.front() != '/') return std::string("must be an absolute path");
    if (access(v.c_str(), R_OK) != 0) return fmt::format("cannot read {}: {}", v, std::strerror(errno));
    return std::nullopt;
}

Setting IsilList(const char* table, const char* key, std::vector<std::string> Config::*member) {
    return Make<std::vector<std::string>>(
        table, key, true, false, member,
        [](const toml::node& n, std::vector<std::string>& out) -> Problem {
            const auto* arr = n.as_array();
            if (!arr) return fmt::format("expected an array of ISILs, got {}", TypeName(n));
            std::vector<std::string> v;
            for (const auto& e : *arr) {
                auto str = e.value_exact<std::string>();
                if (!str) return std::string("every entry must be an ISIL such as \"NL-0600670000\"");
                auto isil = protocols::NormalizeIsil(*str);
                if (!isil) return fmt::format("{}: {}", *str, isil.error());
                v.push_back(isil.value());
            }
            out = std::move(v);
            return std::nullopt;
        },
        [](const std::vector<std::string>& v) { return fmt::format("{}", fmt::join(v, ",")); });
}

// A path of the node's own HTTP listener for a protocol server (SRU, OAI-PMH).
Problem ServerPath(std::string& v) {
    if (v.size() < 2 || v.front() != '/' || v.back() == '/' || v.rfind("/v1", 0) == 0 ||
        v.find_first_of("?#% ") != std::string::npos)
        return std::string("must be a path such as \"/sru\" (not /v1/..., no trailing slash)");
    for (const char* taken : {"/healthz", "/readyz", "/metrics", "/iso18626"})
        if (v == taken) return fmt::format("{} is taken by the node itself", v);
    return std::nullopt;
}

const std::vector<Setting>& Settings() {
    static const std::vector<Setting> kSettings = [] {
        std::vector<Setting> s;
        s.push_back(Make<Role>(
            "node", "role", false, true, &Config::role,
            [](const toml::node& n, Role& out) -> Problem {
                auto v = n.value_exact<std::string>();
                if (v && *v == "poi") out = Role::kPoi;
                else if (v && *v == "national") out = Role::kNational;
                else return std::string("must be \"poi\" or \"national\"");
                return std::nullopt;
            },
            [](const Role& r) { return std::string(RoleName(r)); }));
        s.push_back(String("node", "isil", false, true, &Config::isil, [](std::string& v) -> Problem {
            auto r = protocols::NormalizeIsil(v);
            if (!r) return r.error();
            v = r.value();
            return std::nullopt;
        }));
        s.push_back(String("node", "name", true, false, &Config::name, [](std::string& v) -> Problem {
            if (v.empty() || v.size() > 200) return std::string("must be 1..200 characters");
            return std::nullopt;
        }));
        s.push_back(Make<std::vector<std::string>>(
            "node", "provinces", false, false, &Config::provinces,
            [](const toml::node& n, std::vector<std::string>& out) -> Problem {
                const auto* arr = n.as_array();
                if (!arr) return fmt::format("expected an array of province codes, got {}", TypeName(n));
                std::vector<std::string> v;
                for (const auto& e : *arr) {
                    auto str = e.value_exact<std::string>();
                    if (!str) return std::string("every entry must be a string such as \"NL-GE\"");
                    auto p = protocols::NormalizeProvince(*str);
                    if (!p) return p.error();
                    if (std::find(v.begin(), v.end(), p.value()) != v.end())
                        return fmt::format("{} is listed twice", p.value());
                    v.push_back(p.value());
                }
                out = std::move(v);
                return std::nullopt;
            },
            [](const std::vector<std::string>& v) { return fmt::format("{}", fmt::join(v, ",")); }));
        s.push_back(Make<std::vector<ListenAddress>>("http", "listen", false, false, &Config::http_listen,
                                                     ListenList(false), ShowListen));
        s.push_back(Make<std::vector<ListenAddress>>("http", "tls_listen", false, false, &Config::tls_listen,
                                                     ListenList(true), ShowListen));
        s.push_back(String("http", "tls_certificate", true, false, &Config::tls_certificate, ReadableFile));
        s.push_back(String("http", "tls_private_key", true, false, &Config::tls_private_key, ReadableFile));
        s.push_back(Integer("http", "max_body_bytes", true, &Config::max_body_bytes, 1024, 1LL << 32));
        s.push_back(Integer("http", "max_header_bytes", true, &Config::max_header_bytes, 1024, 1 << 20));
        s.push_back(Integer("http", "request_timeout_seconds", true, &Config::request_timeout_seconds, 1, 3600));
        s.push_back(Integer("http", "idle_timeout_seconds", true, &Config::idle_timeout_seconds, 1, 3600));
        s.push_back(Integer("http", "max_connections", true, &Config::max_connections, 1, 100000));
        s.push_back(Integer("http", "shutdown_timeout_seconds", true, &Config::shutdown_timeout_seconds, 1, 600));
        s.push_back(Integer("api", "max_batch_items", true, &Config::api_max_batch_items, 1, 100000));
        s.push_back(Integer("api", "max_record_bytes", true, &Config::api_max_record_bytes, 1024, 64 << 20));
        s.push_back(Integer("api", "rate_per_second", true, &Config::api_rate_per_second, 0, 1000000));
        s.push_back(Integer("api", "rate_burst", true, &Config::api_rate_burst, 1, 1000000));
        s.push_back(Integer("api", "max_wait_seconds", true, &Config::api_max_wait_seconds, 0, 600));
        s.push_back(Integer("api", "max_changes", true, &Config::api_max_changes, 1, 100000));
        s.push_back(Integer("api", "keep_changes_days", true, &Config::api_keep_changes_days, 0, 36500));
        s.push_back(Integer("api", "keep_idempotency_hours", true, &Config::api_keep_idempotency_hours, 1, 8760));
        s.push_back(String("sru", "path", false, false, &Config::sru_path, ServerPath));
        s.push_back(Integer("sru", "default_records", true, &Config::sru_default_records, 0, 1000));
        s.push_back(Integer("sru", "max_records", true, &Config::sru_max_records, 1, 10000));
        s.push_back(Integer("sru", "exact_count", true, &Config::sru_exact_count, 0, 100000000));
        s.push_back(String("sru", "title", true, false, &Config::sru_title, [](std::string& v) -> Problem {
            if (v.size() > 200) return std::string("is longer than 200 bytes");
            return std::nullopt;
        }));
        s.push_back(String("oai", "path", false, false, &Config::oai_path, ServerPath));
        s.push_back(Integer("oai", "page_size", true, &Config::oai_page_size, 1, 10000));
        s.push_back(String("oai", "repository_name", true, false, &Config::oai_repository_name,
                           [](std::string& v) -> Problem {
                               if (v.size() > 200) return std::string("is longer than 200 bytes");
                               return std::nullopt;
                           }));
        s.push_back(String("oai", "repository_identifier", true, false, &Config::oai_repository_identifier,
                           [](std::string& v) -> Problem {
                               if (!protocols::oai::ValidRepositoryIdentifier(v))
                                   return std::string("must be a domain name such as \"oai.bibliotheek.nl\"");
                               return std::nullopt;
                           }));
        s.push_back(Make<std::vector<std::string>>(
            "oai", "admin_email", true, false, &Config::oai_admin_email,
            [](const toml::node& n, std::vector<std::string>& out) -> Problem {
                const auto* arr = n.as_array();
                if (!arr || arr->empty()) return std::string("expected an array of e-mail addresses");
                std::vector<std::string> v;
                for (const auto& e : *arr) {
                    auto str = e.value_exact<std::string>();
                    const auto at = str ? str->find('@') : std::string::npos;
                    if (!str || at == 0 || at == std::string::npos || str->find('.', at) == std::string::npos ||
                        str->find_first_of(" \t<>\"") != std::string::npos || str->size() > 200)
                        return std::string("every entry must be an e-mail address such as \"ibl@poi.example.nl\"");
                    v.push_back(*str);
                }
                out = std::move(v);
                return std::nullopt;
            },
            [](const std::vector<std::string>& v) { return fmt::format("{}", fmt::join(v, ",")); }));
        s.push_back(IsilList("oai", "excluded_libraries", &Config::oai_excluded_libraries));
        s.push_back(Integer("ibl", "anonymise_after_days", true, &Config::ibl_anonymise_after_days, 0, 3650));
        s.push_back(Integer("ibl", "answer_within_minutes", true, &Config::ibl_answer_within_minutes, 0, 43200));
        s.push_back(Integer("ibl", "confirm_after_minutes", true, &Config::ibl_confirm_after_minutes, 0, 525600));
        s.push_back(Integer("ibl", "max_open_per_library", true, &Config::ibl_max_open_per_library, 0, 1000000));
        s.push_back(Integer("ibl", "max_open_per_patron", true, &Config::ibl_max_open_per_patron, 0, 1000));
        s.push_back(Integer("ibl", "max_open_per_lender", true, &Config::ibl_max_open_per_lender, 0, 1000000));
        s.push_back(IsilList("ibl", "excluded_lenders", &Config::ibl_excluded_lenders));
        s.push_back(String("ibl", "last_resort", true, false, &Config::ibl_last_resort, [](std::string& v) -> Problem {
            auto r = protocols::NormalizeIsil(v);
            if (!r) return r.error();
            v = r.value();
            return std::nullopt;
        }));
        s.push_back(String("database", "conninfo", false, true, &Config::db_conninfo,
                           [](std::string& v) -> Problem {
                               if (v.empty()) return std::string("must not be empty");
                               return std::nullopt;
                           }));
        s.push_back(Integer("database", "pool_size", false, &Config::db_pool_size, 1, 64));
        s.push_back(String("control", "socket", false, false, &Config::control_socket,
                           [](std::string& v) -> Problem {
                               if (v.empty() || v.front() != '/')
                                   return std::string("must be an absolute path");
                               if (v.size() > 100)
                                   return std::string("is longer than 100 bytes; Unix socket paths are limited to 107");
                               return std::nullopt;
                           }));
        s.push_back(String("control", "group", false, false, &Config::control_group, nullptr));
        s.push_back(String("log", "level", true, false, &Config::log_level, [](std::string& v) -> Problem {
            static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
            for (const char* l : kLevels)
                if (v == l) return std::nullopt;
            return fmt::format("'{}' is not one of trace, debug, info, warn, error, off", v);
        }));
        return s;
    }();
    return kSettings;
}

// Edit distance, to suggest the key an operator probably meant.
std::size_t Distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::string Suggest(const std::string& wrong, const std::vector<std::string>& known) {
    std::string best;
    std::size_t best_d = 3;
    for (const auto& k : known) {
        auto d = Distance(wrong, k);
        if (d < best_d) best_d = d, best = k;
    }
    // A shortened key ("max_batch" for "max_batch_items") is far by edit
    // distance but obvious to a reader; suggest it when only one key fits.
    if (best.empty() && wrong.size() >= 3) {
        int prefixed = 0;
        for (const auto& k : known)
            if (k.rfind(wrong, 0) == 0) ++prefixed, best = k;
        if (prefixed != 1) best.clear();
    }
    return best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best);
}

// The keys of an array-of-tables section ([[harvest]], [[peer]]): name, and
// the reader of its value into the entry.
template <class Entry>
struct TableKey {
    std::string name;
    std::function<Problem(const toml::node&, Entry&)> parse;
};

template <class Entry, class T>
TableKey<Entry> Field(std::string name, T Entry::*field, std::function<Problem(const toml::node&, T&)> read) {
    return {std::move(name), [field, read](const toml::node& n, Entry& s) { return read(n, s.*field); }};
}

Problem NotEmpty(std::string& v) {
    if (v.empty()) return std::string("must not be empty");
    return std::nullopt;
}

Problem EntryName(std::string& v) {
    const bool ok = !v.empty() && v.size() <= 64 && v.front() != '-' && v.front() != '_' &&
                    std::all_of(v.begin(), v.end(), [](char c) {
                        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
                    });
    if (!ok) return std::string("must be 1..64 of a-z 0-9 - _, starting with a letter or digit");
    return std::nullopt;
}

Problem CanonicalIsil(std::string& v) {
    auto isil = protocols::NormalizeIsil(v);
    if (!isil) return isil.error();
    v = isil.value();
    return std::nullopt;
}

Problem HttpUrlValue(std::string& v) {
    auto url = protocols::sru::ParseHttpUrl(v);
    if (!url) return url.error();
    return std::nullopt;
}

const std::vector<TableKey<HarvestSource>>& HarvestKeys() {
    static const std::vector<TableKey<HarvestSource>> kKeys = [] {
        using S = HarvestSource;
        std::vector<TableKey<S>> k;
        k.push_back(Field<S, std::string>("name", &S::name, StringValue(EntryName)));
        k.push_back(Field<S, std::string>("library", &S::library, StringValue(CanonicalIsil)));
        k.push_back(Field<S, std::string>("url", &S::url, StringValue(HttpUrlValue)));
        k.push_back(Field<S, std::string>("type", &S::protocol, StringValue([](std::string& v) -> Problem {
            if (v != "sru" && v != "oai") return std::string("must be \"sru\" or \"oai\" (OAI-PMH)");
            return std::nullopt;
        })));
        k.push_back(Field<S, std::string>("metadata_prefix", &S::metadata_prefix, StringValue([](std::string& v) -> Problem {
            if (v.empty() || v.size() > 100 || v.find_first_of(" &=?#%") != std::string::npos)
                return std::string("must be an OAI-PMH metadataPrefix such as \"marc21\"");
            return std::nullopt;
        })));
        k.push_back(Field<S, std::string>("set", &S::set, StringValue([](std::string& v) -> Problem {
            if (v.empty() || v.size() > 200 || v.find_first_of(" &=?#%") != std::string::npos)
                return std::string("must be an OAI-PMH setSpec such as \"library:NL-0600670000\"");
            return std::nullopt;
        })));
        k.push_back(Field<S, std::string>("version", &S::version, StringValue([](std::string& v) -> Problem {
            if (v != "1.1" && v != "1.2" && v != "2.0") return std::string("must be \"1.1\", \"1.2\" or \"2.0\"");
            return std::nullopt;
        })));
        k.push_back(Field<S, std::string>("record_schema", &S::record_schema, StringValue(NotEmpty)));
        k.push_back(Field<S, std::string>("query", &S::query, StringValue(NotEmpty)));
        k.push_back(Field<S, std::string>(
            "incremental_query", &S::incremental_query, StringValue([](std::string& v) -> Problem {
                if (!v.empty() && v.find("{since}") == std::string::npos)
                    return std::string("must contain {since}, e.g. \"rec.lastModificationDate > {since}\"");
                return std::nullopt;
            })));
        k.push_back(Field<S, int>("page_size", &S::page_size, IntegerValue<int>(1, 10000)));
        k.push_back(Field<S, int>("concurrency", &S::concurrency, IntegerValue<int>(1, 8)));
        k.push_back(Field<S, int>("interval_minutes", &S::interval_minutes, IntegerValue<int>(1, 525600)));
        k.push_back(Field<S, int>("full_interval_hours", &S::full_interval_hours, IntegerValue<int>(0, 87600)));
        k.push_back(Field<S, int>("timeout_seconds", &S::timeout_seconds, IntegerValue<int>(1, 3600)));
        k.push_back(Field<S, int>("retry_max_seconds", &S::retry_max_seconds, IntegerValue<int>(1, 86400)));
        k.push_back(Field<S, int>("max_delete_percent", &S::max_delete_percent, IntegerValue<int>(0, 100)));
        k.push_back(Field<S, std::uint64_t>("max_page_bytes", &S::max_page_bytes,
                                            IntegerValue<std::uint64_t>(4096, 1LL << 31)));
        k.push_back(Field<S, std::string>("username", &S::username, StringValue([](std::string& v) -> Problem {
            if (v.empty() || v.find(':') != std::string::npos || v.size() > 256)
                return std::string("must be 1..256 characters without ':' (HTTP Basic)");
            return std::nullopt;
        })));
        k.push_back(Field<S, std::string>("password", &S::password, StringValue([](std::string& v) -> Problem {
            if (v.empty() || v.size() > 256) return std::string("must be 1..256 characters");
            return std::nullopt;
        })));
        return k;
    }();
    return kKeys;
}

const std::vector<TableKey<Peer>>& PeerKeys() {
    static const std::vector<TableKey<Peer>> kKeys = [] {
        std::vector<TableKey<Peer>> k;
        k.push_back(Field<Peer, std::string>("name", &Peer::name, StringValue(EntryName)));
        k.push_back(Field<Peer, std::string>("isil", &Peer::isil, StringValue(CanonicalIsil)));
        k.push_back(Field<Peer, std::string>("url", &Peer::url, StringValue(HttpUrlValue)));
        k.push_back(Field<Peer, std::string>("token", &Peer::token, StringValue([](std::string& v) -> Problem {
            if (v.rfind("iblt_", 0) != 0 || v.size() > 200)
                return std::string("must be an API token iblt_…, issued on the peer with iblctl token issue");
            return std::nullopt;
        })));
        k.push_back(Field<Peer, int>("page_size", &Peer::page_size, IntegerValue<int>(1, 10000)));
        k.push_back(Field<Peer, int>("wait_seconds", &Peer::wait_seconds, IntegerValue<int>(0, 300)));
        k.push_back(Field<Peer, int>("timeout_seconds", &Peer::timeout_seconds, IntegerValue<int>(1, 3600)));
        k.push_back(Field<Peer, int>("retry_max_seconds", &Peer::retry_max_seconds, IntegerValue<int>(1, 86400)));
        k.push_back(Field<Peer, std::uint64_t>("max_page_bytes", &Peer::max_page_bytes,
                                               IntegerValue<std::uint64_t>(4096, 1LL << 31)));
        k.push_back({"follow", [](const toml::node& n, Peer& p) -> Problem {
                         auto v = n.value<std::string>();
                         if (!v || (*v != "all" && *v != "availability"))
                             return std::string("must be \"all\" (whole records) or \"availability\" (brief records "
                                                "with all their copies)");
                         p.brief = *v == "availability";
                         return std::nullopt;
                     }});
        return k;
    }();
    return kKeys;
}

const std::vector<TableKey<IblPeer>>& IblPeerKeys() {
    static const std::vector<TableKey<IblPeer>> kKeys = [] {
        using P = IblPeer;
        std::vector<TableKey<P>> k;
        k.push_back(Field<P, std::string>("name", &P::name, StringValue(EntryName)));
        k.push_back(Field<P, std::string>("isil", &P::isil, StringValue(CanonicalIsil)));
        k.push_back(Field<P, std::string>("url", &P::url, StringValue(HttpUrlValue)));
        k.push_back(Field<P, std::string>("token", &P::token, StringValue([](std::string& v) -> Problem {
            if (v.rfind("iblt_", 0) != 0 || v.size() > 200)
                return std::string("must be an API token iblt_…, issued on the peer for this node's ISIL with "
                                   "iblctl token issue");
            return std::nullopt;
        })));
        k.push_back(Field<P, int>("timeout_seconds", &P::timeout_seconds, IntegerValue<int>(1, 600)));
        k.push_back(Field<P, int>("retry_max_seconds", &P::retry_max_seconds, IntegerValue<int>(1, 86400)));
        return k;
    }();
    return kKeys;
}

const std::vector<TableKey<IblTariff>>& IblTariffKeys() {
    static const std::vector<TableKey<IblTariff>> kKeys = [] {
        using T = IblTariff;
        std::vector<TableKey<T>> k;
        k.push_back(Field<T, std::string>("name", &T::name, StringValue([](std::string& v) -> Problem {
            if (v.empty() || v.size() > 100) return std::string("must be 1..100 characters");
            return std::nullopt;
        })));
        auto province = [](std::string& v) -> Problem {
            if (v == "*") return std::nullopt;
            auto p = protocols::NormalizeProvince(v);
            if (!p) return std::string("must be a province code such as \"NL-GE\", or \"*\" for any");
            v = *p;
            return std::nullopt;
        };
        k.push_back(Field<T, std::string>("from", &T::from, StringValue(province)));
        k.push_back(Field<T, std::string>("to", &T::to, StringValue(province)));
        k.push_back(Field<T, std::string>("kind", &T::kind, StringValue([](std::string& v) -> Problem {
            if (v != "loan" && v != "lost")
                return std::string("must be \"loan\" (the item came back) or \"lost\" (it did not)");
            return std::nullopt;
        })));
        k.push_back({"amount", [](const toml::node& n, T& t) -> Problem {
                         auto v = n.value<std::string>();
                         const auto point = v ? v->find('.') : std::string::npos;
                         const bool ok = v && !v->empty() && v->size() <= 9 && (*v)[0] != '.' &&
                                         std::all_of(v->begin(), v->end(),
                                                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; }) &&
                                         std::count(v->begin(), v->end(), '.') <= 1 &&
                                         (point == std::string::npos || (v->size() - point - 1 >= 1 && v->size() - point - 1 <= 2));
                         if (!ok) return std::string("must be an amount in euros as a string, such as \"3.50\"");
                         const std::string whole = v->substr(0, point);
                         std::string cents = point == std::string::npos ? "00" : v->substr(point + 1);
                         if (cents.size() == 1) cents += "0";
                         t.cents = std::stoll(whole) * 100 + std::stoll(cents);
                         return std::nullopt;
                     }});
        return k;
    }();
    return kKeys;
}

const std::vector<TableKey<FileDrop>>& DropKeys() {
    static const std::vector<TableKey<FileDrop>> kKeys = [] {
        using D = FileDrop;
        std::vector<TableKey<D>> k;
        k.push_back(Field<D, std::string>("name", &D::name, StringValue(EntryName)));
        k.push_back(Field<D, std::string>("library", &D::library, StringValue(CanonicalIsil)));
        k.push_back(Field<D, std::string>("directory", &D::directory, StringValue([](std::string& v) -> Problem {
            if (v.empty() || v.front() != '/') return std::string("must be an absolute path");
            while (v.size() > 1 && v.back() == '/') v.pop_back();
            return std::nullopt;
        })));
        k.push_back({"mode", [](const toml::node& n, D& d) -> Problem {
                         auto v = n.value<std::string>();
                         if (!v || (*v != "incremental" && *v != "full"))
                             return std::string("must be \"incremental\" (files add and change records) or \"full\" "
                                                "(each file is the whole catalogue)");
                         d.full = *v == "full";
                         return std::nullopt;
                     }});
        k.push_back(Field<D, int>("poll_seconds", &D::poll_seconds, IntegerValue<int>(1, 3600)));
        k.push_back(Field<D, int>("settle_seconds", &D::settle_seconds, IntegerValue<int>(0, 3600)));
        k.push_back(Field<D, int>("max_delete_percent", &D::max_delete_percent, IntegerValue<int>(0, 100)));
        return k;
    }();
    return kKeys;
}

// An array of tables, one entry each. Returns an error as
// "path:line: section[N].key: message" (N counted from 1).
template <class Entry>
Problem ParseTables(const toml::node& node, const std::string& path, const char* section,
                    const std::vector<TableKey<Entry>>& keys, std::initializer_list<const char*> required,
                    std::vector<Entry>& out) {
    const auto* arr = node.as_array();
    if (!arr || !arr->is_array_of_tables())
        return fmt::format("{}:{}: {}: must be written as [[{}]] tables, one each", path, node.source().begin.line,
                           section, section);
    std::vector<std::string> names;
    for (const auto& k : keys) names.push_back(k.name);
    std::size_t i = 0;
    for (const auto& entry : *arr) {
        ++i;
        const auto& table = *entry.as_table();
        Entry src;
        src.line = static_cast<int>(table.source().begin.line);
        for (const auto& [k, n] : table) {
            const std::string key(k.str());
            auto known = std::find_if(keys.begin(), keys.end(), [&](const auto& h) { return h.name == key; });
            Problem p = known == keys.end() ? Problem("unknown key" + Suggest(key, names)) : known->parse(n, src);
            if (p)
                return fmt::format("{}:{}: {}[{}].{}: {}", path,
                                   (known == keys.end() ? k.source() : n.source()).begin.line, section, i, key, *p);
        }
        for (const char* r : required)
            if (!table.contains(r))
                return fmt::format("{}:{}: {}[{}].{}: required key is missing", path, src.line, section, i, r);
        for (const auto& other : out)
            if (!src.name.empty() && other.name == src.name)
                return fmt::format("{}:{}: {}[{}].name: '{}' is already the name of the entry at line {}", path,
                                   src.line, section, i, src.name, other.line);
        out.push_back(std::move(src));
    }
    return std::nullopt;
}

}  // namespace

Result<Config> ParseConfig(const std::string& text, const std::string& path) {
    auto at = [&](const toml::source_region& where, const std::string& key, const std::string& msg) {
        return Fail(fmt::format("{}:{}: {}: {}", path, where.begin.line, key, msg));
    };
    toml::table root;
    try {
        root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        return Fail(fmt::format("{}:{}: syntax error: {}", path, e.source().begin.line, e.description()));
    }

    std::vector<std::string> sections;
    for (const auto& s : Settings())
        if (std::find(sections.begin(), sections.end(), s.section) == sections.end())
            sections.push_back(s.section);
    sections.push_back("harvest");  // [[harvest]] and [[peer]], read by ParseTables
    sections.push_back("peer");
    sections.push_back("drop");
    sections.push_back("ibl_peer");
    sections.push_back("ibl_tariff");

    Config cfg;
    cfg.path = path;
    std::vector<std::string> seen;
    for (const auto& [section_key, section_node] : root) {
        std::string section(section_key.str());
        if (section == "harvest") {
            if (auto p = ParseTables(section_node, path, "harvest", HarvestKeys(), {"name", "library", "url"},
                                     cfg.harvest))
                return Fail(*p);
            continue;
        }
        if (section == "peer") {
            if (auto p = ParseTables(section_node, path, "peer", PeerKeys(), {"name", "isil", "url", "token"},
                                     cfg.peers))
                return Fail(*p);
            continue;
        }
        if (section == "ibl_peer") {
            if (auto p = ParseTables(section_node, path, "ibl_peer", IblPeerKeys(), {"name", "isil", "url", "token"},
                                     cfg.ibl_peers))
                return Fail(*p);
            continue;
        }
        if (section == "ibl_tariff") {
            if (auto p = ParseTables(section_node, path, "ibl_tariff", IblTariffKeys(), {"amount"}, cfg.ibl_tariffs))
                return Fail(*p);
            continue;
        }
        if (section == "drop") {
            if (auto p = ParseTables(section_node, path, "drop", DropKeys(), {"name", "library", "directory"},
                                     cfg.drops))
                return Fail(*p);
            continue;
        }
        if (std::find(sections.begin(), sections.end(), section) == sections.end())
            return at(section_key.source(), section,
                      "unknown section" + Suggest(section, sections));
        const auto* table = section_node.as_table();
        if (!table)
            return at(section_key.source(), section, fmt::format("must be a table [{}]", section));
        for (const auto& [key, node] : *table) {
            std::string name = section + "." + std::string(key.str());
            const Setting* setting = nullptr;
            std::vector<std::string> known;
            for (const auto& s : Settings()) {
                if (s.section != section) continue;
                known.push_back(s.key);
                if (s.key == key.str()) setting = &s;
            }
            if (!setting) return at(key.source(), name, "unknown key" + Suggest(std::string(key.str()), known));
            if (auto problem = setting->parse(node, cfg)) return at(node.source(), name, *problem);
            seen.push_back(name);
        }
    }
    for (const auto& s : Settings()) {
        if (s.required && std::find(seen.begin(), seen.end(), s.Name()) == seen.end())
            return Fail(fmt::format("{}: {}: required key is missing; add {} = ... under [{}]", path,
                                    s.Name(), s.key, s.section));
    }
    if (!cfg.tls_listen.empty() && (cfg.tls_certificate.empty() || cfg.tls_private_key.empty()))
        return Fail(fmt::format("{}: http.tls_listen: HTTPS needs a certificate; set http.tls_certificate and "
                                "http.tls_private_key too",
                                path));
    if (cfg.sru_default_records > cfg.sru_max_records)
        return Fail(fmt::format("{}: sru.default_records: {} is more than sru.max_records ({})", path,
                                cfg.sru_default_records, cfg.sru_max_records));
    if (cfg.oai_path == cfg.sru_path)
        return Fail(fmt::format("{}: oai.path: {} is sru.path too; give the OAI-PMH provider a path of its own",
                                path, cfg.oai_path));
    if (cfg.role == Role::kPoi && cfg.provinces.empty())
        return Fail(fmt::format("{}: node.provinces: a node with role \"poi\" must list the "
                                "provinces it serves, e.g. provinces = [\"NL-GE\"]",
                                path));
    if (cfg.role == Role::kPoi && cfg.peers.size() > 1)
        return Fail(fmt::format("{}:{}: peer[2]: a POI node follows one national node; it has {} [[peer]] tables",
                                path, cfg.peers[1].line, cfg.peers.size()));
    for (const auto& p : cfg.peers)
        if (p.brief && cfg.role == Role::kNational)
            return Fail(fmt::format("{}:{}: peer.follow: the national node keeps whole records of every POI; "
                                    "follow = \"availability\" is for a POI node's national peer",
                                    path, p.line));
    for (const auto& p : cfg.peers)
        if (p.isil == cfg.isil)
            return Fail(fmt::format("{}:{}: peer.isil: {} is this node's own ISIL", path, p.line, p.isil));
    for (const auto& p : cfg.ibl_peers) {
        if (p.isil == cfg.isil)
            return Fail(fmt::format("{}:{}: ibl_peer.isil: {} is this node's own ISIL", path, p.line, p.isil));
        for (const auto* o = cfg.ibl_peers.data(); o != &p; ++o)
            if (o->isil == p.isil)
                return Fail(fmt::format("{}:{}: ibl_peer.isil: {} is also the node of the [[ibl_peer]] at line {}",
                                        path, p.line, p.isil, o->line));
    }
    for (const auto& t : cfg.ibl_tariffs)
        for (const auto* o = cfg.ibl_tariffs.data(); o != &t; ++o)
            if (o->from == t.from && o->to == t.to && o->kind == t.kind)
                return Fail(fmt::format("{}:{}: ibl_tariff: the [[ibl_tariff]] at line {} has the same from, to and "
                                        "kind ({} to {}, {})",
                                        path, t.line, o->line, t.from, t.to, t.kind));
    for (const auto& h : cfg.harvest) {
        if (h.username.empty() != h.password.empty())
            return Fail(fmt::format("{}:{}: harvest.{}: HTTP Basic needs both username and password", path, h.line,
                                    h.username.empty() ? "username" : "password"));
        if (h.protocol == "oai" && h.concurrency != 1)
            return Fail(fmt::format("{}:{}: harvest.concurrency: an OAI-PMH list comes one page after the other "
                                    "(each page's resumption token asks for the next); leave concurrency out",
                                    path, h.line));
        if (h.protocol == "sru" && (!h.set.empty() || h.metadata_prefix != "marc21"))
            return Fail(fmt::format("{}:{}: harvest.{}: only for type = \"oai\"; an SRU source takes query and "
                                    "record_schema",
                                    path, h.line, h.set.empty() ? "metadata_prefix" : "set"));
    }
    // iblctl sync names sources, peers and drops alike.
    for (const auto& d : cfg.drops) {
        for (const auto& h : cfg.harvest)
            if (h.name == d.name)
                return Fail(fmt::format("{}:{}: drop.name: '{}' is already the name of the [[harvest]] at line {}",
                                        path, d.line, d.name, h.line));
        for (const auto& p : cfg.peers)
            if (p.name == d.name)
                return Fail(fmt::format("{}:{}: drop.name: '{}' is already the name of the [[peer]] at line {}",
                                        path, d.line, d.name, p.line));
        for (const auto* o = cfg.drops.data(); o != &d; ++o)
            if (o->directory == d.directory)
                return Fail(fmt::format("{}:{}: drop.directory: {} is also the directory of the [[drop]] at line {}",
                                        path, d.line, d.directory, o->line));
    }
    if (cfg.name.empty()) cfg.name = cfg.isil;
    return cfg;
}

Result<Config> LoadConfig(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Fail(fmt::format("{}: cannot open config file: {}", path, std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    return ParseConfig(text.str(), path);
}

ConfigDiff Diff(const Config& before, const Config& after) {
    ConfigDiff d;
    for (const auto& s : Settings()) {
        if (s.show(before) == s.show(after)) continue;
        (s.reloadable ? d.applied : d.need_restart).push_back(s.Name());
    }
    // Where a source sits in the file is no change to it.
    auto unplaced = [](auto v) {
        for (auto& s : v) s.line = 0;
        return v;
    };
    // A source added is started by the reload; one changed or removed
    // waits for a restart (its run in flight belongs to the old one).
    std::vector<HarvestSource> kept;
    for (const auto& h : after.harvest) {
        if (std::any_of(before.harvest.begin(), before.harvest.end(), [&](const auto& b) { return b.name == h.name; }))
            kept.push_back(h);
        else
            d.applied.push_back("harvest." + h.name);
    }
    if (unplaced(before.harvest) != unplaced(kept)) d.need_restart.push_back("harvest");
    if (unplaced(before.peers) != unplaced(after.peers)) d.need_restart.push_back("peer");
    if (unplaced(before.drops) != unplaced(after.drops)) d.need_restart.push_back("drop");
    if (unplaced(before.ibl_peers) != unplaced(after.ibl_peers)) d.need_restart.push_back("ibl_peer");
    if (unplaced(before.ibl_tariffs) != unplaced(after.ibl_tariffs)) d.applied.push_back("ibl_tariff");
    return d;
}

Config MergeReloadable(const Config& before, const Config& after) {
    Config out = before;
    for (const auto& s : Settings())
        if (s.reloadable) s.copy(out, after);
    out.ibl_tariffs = after.ibl_tariffs;  // applies to transactions that end from now on
    for (auto& h : AddedHarvestSources(before, after)) out.harvest.push_back(std::move(h));
    return out;
}

std::vector<HarvestSource> AddedHarvestSources(const Config& before, const Config& after) {
    std::vector<HarvestSource> added;
    for (const auto& h : after.harvest)
        if (std::none_of(before.harvest.begin(), before.harvest.end(),
                         [&](const HarvestSource& b) { return b.name == h.name; }))
            added.push_back(h);
    return added;
}

namespace {

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string TomlString(const std::string& v) {
    std::string out = "\"";
    for (const unsigned char c : v) {
        if (c == '"' || c == '\\')
            out += {'\\', static_cast<char>(c)};
        else if (c < 0x20 || c == 0x7f)
            out += fmt::format("\\u{:04X}", c);
        else
            out += static_cast<char>(c);
    }
    return out + "\"";
}

}  // namespace

Result<std::string> WithHarvestSource(const std::string& text, const std::string& path, const HarvestSource& source) {
    auto current = ParseConfig(text, path);
    if (!current) return Fail(current.error() + " (fix the config file first)");
    auto taken = [&](const auto& list, const char* table) -> std::optional<std::string> {
        for (const auto& e : list)
            if (e.name == source.name)
                return fmt::format("'{}' is already the name of the [[{}]] at {}:{}", source.name, table, path, e.line);
        return std::nullopt;
    };
    for (auto problem : {taken(current->harvest, "harvest"), taken(current->peers, "peer"),
                         taken(current->drops, "drop")})
        if (problem) return Fail(*problem);

    const HarvestSource defaults;
    std::string library = source.library;
    CanonicalIsil(library);  // as the node reads it; a bad one is named below
    std::string table =
        fmt::format("[[harvest]]\nname = {}\nlibrary = {}\n", TomlString(source.name), TomlString(library));
    if (source.protocol != defaults.protocol) table += fmt::format("type = {}\n", TomlString(source.protocol));
    table += fmt::format("url = {}\n", TomlString(source.url));
    if (source.protocol == "oai" || source.metadata_prefix != defaults.metadata_prefix)
        table += fmt::format("metadata_prefix = {}\n", TomlString(source.metadata_prefix));
    if (!source.set.empty()) table += fmt::format("set = {}\n", TomlString(source.set));
    if (source.page_size != defaults.page_size) table += fmt::format("page_size = {}\n", source.page_size);
    if (source.interval_minutes != defaults.interval_minutes)
        table += fmt::format("interval_minutes = {}\n", source.interval_minutes);

    std::string next = text;
    if (!next.empty() && next.back() != '\n') next += '\n';
    const auto first_new_line = std::count(next.begin(), next.end(), '\n') + 1;
    next += "\n" + table;
    auto checked = ParseConfig(next, path);
    if (checked) return next;
    // "path:LINE: key: why": a line of the new table is no line of the file.
    const std::string prefix = path + ":";
    const std::string& e = checked.error();
    if (e.rfind(prefix, 0) == 0) {
        const auto colon = e.find(": ", prefix.size());
        long long line = 0;
        try {
            line = std::stoll(e.substr(prefix.size(), colon - prefix.size()));
        } catch (const std::exception&) {
        }
        if (colon != std::string::npos && line >= first_new_line) return Fail(e.substr(colon + 2));
    }
    return Fail(e);
}

}  // namespace iblsync::daemon
