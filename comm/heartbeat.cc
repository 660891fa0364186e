// Heartbeat: UDP datagrams between ring neighbours on a thread of their own.
#include "comm/heartbeat.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/errqueue.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <utility>

#include "io/call_error.h"

namespace alexnet::comm {
namespace {

// "socket call CALL failed at FILE:LINE while CONTEXT: strerror(errno)" (io/call_error.h).
[[noreturn]] void throw_socket_error(const char* call, const char* file, int line,
                                     const std::string& context) {
  io::throw_call_error("socket", call, file, line, context, std::strerror(errno));
}
#define ALEXNET_SOCKET_CHECK(call, context)                                 \
  do {                                                                      \
    if ((call) < 0) throw_socket_error(#call, __FILE__, __LINE__, context); \
  } while (0)

constexpr uint32_t kMagic = 0x41584842;  // "AXHB"
constexpr size_t kDatagramBytes = 28;
constexpr int kMaxAddresses = 16;            // per rank, in the exchange
constexpr uint64_t kGoodbye = ~uint64_t{0};  // the sequence number of a leaving rank's last word
// Refusals in a row that make a peer's process gone, and the re-probe interval after the first:
// one refusal could be a port closed for a moment; three, 50 ms apart, are a process that died.
// (ICMP errors are rate-limited per host, 1 a second after a burst of 6: three fit the burst.)
constexpr int kRefusalsToLose = 3;
constexpr int64_t kReprobeNs = 50'000'000;
constexpr char kWakeStop = 1, kWakeProbe = 2;  // the bytes on the wake pipe

struct Datagram {
  uint32_t magic = kMagic;
  uint64_t job_id = 0;
  uint32_t from = 0, to = 0;
  uint64_t sequence = 0;
};

// Little-endian on the wire, whatever the hosts are.
void put(unsigned char*& p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) *p++ = static_cast<unsigned char>(v >> (8 * i));
}
uint64_t get(const unsigned char*& p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(*p++) << (8 * i);
  return v;
}

void encode(const Datagram& d, unsigned char* out) {
  put(out, d.magic, 4);
  put(out, d.job_id, 8);
  put(out, d.from, 4);
  put(out, d.to, 4);
  put(out, d.sequence, 8);
}

Datagram decode(const unsigned char* in) {
  Datagram d;
  d.magic = static_cast<uint32_t>(get(in, 4));
  d.job_id = get(in, 8);
  d.from = static_cast<uint32_t>(get(in, 4));
  d.to = static_cast<uint32_t>(get(in, 4));
  d.sequence = get(in, 8);
  return d;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A send that a cut link, a downed interface or a full queue makes fail: the silence it causes
// is what the peer detects, so this rank goes on.
bool transient_send_error(int e) {
  return e == ENETUNREACH || e == EHOSTUNREACH || e == ENETDOWN || e == EHOSTDOWN ||
         e == ECONNREFUSED || e == ENOBUFS || e == EAGAIN || e == EWOULDBLOCK || e == EINTR ||
         e == EPERM || e == EADDRNOTAVAIL;
}

std::string host_name() {
  char host[256] = {};
  ALEXNET_SOCKET_CHECK(gethostname(host, sizeof host - 1), "reading this host's name");
  return host;
}

}  // namespace

UdpSocket UdpSocket::bound(uint16_t port) {
  UdpSocket s;
  s.fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ALEXNET_SOCKET_CHECK(s.fd_, "opening the heartbeat's UDP socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(port);
  // ICMP errors of our sends (a peer's port unreachable) into the socket's error queue, with
  // the destination they came for: how a dead peer process on a live host is seen at once.
  const int on = 1;
  ALEXNET_SOCKET_CHECK(setsockopt(s.fd_, IPPROTO_IP, IP_RECVERR, &on, sizeof on),
                       "asking for ICMP errors on the heartbeat's UDP socket (IP_RECVERR)");
  ALEXNET_SOCKET_CHECK(bind(s.fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr),
                       "binding the heartbeat's UDP socket to port " + std::to_string(port));
  socklen_t length = sizeof addr;
  ALEXNET_SOCKET_CHECK(getsockname(s.fd_, reinterpret_cast<sockaddr*>(&addr), &length),
                       "reading the heartbeat socket's port");
  s.port_ = ntohs(addr.sin_port);
  return s;  // a throw above closes it (the destructor)
}

UdpSocket::~UdpSocket() {
  if (fd_ >= 0) close(fd_);
}

UdpSocket::UdpSocket(UdpSocket&& other) noexcept : fd_(other.fd_), port_(other.port_) {
  other.fd_ = -1;
}

UdpSocket& UdpSocket::operator=(UdpSocket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    port_ = other.port_;
  }
  return *this;
}

Heartbeat::Heartbeat(HeartbeatSetup setup, HeartbeatOptions options, OnPeerLost on_lost,
                     OnHeartbeatError on_error, OnPeerNeverHeard on_never_heard)
    : setup_(std::move(setup)),
      options_(options),
      on_lost_(std::move(on_lost)),
      on_error_(std::move(on_error)),
      on_never_heard_(std::move(on_never_heard)),
      state_(setup_.peers.size()) {
  if (!(options_.interval_s > 0) || options_.misses < 1) {
    throw std::invalid_argument("heartbeat: interval_s must be > 0 and misses >= 1");
  }
  ALEXNET_SOCKET_CHECK(pipe2(wake_, O_NONBLOCK | O_CLOEXEC), "making the heartbeat's wake pipe");
  start_ns_ = now_ns();
  for (PeerState& s : state_) s.last_heard_ns.store(start_ns_);
  thread_ = std::thread([this] { loop(); });
}

Heartbeat::~Heartbeat() {
  stop_thread();
  close(wake_[0]);
  close(wake_[1]);
}

void Heartbeat::stop_thread() {
  if (!thread_.joinable()) return;
  const char byte = kWakeStop;
  // The pipe is non-blocking and holds at most a few probe bytes: the write cannot fail short
  // of a bug; the thread then sees the byte at its next poll.
  if (write(wake_[1], &byte, 1) != 1) std::terminate();
  thread_.join();
}

void Heartbeat::probe_now() noexcept {
  const char byte = kWakeProbe;
  // A full pipe already holds a wake-up: nothing lost.
  [[maybe_unused]] const ssize_t written = write(wake_[1], &byte, 1);
}

void Heartbeat::leave() {
  if (!thread_.joinable()) return;
  // The thread first, so that no beat follows the goodbye (a peer would watch this rank again
  // and take its closed port for a dead process). Twice: UDP may drop one.
  stop_thread();
  try {
    send_all(kGoodbye);
    send_all(kGoodbye);
  } catch (const std::exception&) {
    // Unreachable peers cannot be told; they see silence, as they would of any ended rank.
  }
}

bool Heartbeat::left(int rank) const {
  for (size_t i = 0; i < setup_.peers.size(); ++i) {
    if (setup_.peers[i].rank == rank) return state_[i].left.load();
  }
  return false;
}

uint64_t Heartbeat::received_from(int rank) const {
  for (size_t i = 0; i < setup_.peers.size(); ++i) {
    if (setup_.peers[i].rank == rank) return state_[i].received.load();
  }
  return 0;
}

void Heartbeat::send_all(uint64_t sequence) {
  for (size_t i = 0; i < setup_.peers.size(); ++i) send_to(i, sequence);
}

void Heartbeat::send_to(size_t index, uint64_t sequence) {
  const HeartbeatPeer& peer = setup_.peers[index];
  Datagram d;
  d.job_id = setup_.job_id;
  d.from = static_cast<uint32_t>(setup_.rank);
  d.to = static_cast<uint32_t>(peer.rank);
  d.sequence = sequence;
  unsigned char bytes[kDatagramBytes];
  encode(d, bytes);
  for (uint32_t address : peer.ipv4) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = address;
    to.sin_port = htons(peer.port);
    // ECONNREFUSED is an earlier datagram's ICMP error (another peer's closed port), which the
    // kernel hands to the next send instead of sending it: send again, or this peer would hear
    // nothing while that one is gone.
    ssize_t sent = -1;
    for (int attempt = 0; attempt < 4; ++attempt) {
      sent = sendto(setup_.socket.fd(), bytes, sizeof bytes, 0,
                    reinterpret_cast<const sockaddr*>(&to), sizeof to);
      if (sent >= 0 || errno != ECONNREFUSED) break;
    }
    if (sent < 0 && !transient_send_error(errno)) {
      char text[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, &to.sin_addr, text, sizeof text);
      throw_socket_error("sendto(heartbeat)", __FILE__, __LINE__,
                         "sending a heartbeat to rank " + std::to_string(peer.rank) + " at " +
                             text + ":" + std::to_string(peer.port));
    }
  }
}

void Heartbeat::receive_all(int64_t now) {
  for (;;) {
    unsigned char bytes[64];
    const ssize_t n = recv(setup_.socket.fd(), bytes, sizeof bytes, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // ECONNREFUSED: an ICMP error of an earlier send, not a datagram.
      if (errno == ECONNREFUSED) continue;  // the error queue says for whom (read_errors)
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      throw_socket_error("recv(heartbeat)", __FILE__, __LINE__, "receiving heartbeats");
    }
    if (static_cast<size_t>(n) != kDatagramBytes) {
      ++ignored_;
      continue;
    }
    const Datagram d = decode(bytes);
    if (d.magic != kMagic || d.job_id != setup_.job_id ||
        d.to != static_cast<uint32_t>(setup_.rank)) {
      ++ignored_;
      continue;
    }
    bool known = false;
    for (size_t i = 0; i < setup_.peers.size(); ++i) {
      if (static_cast<uint32_t>(setup_.peers[i].rank) != d.from) continue;
      PeerState& s = state_[i];
      s.last_heard_ns.store(now);
      ++s.received;
      s.refusals = 0;
      s.left.store(d.sequence == kGoodbye);  // a beat after a goodbye: back, watched again
      known = true;
    }
    if (!known) ++ignored_;
  }
}

void Heartbeat::read_errors(int64_t now) {
  for (;;) {
    sockaddr_in to{};
    unsigned char bytes[64];
    alignas(cmsghdr) unsigned char control[512];
    iovec io{bytes, sizeof bytes};
    msghdr message{};
    message.msg_name = &to;
    message.msg_namelen = sizeof to;
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    if (recvmsg(setup_.socket.fd(), &message, MSG_ERRQUEUE) < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      throw_socket_error("recvmsg(heartbeat, MSG_ERRQUEUE)", __FILE__, __LINE__,
                         "reading the ICMP errors of sent heartbeats");
    }
    bool refused = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_RECVERR) continue;
      sock_extended_err error{};
      std::memcpy(&error, CMSG_DATA(c), sizeof error);
      refused = refused || (error.ee_origin == SO_EE_ORIGIN_ICMP && error.ee_errno == ECONNREFUSED);
    }
    if (!refused) continue;  // host or net unreachable: a cut link, which silence covers
    for (size_t i = 0; i < setup_.peers.size(); ++i) {
      const HeartbeatPeer& peer = setup_.peers[i];
      PeerState& s = state_[i];
      if (htons(peer.port) != to.sin_port ||
          std::find(peer.ipv4.begin(), peer.ipv4.end(), to.sin_addr.s_addr) == peer.ipv4.end()) {
        continue;
      }
      // Refusals count only for a peer heard, not gone on purpose: a firewall that rejects our
      // port from the start is "never heard", not a loss.
      if (s.received.load() == 0 || s.left.load() || s.reported) continue;
      if (s.refusals++ == 0) {
        s.probes = 0;
        s.next_probe_ns = now + kReprobeNs;
      }
    }
  }
}

