// The one frame every executable's main runs in: it maps what a tool throws to the documented exit
// statuses, with one line on standard error. User errors (bad input, bad options) are status 2;
// anything else is an internal failure, status 1, and says so, so that a user can tell "my file
// is wrong" from "the tool is wrong".
#pragma once

#include <boost/program_options/errors.hpp>
#include <exception>
#include <iostream>
#include <new>
#include <stdexcept>
#include <string>

#include "io/error.h"

namespace alexnet::io {

// Exit statuses, the same for every tool (README, "Exit status").
enum ExitStatus : int {
  kExitOk = 0,
  kExitFailure = 1,   // internal failure: a bug, or a library or system call that failed
  kExitBadInput = 2,  // bad input or options: the message names the file or option
  kExitStopped = 3,   // alexnet-train: stopped by a signal after writing a checkpoint
  kExitDiverged = 4,  // alexnet-train: the loss became NaN or Inf
  kExitPeerLost = 5,  // alexnet-train: a peer rank was lost
};

// A bad command-line or configuration value, found after parsing (a range, a combination). The
// message names the option.
class OptionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs body() (which returns the exit status) and turns an escaping exception into its status
// and one line "NAME: error: ..." (user errors) or "NAME: internal error: ..." (the rest).
template <class Body>
int run_cli(const char* name, Body&& body) {
  try {
    return body();
  } catch (const DataError& e) {
    std::cerr << name << ": error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const OptionError& e) {
    std::cerr << name << ": bad option: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const boost::program_options::error& e) {
    std::cerr << name << ": bad option: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::bad_alloc&) {
    // Every size read from a file or an option is bounded before allocating, so this is ours.
    std::cerr << name << ": internal error: out of memory\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << name << ": internal error: " << e.what() << "\n";
    return kExitFailure;
  }
}

// As above, and on a failure (an exception, not a status body returned) `on_failure(status)`
// runs after the line is printed: a tool of several processes ends its peers there, so that
// none is left waiting for one that failed alone.
template <class Body, class OnFailure>
int run_cli(const char* name, Body&& body, OnFailure&& on_failure) {
  bool returned = false;
  const int status = run_cli(name, [&] {
    const int s = body();
    returned = true;
    return s;
  });
  if (!returned) on_failure(status);
  return status;
}

}  // namespace alexnet::io
