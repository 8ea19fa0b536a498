#!/usr/bin/env bash
# Cost of seccomp supervision on system calls: a getppid loop with no filter, under the plain
# allow-list filter, and under the supervised filter, side by side; then the same loop with
# getppid outside the allow-list (answered by the kernel, or by the supervisor), and the
# launcher's start-up with and without the supervisor.
#
# Usage: bench/seccomp/run.sh [ROUNDS]   (default 15 alternating rounds per configuration)
# Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail

rounds=${1:-15}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

command -v cc >/dev/null || { echo "a C compiler is required: apt-get install -y gcc" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is required: apt-get install -y hyperfine" >&2; exit 1; }

cargo build --release --quiet -p palisade-wrap
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
wrap="$target_dir/release/palisade-wrap"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/loop" "$here/loop.c"

policy() { # NAME SUPERVISE DENY
    cat > "$work/$1.yaml" <<YAML
apiVersion: palisade.dev/v1alpha1
kind: WorkloadPolicy
metadata: {name: bench-$1}
spec:
  process: {execute: ["$work/loop", /usr/bin/true]}
  filesystem: {read: [/usr, /lib, /lib64, /etc]}
  syscalls: {profiles: [base], deny: [$3], supervise: $2}
YAML
}
policy plain false ""
policy supervised true ""
policy plain-denied false getppid
policy supervised-denied true getppid

allowed_calls=1000000
denied_calls=20000
run() { # LABEL CALLS [POLICY]
    local label=$1 calls=$2 policy=${3:-}
    if [ -z "$policy" ]; then
        "$work/loop" "$calls" 5 2>/dev/null
    else
        "$wrap" --policy "$work/$policy.yaml" -- "$work/loop" "$calls" 5 2>/dev/null
    fi | awk -v label="$label" '/median_ns_per_call/ {print label, $2}'
}

# Configurations alternate within each round so that drift on a shared machine hits them alike.
samples="$work/samples"
for _ in $(seq "$rounds"); do
    run none "$allowed_calls"
    run plain "$allowed_calls" plain
    run supervised "$allowed_calls" supervised
    run plain-denied "$denied_calls" plain-denied
    run supervised-denied "$denied_calls" supervised-denied
done > "$samples"

# Start-up: the supervisor is started (and exits) around every launch.
hyperfine -N --warmup 20 --runs 200 --export-json "$work/startup.json" \
    --command-name 'plain' "$wrap --policy $work/plain.yaml -- /usr/bin/true" \
    --command-name 'supervised' "$wrap --policy $work/supervised.yaml -- /usr/bin/true" >&2

python3 - "$samples" "$work/startup.json" "$rounds" <<'PY'
import json, statistics, sys
samples = {}
for line in open(sys.argv[1]):
    label, value = line.split()
    samples.setdefault(label, []).append(float(value))
median = {label: statistics.median(values) for label, values in samples.items()}
print(f"getppid loop, median of {sys.argv[3]} alternating rounds (each the median of 5 timed batches)\n")
print("| Configuration | ns per call | vs. no filter | vs. plain filter |")
print("|---|---:|---:|---:|")
for label, text in [("none", "no filter"), ("plain", "plain allow-list filter"), ("supervised", "supervised filter")]:
    print(f"| {text}, getppid allowed | {median[label]:.1f} | {median[label] / median['none']:.3f} | {median[label] / median['plain']:.3f} |")
for label, text in [("plain-denied", "plain filter, getppid denied (the kernel returns the errno)"),
                    ("supervised-denied", "supervised filter, getppid denied (the supervisor responds)")]:
    print(f"| {text} | {median[label]:.1f} | {median[label] / median['none']:.1f} | {median[label] / median['plain-denied']:.1f} |")
startup = {r["command"]: r for r in json.load(open(sys.argv[2]))["results"]}
plain, supervised = startup["plain"]["median"] * 1000, startup["supervised"]["median"] * 1000
print(f"\nStart-up of `palisade-wrap -- /usr/bin/true` (hyperfine, 200 runs, median): plain {plain:.2f} ms, "
      f"supervised {supervised:.2f} ms ({supervised / plain:.2f}x)")
PY
