#pragma once
// The ISO 18626 endpoint (POST /iso18626): where ISO 18626-capable library
// systems and other POI nodes send requests and messages about them. Every
// message is answered in the same HTTP exchange with its confirmation, OK
// or ERROR with the ISO error type, after what it changed was committed.
// HTTP errors are kept for what no confirmation can answer: another method
// (405), another media type (415), a body too large (413), a document that
// is not an ISO 18626 message (400), the database out of reach (503, so
// that the sender tries again).

#include <memory>

#include <boost/asio/awaitable.hpp>

#include "daemon/db_executor.hpp"
#include "daemon/http_types.hpp"

namespace iblsync::storage {
class Database;
}

namespace iblsync::daemon {

class IblCourier;

inline constexpr const char* kIso18626Path = "/iso18626";

class IblService {
public:
    // `courier` has the IBL settings and is woken when a message leaves for another node.
    IblService(storage::Database& db, DbExecutor& exec, IblCourier& courier);
    ~IblService();

    net::awaitable<HttpResponse> Handle(const HttpRequest& request);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace iblsync::daemon
