#pragma once
// `iblctl oai check URL`: what an operator runs first when a library asks to
// be connected by OAI-PMH. The node itself asks the repository (Identify,
// ListMetadataFormats, ListSets and one ListRecords page), from where it
// will harvest, and says what it found and what would get in the way.

#include <optional>

#include <boost/asio/awaitable.hpp>

#include "protocols/control_message.hpp"

namespace iblsync::daemon {

namespace net = boost::asio;

// The response to oai.check (url; metadata_prefix, set optional), or
// nullopt for another command.
net::awaitable<std::optional<protocols::ControlResponse>> HandleOaiCheck(const protocols::ControlRequest& request);

}  // namespace iblsync::daemon
