#pragma once
// The /v1 API: library systems push records and availability, read them
// back, and follow the change feed. Requests carry a library's bearer
// token; a token may read everything and write only its own library.
// Handlers run on the event loop; every database call goes to the DB pool.

#include <memory>
#include <functional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "daemon/config.hpp"
#include "daemon/db_executor.hpp"
#include "daemon/http_types.hpp"
#include "protocols/change_feed.hpp"

namespace iblsync::storage {
class Database;
struct ChangePage;
}

namespace iblsync::daemon {

// One route of the /v1 API: method and path template, as in
// docs/api/openapi.yaml (a test holds the two together).
struct ApiRoute {
    std::string method;
    std::string path;
};
const std::vector<ApiRoute>& ApiRoutes();

// A page of the change feed as JSON: the body of GET /v1/changes, and what
// `iblctl changes` shows.
std::string ChangePageJson(const storage::ChangePage& page, long long since, bool embed = false);
// GET /v1/digest's answer.
std::string DigestJson(const std::vector<protocols::feed::LibraryDigest>& libraries,
                       const std::vector<protocols::feed::RecordDigest>& records, bool with_records);

class IblCourier;

class PushApi {
public:
    // `ibl` carries IBL messages for other nodes and has the IBL settings.
    PushApi(storage::Database& db, DbExecutor& exec, std::function<std::shared_ptr<const Config>()> config,
            IblCourier& ibl);
    ~PushApi();

    // Any request whose path starts with /v1/.
    net::awaitable<HttpResponse> Handle(const HttpRequest& request);

    // Ends waiting long-polls (with what they have) and refuses new waits.
    void Stop();
    // Another part of this node committed changes (a peer page): waiting
    // long-polls look again now instead of at their next second.
    void ChangesCommitted();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace iblsync::daemon
