# shellcheck shell=bash
# Sourced by the malformed-input tests (tests/malformed/*.sh): one case is a tool run on a bad
# file or option, which must exit with the documented status, print exactly one line on standard
# error naming the problem, stay within a memory bound, and leave checkpoints untouched.
#   expect_error STATUS PATTERN [MAX_RSS_MB] -- COMMAND...
# PATTERN is an extended regular expression the single stderr line must match (name the file or
# option in it). MAX_RSS_MB (default 300) bounds the peak resident memory, measured by GNU time:
# a size read from a file must be checked before it is allocated.
# Needs: WORK (a scratch folder). Counts cases in CASES and failures in FAILURES: a failed case
# (case_failed) lets the others run; fail (tests/test_lib.sh) ends the test, for its set-up.
# shellcheck source=tests/test_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../test_lib.sh"
CASES=0
FAILURES=0
case_failed() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }

expect_error() {
  local want=$1 pattern=$2 max_mb=300
  shift 2
  if [ "$1" != "--" ]; then max_mb=$1; shift; fi
  [ "$1" = "--" ] && shift
  CASES=$((CASES + 1))
  local err="$WORK/case-$CASES.err" out="$WORK/case-$CASES.out" rss="$WORK/case-$CASES.rss"
  local status=0
  /usr/bin/time -f '%M' -o "$rss" timeout 60 "$@" >"$out" 2>"$err" || status=$?
  local lines kb
  lines=$(wc -l <"$err")
  kb=$(tail -n 1 "$rss" 2>/dev/null || echo 0)
  local what="case $CASES ($*)"
  if [ "$status" != "$want" ]; then
    case_failed "$what: exit status $status, expected $want; stderr: $(head -c 400 "$err")"
  elif [ "$lines" != 1 ]; then
    case_failed "$what: $lines lines on stderr, expected 1: $(head -c 400 "$err")"
  elif ! grep -Eq -- "$pattern" "$err"; then
    case_failed "$what: stderr does not match /$pattern/: $(cat "$err")"
  elif [ "$kb" -gt $((max_mb * 1024)) ]; then
    case_failed "$what: peak resident memory $((kb / 1024)) MB > $max_mb MB"
  else
    echo "ok   $what: $(cat "$err")"
  fi
}

# Checksums of every file under a folder, to show that a failed run changed nothing there.
tree_sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

# Last line, counted by CTest's log reader: "N passed, N failed".
finish() {
  echo "malformed: $((CASES - FAILURES)) passed, $FAILURES failed"
  [ "$FAILURES" -eq 0 ]
}
