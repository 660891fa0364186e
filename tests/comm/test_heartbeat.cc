// comm/heartbeat.h in one process, over 127.0.0.1: ranks that see each other, a rank that goes
// silent (its heartbeat ended, its port kept by a mute socket: a host down or cut off), a rank
// whose process dies (its port closed: the host refuses), one that leaves on purpose, a short
// pause, another job's datagrams. Intervals of 0.1 s keep each test to a second or two.
#include "comm/heartbeat.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace alexnet::comm {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kJob = 0x1234abcd5678ef00ull;

struct Lost {
  int observer, rank;
  std::string host;
  double silent_s;
  bool process_gone;
};

// N ranks in one process: each its socket, the table of its ring neighbours, its reports.
class Ring {
 public:
  Ring(int size, HeartbeatOptions options) : options_(options) {
    for (int r = 0; r < size; ++r) sockets_.push_back(UdpSocket::bound());
    for (int r = 0; r < size; ++r) ports_.push_back(sockets_[r].port());
    beats_.resize(static_cast<size_t>(size));
    mute_.resize(static_cast<size_t>(size));
    for (int r = 0; r < size; ++r) start(r, std::move(sockets_[r]));
  }

  void start(int r, UdpSocket socket) {
    HeartbeatSetup setup;
    setup.rank = r;
    setup.job_id = kJob;
    setup.socket = std::move(socket);
    for (int p : ring_neighbours(r, static_cast<int>(ports_.size()))) {
      setup.peers.push_back({p, "host" + std::to_string(p), {htonl(INADDR_LOOPBACK)}, ports_[p]});
    }
    beats_[r] = std::make_unique<Heartbeat>(
        std::move(setup), options_,
        [this, r](const PeerLoss& loss) {
          std::lock_guard<std::mutex> lock(mutex_);
          lost_.push_back({r, loss.rank, loss.host, loss.seconds_silent, loss.process_gone});
        },
        [this](const std::string& message) {
          std::lock_guard<std::mutex> lock(mutex_);
          errors_.push_back(message);
        });
  }

  // Rank r goes silent, as a host that is down or cut off: its heartbeat ends, a mute socket
  // keeps its port (datagrams to it vanish, no ICMP answer).
  void stop(int r) {
    beats_[r].reset();
    mute_[r] = UdpSocket::bound(ports_[r]);
  }
  // Rank r's process dies on a live host: its port closes, the host refuses datagrams.
  void kill(int r) { beats_[r].reset(); }
  // Rank r ends on purpose: a goodbye, then its port closes.
  void leave(int r) {
    beats_[r]->leave();
    beats_[r].reset();
  }
  // ... and comes back on its port.
  void restart(int r) {
    mute_[r] = UdpSocket();
    start(r, UdpSocket::bound(ports_[r]));
  }

  Heartbeat& operator[](int r) { return *beats_[r]; }
  uint16_t port(int r) const { return ports_[r]; }
  std::vector<Lost> lost() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lost_;
  }
  std::vector<std::string> errors() {
    std::lock_guard<std::mutex> lock(mutex_);
    return errors_;
  }
  static double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }

 private:
  HeartbeatOptions options_;
  std::mutex mutex_;  // before beats_: their threads report into these until they end
  std::vector<Lost> lost_;
  std::vector<std::string> errors_;
  std::vector<UdpSocket> sockets_;
  std::vector<uint16_t> ports_;
  std::vector<UdpSocket> mute_;
  std::vector<std::unique_ptr<Heartbeat>> beats_;
};

