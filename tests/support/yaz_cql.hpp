#pragma once
// YAZ's CQL parser (libyaz, strict mode) as a reference for tests: the tree
// it builds for a query, written in a small canonical form that the tests
// write for iblsync's own tree too. Debian ships libyaz but no cql2xcql
// binary, so the tests call the library.

#include <optional>
#include <string>

namespace iblsync::test {

// The canonical form of YAZ's tree for `query`, or nullopt if YAZ's strict
// parser refuses it.
//   clause:  (sc INDEX[@URI] RELATION[@URI] MODIFIERS "TERM" "EXTRA TERM"…)
//   boolean: (OP MODIFIERS LEFT RIGHT)
//   sort:    QUERY sortby (key INDEX MODIFIERS)…
//   modifiers: [/name CMP value …] in the order written
// YAZ resolves prefix assignments into the tree (index "dc.title" under
// >dc="x" becomes "title@x"); so does the canonical form of our tree.
std::optional<std::string> YazCanonical(const std::string& query);

}  // namespace iblsync::test
