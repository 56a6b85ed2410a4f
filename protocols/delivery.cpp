#include "protocols/delivery.hpp"

#include <algorithm>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocols/catalogue_record.hpp"
#include "protocols/json_record.hpp"
#include "protocols/sru.hpp"

namespace iblsync::protocols {

Result<marc::Record> StoredAsMarc(std::string_view format, std::string_view raw) {
    if (format == "json") {
        auto json = ParseJsonRecord(raw);
        if (!json) return Fail(json.error());
        return std::move(json.value().marc);
    }
    return StoredMarc(format, raw);
}

marc::Record WithCopies(marc::Record record, std::string_view library, const std::vector<DeliveryCopy>& copies) {
    auto& fields = record.fields;
    fields.erase(std::remove_if(fields.begin(), fields.end(),
                                [](const marc::Field& f) { return f.tag == "852" || f.tag == "003"; }),
                 fields.end());
    marc::Field isil;
    isil.tag = "003";
    isil.data = std::string(library);
    // Control fields stay in tag order: 003 after 001 (and before 005...).
    auto at = std::find_if(fields.begin(), fields.end(), [](const marc::Field& f) { return f.tag > "003"; });
    fields.insert(at, std::move(isil));
    std::vector<marc::Field> added;
    for (const auto& c : copies) {
        marc::Field f;
        f.tag = "852";
        auto add = [&](char code, const std::string& v) {
            if (!v.empty()) f.subfields.push_back({code, v});
        };
        add('a', std::string(library));
        add('b', c.branch);
        add('h', c.shelfmark);
        add('p', c.barcode);
        add('9', c.status);
        add('d', c.due_date);
        added.push_back(std::move(f));
    }
    at = std::find_if(fields.begin(), fields.end(), [](const marc::Field& f) { return f.tag > "852"; });
    fields.insert(at, added.begin(), added.end());
    return record;
}

marc::Record DeletedRecord(std::string_view library, std::string_view local_id) {
    marc::Record r;
    r.leader = "00000dam a2200000 a 4500";
    marc::Field id, isil;
    id.tag = "001";
    id.data = std::string(local_id);
    isil.tag = "003";
    isil.data = std::string(library);
    r.fields = {id, isil};
    return r;
}

std::string DeliveryJsonLine(std::string_view library, std::string_view local_id, const marc::Record* record,
                             const std::vector<DeliveryCopy>& copies) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    auto str = [&](const char* key, std::string_view v) {
        w.Key(key);
        w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    };
    w.StartObject();
    str("library", library);
    str("id", local_id);
    w.Key("deleted");
    w.Bool(record == nullptr);
    w.Key("record");
    if (record) {
        const std::string json = sru::MarcInJson(*record);
        w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
    } else {
        w.Null();
    }
    w.Key("copies");
    w.StartArray();
    for (const auto& c : copies) {
        w.StartObject();
        str("barcode", c.barcode);
        if (!c.branch.empty()) str("branch", c.branch);
        if (!c.shelfmark.empty()) str("shelfmark", c.shelfmark);
        str("status", c.status);
        if (!c.due_date.empty()) str("due_date", c.due_date);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

}  // namespace iblsync::protocols
