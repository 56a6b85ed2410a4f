#pragma once
// The SRU server on the node's HTTP listeners (sru.path, default /sru):
// explain, searchRetrieve and scan in SRU 1.1, 1.2 and 2.0, by GET or by a
// POSTed form. Every failure is an SRU diagnostic in a 200 response, as
// SRU clients expect; the HTTP status is only ever 200 or 405.

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

class SruService {
public:
    SruService(storage::Database& db, DbExecutor& exec, std::function<std::shared_ptr<const Config>()> config);
    ~SruService();

    net::awaitable<HttpResponse> Handle(const HttpRequest& request);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace iblsync::daemon
