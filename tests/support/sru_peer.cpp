#include "tests/support/sru_peer.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>

#include "tests/support/raw_http.hpp"

namespace iblsync::test {

int BindLoopback(int& port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    return fd;
}

namespace {

bool Run(const std::vector<std::string>& argv) {
    auto r = RunCommand(argv, std::chrono::seconds(120));
    return r.exit_code == 0;
}

}  // namespace

int FreePort() {
    int port = 0;
    close(BindLoopback(port));
    return port;
}

ZebraServer::ZebraServer(const TempDir& dir) : dir_(dir.File("zebra")) {}

ZebraServer::~ZebraServer() { Stop(); }

bool ZebraServer::Installed() {
    return RunCommand({"/bin/sh", "-c", "command -v zebrasrv && command -v zebraidx"}).exit_code == 0;
}

bool ZebraServer::Load(const std::vector<std::string>& files) {
    const bool was_running = pid_ > 0;
    Stop();
    RunCommand({"/bin/rm", "-rf", dir_});
    RunCommand({"/bin/mkdir", "-p", dir_ + "/reg", dir_ + "/shadow", dir_ + "/tmp"});
    // Zebra's own MARC 21 profile (grs.marcxml.marc21) and YAZ's CQL map.
    WriteFile(dir_ + "/zebra.cfg", fmt::format("profilePath: /usr/share/idzebra-2.0/tab\n"
                                               "modulePath: /usr/lib/x86_64-linux-gnu/idzebra-2.0/modules\n"
                                               "attset: bib1.att\nattset: explain.att\n"
                                               "recordType.mrc: grs.marcxml.marc21\n"
                                               "register: {0}/reg:1G\nshadow: {0}/shadow:1G\nlockDir: {0}\n"
                                               "keyTmpDir: {0}/tmp\nsetTmpDir: {0}/tmp\nstoreKeys: 1\nstoreData: 1\n",
                                               dir_));
    // Zebra's MARC 21 filter reads ISO 2709; YAZ converts the MARCXML
    // (UTF-8 stays UTF-8; Zebra hands it out as MARCXML again).
    const std::vector<std::string> zebraidx{"/usr/bin/zebraidx", "-c", dir_ + "/zebra.cfg", "-l", dir_ + "/index.log"};
    auto index = [&](std::vector<std::string> args) {
        args.insert(args.begin(), zebraidx.begin(), zebraidx.end());
        return Run(args);
    };
    std::vector<std::string> update{"update"};
    for (std::size_t i = 0; i < files.size(); ++i) {
        auto mrc = RunCommand({"/usr/bin/yaz-marcdump", "-i", "marcxml", "-o", "marc", files[i]},
                              std::chrono::seconds(60));
        if (mrc.exit_code != 0) return false;
        const std::string path = fmt::format("{}/{}.mrc", dir_, i);
        WriteFile(path, mrc.out);
        update.push_back(path);
    }
    if (!index({"init"}) || !index(update) || !index({"commit"})) return false;
    return was_running ? Start() : true;
}

bool ZebraServer::Start() {
    if (port_ == 0) port_ = FreePort();
    WriteFile(dir_ + "/yazserver.xml",
              fmt::format("<yazgfs><listen id=\"web\">tcp:127.0.0.1:{1}</listen>"
                          "<server id=\"zebra\" listenref=\"web\"><directory>{0}</directory>"
                          "<config>{0}/zebra.cfg</config><cql2rpn>/usr/share/yaz/etc/pqf.properties</cql2rpn>"
                          "<retrievalinfo><retrieval syntax=\"xml\" name=\"marcxml\" "
                          "identifier=\"info:srw/schema/1/marcxml-v1.1\"><backend syntax=\"usmarc\" name=\"F\">"
                          "<marc inputformat=\"marc\" outputformat=\"marcxml\" inputcharset=\"utf-8\"/></backend>"
                          "</retrieval></retrievalinfo></server></yazgfs>\n",
                          dir_, port_));
    pid_ = fork();
    if (pid_ == 0) {
        setpgid(0, 0);
        execlp("zebrasrv", "zebrasrv", "-T", "-f", (dir_ + "/yazserver.xml").c_str(), "-l",
               (dir_ + "/server.log").c_str(), "-w", dir_.c_str(), nullptr);
        _exit(127);
    }
    return WaitFor(
        [&] {
            auto r = HttpGet(port_, "/Default?version=1.2&operation=explain");
            return r && r->status == 200;
        },
        std::chrono::seconds(20));
}

void ZebraServer::Stop() {
    if (pid_ <= 0) return;
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
}

std::string ZebraServer::Url() const { return fmt::format("http://127.0.0.1:{}/Default", port_); }

std::string ZebraServer::Log() const {
    std::ifstream in(dir_ + "/server.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
}

std::optional<std::string> ReadRequestHead(int client) {
    std::string head;
    char buf[16384];
    while (head.find("\r\n\r\n") == std::string::npos) {
        if (head.size() > (64 << 10)) return std::nullopt;
        pollfd p{client, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0) return std::nullopt;
        ssize_t n = recv(client, buf, sizeof buf, 0);
        if (n <= 0) return std::nullopt;
        head.append(buf, static_cast<std::size_t>(n));
    }
    return head;
}

std::pair<std::string, std::string> RequestLine(const std::string& head) {
    const std::string line = head.substr(0, head.find("\r\n"));  // "GET /path?query HTTP/1.1"
    const auto sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == std::string::npos || sp2 <= sp1) return {};
    return {line.substr(0, sp1), line.substr(sp1 + 1, sp2 - sp1 - 1)};
}

void SendAll(int client, const std::string& bytes) {
    for (std::size_t off = 0; off < bytes.size();) {
        ssize_t n = send(client, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<std::size_t>(n);
    }
}

LoopbackAcceptor::LoopbackAcceptor(std::function<void(int client)> serve) {
    fd_ = BindLoopback(port_);
    listen(fd_, 16);
    thread_ = std::thread([this, serve = std::move(serve)] {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 100) <= 0) continue;
            int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (client < 0) continue;
            serve(client);  // one at a time: a harvester sends one request per source at a time
            close(client);
        }
    });
}