void sleep_s(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

TEST(Heartbeat, RingNeighbours) {
  EXPECT_EQ(ring_neighbours(0, 1), std::vector<int>{});
  EXPECT_EQ(ring_neighbours(0, 2), std::vector<int>{1});
  EXPECT_EQ(ring_neighbours(1, 2), std::vector<int>{0});
  EXPECT_EQ(ring_neighbours(0, 3), (std::vector<int>{2, 1}));
  EXPECT_EQ(ring_neighbours(4, 5), (std::vector<int>{3, 0}));
}

TEST(Heartbeat, LocalAddressesLeaveOutLoopback) {
  for (uint32_t a : local_ipv4_addresses()) EXPECT_NE(ntohl(a) >> 24, 127u);
}

TEST(Heartbeat, LiveRanksHearEachOtherAndNeverFire) {
  const HeartbeatOptions options{0.1, 3};
  Ring ring(3, options);
  sleep_s(4 * options.interval_s * options.misses);
  for (int r = 0; r < 3; ++r) {
    for (int p : ring_neighbours(r, 3)) {
      // About 12 beats in 1.2 s; loopback loses none, the count allows for a slow CI machine.
      EXPECT_GE(ring[r].received_from(p), 5u) << "rank " << r << " from " << p;
    }
    EXPECT_EQ(ring[r].ignored(), 0u);
  }
  EXPECT_TRUE(ring.lost().empty());
  EXPECT_TRUE(ring.errors().empty());
}

TEST(Heartbeat, ASilentRankIsReportedOnceByEachNeighbourWithinTheBound) {
  const HeartbeatOptions options{0.1, 4};
  Ring ring(3, options);
  sleep_s(0.3);
  ring.stop(1);
  sleep_s(2 * options.interval_s * options.misses + 0.3);
  const std::vector<Lost> lost = ring.lost();
  ASSERT_EQ(lost.size(), 2u);  // ranks 0 and 2; each once, though time went on
  for (const Lost& l : lost) {
    EXPECT_TRUE(l.observer == 0 || l.observer == 2) << l.observer;
    EXPECT_EQ(l.rank, 1);
    EXPECT_EQ(l.host, "host1");
    // Silent from its last beat (up to one interval before the stop) to the report.
    EXPECT_GE(l.silent_s, 0.4);
    EXPECT_LT(l.silent_s, 0.4 + 0.3);  // the slack: a poll's wake-up and a loaded machine
    EXPECT_FALSE(l.process_gone);
  }
  EXPECT_TRUE(ring.errors().empty());
}

// A process that dies on a live host is seen within about one interval (its host refuses the
// next beat, then two re-probes 50 ms apart), long before the silence bound of 3 s.
TEST(Heartbeat, ADeadProcessIsReportedWithinAnIntervalNotTheBound) {
  const HeartbeatOptions options{0.2, 15};  // bound 3 s
  Ring ring(3, options);
  sleep_s(0.5);
  const auto killed = Clock::now();
  ring.kill(1);
  while (ring.lost().size() < 2 && Ring::seconds_since(killed) < 2.5) sleep_s(0.01);
  const double seen_after = Ring::seconds_since(killed);
  const std::vector<Lost> lost = ring.lost();
  ASSERT_EQ(lost.size(), 2u);
  for (const Lost& l : lost) {
    EXPECT_EQ(l.rank, 1);
    EXPECT_TRUE(l.process_gone);
  }
  // One interval to the next beat, 0.1 s of re-probes, slack for a loaded machine.
  EXPECT_LT(seen_after, options.interval_s + 0.1 + 0.5);
  sleep_s(0.3);
  EXPECT_EQ(ring.lost().size(), 2u);  // once each
}

// probe_now() (a signal handler's call) beats at once, not at the next interval: a process that
// died is seen in a fraction of the 2 s interval.
TEST(Heartbeat, AProbeNowFindsADeadProcessWithoutWaitingForTheInterval) {
  const HeartbeatOptions options{2, 10};
  Ring ring(2, options);
  for (int i = 0; i < 100 && ring[0].received_from(1) == 0; ++i) sleep_s(0.01);
  ASSERT_GT(ring[0].received_from(1), 0u);
  sleep_s(0.1);  // rank 0's first beat went out at the start: the next is 2 s away
  ring.kill(1);
  const auto killed = Clock::now();
  ring[0].probe_now();
  while (ring.lost().empty() && Ring::seconds_since(killed) < 1.5) sleep_s(0.005);
  ASSERT_EQ(ring.lost().size(), 1u);
  EXPECT_TRUE(ring.lost()[0].process_gone);
  EXPECT_LT(Ring::seconds_since(killed), 1.0);  // 0.1 s of re-probes; the interval is 2 s
}

// A rank that leaves on purpose is no loss, though its port closes: the goodbye stops the
// watching. When it comes back and beats, it is watched again.
TEST(Heartbeat, ARankThatLeavesIsNotLost) {
  const HeartbeatOptions options{0.1, 4};
  Ring ring(3, options);
  sleep_s(0.3);
  ring.leave(1);
  for (int i = 0; i < 50 && !(ring[0].left(1) && ring[2].left(1)); ++i) sleep_s(0.01);
  EXPECT_TRUE(ring[0].left(1));
  EXPECT_TRUE(ring[2].left(1));
  sleep_s(2 * options.interval_s * options.misses);
  for (const Lost& l : ring.lost()) {
    ADD_FAILURE() << "rank " << l.observer << " lost rank " << l.rank << " after " << l.silent_s
                  << " s" << (l.process_gone ? " (process gone)" : "");
  }
  EXPECT_TRUE(ring.errors().empty());
  ring.restart(1);
  sleep_s(0.3);
  EXPECT_FALSE(ring[0].left(1));
  ring.kill(1);
  sleep_s(options.interval_s * options.misses + 0.3);
  const std::vector<Lost> lost = ring.lost();
  ASSERT_EQ(lost.size(), 2u);
  EXPECT_TRUE(lost[0].process_gone && lost[1].process_gone);
}

TEST(Heartbeat, TwoRanksWatchOneAnother) {
  Ring ring(2, {0.1, 3});
  sleep_s(0.3);
  ring.stop(0);
  sleep_s(0.8);
  const std::vector<Lost> lost = ring.lost();
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].observer, 1);
  EXPECT_EQ(lost[0].rank, 0);
  EXPECT_EQ(lost[0].host, "host0");
}

