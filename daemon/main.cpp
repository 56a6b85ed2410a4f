// iblsyncd: the iblsync node daemon.

#include <cstring>
#include <iostream>
#include <string>

#include <fmt/format.h>

#include "daemon/config.hpp"
#include "daemon/log.hpp"
#include "daemon/node.hpp"
#include "daemon/version.hpp"
#include "storage/database.hpp"

namespace {

constexpr const char* kDefaultConfig = "/etc/iblsync/iblsyncd.toml";

void Usage(std::ostream& out) {
    out << "usage: iblsyncd [--config FILE]\n"
           "       iblsyncd --check-config FILE\n"
           "       iblsyncd --migrate [--config FILE]   apply database migrations and exit\n"
           "       iblsyncd --version\n"
           "\n"
           "Runs an iblsync node (POI or national) with the given config file\n"
           "(default " << kDefaultConfig << "). SIGHUP reloads the config, SIGTERM stops.\n";
}

}  // namespace

int main(int argc, char** argv) {
    using namespace iblsync::daemon;
    std::string config_path = kDefaultConfig;
    bool check_only = false;
    bool migrate_only = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if ((arg == "--config" || arg == "-c" || arg == "--check-config") && i + 1 < argc) {
            check_only = check_only || arg == "--check-config";
            config_path = argv[++i];
        } else if (arg == "--migrate") {
            migrate_only = true;
        } else if (arg == "--version") {
            std::cout << "iblsyncd " << kVersion << " (" << kRevision << ")\n";
            return 0;
        } else if (arg == "--help" || arg == "-h") {
            Usage(std::cout);
            return 0;
        } else {
            std::cerr << "iblsyncd: unknown or incomplete argument '" << arg << "'\n";
            Usage(std::cerr);
            return 64;  // EX_USAGE
        }
    }

    auto config = LoadConfig(config_path);
    if (check_only) {
        if (!config) {
            std::cerr << config.error() << "\n";
            return kExitConfig;
        }
        std::cout << fmt::format("{}: OK (role={} isil={} listen={})\n", config_path,
                                 RoleName(config->role), config->isil,
                                 config->http_listen.front().ToString());
        return 0;
    }
    SetUpLogging(config ? config->log_level : "info");
    if (!config) {
        spdlog::error("config invalid error={}", Quote(config.error()));
        return kExitConfig;
    }
    if (migrate_only) {
        try {
            iblsync::storage::Database db(config->db_conninfo, 1);
            auto report = db.Migrate();
            db.ClaimIdentity(RoleName(config->role), config->isil);
            std::cout << fmt::format("schema at version {} (was {}, applied {})\n", report.to_version,
                                     report.from_version, report.applied.size());
            return 0;
        } catch (const iblsync::storage::SchemaTooNew& e) {
            spdlog::error("database refused error={}", Quote(e.what()));
            return kExitConfig;
        } catch (const iblsync::storage::IdentityMismatch& e) {
            spdlog::error("database refused error={}", Quote(e.what()));
            return kExitConfig;
        } catch (const std::exception& e) {
            spdlog::error("migration failed error={}", Quote(e.what()));
            return kExitFailure;
        }
    }
    try {
        Node node(std::move(config).value());
        return node.Run();
    } catch (const std::exception& e) {
        spdlog::critical("iblsyncd failed error={}", Quote(e.what()));
        return kExitFailure;
    }
}
