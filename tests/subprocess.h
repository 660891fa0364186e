// Running a helper program (the Python oracles) from a test: quoting, capture, exit status.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace alexnet::test {

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Runs `command` with stdout and stderr captured in `log`; returns the exit status (-1 when it
// did not exit normally).
inline int run(const std::string& command, const std::string& log) {
  int status = std::system((command + " >" + shell_quote(log) + " 2>&1 </dev/null").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace alexnet::test
