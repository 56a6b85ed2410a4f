#include "tests/support/openapi_file.hpp"

#include <algorithm>
#include <regex>
#include <sstream>

#include "tests/support/test_env.hpp"

namespace iblsync::test {

OpenApiFile ReadOpenApi(const std::string& file) {
    OpenApiFile out;
    std::istringstream in(ReadFile(file));
    static const std::regex kPath(R"(^  (/\S+):\s*$)");
    static const std::regex kMethod(R"(^    (get|put|post|delete|patch|head|options):\s*$)");
    static const std::regex kType(R"(^\s+(application/[A-Za-z0-9.+-]+):\s*$)");
    static const std::regex kField(R"(^\s+(x-example-order|x-example-path|x-expect-status|value):\s*(.*)$)");
    bool in_paths = false;
    std::string path, method, type;
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (line == "paths:") {
            in_paths = true;
            continue;
        }
        if (!line.empty() && line[0] != ' ' && line[0] != '#') in_paths = false;
        if (!in_paths) continue;
        std::smatch m;
        if (std::regex_match(line, m, kPath)) {
            path = m[1];
            method.clear();
            type.clear();
        } else if (std::regex_match(line, m, kMethod)) {
            method = m[1];
            std::transform(method.begin(), method.end(), method.begin(), ::toupper);
            type.clear();
            out.operations.push_back({method, path});
        } else if (std::regex_match(line, m, kType)) {
            type = m[1];
        } else if (std::regex_match(line, m, kField)) {
            const std::string key = m[1], value = m[2];
            if (method.empty()) {
                out.error = "line " + std::to_string(line_no) + ": an example outside an operation";
                return out;
            }
            if (key == "x-example-order") {
                OpenApiExample e;
                e.order = std::stoi(value);
                e.method = method;
                e.content_type = type;
                out.examples.push_back(e);
                continue;
            }
            if (out.examples.empty() || out.examples.back().method != method) {
                out.error = "line " + std::to_string(line_no) + ": " + key + " before x-example-order";
                return out;
            }
            auto& e = out.examples.back();
            if (key == "x-example-path") e.path = value;
            else if (key == "x-expect-status") e.status = std::stoi(value);
            else e.body = value;
        }
    }
    for (const auto& e : out.examples)
        if (e.path.empty() || e.status == 0) {
            out.error = "example " + std::to_string(e.order) + " lacks x-example-path or x-expect-status";
            return out;
        }
    std::sort(out.examples.begin(), out.examples.end(),
              [](const auto& a, const auto& b) { return a.order < b.order; });
    return out;
}

}  // namespace iblsync::test
