#pragma once
// The IBL part of the /v1 API, for library systems that speak JSON rather
// than ISO 18626: a library makes a request and reads it back, and a
// lending library reads its inbox. PushApi routes here after checking the
// token; `library` is the token's library.

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "daemon/db_executor.hpp"
#include "daemon/http_types.hpp"

namespace iblsync::storage {
class Database;
struct IblRequestView;
}  // namespace iblsync::storage

namespace iblsync::daemon {

class IblCourier;

// POST /v1/ibl/requests
net::awaitable<HttpResponse> PostIblRequest(storage::Database* db, DbExecutor* exec, IblCourier* courier,
                                            const HttpRequest* request, const std::string* library);
// GET /v1/ibl/requests/{id}
net::awaitable<HttpResponse> GetIblRequest(storage::Database* db, DbExecutor* exec, const std::string* library,
                                           const std::string* request_id);
// GET /v1/ibl/inbox's body (PushApi waits for `wait`): the open tasks and
// the cursor to wait past next.
std::string IblInboxJson(const std::string& library, const std::vector<storage::IblRequestView>& tasks,
                         long long cursor);
// POST /v1/ibl/inbox/{task}: the lender's answer
net::awaitable<HttpResponse> PostIblAnswer(storage::Database* db, DbExecutor* exec, IblCourier* courier,
                                           const HttpRequest* request, const std::string* library,
                                           const std::string* task);

// POST /v1/ibl/requests/{id}/actions: the requester's action
net::awaitable<HttpResponse> PostIblAction(storage::Database* db, DbExecutor* exec, IblCourier* courier,
                                           const HttpRequest* request, const std::string* library,
                                           const std::string* request_id);

// GET /v1/ibl/inbox/{task}/slip (the lender's, `task`) and
// GET /v1/ibl/requests/{id}/slip (the requester's): the transport slip as a
// printable HTML page, with the outbound and return barcodes as Code 128.
net::awaitable<HttpResponse> GetIblSlip(storage::Database* db, DbExecutor* exec, const std::string* library,
                                        const std::string* id, bool as_lender);

std::string IblRequestJson(const storage::IblRequestView& request);

}  // namespace iblsync::daemon
