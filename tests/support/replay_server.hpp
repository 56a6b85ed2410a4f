#pragma once
// Recorded responses replayed on loopback: each GET is answered with the
// file of the first rule whose text occurs in the request target (and that
// has answers left), as text/xml with status 200; 404 when none matches.
// The targets asked for are kept, so a test can see what its client asked.

#include <mutex>
#include <string>
#include <vector>

#include "tests/support/sru_peer.hpp"

namespace iblsync::test {

class ReplayServer {
public:
    struct Rule {
        std::string needle;  // occurs in the request target
        std::string file;    // the response body
        int times = -1;      // answers it gives; -1: any number
    };
    explicit ReplayServer(std::vector<Rule> rules);
    ~ReplayServer();
    int port() const { return acceptor_.port(); }
    std::string Url(const std::string& path) const;  // http://127.0.0.1:PORT<path>
    std::vector<std::string> Targets() const;

private:
    void Serve(int client);
    std::vector<Rule> rules_;  // guarded by mu_
    std::vector<std::string> targets_;
    mutable std::mutex mu_;
    LoopbackAcceptor acceptor_{[this](int client) { Serve(client); }};  // last: it calls Serve at once
};

}  // namespace iblsync::test
