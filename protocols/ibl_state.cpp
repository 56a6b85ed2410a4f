#include "protocols/ibl_state.hpp"

#include <array>
#include <cstdint>

#include <fmt/format.h>

namespace iblsync::protocols::ibl {
namespace {

using iso18626::Action;
using iso18626::ReasonForMessage;
using iso18626::Status;

constexpr std::array<const char*, kStateCount> kNames{
    "Sent",          "RequestReceived", "ExpectToSupply", "WillSupply",    "Loaned",
    "Overdue",       "Recalled",        "RetryPossible",  "Unfilled",      "CopyCompleted",
    "LoanCompleted", "CompletedWithoutReturn", "Cancelled"};

bool BeforeLoan(State s) {
    return s == State::kSent || s == State::kRequestReceived || s == State::kExpectToSupply ||
           s == State::kWillSupply;
}
bool OnLoan(State s) { return s == State::kLoaned || s == State::kOverdue || s == State::kRecalled; }

// Whether the supplier may report `status` when the transaction is in `from`
// (a status equal to the current one is always a harmless repeat).
bool MayFollow(State from, Status status) {
    switch (status) {
        case Status::kRequestReceived: return from == State::kSent;
        case Status::kExpectToSupply: return from == State::kSent || from == State::kRequestReceived;
        case Status::kWillSupply:
        case Status::kLoaned:
        case Status::kCopyCompleted:
        case Status::kUnfilled:
        case Status::kRetryPossible: return BeforeLoan(from);
        case Status::kOverdue: return from == State::kLoaned;
        case Status::kRecalled: return from == State::kLoaned || from == State::kOverdue;
        case Status::kLoanCompleted:
        case Status::kCompletedWithoutReturn: return OnLoan(from);
        case Status::kCancelled: return false;  // only as the answer to a Cancel
    }
    return false;
}

Verdict Refuse(const Transaction& t, std::string why) { return {false, std::move(why), t}; }
Verdict Allow(Transaction next) {
    if (Terminal(next.state)) next.cancel_pending = next.renew_pending = next.conditional = false;
    return {true, {}, next};
}

std::string Closed(const Transaction& t) { return fmt::format("the request is closed ({})", ToString(t.state)); }

}  // namespace

const char* ToString(State s) { return kNames[static_cast<std::size_t>(s)]; }

std::optional<State> StateFrom(std::string_view s) {
    for (std::size_t i = 0; i < kNames.size(); ++i)
        if (s == kNames[i]) return static_cast<State>(i);
    return std::nullopt;
}

// The states after kSent are ISO 18626's statuses, in the schema's order.
State FromStatus(Status s) { return static_cast<State>(static_cast<int>(s) + 1); }

bool Terminal(State s) { return static_cast<int>(s) >= static_cast<int>(State::kRetryPossible); }

Verdict OnSupplierMessage(const Transaction& t, const SupplierEvent& e) {
    const State reported = FromStatus(e.status);
    Transaction next = t;
    switch (e.reason) {
        case ReasonForMessage::kNotification: return Allow(next);
        case ReasonForMessage::kRenewResponse:
            if (!t.renew_pending) return Refuse(t, "RenewResponse, but no renewal was asked for");
            if (!e.answer) return Refuse(t, "RenewResponse without answerYesNo");
            if (*e.answer && e.status != Status::kLoaned)
                return Refuse(t, fmt::format("a renewal granted leaves the item Loaned, not {}", ToString(e.status)));
            if (!*e.answer && reported != t.state)
                return Refuse(t, fmt::format("a renewal refused leaves the status {}, not {}", ToString(t.state),
                                             ToString(e.status)));
            next.renew_pending = false;
            next.state = reported;
            return Allow(next);
        case ReasonForMessage::kCancelResponse:
            if (!t.cancel_pending) return Refuse(t, "CancelResponse, but no cancel was asked for");
            if (!e.answer) return Refuse(t, "CancelResponse without answerYesNo");
            if (*e.answer && e.status != Status::kCancelled)
                return Refuse(t, fmt::format("a cancel agreed to leaves the request Cancelled, not {}",
                                             ToString(e.status)));
            if (!*e.answer && reported != t.state && !MayFollow(t.state, e.status))
                return Refuse(t, fmt::format("{} cannot follow {}", ToString(e.status), ToString(t.state)));
            next.cancel_pending = false;
            next.state = reported;
            return Allow(next);
        case ReasonForMessage::kRequestResponse:
        case ReasonForMessage::kStatusChange:
        case ReasonForMessage::kStatusRequestResponse:
            break;
    }
    if (reported == t.state) {
        if (reported == State::kWillSupply) next.conditional = t.conditional || e.conditions;
        return Allow(next);
    }
    if (Terminal(t.state)) return Refuse(t, Closed(t));
    if (!MayFollow(t.state, e.status))
        return Refuse(t, e.status == Status::kCancelled
                             ? std::string("Cancelled comes only as the answer to a Cancel (CancelResponse)")
                             : fmt::format("{} cannot follow {}", ToString(e.status), ToString(t.state)));
    next.state = reported;
    next.conditional = reported == State::kWillSupply && e.conditions;
    return Allow(next);
}

std::string SlipCode(const std::string& requester, const std::string& request_id, bool outbound) {
    std::string id = request_id;
    bool printable = true;
    for (unsigned char c : id) printable = printable && c >= 32 && c <= 126;
    if (requester.size() + 1 + id.size() + 2 > 48 || !printable) {
        // FNV-1a, 64 bits: the same on every node and every build.
        std::uint64_t h = 14695981039346656037ULL;
        for (unsigned char c : request_id) h = (h ^ c) * 1099511628211ULL;
        id = fmt::format("{:012x}", h >> 16);
    }
    return fmt::format("{}/{}/{}", requester, id, outbound ? 'H' : 'T');
}

Verdict OnRequesterAction(const Transaction& t, Action a) {
    Transaction next = t;
    switch (a) {
        case Action::kStatusRequest: return Allow(next);
        case Action::kNotification:
            next.conditional = false;  // how a requester accepts the supplier's conditions
            return Allow(next);
        default: break;
    }
    if (Terminal(t.state)) return Refuse(t, Closed(t));
    switch (a) {
        case Action::kCancel:
            if (OnLoan(t.state))
                return Refuse(t, fmt::format("the item is already {}: send it back (ShippedReturn) instead",
                                             ToString(t.state)));
            if (t.cancel_pending) return Refuse(t, "a Cancel is already waiting for the supplier's answer");
            next.cancel_pending = true;
            return Allow(next);
        case Action::kReceived:
            if (!OnLoan(t.state)) return Refuse(t, fmt::format("nothing was sent yet ({})", ToString(t.state)));
            if (t.received) return Refuse(t, "the item was already received");
            next.received = true;
            return Allow(next);
        case Action::kRenew:
            if (!OnLoan(t.state)) return Refuse(t, fmt::format("nothing is on loan yet ({})", ToString(t.state)));
            if (t.shipped_return) return Refuse(t, "the item was already sent back");
            if (t.renew_pending) return Refuse(t, "a Renew is already waiting for the supplier's answer");
            next.renew_pending = true;
            return Allow(next);
        case Action::kShippedReturn:
            if (!OnLoan(t.state)) return Refuse(t, fmt::format("nothing is on loan yet ({})", ToString(t.state)));
            if (t.shipped_return) return Refuse(t, "the item was already sent back");
            next.shipped_return = true;
            return Allow(next);
        case Action::kShippedForward:
            if (!OnLoan(t.state)) return Refuse(t, fmt::format("nothing is on loan yet ({})", ToString(t.state)));
            return Allow(next);
        case Action::kStatusRequest:
        case Action::kNotification: break;
    }
    return Allow(next);
}

}  // namespace iblsync::protocols::ibl
