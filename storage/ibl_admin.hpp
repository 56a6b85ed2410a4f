#pragma once
// What operators see of IBL (iblctl ibl ..., /metrics): requests listed and
// shown with their messages and how far each got to another node, and
// monthly statistics, all read from ibl_request and ibl_event.

#include <string>
#include <vector>

#include "storage/ibl.hpp"

namespace iblsync::storage {

struct IblListFilter {
    std::string library;        // either side; empty: all
    std::string state = "open"; // "open", "all", or one state (Sent, Loaned ...)
    int limit = 100;
};
struct IblListRow {
    IblRequestView request;
    int unsent = 0;          // messages about it in the outbox not yet confirmed
    std::string last_error;  // why the last try to send one failed
};
// Current transactions (not superseded), newest change first.
std::vector<IblListRow> ListIblRequests(Database& db, const IblListFilter& filter);

struct IblEventView {
    long long id = 0;
    std::string direction, kind, what, state_after, at;
    // For a message to another node: "delivered", "unsent" or "refused";
    // empty for one delivered within this node.
    std::string delivery;
    int attempts = 0;
    std::string error;  // the refusal, or the last failure
};
struct IblTransaction {
    IblRequestView request;
    std::string superseded_by;  // the lender that took over, if any
    std::vector<IblEventView> events;
};
// Every transaction of this node under the request id, oldest first; for a
// task number (a row's id), that row's request id is used.
std::vector<IblTransaction> ShowIblRequest(Database& db, const std::string& id);

struct IblLibraryStats {
    std::string library, province;
    long long requested = 0;   // requests it made (first lender asked this month)
    long long supplied = 0;    // of its requests, shipped to it this month
    long long unfilled = 0;    // of its requests, ended without a lender this month
    double mean_hours_to_supply = 0;  // request to shipped, for those supplied
    long long asked = 0;       // requests it was asked to supply this month
    long long lent = 0;        // items it shipped this month
    long long declined = 0;    // requests it answered Unfilled this month
};
// Per library with IBL activity in `month` (YYYY-MM, Europe/Amsterdam days).
std::vector<IblLibraryStats> IblMonthStats(Database& db, const std::string& month);

// Transport: what travels on the POI's routes on one day (Europe/Amsterdam)
// in the envelopes with IBL slips. Items this node's libraries sent (a
// lender's shipment, a requester's return), and items coming in from
// another POI for this node's libraries. `route` is "province" for a
// delivery between two libraries of this node, "to <POI>" for one handed to
// another POI, "from <POI>" for one handed over by another POI.
struct IblMovement {
    std::string route, direction;  // direction: outbound (to the requester) or return
    std::string from, to;          // libraries
    std::string requester, request_id;
    std::string item_barcode, slip;  // slip: ibl::SlipCode
    std::string at;                  // when it was sent (UTC)
};
std::vector<IblMovement> IblManifest(Database& db, const std::string& date);

// What a transport slip shows: one transaction, from the lender's side
// (task) or the requester's (request id).
struct IblSlip {
    IblRequestView request;
    std::string lender_name, requester_name;
    std::string outbound, back;  // the slip codes
};
std::optional<IblSlip> IblSlipForTask(Database& db, const std::string& lender, long long task);
std::optional<IblSlip> IblSlipForRequest(Database& db, const std::string& requester, const std::string& request_id);

// Accounting: the month's finished transactions of this node's libraries
// (Europe/Amsterdam), each once for the library that pays (the requester)
// and once for the one paid (the lender), as far as they are this node's.
struct IblInvoiceLine {
    std::string library, side;  // side: pays or receives
    std::string counterpart, requester, request_id, kind, tariff, completed_at;
    long long cents = 0;
};
std::vector<IblInvoiceLine> IblInvoice(Database& db, const std::string& month);

// Closures: days a lending library is not asked (iblctl ibl close).
struct IblClosure {
    long long id = 0;
    std::string library, starts, ends, reason;  // days as YYYY-MM-DD
};
enum class ClosureStatus { kDone, kUnknownLibrary, kBadDates };
// Adds a closure from `starts` through `ends`; the library must be known.
ClosureStatus AddIblClosure(Database& db, const IblClosure& closure);
// The closures that have not ended yet (today or later), of one library or all.
std::vector<IblClosure> ListIblClosures(Database& db, const std::string& library);
// Ends a library's closures now: those ahead are removed, a running one
// ends yesterday. Returns how many were touched.
long long ReopenIblLender(Database& db, const std::string& library);

// The material types a library does not lend through IBL. Set replaces
// the list; false if the library is not known here.
bool SetIblNotLent(Database& db, const std::string& library, const std::vector<std::string>& types);
std::vector<std::string> IblNotLent(Database& db, const std::string& library);

struct IblGauge {
    std::string role, state;
    long long requests = 0;
};
struct IblGauges {
    std::vector<IblGauge> by_state;  // current transactions
    long long unsent = 0;            // outbox messages not yet confirmed
    long long refused = 0;           // outbox messages refused
};
IblGauges CountIblRequests(Database& db);

}  // namespace iblsync::storage
