#pragma once
// Interlibrary loan (IBL) transactions in PostgreSQL: the ibl_request rows
// and the ibl_event log of every ISO 18626 message in and out (migration
// 0015). An inbound message is applied in one transaction: its event row,
// the request's new state, or nothing at all when it is refused. The
// caller confirms the message only after that transaction committed.

#include <optional>
#include <string>
#include <string_view>

#include "protocols/iso18626.hpp"

namespace iblsync::storage {

class Database;

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
InboundOutcome ApplyInbound(Database& db, const protocols::iso18626::Message& message, std::string_view body,
                            const std::string& sender);

}  // namespace iblsync::storage
