// The IBL transaction's state table: every state against every status a
// supplier can report and every action a requester can take, compared
// with the table written out here by hand from ISO 18626 and the ILL
// research notes; then the flows that need flags (cancel, renew,
// conditions, return).

#include "protocols/ibl_state.hpp"

#include <map>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace iblsync::protocols::ibl {
namespace {

using iso18626::Action;
using iso18626::ReasonForMessage;
using iso18626::Status;
using S = State;

// What a supplier may report (StatusChange) in each state, repeats included.
const std::map<State, std::set<Status>> kMayReport = {
    {S::kSent, {Status::kRequestReceived, Status::kExpectToSupply, Status::kWillSupply, Status::kLoaned,
                Status::kCopyCompleted, Status::kUnfilled, Status::kRetryPossible}},
    {S::kRequestReceived, {Status::kRequestReceived, Status::kExpectToSupply, Status::kWillSupply, Status::kLoaned,
                           Status::kCopyCompleted, Status::kUnfilled, Status::kRetryPossible}},
    {S::kExpectToSupply, {Status::kExpectToSupply, Status::kWillSupply, Status::kLoaned, Status::kCopyCompleted,
                          Status::kUnfilled, Status::kRetryPossible}},
    {S::kWillSupply, {Status::kWillSupply, Status::kLoaned, Status::kCopyCompleted, Status::kUnfilled,
                      Status::kRetryPossible}},
    {S::kLoaned, {Status::kLoaned, Status::kOverdue, Status::kRecalled, Status::kLoanCompleted,
                  Status::kCompletedWithoutReturn}},
    {S::kOverdue, {Status::kOverdue, Status::kRecalled, Status::kLoanCompleted, Status::kCompletedWithoutReturn}},
    {S::kRecalled, {Status::kRecalled, Status::kLoanCompleted, Status::kCompletedWithoutReturn}},
    {S::kRetryPossible, {Status::kRetryPossible}},
    {S::kUnfilled, {Status::kUnfilled}},
    {S::kCopyCompleted, {Status::kCopyCompleted}},
    {S::kLoanCompleted, {Status::kLoanCompleted}},
    {S::kCompletedWithoutReturn, {Status::kCompletedWithoutReturn}},
    {S::kCancelled, {Status::kCancelled}},
};

const std::set<Action> kBeforeLoan{Action::kStatusRequest, Action::kNotification, Action::kCancel};
const std::set<Action> kOnLoan{Action::kStatusRequest, Action::kNotification, Action::kReceived, Action::kRenew,
                               Action::kShippedReturn, Action::kShippedForward};
const std::set<Action> kClosed{Action::kStatusRequest, Action::kNotification};

Transaction In(State s) {
    Transaction t;
    t.state = s;
    return t;
}

SupplierEvent Report(Status s, ReasonForMessage r = ReasonForMessage::kStatusChange) {
    SupplierEvent e;
    e.reason = r;
    e.status = s;
    return e;
}

TEST(IblState, EveryStatusReportInEveryState) {
    ASSERT_EQ(kMayReport.size(), static_cast<std::size_t>(kStateCount));
    int allowed = 0, refused = 0;
    for (const auto& [state, may] : kMayReport) {
        for (int i = 0; i <= static_cast<int>(Status::kCancelled); ++i) {
            const auto status = static_cast<Status>(i);
            for (auto reason : {ReasonForMessage::kStatusChange, ReasonForMessage::kRequestResponse,
                                ReasonForMessage::kStatusRequestResponse}) {
                SCOPED_TRACE(fmt::format("{} then {} ({})", ToString(state), iso18626::ToString(status),
                                         iso18626::ToString(reason)));
                const auto v = OnSupplierMessage(In(state), Report(status, reason));
                EXPECT_EQ(v.allowed, may.count(status) == 1) << v.why;
                if (v.allowed) {
                    EXPECT_EQ(v.next.state, FromStatus(status));
                    ++allowed;
                } else {
                    EXPECT_EQ(v.next, In(state)) << "a refused message changes nothing";
                    EXPECT_FALSE(v.why.empty());
                    ++refused;
                }
            }
        }
    }
    EXPECT_EQ(allowed, 3 * 43) << "43 (state, status) pairs in the table";
    EXPECT_EQ(refused, 3 * (13 * 12 - 43));
    // A Notification passes in every state and changes nothing.
    for (const auto& [state, may] : kMayReport) {
        auto v = OnSupplierMessage(In(state), Report(Status::kUnfilled, ReasonForMessage::kNotification));
        EXPECT_TRUE(v.allowed);
        EXPECT_EQ(v.next, In(state));
    }
}

TEST(IblState, EveryRequesterActionInEveryState) {
    for (int s = 0; s < kStateCount; ++s) {
        const auto state = static_cast<State>(s);
        const auto& may = Terminal(state) ? kClosed
                          : (state == S::kLoaned || state == S::kOverdue || state == S::kRecalled) ? kOnLoan
                                                                                                    : kBeforeLoan;
        for (int a = 0; a <= static_cast<int>(Action::kNotification); ++a) {
            const auto action = static_cast<Action>(a);
            SCOPED_TRACE(fmt::format("{} in {}", iso18626::ToString(action), ToString(state)));
            const auto v = OnRequesterAction(In(state), action);
            EXPECT_EQ(v.allowed, may.count(action) == 1) << v.why;
            EXPECT_EQ(v.next.state, state) << "a requester never sets the status";
            if (!v.allowed) {
                EXPECT_EQ(v.next, In(state));
            }
        }
    }
    EXPECT_EQ(OnRequesterAction(In(S::kCancelled), Action::kRenew).why, "the request is closed (Cancelled)");
    EXPECT_EQ(OnRequesterAction(In(S::kLoaned), Action::kCancel).why,
              "the item is already Loaned: send it back (ShippedReturn) instead");
}

TEST(IblState, CancelAskedThenAgreedToOrRefused) {
    auto t = OnRequesterAction(In(S::kWillSupply), Action::kCancel);
    ASSERT_TRUE(t.allowed);
    EXPECT_TRUE(t.next.cancel_pending);
    EXPECT_FALSE(OnRequesterAction(t.next, Action::kCancel).allowed) << "one at a time";
    auto yes = Report(Status::kCancelled, ReasonForMessage::kCancelResponse);
    yes.answer = true;
    auto agreed = OnSupplierMessage(t.next, yes);
    ASSERT_TRUE(agreed.allowed) << agreed.why;
    EXPECT_EQ(agreed.next, In(S::kCancelled));
    // Refused, because the item is already on its way.
    auto no = Report(Status::kLoaned, ReasonForMessage::kCancelResponse);
    no.answer = false;
    auto refused = OnSupplierMessage(t.next, no);
    ASSERT_TRUE(refused.allowed) << refused.why;
    EXPECT_EQ(refused.next, In(S::kLoaned));
    // Not asked, or no answer, or "yes" with another status: refused.
    EXPECT_EQ(OnSupplierMessage(In(S::kWillSupply), yes).why, "CancelResponse, but no cancel was asked for");
    auto bare = Report(Status::kCancelled, ReasonForMessage::kCancelResponse);
    EXPECT_EQ(OnSupplierMessage(t.next, bare).why, "CancelResponse without answerYesNo");
    auto odd = Report(Status::kLoaned, ReasonForMessage::kCancelResponse);
    odd.answer = true;
    EXPECT_FALSE(OnSupplierMessage(t.next, odd).allowed);
    EXPECT_EQ(OnSupplierMessage(In(S::kWillSupply), Report(Status::kCancelled)).why,
              "Cancelled comes only as the answer to a Cancel (CancelResponse)");
}

TEST(IblState, RenewAskedThenGrantedOrRefused) {
    Transaction overdue = In(S::kOverdue);
    overdue.received = true;
    auto asked = OnRequesterAction(overdue, Action::kRenew);
    ASSERT_TRUE(asked.allowed);
    EXPECT_FALSE(OnRequesterAction(asked.next, Action::kRenew).allowed) << "one at a time";
    auto yes = Report(Status::kLoaned, ReasonForMessage::kRenewResponse);
    yes.answer = true;
    auto granted = OnSupplierMessage(asked.next, yes);
    ASSERT_TRUE(granted.allowed) << granted.why;
    EXPECT_EQ(granted.next.state, S::kLoaned);
    EXPECT_FALSE(granted.next.renew_pending);
    EXPECT_TRUE(granted.next.received);
    auto no = Report(Status::kOverdue, ReasonForMessage::kRenewResponse);
    no.answer = false;
    auto refused = OnSupplierMessage(asked.next, no);
    ASSERT_TRUE(refused.allowed) << refused.why;
    EXPECT_EQ(refused.next.state, S::kOverdue) << "Overdue stays Overdue";
    auto wrong = Report(Status::kLoaned, ReasonForMessage::kRenewResponse);
    wrong.answer = false;
    EXPECT_EQ(OnSupplierMessage(asked.next, wrong).why, "a renewal refused leaves the status Overdue, not Loaned");
    EXPECT_EQ(OnSupplierMessage(overdue, yes).why, "RenewResponse, but no renewal was asked for");
    // Sent back: no more renewals.
    auto back = OnRequesterAction(overdue, Action::kShippedReturn);
    ASSERT_TRUE(back.allowed);
    EXPECT_EQ(OnRequesterAction(back.next, Action::kRenew).why, "the item was already sent back");
    EXPECT_EQ(OnRequesterAction(back.next, Action::kShippedReturn).why, "the item was already sent back");
}

TEST(IblState, AWholeLoanAndItsFlags) {
    Transaction t;
    for (auto status : {Status::kRequestReceived, Status::kExpectToSupply}) {
        auto v = OnSupplierMessage(t, Report(status));
        ASSERT_TRUE(v.allowed) << v.why;
        t = v.next;
    }
    // Conditions with WillSupply wait for the requester's Notification.
    auto conditional = Report(Status::kWillSupply, ReasonForMessage::kRequestResponse);
    conditional.conditions = true;
    t = OnSupplierMessage(t, conditional).next;
    EXPECT_TRUE(t.conditional);
    t = OnRequesterAction(t, Action::kNotification).next;
    EXPECT_FALSE(t.conditional);
    EXPECT_EQ(OnRequesterAction(t, Action::kReceived).why, "nothing was sent yet (WillSupply)");
    t = OnSupplierMessage(t, Report(Status::kLoaned)).next;
    t = OnRequesterAction(t, Action::kReceived).next;
    EXPECT_TRUE(t.received);
    EXPECT_EQ(OnRequesterAction(t, Action::kReceived).why, "the item was already received");
    t = OnSupplierMessage(t, Report(Status::kRecalled)).next;
    EXPECT_EQ(OnSupplierMessage(t, Report(Status::kOverdue)).why, "Overdue cannot follow Recalled");
    t = OnRequesterAction(t, Action::kShippedReturn).next;
    auto done = OnSupplierMessage(t, Report(Status::kLoanCompleted));
    ASSERT_TRUE(done.allowed);
    EXPECT_EQ(done.next.state, S::kLoanCompleted);
    EXPECT_TRUE(Terminal(done.next.state));
    EXPECT_EQ(OnSupplierMessage(done.next, Report(Status::kLoaned)).why, "the request is closed (LoanCompleted)");
    // A terminal status ends whatever was pending.
    Transaction pending = In(S::kLoaned);
    pending.renew_pending = true;
    EXPECT_FALSE(OnSupplierMessage(pending, Report(Status::kCompletedWithoutReturn)).next.renew_pending);
}

TEST(IblState, NamesRoundTrip) {
    for (int s = 0; s < kStateCount; ++s) EXPECT_EQ(StateFrom(ToString(static_cast<State>(s))), static_cast<State>(s));
    EXPECT_FALSE(StateFrom("Lost"));
    for (int i = 0; i <= static_cast<int>(Status::kCancelled); ++i)
        EXPECT_STREQ(ToString(FromStatus(static_cast<Status>(i))), iso18626::ToString(static_cast<Status>(i)));
}

}  // namespace
}  // namespace iblsync::protocols::ibl
