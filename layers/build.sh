#!/bin/sh
# Builds the Palisade Lambda layer zip: extensions/palisade-extension, palisade-wrap and
# palisade/policy.yaml, as static binaries that run on Amazon Linux 2 and 2023. The extension is
# a static-pie glibc executable. palisade-wrap is a static musl executable when the
# <arch>-unknown-linux-musl Rust target and musl-gcc are installed, because glibc's start-up code
# runs dozens of CPUID instructions and each one exits to Lambda's hypervisor. Otherwise it is a
# static-pie glibc executable too, and the script prints why.
#
# Usage: layers/build.sh [OUTPUT_DIR]   (default: layers/dist)
# Writes OUTPUT_DIR/palisade-layer-x86_64.zip, and palisade-layer-arm64.zip when the
# aarch64-unknown-linux-gnu target and a cross linker are installed.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
output=${1:-"$repo/layers/dist"}
target_dir=${CARGO_TARGET_DIR:-"$repo/target"}
mkdir -p "$output"
output=$(cd "$output" && pwd)

# Writes a zip of directory $1 to $2, keeping the executable bits.
make_zip() {
    rm -f "$2"
    if command -v zip >/dev/null 2>&1; then
        (cd "$1" && zip -q -r -X "$2" .)
    elif command -v python3 >/dev/null 2>&1; then
        python3 - "$1" "$2" <<'PYTHON'
import os, sys, zipfile
root, archive = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as output:
    for directory, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(directory, name)
            info = zipfile.ZipInfo.from_file(path, os.path.relpath(path, root))
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as data:
                output.writestr(info, data.read())
PYTHON
    else
        echo "layers/build.sh: neither zip nor python3 is installed; install one (apt-get install zip)" >&2
        exit 1
    fi
}

# Prints the musl target to build palisade-wrap for, for Rust target $1 and layer architecture
# $2, or nothing (and why, on stderr) when the launcher must be a glibc build.
musl_target_for() {
    musl_target="${1%%-*}-unknown-linux-musl"
    if [ "${1%%-*}" != "$(uname -m)" ]; then
        echo "palisade-wrap for $2 is a glibc build: Debian's musl-gcc builds only for $(uname -m)" >&2
    elif ! rustup target list --installed 2>/dev/null | grep -qx "$musl_target"; then
        echo "palisade-wrap for $2 is a glibc build: the $musl_target Rust target is not installed (rustup target add $musl_target)" >&2
    elif ! command -v musl-gcc >/dev/null 2>&1; then
        echo "palisade-wrap for $2 is a glibc build: musl-gcc is missing (apt-get install musl-tools)" >&2
    else
        echo "$musl_target"
    fi
}

# Builds the layer for Rust target $1 and writes palisade-layer-$2.zip.
build_layer() {
    rust_target=$1
    layer_arch=$2
    musl_target=$(musl_target_for "$rust_target" "$layer_arch")
    wrap_target=${musl_target:-$rust_target}
    glibc_packages="-p palisade-extension"
    [ -n "$musl_target" ] || glibc_packages="$glibc_packages -p palisade-wrap"

    # An explicit --target keeps +crt-static off build scripts and proc macros, which must stay
    # dynamic; the binaries become static-pie glibc executables with no runtime dependency.
    # Size over speed: the zipped layer counts against Lambda's 250 MB unzipped limit and adds to
    # cold-start download time; fat LTO and one codegen unit remove most duplicated code.
    # shellcheck disable=SC2086 # $glibc_packages is a list of arguments.
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked \
        --config 'profile.release.opt-level="s"' --config 'profile.release.lto="fat"' \
        --config 'profile.release.codegen-units=1' \
        --manifest-path "$repo/Cargo.toml" --target "$rust_target" $glibc_packages
    if [ -n "$musl_target" ]; then
        env "CC_$(echo "$musl_target" | tr - _)=musl-gcc" cargo build --quiet --release --locked \
            --config 'profile.release.opt-level="s"' --config 'profile.release.lto="fat"' \
            --config 'profile.release.codegen-units=1' \
            --manifest-path "$repo/Cargo.toml" --target "$musl_target" -p palisade-wrap
    fi

    staging=$(mktemp -d)
    trap 'rm -rf "$staging"' EXIT
    mkdir -p "$staging/extensions" "$staging/palisade"
    install -m 0755 "$target_dir/$rust_target/release/palisade-extension" "$staging/extensions/palisade-extension"
    install -m 0755 "$target_dir/$wrap_target/release/palisade-wrap" "$staging/palisade-wrap"
    install -m 0644 "$repo/layers/policy.yaml" "$staging/palisade/policy.yaml"
    make_zip "$staging" "$output/palisade-layer-$layer_arch.zip"
    rm -rf "$staging"
    trap - EXIT
    echo "built $output/palisade-layer-$layer_arch.zip ($(wc -c <"$output/palisade-layer-$layer_arch.zip") bytes)"
}

build_layer x86_64-unknown-linux-gnu x86_64

if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    echo "skipping arm64: the aarch64-unknown-linux-gnu Rust target is not installed (rustup target add aarch64-unknown-linux-gnu)" >&2
elif ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
    echo "skipping arm64: no aarch64-linux-gnu-gcc linker (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)" >&2
else
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc build_layer aarch64-unknown-linux-gnu arm64
fi