void Heartbeat::report(size_t index, int64_t now, bool process_gone) {
  PeerState& s = state_[index];
  s.reported = true;
  const HeartbeatPeer& peer = setup_.peers[index];
  if (on_lost_) {
    on_lost_({peer.rank, peer.host, static_cast<double>(now - s.last_heard_ns.load()) * 1e-9,
              process_gone});
  }
}

void Heartbeat::loop() {
  const auto interval_ns = static_cast<int64_t>(options_.interval_s * 1e9);
  const auto bound_ns = static_cast<int64_t>(bound_s() * 1e9);
  int64_t next_send = now_ns();
  uint64_t sequence = 0;
  try {
    for (;;) {
      int64_t now = now_ns();
      if (now >= next_send) {
        send_all(sequence++);
        // After a stall (a suspended process) the next beat is one interval on, not a burst.
        next_send = std::max(next_send + interval_ns, now + interval_ns / 2);
      }
      int64_t wake_at = next_send;
      for (size_t i = 0; i < state_.size(); ++i) {
        PeerState& s = state_[i];
        if (s.reported || s.left.load()) continue;
        if (s.refusals >= kRefusalsToLose) {
          report(i, now, true);
          continue;
        }
        // Refused: re-probe soon (a dead process, or a port closed for a moment), a few times,
        // then back to the beat's pace (ICMP may be rate-limited).
        if (s.refusals > 0 && s.probes < 2 * kRefusalsToLose) {
          if (now >= s.next_probe_ns) {
            send_to(i, sequence++);
            ++s.probes;
            s.next_probe_ns = now + kReprobeNs;
          }
          wake_at = std::min(wake_at, s.next_probe_ns);
        }
        if (s.received.load() == 0) {  // not watched until heard once
          const auto never_ns = static_cast<int64_t>(never_heard_s() * 1e9);
          if (!s.warned && now - start_ns_ >= never_ns) {
            s.warned = true;
            const HeartbeatPeer& peer = setup_.peers[i];
            if (on_never_heard_) {
              on_never_heard_(peer.rank, peer.host, static_cast<double>(now - start_ns_) * 1e-9);
            }
          }
          // Wake for the warning; a first datagram wakes the poll anyway.
          if (!s.warned) wake_at = std::min(wake_at, start_ns_ + never_ns);
          continue;
        }
        const int64_t silent = now - s.last_heard_ns.load();
        if (silent >= bound_ns) {
          report(i, now, false);
        } else {
          wake_at = std::min(wake_at, s.last_heard_ns.load() + bound_ns);
        }
      }
      now = now_ns();
      const int timeout_ms = static_cast<int>(
          std::clamp<int64_t>((wake_at - now + 999999) / 1000000, 1, 60 * 60 * 1000));
      pollfd fds[2] = {{setup_.socket.fd(), POLLIN, 0}, {wake_[0], POLLIN, 0}};
      const int ready = poll(fds, 2, timeout_ms);
      if (ready < 0) {
        if (errno == EINTR) continue;
        throw_socket_error("poll(heartbeat)", __FILE__, __LINE__, "waiting for heartbeats");
      }
      if (fds[1].revents != 0) {
        char bytes[64];
        const ssize_t n = read(wake_[0], bytes, sizeof bytes);
        if (n > 0 && std::find(bytes, bytes + n, kWakeStop) == bytes + n) {
          next_send = now_ns();  // probe_now(): every peer at once
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        return;
      }
      if ((fds[0].revents & POLLERR) != 0) read_errors(now_ns());
      if ((fds[0].revents & POLLIN) != 0) receive_all(now_ns());
    }
  } catch (const std::exception& e) {
    if (on_error_) on_error_(e.what());
  }
}

std::vector<int> ring_neighbours(int rank, int size) {
  std::vector<int> out;
  if (size < 2) return out;
  for (int r : {(rank + size - 1) % size, (rank + 1) % size}) {
    if (r != rank && std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
  }
  return out;
}

std::vector<uint32_t> local_ipv4_addresses() {
  ifaddrs* list = nullptr;
  ALEXNET_SOCKET_CHECK(getifaddrs(&list), "listing this host's network interfaces");
  std::vector<uint32_t> out;
  for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if ((a->ifa_flags & IFF_UP) == 0 || (a->ifa_flags & IFF_LOOPBACK) != 0) continue;
    const uint32_t address = reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr;
    if (std::find(out.begin(), out.end(), address) == out.end()) out.push_back(address);
  }
  freeifaddrs(list);
  return out;
}

std::unique_ptr<Heartbeat> start_heartbeat(Communicator& comm, const HeartbeatOptions& options,
                                           OnPeerLost on_lost, OnHeartbeatError on_error,
                                           OnPeerNeverHeard on_never_heard) {
  if (comm.size() < 2 || !(options.interval_s > 0)) return nullptr;
  // One job's id on every rank: another job's datagrams (a stale port reused) do not count.
  uint64_t job_id = 0;
  if (comm.rank() == 0) {
    std::random_device device;
    job_id = (static_cast<uint64_t>(device()) << 32) ^ device();
  }
  comm.broadcast(&job_id, sizeof job_id, 0);

  // What each rank publishes; the same layout on every rank (one build, check_same_config).
  struct Published {
    char host[256];
    uint32_t ipv4[kMaxAddresses];
    uint32_t count;
    uint32_t port;
  };
  UdpSocket socket = UdpSocket::bound();
  Published mine{};
  const std::string host = host_name();
  std::strncpy(mine.host, host.c_str(), sizeof mine.host - 1);
  const std::vector<uint32_t> addresses = local_ipv4_addresses();
  mine.count = static_cast<uint32_t>(std::min<size_t>(addresses.size(), kMaxAddresses));
  std::copy_n(addresses.begin(), mine.count, mine.ipv4);
  mine.port = socket.port();
  std::vector<Published> all(static_cast<size_t>(comm.size()));
  comm.all_gather(&mine, all.data(), sizeof mine);

  HeartbeatSetup setup;
  setup.rank = comm.rank();
  setup.job_id = job_id;
  setup.socket = std::move(socket);
  for (int r : ring_neighbours(comm.rank(), comm.size())) {
    const Published& p = all[static_cast<size_t>(r)];
    HeartbeatPeer peer;
    peer.rank = r;
    peer.host.assign(p.host, strnlen(p.host, sizeof p.host));
    peer.port = static_cast<uint16_t>(p.port);
    peer.ipv4.assign(p.ipv4, p.ipv4 + std::min<uint32_t>(p.count, kMaxAddresses));
    if (peer.host == host) peer.ipv4.push_back(htonl(INADDR_LOOPBACK));
    setup.peers.push_back(std::move(peer));
  }
  return std::make_unique<Heartbeat>(std::move(setup), options, std::move(on_lost),
                                     std::move(on_error), std::move(on_never_heard));
}

}  // namespace alexnet::comm
