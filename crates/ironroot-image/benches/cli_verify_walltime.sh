#!/usr/bin/env bash
# Wall time of `imgtool verify` vs `ironroot firmware verify` on the same images, process
# start-up included (what a CI step or a user waits for). Median of N runs per tool and size.
#
#   cargo build --release -p ironroot
#   IRONROOT_VENV=/path/to/venv bash crates/ironroot-image/benches/cli_verify_walltime.sh [N]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
n=${1:-15}
imgtool=${IRONROOT_VENV:-$root/.venv}/bin/imgtool
ironroot=${CARGO_TARGET_DIR:-$root/target}/release/ironroot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median_ms() { # command... -> median wall ms over $n runs
    local times=()
    for _ in $(seq "$n"); do
        local t0 t1
        t0=$(date +%s%N)
        "$@" >/dev/null
        t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

echo "| size | key | imgtool verify (ms) | ironroot firmware verify (ms) |"
echo "|---|---|---|---|"
for kind in ed25519 ecdsa-p256; do
    "$imgtool" keygen -t "$kind" -k "$work/$kind.pem"
    for size in 65536 1048576 16777216; do
        head -c "$size" /dev/urandom > "$work/app.bin"
        "$imgtool" sign -k "$work/$kind.pem" -v 1.0.0 -H 0x200 --pad-header -S 0 \
            "$work/app.bin" "$work/img.bin" >/dev/null
        a=$(median_ms "$imgtool" verify -k "$work/$kind.pem" "$work/img.bin")
        b=$(median_ms "$ironroot" firmware verify -k "$work/$kind.pem" "$work/img.bin")
        echo "| $size | $kind | $a | $b |"
    done
done
