#pragma once
// Reads what the tests need from docs/api/openapi.yaml: its operations
// (method + path template) and its x-example-* requests. Not a YAML parser:
// it relies on the file's layout (paths at two spaces, methods at four,
// examples' values as one-line JSON), and fails loudly if that changes.

#include <string>
#include <vector>

namespace iblsync::test {

struct OpenApiOperation {
    std::string method;  // upper case
    std::string path;    // template, e.g. /v1/works/{id}
};

struct OpenApiExample {
    int order = 0;
    std::string method;
    std::string path;          // concrete, from x-example-path
    std::string content_type;  // "" for none
    std::string body;          // the example's value, "" for none
    int status = 0;            // x-expect-status
};

struct OpenApiFile {
    std::vector<OpenApiOperation> operations;
    std::vector<OpenApiExample> examples;  // sorted by order
    std::string error;                     // why the file could not be read as expected
};

OpenApiFile ReadOpenApi(const std::string& path);

}  // namespace iblsync::test
