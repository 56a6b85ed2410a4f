#pragma once
// Interlibrary loan (IBL) transactions in PostgreSQL: the ibl_request rows
// and the ibl_event log of every ISO 18626 message in and out (migration
// 0015). An inbound message is applied in one transaction: its event row,
// the request's new state, or nothing at all when it is refused. The
// caller confirms the message only after that transaction committed.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/iso18626.hpp"

namespace iblsync::storage {

class Database;

// What the IBL functions that send messages need from the node's config.
struct IblSettings {
    // How long a lender has for its first answer before the request goes to
    // the next one ([ibl] answer_within_minutes); 0: no deadline.
    int answer_within_minutes = 2880;
    // The other POI nodes this node exchanges IBL requests with
    // ([[ibl_peer]] isil): their libraries join the rota after this node's own.
    std::vector<std::string> peer_nodes;
    // What a finished transaction costs ([[ibl_tariff]]): by the lender's
    // province (from), the requester's (to), "*" for any, and kind (loan,
    // lost). The most specific match wins; none: recorded at 0.
    struct Tariff {
        std::string from = "*", to = "*", kind = "loan";
        long long cents = 0;
        std::string label;  // how the charge names it
    };
    std::vector<Tariff> tariffs;
    // Limits on open requests ([ibl] max_open_per_library, per patron, per
    // lender); 0: none. Lenders never asked, and the lender of last resort
    // asked when no other has a copy, or after all others.
    int max_open_per_library = 0, max_open_per_patron = 0, max_open_per_lender = 0;
    std::vector<std::string> excluded_lenders;
    std::string last_resort;
    // A copy at another node whose state here is older than this is
    // confirmed with that node before its library is asked; 0: never.
    int confirm_after_minutes = 60;
};

// What became of an inbound message.
struct InboundOutcome {
    // Set when the message is refused: what its ERROR confirmation says.
    // Nothing was written then.
    std::optional<protocols::iso18626::ErrorData> error;
    bool duplicate = false;  // delivered before: confirmed again, nothing written
    long long request = 0;   // the ibl_request row, when there is one
    std::string state;       // its state after the message
};

// Applies a message that came in over ISO 18626 (`body` is the document as
// received, kept in ibl_event). A request is taken when its supplying agency
// is one of this node's own libraries; a supplyingAgencyMessage when it is
// about a request this node's library sent to that supplier; a
// requestingAgencyMessage when it is about a request this node's library
// supplies. `sender` is the ISIL the sender's token belongs to: the
// sending agency itself (a library system) or the POI node that serves it;
// a message from anyone else for that agency is refused. Confirmations are
// not applied here: they answer messages this node sent.
// A supplier's Unfilled may send the request on to the next lender
// (`settings`).
InboundOutcome ApplyInbound(Database& db, const protocols::iso18626::Message& message, std::string_view body,
                            const std::string& sender, const IblSettings& settings);

// A request a library makes through the JSON API (POST /v1/ibl/requests).
// The work is named by an ISBN or by a record of the catalogue.
struct NewIblRequest {
    std::string library;     // the requesting library (the token's)
    std::string isbn;        // ISBN-13, or empty
    std::string record_library, record_id;  // a record of the catalogue, or empty
    std::string patron_ref;  // opaque
    std::string pickup;
    std::string note;
    // Lenders found without a copy on the shelf when their node was asked
    // just now: not asked.
    std::vector<std::string> unavailable;
};

// One side of a transaction, as the JSON API and iblctl show it.
struct IblRequestView {
    long long task = 0;  // the row's own number: how a lender names the request in its inbox
    std::string request_id, role, requester, lender, state;
    bool cancel_pending = false, renew_pending = false, received = false, shipped_return = false,
         conditional = false;
    std::string service_type, title, author, isbn, patron_ref, pickup;
    long long work_id = 0;  // 0: not known
    std::vector<std::string> rota;
    int rota_index = 0;
    std::string due_date, created_at, updated_at;  // ISO 8601 UTC; due_date "" if none
    std::string answer_by;  // the requester's side: when the lender must have answered; "" if no deadline
    std::string offered_cost, loan_condition;  // "2.50 EUR", "LibraryUseOnly"; "" if none
    std::string item_id;                       // the shipped copy's barcode; "" if not given
};

enum class CreateStatus {
    kCreated,     // the request went to `request.lender`
    kDuplicate,   // the library has this work open for this patron: `request` is that one
    kUnknownWork, // no record with that ISBN or id in the catalogue
    kNoLender,    // no other library of this node has a copy available: nothing written
    kLimit,       // the library or patron has as many open requests as allowed: `why`; nothing written
};
struct CreateResult {
    CreateStatus status = CreateStatus::kCreated;
    std::string why;
    IblRequestView request;
};

// Finds the work and the libraries that have a copy of it available, other
// than the requester: those of this node (this POI's province) first, then
// those of the other POI nodes in `settings.peer_nodes`; within each, the
// fewest open requests from this node first, then the one asked longest
// ago. Sends the request to the first. A lender of this node gets it in the
// same transaction (the requester's row, the lender's row and the request's
// two ibl_event rows are committed together or not at all); a lender of
// another node through the outbox, in the same transaction as the
// requester's row.
CreateResult CreateIblRequest(Database& db, const NewIblRequest& request, const IblSettings& settings);

// Lenders of other nodes among the first few of the rota whose copy's
// state here is stale ([ibl] confirm_after_minutes): the daemon asks their
// node whether the copy is still on the shelf before the request is made.
struct LenderToConfirm {
    std::string library, node, record_id;  // record_id: a record of the library with the copy
};
std::vector<LenderToConfirm> IblLendersToConfirm(Database& db, const NewIblRequest& request,
                                                 const IblSettings& settings);

// The requester's side of one of its requests; nullopt if it has none by that id.
std::optional<IblRequestView> GetIblRequest(Database& db, const std::string& library, const std::string& request_id);

// A lending library's open tasks: the requests it supplies that are not
// finished, oldest first. `cursor`, if given, gets the newest message about
// any of them: it grows when a task comes or changes (a cancel or renew
// asked), which is what a long-polling inbox waits for.
std::vector<IblRequestView> IblInbox(Database& db, const std::string& library, long long* cursor = nullptr);

// What a lending library answers to a request in its inbox, through the
// JSON API; each becomes the supplyingAgencyMessage ISO 18626 has for it.
enum class LenderAnswer {
    kExpectToSupply,  // ExpectToSupply: looking for the copy
    kWillSupply,      // WillSupply; with a cost, conditional: the requester must accept it
    kUnfilled,        // Unfilled, with a reason
    kRetryPossible,   // RetryPossible, with a reason and perhaps a retry date: the rota moves on then
    kShipped,         // Loaned, with the due date
    kOverdue,         // Overdue: the due date passed
    kRecalled,        // Recalled, perhaps with an earlier due date
    kReturned,        // LoanCompleted: the item came back
    kCancelAccepted,  // CancelResponse Y: Cancelled
    kCancelRefused,   // CancelResponse N: the status stays
    kRenewGranted,    // RenewResponse Y: Loaned, with the new due date
    kRenewRefused,    // RenewResponse N: the status stays
};
struct TaskAnswer {
    LenderAnswer answer = LenderAnswer::kWillSupply;
    std::string reason;       // kUnfilled: reasonUnfilled; kRetryPossible: reasonRetry
    std::string due_date;     // kShipped, kRenewGranted, kRecalled: YYYY-MM-DD
    std::string retry_after;  // kRetryPossible: YYYY-MM-DD, or empty
    std::string cost;         // kWillSupply: what supplying costs, in euros ("2.50"); empty: nothing
    std::string conditions;   // kShipped: loanCondition, such as LibraryUseOnly
    std::string item_barcode; // kShipped: the copy's barcode (deliveryInfo itemId)
    std::string note;
};

enum class AnswerStatus {
    kDone,
    kUnknownTask,      // no such request in this lender's inbox
    kNotAllowed,       // the state table refuses it now: `why`
};
struct AnswerResult {
    AnswerStatus status = AnswerStatus::kDone;
    std::string why;
    IblRequestView task;          // the lender's side, after the answer
    std::string requester_state;  // the requester's side, after it
    std::string next_lender;      // set when an Unfilled sent the request on to the next lender
};

// Applies a lender's answer: the lender's row and its outgoing message, and
// in the same transaction the requester's row with the same message coming
// in (a library of this node) or the message queued in the outbox (a
// library of another node). An Unfilled while the requester's rota has
// lenders left does not end the request: that transaction ends and the
// request goes to the next lender under the same id.
AnswerResult AnswerIblTask(Database& db, const std::string& lender, long long task, const TaskAnswer& answer,
                           const IblSettings& settings);

// What a requesting library does with its request, through the JSON API;
// each becomes the requestingAgencyMessage ISO 18626 has for it.
// kAcceptConditions agrees to the lender's cost (a Notification); a
// requester that does not agree cancels.
enum class RequesterAction { kReceived, kShippedReturn, kCancel, kRenew, kAcceptConditions };

struct ActionResult {
    AnswerStatus status = AnswerStatus::kDone;  // kUnknownTask: no such request of this library
    std::string why;
    IblRequestView request;  // the requester's side, after the action
    std::string lender_state;
};

// Applies the action to both sides in one transaction, or to this side and
// the outbox, as AnswerIblTask does for the lender's answers.
ActionResult ActOnIblRequest(Database& db, const std::string& library, const std::string& request_id,
                             RequesterAction action, const std::string& note);

// The library of this node that made the request `request_id`, if any.
std::optional<std::string> IblRequester(Database& db, const std::string& request_id);

// An admin moves a request on to its next lender now (iblctl ibl reroute):
// allowed while nothing was shipped and no cancel is pending. The current
// lender is sent a Cancel, as at a deadline.
struct RerouteResult {
    AnswerStatus status = AnswerStatus::kDone;  // kUnknownTask: no request of this node's libraries by that id
    std::string why;
    std::string from, to;  // the lenders
};
RerouteResult RerouteIblRequest(Database& db, const std::string& request_id, const IblSettings& settings);

// The outbox: messages for libraries of other nodes, written with the
// change that made them, POSTed by the node until the other node confirms.
struct IblOutgoingMessage {
    long long event = 0;    // its ibl_event row
    long long request = 0;  // the ibl_request row it is about
    std::string node;       // the node it goes to
    std::string agency;     // the library it is for
    std::string kind;       // request, supplyingAgencyMessage, requestingAgencyMessage
    std::string body;       // the ISO 18626 document
    int attempts = 0;       // tries so far
};

// Messages due to be sent, at most `limit`: for each request only the
// oldest one not yet confirmed, so that a node gets a request's messages in
// the order they were written.
std::vector<IblOutgoingMessage> DueIblMessages(Database& db, int limit);
// The node confirmed it (messageStatus OK, or a duplicate it had taken).
void IblMessageDelivered(Database& db, long long event);
// No confirmation (the node down, a timeout, an HTTP error): tried again in
// `retry_in_seconds`.
void IblMessageFailed(Database& db, long long event, const std::string& error, int retry_in_seconds);
// The node answered with an ERROR confirmation: the message is not sent
// again. A request refused that way passes its lender over as an Unfilled
// would; returns the next lender it went to, if any.
std::string IblMessageRefused(Database& db, long long event, const std::string& error, const IblSettings& settings);

// Deadlines: requests whose lender did not answer by `answer_by`, or asked
// to be tried again (RetryPossible) at a time now past, go to the next
// lender of the rota; a silent lender is sent a Cancel. Returns how many
// requests moved on. The deadlines are rows, so a restart loses none.
long long PassOverSilentLenders(Database& db, const IblSettings& settings);

// Privacy: requests finished more than `after_days` ago lose the patron's
// reference and pickup place, in their rows and in their stored request
// documents. Returns how many requests were anonymised.
long long AnonymiseIblRequests(Database& db, int after_days);

}  // namespace iblsync::storage
