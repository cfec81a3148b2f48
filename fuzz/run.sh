#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ through cargo-afl (stable Rust; cargo fuzz needs nightly).
#   fuzz/run.sh TARGET [SECONDS] [EXECS]   one campaign: stops after SECONDS (default 1800) or
#                                          EXECS executions (default 10000000), whichever first
#   fuzz/run.sh --list                     the targets
# Findings go to $CONVENE_CACHE/fuzz/out/TARGET (crashes/, hangs/, queue/; CONVENE_FUZZ_OUT
# instead of …/fuzz/out: fuzz/smoke.sh keeps its runs apart from campaigns); the summary line
# (executions, run time, crashes, hangs) is printed and appended to $CONVENE_CACHE/fuzz/runs.log.
# Exit status 1 when AFL++ saved a crash or a hang. Reproduce one without AFL++:
#   cargo run -p convene-fuzz --bin TARGET -- $CONVENE_CACHE/fuzz/out/TARGET/default/crashes/id:…
# cargo-afl (and the AFL++ it builds) are installed into the cache, pinned, once.
set -euo pipefail
cd "$(dirname "$0")/.."
CONVENE_CACHE=${CONVENE_CACHE:-$HOME/.cache/convene}
AFL_VERSION=0.18.2
TARGETS="signaling_rooms bridge_control bridge_datagrams jwt_verify signaling_config"

if [ "${1:-}" = "--list" ]; then echo "$TARGETS" | tr ' ' '\n'; exit 0; fi
target=${1:?usage: fuzz/run.sh TARGET [SECONDS] [EXECS] (fuzz/run.sh --list)}
seconds=${2:-1800}
execs=${3:-10000000}
case " $TARGETS " in *" $target "*) ;; *) echo "unknown target $target (fuzz/run.sh --list)" >&2; exit 2 ;; esac

# cargo-afl and AFL++ (built from the source cargo-afl ships) live in the cache.
fuzz_home="$CONVENE_CACHE/fuzz"
export CARGO_INSTALL_ROOT="$fuzz_home/cargo-afl-$AFL_VERSION"
export XDG_DATA_HOME="$fuzz_home/data"
export PATH="$CARGO_INSTALL_ROOT/bin:$PATH"
mkdir -p "$fuzz_home"
if [ ! -x "$CARGO_INSTALL_ROOT/bin/cargo-afl" ]; then
  echo "fuzz: installing cargo-afl $AFL_VERSION into $CARGO_INSTALL_ROOT" >&2
  cargo install --quiet --locked cargo-afl --version "$AFL_VERSION"
fi
if ! ls "$XDG_DATA_HOME"/afl.rs/rustc-*/afl.rs-*/afl/bin/afl-fuzz >/dev/null 2>&1; then
  echo "fuzz: building AFL++ (cargo afl config --build)" >&2
  cargo afl config --build --force >"$fuzz_home/afl-build.log" 2>&1 ||
    { tail -n 30 "$fuzz_home/afl-build.log" >&2; exit 1; }
fi

# Instrumented binaries in their own target dir: the workspace's build stays as it is.
export CARGO_TARGET_DIR="$fuzz_home/target"
cargo afl build --quiet --release --locked -p convene-fuzz --features afl --bin "$target"
bin="$CARGO_TARGET_DIR/release/$target"

# Seeds: the committed corpus (fuzz/corpus/TARGET, written by gen-corpus from the tests).
seeds="fuzz/corpus/$target"
[ -n "$(ls -A "$seeds" 2>/dev/null)" ] || { echo "fuzz: empty corpus $seeds" >&2; exit 1; }

out="${CONVENE_FUZZ_OUT:-$fuzz_home/out}/$target"
rm -rf "$out"
mkdir -p "$out"
# No UI, no CPU-governor or core_pattern checks (containers), stop at the limits.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_NO_CRASH_README=1 AFL_QUIET=1
echo "fuzz: $target for ${seconds}s or $execs executions" >&2
set +e
cargo afl fuzz -i "$seeds" -o "$out" -V "$seconds" -E "$execs" -t 2000 -- "$bin" \
  >"$out/afl.log" 2>&1
status=$?
set -e
stats="$out/default/fuzzer_stats"
if [ ! -f "$stats" ]; then
  tail -n 40 "$out/afl.log" >&2
  echo "fuzz: $target: afl-fuzz exited $status without stats" >&2
  exit 1
fi
field() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
crashes=$(field saved_crashes)
hangs=$(field saved_hangs)
line="$(date -u +%FT%TZ) $target execs=$(field execs_done) run_s=$(field run_time) \
execs_per_s=$(field execs_per_sec) corpus=$(field corpus_count) edges=$(field edges_found) \
crashes=$crashes hangs=$hangs"
echo "$line" | tee -a "$fuzz_home/runs.log"
if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
  echo "fuzz: $target: findings in $out/default/{crashes,hangs}" >&2
  exit 1
fi
