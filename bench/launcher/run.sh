#!/usr/bin/env bash
# Start-up cost of palisade-wrap: `/bin/true` alone, under palisade-wrap (plain seccomp filter, and
# with the seccomp supervisor process), and under bwrap with
# comparable confinement (read-only system directories, new namespaces, no network, and the same
# seccomp filter, exported with `palisade policy compile`), measured side by side by hyperfine.
# palisade-wrap is measured in three builds: the default release build (dynamically linked
# against glibc), a static-pie glibc build, and the static musl build the README recommends for
# production. The musl build needs the <arch>-unknown-linux-musl Rust target and musl-gcc; the
# script installs both when it can.
#
# Usage: bench/launcher/run.sh [RUNS]   (default 500 runs per command)
# Writes bench/launcher/results.json and prints a Markdown table for docs/benchmarks.md.
set -euo pipefail

runs=${1:-500}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

for tool in hyperfine bwrap; do
    if ! command -v "$tool" >/dev/null; then
        echo "installing $tool" >&2
        apt-get install -y -qq "$([ "$tool" = bwrap ] && echo bubblewrap || echo hyperfine)" >/dev/null
    fi
done

cargo build --release --quiet -p palisade-wrap -p palisade-cli
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
wrap="$target_dir/release/palisade-wrap"
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet --locked --target "$host" -p palisade-wrap
static_wrap="$target_dir/$host/release/palisade-wrap"

musl="${host%%-*}-unknown-linux-musl"
rustup target list --installed | grep -qx "$musl" || rustup target add "$musl" >&2
command -v musl-gcc >/dev/null || apt-get install -y -qq musl-tools >/dev/null
env "CC_${musl//-/_}=musl-gcc" cargo build --release --quiet --locked --target "$musl" -p palisade-wrap
musl_wrap="$target_dir/$musl/release/palisade-wrap"
filter=$(mktemp)
trap 'rm -f "$filter"' EXIT
"$target_dir/release/palisade" policy compile "$here/policy.yaml" -o "$filter" >/dev/null

# The wrapper's event goes to stderr; hyperfine discards output, so its cost is included.
bwrap_command="bwrap --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin \
--unshare-all --die-with-parent --new-session --seccomp 9 /usr/bin/true 9<$filter"

hyperfine --warmup 50 --runs "$runs" --export-json "$here/results.json" \
    --command-name '/bin/true' '/bin/true' \
    --command-name 'palisade-wrap' "$wrap --policy $here/policy-plain.yaml -- /usr/bin/true" \
    --command-name 'palisade-wrap (supervised)' "$wrap --policy $here/policy.yaml -- /usr/bin/true" \
    --command-name 'palisade-wrap static' "$static_wrap --policy $here/policy-plain.yaml -- /usr/bin/true" \
    --command-name 'palisade-wrap static (supervised)' "$static_wrap --policy $here/policy.yaml -- /usr/bin/true" \
    --command-name 'palisade-wrap musl' "$musl_wrap --policy $here/policy-plain.yaml -- /usr/bin/true" \
    --command-name 'palisade-wrap musl (supervised)' "$musl_wrap --policy $here/policy.yaml -- /usr/bin/true" \
    --command-name 'bwrap' "$bwrap_command" >&2

python3 - "$here/results.json" "$runs" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
base = results["/bin/true"]["median"]
print(f"| command | median (ms) | added over /bin/true (ms) | ratio to /bin/true |")
print(f"|---|---|---|---|")
names = ["/bin/true", "palisade-wrap", "palisade-wrap (supervised)", "palisade-wrap static",
         "palisade-wrap static (supervised)", "palisade-wrap musl", "palisade-wrap musl (supervised)", "bwrap"]
for name in names:
    median = results[name]["median"]
    print(f"| {name} | {median * 1000:.3f} | {(median - base) * 1000:.3f} | {median / base:.2f} |")
bwrap = results["bwrap"]["median"] - base
print()
for name in names[1:-1]:
    added = results[name]["median"] - base
    print(f"{name}: adds {added * 1000:.3f} ms at the median; bwrap adds {bwrap * 1000:.3f} ms, "
          f"{bwrap / added:.2f}x as much; {sys.argv[2]} runs each")
PY
