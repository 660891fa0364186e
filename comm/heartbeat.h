// A heartbeat between ranks that notices a lost node in seconds: each rank sends a small UDP
// datagram every `interval_s` to its ring neighbours (rank-1 and rank+1 mod size: O(1) per rank)
// and reports a neighbour silent for `interval_s x misses`. It runs on a thread and a socket of
// its own, never through the MPI communicator, whose calls block behind a dead peer; so a long
// step, evaluation or checkpoint write never looks like a lost node, and a cut link (which the
// progress watchdog, comm/watchdog.h, only notices after comm.timeout_s) is seen quickly.
//
// A peer whose process is gone while its host stays up (killed, crashed: its port closed) is seen
// sooner: the peer's kernel answers our datagrams with ICMP "port unreachable", which the socket
// reports (IP_RECVERR); a few refusals in a row, re-probed 50 ms apart, make that peer lost within
// about one interval, before a launcher tearing the job down hides which host it was. A rank
// that ends on purpose says goodbye first (leave()), so that its closed port is no loss.
//
// `Heartbeat` takes its peers and socket from a plain struct (testable in one process, without
// MPI); `start_heartbeat` builds that struct through the communicator's all_gather.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"

namespace alexnet::comm {

struct HeartbeatOptions {
  double interval_s = 0.5;  // <= 0: no heartbeat
  int misses = 16;          // a peer silent for interval_s x misses is lost
  // A peer never heard this long from the start is reported as such (on_never_heard); 0: 4
  // bounds, 10 s at least (a slow start of the peer's process is not a firewall).
  double never_heard_s = 0;
};

// A bound, non-blocking IPv4 UDP socket (closed on destruction).
class UdpSocket {
 public:
  UdpSocket() = default;  // none yet
  // Bound on every interface at `port` (0: one the system chooses). Throws std::runtime_error.
  static UdpSocket bound(uint16_t port = 0);
  ~UdpSocket();
  UdpSocket(UdpSocket&& other) noexcept;
  UdpSocket& operator=(UdpSocket&& other) noexcept;
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;
  int fd() const { return fd_; }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

struct HeartbeatPeer {
  int rank = 0;
  std::string host;
  std::vector<uint32_t> ipv4;  // network byte order; datagrams go to every one
  uint16_t port = 0;
};

struct HeartbeatSetup {
  int rank = 0;
  uint64_t job_id = 0;  // the same on every rank of a job; datagrams of other jobs are ignored
  UdpSocket socket;
  std::vector<HeartbeatPeer> peers;  // the monitored ones: sent to, and listened for
};

struct PeerLoss {
  int rank = 0;
  std::string host;
  double seconds_silent = 0;  // since its last datagram
  // Its host refused our datagrams (nothing listens on its port any more: the process died);
  // false: silent for the whole bound (a cut link, a host down).
  bool process_gone = false;
};
// Called once per lost peer, on the heartbeat's thread.
using OnPeerLost = std::function<void(const PeerLoss& loss)>;
// A monitored peer from which no datagram has arrived since the start, `seconds` on: UDP is
// likely blocked between the hosts (a firewall), so the heartbeat cannot watch that peer (a
// peer counts as lost only once it has been heard); called once, on the heartbeat's thread.
using OnPeerNeverHeard = std::function<void(int rank, const std::string& host, double seconds)>;
// A socket call failed on the heartbeat's thread (the heartbeat has stopped), with its message.
using OnHeartbeatError = std::function<void(const std::string& message)>;

class Heartbeat {
 public:
  // Starts the thread. Every peer counts as heard from now.
  // A peer is watched from its first datagram on: one never heard is not "lost" (a blocked
  // port would end every job), it is reported through on_never_heard after never_heard_s().
  Heartbeat(HeartbeatSetup setup, HeartbeatOptions options, OnPeerLost on_lost,
            OnHeartbeatError on_error, OnPeerNeverHeard on_never_heard = {});
  // Stops the thread (a self-pipe wakes it), without a last datagram: to the peers this rank
  // then goes silent, as a crashed one would (leave() first for an orderly end).
  ~Heartbeat();
  // A beat to every peer now, not at the next interval: async-signal-safe (one write to a
  // pipe), for a signal handler. A launcher that tears the job down because a host died sends
  // SIGTERM first; the beat it triggers is refused by that host at once, and the rank names it
  // before the SIGKILL that follows.
  void probe_now() noexcept;
  // An orderly end: a goodbye datagram to every peer, which then stops watching this rank (its
  // port about to close is no loss), and no more datagrams from here. Idempotent.
  void leave();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // Datagrams of this job received from `rank` (0 for a rank not monitored).
  uint64_t received_from(int rank) const;
  // Whether `rank` said goodbye (and has not beaten since).
  bool left(int rank) const;
  // Datagrams received and ignored: another job's, malformed, not for this rank, or from a rank
  // not monitored.
  uint64_t ignored() const { return ignored_.load(); }
  double bound_s() const { return options_.interval_s * options_.misses; }
  double never_heard_s() const {
    return options_.never_heard_s > 0 ? options_.never_heard_s : std::max(10.0, 4 * bound_s());
  }

 private:
  struct PeerState {
    std::atomic<int64_t> last_heard_ns{0};
    std::atomic<uint64_t> received{0};
    std::atomic<bool> left{false};  // said goodbye: not watched until it beats again
    bool reported = false;          // the thread's alone, as the rest
    bool warned = false;            // never heard: on_never_heard called
    int refusals = 0;               // ICMP port-unreachable answers since its last datagram
    int probes = 0;                 // extra datagrams sent since the first refusal
    int64_t next_probe_ns = 0;
  };
  void loop();
  void stop_thread();  // idempotent
  void send_to(size_t peer, uint64_t sequence);
  void send_all(uint64_t sequence);
  void receive_all(int64_t now_ns);
  void read_errors(int64_t now_ns);  // the socket's error queue: refusals per peer
  void report(size_t peer, int64_t now_ns, bool process_gone);

  HeartbeatSetup setup_;
  const HeartbeatOptions options_;
  OnPeerLost on_lost_;
  OnHeartbeatError on_error_;
  OnPeerNeverHeard on_never_heard_;
  int64_t start_ns_ = 0;
  std::vector<PeerState> state_;  // parallel to setup_.peers
  std::atomic<uint64_t> ignored_{0};
  std::atomic<bool> leaving_{false};  // leave() called: the thread sends nothing more
  int wake_[2] = {-1, -1};  // the self-pipe: a byte on wake_[1] stops the thread or probes
  std::thread thread_;
};

// rank-1 and rank+1 mod size, without repeats or `rank` itself ({} for one rank, {1-rank} for 2).
std::vector<int> ring_neighbours(int rank, int size);

// The IPv4 addresses of this host's up, non-loopback interfaces (getifaddrs), network order.
std::vector<uint32_t> local_ipv4_addresses();

// A collective: rank 0's random job id is broadcast, every rank publishes its host name, UDP
// port and addresses (all_gather), and starts a heartbeat to its ring neighbours (loopback too
// for a neighbour on the same host). nullptr on one rank or with interval_s <= 0.
std::unique_ptr<Heartbeat> start_heartbeat(Communicator& comm, const HeartbeatOptions& options,
                                           OnPeerLost on_lost, OnHeartbeatError on_error,
                                           OnPeerNeverHeard on_never_heard = {});

}  // namespace alexnet::comm
