#pragma once
// The life of one IBL transaction (one requester, one supplier) as ISO 18626
// lets it go: which message may come in which state, and what state follows.
// Both sides keep the same state, the requester's copy from the messages it
// receives, the supplier's from the ones it sends, so one table serves both.
//
// Besides the supplier's last status, the requester's side has flags ISO
// 18626 does not carry as a status: a cancel or renew asked and not yet
// answered, the item received, the item shipped back, and conditions the
// supplier attached that the requester has not accepted.
//
// A message not allowed in the state is refused with a reason; the
// transaction is then unchanged.

#include <optional>
#include <string>

#include "protocols/iso18626.hpp"

namespace iblsync::protocols::ibl {

enum class State {
    kSent,  // the request was confirmed; no message from the supplier yet
    kRequestReceived, kExpectToSupply, kWillSupply, kLoaned, kOverdue, kRecalled,
    // terminal:
    kRetryPossible, kUnfilled, kCopyCompleted, kLoanCompleted, kCompletedWithoutReturn, kCancelled
};
inline constexpr int kStateCount = 13;

const char* ToString(State s);
std::optional<State> StateFrom(std::string_view s);
State FromStatus(iso18626::Status s);
bool Terminal(State s);

struct Transaction {
    State state = State::kSent;
    bool cancel_pending = false;
    bool renew_pending = false;
    bool received = false;        // the requester has the item
    bool shipped_return = false;  // the requester sent it back
    bool conditional = false;     // WillSupply with conditions not yet accepted
    bool operator==(const Transaction&) const = default;
};

// A supplyingAgencyMessage, as far as the state cares.
struct SupplierEvent {
    iso18626::ReasonForMessage reason = iso18626::ReasonForMessage::kStatusChange;
    iso18626::Status status = iso18626::Status::kRequestReceived;
    std::optional<bool> answer;  // answerYesNo, for RenewResponse and CancelResponse
    bool conditions = false;     // loanCondition or offeredCosts given with WillSupply
};

struct Verdict {
    bool allowed = false;
    std::string why;  // when refused: for the confirmation's errorValue and the log
    Transaction next;
};

Verdict OnSupplierMessage(const Transaction& t, const SupplierEvent& e);

// The code on an item's transport slip (Code 128): the requesting library
// and its request id, then H for the way out (heen) or T for the way back
// (terug), such as "NL-0000000311/IBL-12/H". Both nodes of a transaction
// make the same code. A request id that would make it longer than a slip
// carries is replaced by 12 hex digits of its hash.
std::string SlipCode(const std::string& requester, const std::string& request_id, bool outbound);
Verdict OnRequesterAction(const Transaction& t, iso18626::Action a);

}  // namespace iblsync::protocols::ibl