LoopbackAcceptor::~LoopbackAcceptor() {
    stop_ = true;
    thread_.join();
    close(fd_);
}

// (The acceptor, its last member, is made last and stopped first.)
FaultProxy::FaultProxy(int target_port) : target_port_(target_port) {}

FaultProxy::~FaultProxy() = default;

std::string FaultProxy::Url() const { return fmt::format("http://127.0.0.1:{}/Default", port()); }

void FaultProxy::Set(Mode mode, std::chrono::milliseconds delay) {
    delay_ms_ = delay.count();
    pass_left_ = -1;
    mode_ = mode;
}

void FaultProxy::RequireAuthorization(const std::string& value) {
    std::lock_guard lock(mu_);
    authorization_ = value;
}

void FaultProxy::Serve(int client) {
    ++requests_;
    // The request: headers only (GET).
    auto head = ReadRequestHead(client);
    if (!head) return;
    const std::string& request = *head;
    auto reply = [&](const std::string& bytes) { SendAll(client, bytes); };
    std::string wanted;
    {
        std::lock_guard lock(mu_);
        wanted = authorization_;
    }
    if (!wanted.empty() && request.find("\r\nAuthorization: " + wanted + "\r\n") == std::string::npos) {
        ++unauthorized_;
        reply("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"sru\"\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n");
        return;
    }
    const Mode mode = mode_;
    if (mode == Mode::kError500) {
        reply("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops\n");
        return;
    }
    if (mode == Mode::kBusy) {
        // OAI-PMH flow control: come back in a second.
        ++busy_;
        reply("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
              "busy\n");
        return;
    }
    if (mode == Mode::kHtml) {
        const std::string body = "<html><body><h1>502 Bad Gateway</h1></body></html>";
        reply(fmt::format("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close"
                          "\r\n\r\n{}",
                          body.size(), body));
        return;
    }
    if (mode == Mode::kSilent) {
        // Accepts and says nothing: the client's timeout must end it.
        for (long long waited = 0; waited < delay_ms_ && !acceptor_.stopping(); waited += 50) usleep(50000);
        return;
    }
    if (mode == Mode::kDelay) usleep(static_cast<useconds_t>(delay_ms_ * 1000));
    // Held past a PassOnly limit.
    for (;;) {
        if (acceptor_.stopping()) return;
        int left = pass_left_;
        if (left < 0) break;
        if (left > 0 && pass_left_.compare_exchange_strong(left, left - 1)) break;
        usleep(20000);
    }
    RawConnection upstream(target_port_);
    if (!upstream.Send(request)) return;
    auto answer = upstream.Read(std::chrono::seconds(30));
    if (!answer) return;
    std::string out = fmt::format("HTTP/1.1 {} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close"
                                  "\r\n\r\n",
                                  answer->status, answer->body.size());
    reply(out + answer->body);
}

}  // namespace iblsync::test
