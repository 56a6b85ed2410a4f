#pragma once
// Copies (holdings/items) and their availability, and how to read them out
// of the local holdings fields that library systems put in their MARC
// exports. Which field and subfields mean what differs per system (852 in
// MARC 21, 952 in Koha, 999 in SirsiDynix, 949 in many others), so the
// mapping is data: a short spec per library, with presets for the common
// systems. See docs/formats.md, "Holdings in MARC records".

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/marc_record.hpp"
#include "protocols/result.hpp"

namespace iblsync::protocols {

enum class ItemStatus { kAvailable, kOnLoan, kInTransit, kReserved, kMissing, kNotLendable };

// The catalogue's words: available, on_loan, in_transit, reserved, missing,
// not_lendable.
std::string_view ToString(ItemStatus status);
std::optional<ItemStatus> ParseItemStatus(std::string_view text);

struct Holding {
    std::string barcode;    // unique per library
    std::string branch;     // vestiging
    std::string shelfmark;  // plaatsingscode / call number
    ItemStatus status = ItemStatus::kAvailable;
    std::string due_date;    // YYYY-MM-DD, empty if none
    std::string changed_at;  // the library system's change time, RFC 3339 UTC; empty if unknown
};

// Due dates as library systems write them: 2026-12-01, 20261201,
// 2026-12-01T23:59:00 (the date part counts), and US-style 12/1/2026.
// Returns YYYY-MM-DD of a real calendar date.
Result<std::string> NormalizeDate(std::string_view text);

// "When subfield <code> [equals | does not equal] <value>, the copy is <status>".
struct StatusRule {
    char code = 0;
    enum class Test { kPresent, kEquals, kNotEquals } test = Test::kPresent;
    std::string value;  // compared case-insensitively
    ItemStatus status = ItemStatus::kAvailable;
};

struct HoldingsMapping {
    std::string tag;        // empty: records carry no holdings for this library
    std::string barcode;    // subfield codes; several are joined with a space
    std::string branch;
    std::string shelfmark;
    std::string due;        // a due date here means on loan, unless a rule says otherwise
    std::string owner;      // copies whose owner is another library's ISIL are skipped
    std::vector<StatusRule> rules;  // first match wins; none: on loan if due, else available

    // The spec this mapping reads back as (ParseHoldingsMapping(Spec()) == *this).
    std::string Spec() const;
    bool Enabled() const { return !tag.empty(); }
};

// A preset name ("marc21", "koha", "sirsi", "none") or a spec such as
//   952 barcode=p branch=b shelfmark=o due=q status(7!=0)=not_lendable status(1)=missing
// Errors name the token at fault.
Result<HoldingsMapping> ParseHoldingsMapping(std::string_view spec);

struct ExtractedHoldings {
    std::vector<Holding> holdings;
    std::vector<std::string> warnings;  // copies skipped or values dropped, and why
};

// The copies of `library` (canonical ISIL) in a bibliographic record. A copy
// without a barcode is skipped with a warning; a barcode seen twice keeps
// its last copy.
ExtractedHoldings ExtractHoldings(const marc::Record& record, const HoldingsMapping& mapping, std::string_view library);

}  // namespace iblsync::protocols
