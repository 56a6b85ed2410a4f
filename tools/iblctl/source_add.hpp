#pragma once
// `iblctl source add`: connects a library system's SRU or OAI-PMH server as
// a harvest source. The config file stays the one place where sources are
// written down: iblctl checks the repository through the node (OAI-PMH),
// appends a [[harvest]] table to the node's config file, and has the node
// reload it, which starts the new source at once. A reload the node refuses
// puts the file back as it was.

#include <string>

#include "daemon/config.hpp"

namespace iblsync::iblctl {

struct SourceAddArgs {
    daemon::HarvestSource source;  // name, library, url, protocol, metadata_prefix, set, page_size, interval
    std::string config;            // the config file; default: the one the node was started with
    bool check = true;             // OAI-PMH: ask the repository first (iblctl oai check)
    bool json = false;
};

// Returns iblctl's exit code; prints what it did, or what to do.
int SourceAdd(const SourceAddArgs& args, const std::string& socket, int timeout_ms);

}  // namespace iblsync::iblctl
