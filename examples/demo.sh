#!/usr/bin/env bash
# Builds Palisade and the example order service (statically linked), then runs the service
# confined by examples/static-binary/policy.yaml. Events go to stderr as JSON lines unless
# OTEL_EXPORTER_OTLP_ENDPOINT is set.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
install_dir=/var/tmp/palisade-demo
data_dir=/tmp/palisade-demo

echo "== building palisade-wrap, palisade and the example service" >&2
cargo build --release --quiet -p palisade-wrap -p palisade-cli
cargo rustc --release --quiet -p palisade-demo -- -C target-feature=+crt-static

# The policy names the service by absolute path, as a Lambda policy names /var/task/bootstrap.
mkdir -p "$install_dir" "$data_dir"
install -m 0755 "$CARGO_TARGET_DIR/release/palisade-demo" "$install_dir/orders-service"

echo "== palisade policy explain examples/static-binary/policy.yaml" >&2
"$CARGO_TARGET_DIR/release/palisade" policy explain examples/static-binary/policy.yaml

echo "== palisade-wrap --policy examples/static-binary/policy.yaml -- $install_dir/orders-service" >&2
exec "$CARGO_TARGET_DIR/release/palisade-wrap" --policy examples/static-binary/policy.yaml -- \
    "$install_dir/orders-service" "$data_dir"
