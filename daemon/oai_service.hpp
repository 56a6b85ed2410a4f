#pragma once
// The OAI-PMH 2.0 provider on the node's HTTP listeners (oai.path, default
// /oai), by GET or by a POSTed form. Protocol errors are OAI-PMH error
// responses with HTTP 200, as harvesters expect; a database that cannot be
// reached is 503 with Retry-After, the protocol's flow control.

#include <functional>
#include <memory>

#include <boost/asio/awaitable.hpp>

#include "daemon/config.hpp"
#include "daemon/db_executor.hpp"
#include "daemon/http_types.hpp"

namespace iblsync::storage {
class Database;
}

namespace iblsync::daemon {

class OaiService {
public:
    OaiService(storage::Database& db, DbExecutor& exec, std::function<std::shared_ptr<const Config>()> config);
    ~OaiService();

    net::awaitable<HttpResponse> Handle(const HttpRequest& request);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The repository identifier in OAI identifiers: oai.repository_identifier,
// or one made from the node's ISIL.
std::string OaiRepositoryIdentifier(const Config& config);

}  // namespace iblsync::daemon
