#pragma once
// A CGI program behind a loopback HTTP server, for peers that exist only as
// CGI scripts (Debian's libhttp-oai-perl static OAI-PMH gateway). Each GET
// runs the program once with the CGI/1.1 environment, stdin from /dev/null,
// and its output (CGI headers, a blank line, the body) becomes the HTTP
// response: status 200 unless a Status: header says otherwise, 502 when the
// program fails or prints nothing. One request at a time, Connection: close.

#include <atomic>
#include <string>
#include <vector>

#include "tests/support/sru_peer.hpp"

namespace iblsync::test {

class CgiServer {
public:
    // `argv` runs the program; `env` adds to the CGI variables (NAME=value).
    CgiServer(std::vector<std::string> argv, std::vector<std::string> env, std::string script_name);
    ~CgiServer();
    int port() const { return acceptor_.port(); }
    std::string Url() const;  // http://127.0.0.1:PORT<script_name>
    int requests() const { return requests_; }
    int failures() const { return failures_; }  // runs that exited non-zero or printed nothing
    std::string Stderr() const;                   // what the program said on stderr, all runs

private:
    void Serve(int client);
    std::vector<std::string> argv_, env_;
    std::string script_name_;
    std::string stderr_path_;
    std::atomic<int> requests_{0}, failures_{0};
    LoopbackAcceptor acceptor_{[this](int client) { Serve(client); }};  // last: it calls Serve at once
};

}  // namespace iblsync::test
