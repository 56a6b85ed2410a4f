#pragma once
// Simple Dublin Core derived from a MARC 21 bibliographic record. The mapping
// follows the Library of Congress MARC-to-DC crosswalk as implemented in its
// MARC21slim2SRWDC stylesheet (the one Zebra serves), field for field; the one
// addition is RDA's 264 next to 260 for publisher and date. docs/formats.md
// lists the mapping.

#include <string>
#include <utility>
#include <vector>

#include "protocols/marc_record.hpp"

namespace iblsync::protocols::dc {

// Element name (title, creator, ...) and value, in crosswalk order.
using DcRecord = std::vector<std::pair<std::string, std::string>>;

DcRecord FromMarc(const marc::Record& record);

// <oai_dc:dc> as OAI-PMH and SRU "dc" carry it (namespace
// http://www.openarchives.org/OAI/2.0/oai_dc/, elements in the DC 1.1 namespace).
std::string ToOaiDcXml(const DcRecord& record);

// <srw_dc:dc> as SRU's "dc" schema carries it (info:srw/schema/1/dc-schema,
// elements in the DC 1.1 namespace).
std::string ToSrwDcXml(const DcRecord& record);

}  // namespace iblsync::protocols::dc