TEST(Heartbeat, APauseShorterThanTheBoundDoesNotFire) {
  const HeartbeatOptions options{0.1, 5};  // bound 0.5 s
  Ring ring(3, options);
  sleep_s(0.3);
  for (int i = 0; i < 3; ++i) {
    ring.stop(1);
    sleep_s(0.25);
    ring.restart(1);
    sleep_s(0.3);
  }
  sleep_s(0.3);
  EXPECT_TRUE(ring.lost().empty());
  EXPECT_GT(ring[0].received_from(1), 0u);
  EXPECT_GT(ring[1].received_from(2), 0u);
}

// Another job's rank 1 (a stale port reused, a second job on the nodes) beats at rank 0:
// ignored, so the real rank 1 counts as never heard (not as lost: a blocked port must not end the
// job); once it has been heard, its silence is a loss.
TEST(Heartbeat, AnotherJobsDatagramsAreIgnored) {
  HeartbeatOptions options{0.1, 3};
  options.never_heard_s = 0.5;
  std::vector<Lost> lost;
  std::vector<int> never_heard;
  std::mutex mutex;
  UdpSocket stranger = UdpSocket::bound();
  UdpSocket mine = UdpSocket::bound();
  const uint16_t port = mine.port();
  HeartbeatSetup setup;
  setup.rank = 0;
  setup.job_id = kJob;
  setup.socket = std::move(mine);
  setup.peers.push_back({1, "host1", {htonl(INADDR_LOOPBACK)}, stranger.port()});
  Heartbeat beat(
      std::move(setup), options,
      [&](const PeerLoss& loss) {
        std::lock_guard<std::mutex> lock(mutex);
        lost.push_back({0, loss.rank, loss.host, loss.seconds_silent, loss.process_gone});
      },
      nullptr,
      [&](int rank, const std::string&, double) {
        std::lock_guard<std::mutex> lock(mutex);
        never_heard.push_back(rank);
      });
  // The datagram layout of comm/heartbeat.cc, little-endian: magic, job, from, to, sequence.
  auto datagram = [](uint32_t magic, uint64_t job, uint32_t from, uint32_t to) {
    const uint64_t fields[5] = {magic, job, from, to, 7};
    const int bytes[5] = {4, 8, 4, 4, 8};
    std::vector<unsigned char> d;
    for (int f = 0; f < 5; ++f) {
      for (int i = 0; i < bytes[f]; ++i)
        d.push_back(static_cast<unsigned char>(fields[f] >> (8 * i)));
    }
    return d;
  };
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  const std::vector<std::vector<unsigned char>> foreign = {
      datagram(0x41584842, kJob + 1, 1, 0),  // another job
      datagram(0x41584843, kJob, 1, 0),      // another program
      datagram(0x41584842, kJob, 1, 5),      // for another rank
      datagram(0x41584842, kJob, 3, 0),      // from a rank rank 0 does not watch
      std::vector<unsigned char>(5, 0),      // too short
  };
  const auto start = Clock::now();
  while (Ring::seconds_since(start) < 0.8) {
    for (const auto& d : foreign) {
      ASSERT_EQ(sendto(stranger.fd(), d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                       sizeof to),
                static_cast<ssize_t>(d.size()))
          << std::strerror(errno);
    }
    sleep_s(0.05);
  }
  EXPECT_EQ(beat.received_from(1), 0u);
  EXPECT_GE(beat.ignored(), 5u * 10);
  {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_TRUE(lost.empty());                    // never heard: not watched
    EXPECT_EQ(never_heard, std::vector<int>{1});  // ... and said once
  }

  // The same sender with this job's datagram is heard: the test's layout is the real one.
  const auto real = datagram(0x41584842, kJob, 1, 0);
  ASSERT_EQ(sendto(stranger.fd(), real.data(), real.size(), 0,
                   reinterpret_cast<const sockaddr*>(&to), sizeof to),
            static_cast<ssize_t>(real.size()));
  for (int i = 0; i < 100 && beat.received_from(1) == 0; ++i) sleep_s(0.01);
  EXPECT_EQ(beat.received_from(1), 1u);
  // Heard once, then silent: lost within the bound.
  sleep_s(options.interval_s * options.misses + 0.3);
  std::lock_guard<std::mutex> lock(mutex);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].rank, 1);
}

TEST(Heartbeat, DestructionIsPrompt) {
  Ring ring(2, {10, 4});  // the thread sleeps in poll for seconds
  sleep_s(0.1);
  const auto start = Clock::now();
  ring.stop(0);
  EXPECT_LT(Ring::seconds_since(start), 0.5);
}

TEST(Heartbeat, ABusyPortSaysWhichCallFailed) {
  UdpSocket taken = UdpSocket::bound();
  try {
    UdpSocket::bound(taken.port());
    FAIL() << "bound a taken port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("socket call bind("), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Address already in use"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace alexnet::comm
