#!/bin/sh
# Builds the layer and measures it against the Lambda emulator: init overhead, per-invoke added
# latency (p50, p99), the extension's memory, and the zipped layer size.
#
# Usage: bench/lambda/run.sh [INVOKES]   (default 500)
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
invokes=${1:-500}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$repo/layers/build.sh" "$work/dist" >&2
zip="$work/dist/palisade-layer-x86_64.zip"
mkdir "$work/layer"
python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for info in archive.infolist():
        archive.extract(info, sys.argv[2])
        mode = info.external_attr >> 16
        if mode:
            import os; os.chmod(os.path.join(sys.argv[2], info.filename), mode & 0o7777)' "$zip" "$work/layer"

cargo build --quiet --release --manifest-path "$repo/Cargo.toml" -p palisade-extension --example lambda_bench
target_dir=${CARGO_TARGET_DIR:-"$repo/target"}
"$target_dir/release/examples/lambda_bench" "$work/layer" "$invokes" >"$work/result.json"

python3 - "$work/result.json" "$zip" <<'PYTHON'
import json, os, sys
result = json.load(open(sys.argv[1]))
result["layer_zip_bytes"] = os.path.getsize(sys.argv[2])
print(json.dumps(result, indent=2))
PYTHON
