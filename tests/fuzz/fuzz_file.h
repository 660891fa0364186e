// The parsers under fuzz take paths: each input goes to one file of this process, rewritten for
// every input (in /dev/shm where there is one, to keep the disk out of the loop).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace alexnet::fuzz {

// A directory of this process's own, removed at exit.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const std::filesystem::path base = std::filesystem::is_directory("/dev/shm")
                                           ? "/dev/shm"
                                           : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("alexnet-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    static const std::string removed = d.string();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(removed, ec);
    });
    return d.string();
  }();
  return dir;
}

// Writes the input to scratch_dir()/name and returns that path.
inline std::string write_input(const char* name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();  // the harness, not the parser: stop loudly
  if (size != 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  if (std::fclose(f) != 0) std::abort();
  return path;
}

}  // namespace alexnet::fuzz
