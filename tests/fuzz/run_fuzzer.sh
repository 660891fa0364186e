#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time (the fuzz_* CTest tests).
#   run_fuzzer.sh FUZZER SECONDS FOUND_DIR SEEDS_DIR ARTIFACT_PREFIX [LIBRARY_REGEX]
# Without LIBRARY_REGEX: a plain run, which stops at the first crash, hang or huge allocation.
# With it (the HDF5 readers): Debian's libhdf5 1.10 itself overflows a heap buffer and hangs in
# H5HG_read on corrupt files, bugs no check of ours can stop, so libFuzzer's fork mode goes on past
# every finding; each input it kept is then replayed, and the test fails only where the report's
# first frame outside the sanitizer and libFuzzer runtimes and libc is not in that library (ours).
set -uo pipefail

if [ $# -lt 5 ]; then
  echo "usage: $0 FUZZER SECONDS FOUND_DIR SEEDS_DIR ARTIFACT_PREFIX [LIBRARY_REGEX]" >&2
  exit 2
fi
fuzzer=$1 seconds=$2 found=$3 seeds=$4 prefix=$5 library=${6:-}
common=(-rss_limit_mb=1024 -timeout=10 -print_final_stats=1 "-artifact_prefix=$prefix")

if [ -z "$library" ]; then
  exec "$fuzzer" "-max_total_time=$seconds" "${common[@]}" "$found" "$seeds"
fi

stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
"$fuzzer" "-max_total_time=$seconds" "${common[@]}" -fork=1 -ignore_crashes=1 \
  -ignore_timeouts=1 -ignore_ooms=1 "$found" "$seeds"
status=$?
# A non-zero status is the last job's finding (timeout, OOM, crash), judged below with the others;
# without any new artifact it is the fuzzer's own failure.
if [ $status -ne 0 ] && [ -z "$(find "$(dirname "$prefix")" -maxdepth 1 -type f \
    -name "$(basename "$prefix")*" -newer "$stamp" -print -quit)" ]; then
  echo "FAIL: $fuzzer exited with status $status and left no input behind" >&2
  exit 1
fi

# The first frame of a report's first stack that is not the runtimes', libc's or the harness's.
first_frame() {
  awk '/^ *#[0-9]+ 0x/ { seen = 1; print; next } seen && /^ *$/ { exit }' |
    grep -Ev '__interceptor_|__asan|__sanitizer|__ubsan|__lsan|fuzzer::|in (malloc|calloc|realloc|free|operator new|operator delete)|libc\.so|libstdc\+\+|__libc_start|in _start|LLVMFuzzerTestOneInput' |
    head -n 1
}

ours=0 theirs=0 replayed=0
for artifact in "$prefix"*; do
  [ -f "$artifact" ] && [ "$artifact" -nt "$stamp" ] || continue
  replayed=$((replayed + 1))
  if [ $replayed -gt 40 ]; then  # keeps the test's time bounded; the rest stay in artifacts/
    echo "not replayed: $(basename "$artifact")"
    continue
  fi
  report=$(timeout 60 "$fuzzer" -timeout=10 -rss_limit_mb=1024 "$artifact" 2>&1)
  frame=$(printf '%s\n' "$report" | first_frame)
  if [ -n "$frame" ] && printf '%s' "$frame" | grep -Eq "$library"; then
    theirs=$((theirs + 1))
    echo "library finding (not ours): $(basename "$artifact"):$frame"
  elif [ -z "$frame" ] && ! printf '%s\n' "$report" | grep -q 'ERROR'; then
    echo "no longer reproduces: $(basename "$artifact")"
  else
    ours=$((ours + 1))
    echo "FAIL: finding in our code: $artifact" >&2
    printf '%s\n' "$report" | grep -E 'ERROR|SUMMARY|^ *#[0-9]+ ' | head -n 30 >&2
  fi
done
echo "$(basename "$fuzzer"): $ours findings in our code, $theirs in the library ($library)"
[ $ours -eq 0 ]
