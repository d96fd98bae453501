#!/usr/bin/env bash
# Wall time of espsecure (esptool 5) vs `ironroot firmware esp` signing and verifying the same
# 1 MiB image, process start-up included (what a build step waits for). Both tools run in the
# same loop, alternating, so machine load hits both alike. Median and p10-p90 of N runs.
#
#   cargo build -p ironroot            # or --release; IRONROOT_BIN picks the binary
#   IRONROOT_VENV=/path/to/venv bash crates/ironroot-esp/benches/cli_walltime.sh [N]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
n=${1:-11}
espsecure=${IRONROOT_VENV:-$root/.venv}/bin/espsecure
ironroot=${IRONROOT_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/ironroot}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ms() { # command... -> wall ms of one run
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}

stats() { # ms values on stdin -> "median [p10-p90]"
    sort -n | awk '{a[NR]=$1} END {
        m = a[int((NR+1)/2)]; lo = a[int(NR*0.1)+1]; hi = a[int(NR*0.9+0.5)];
        printf "%d ms [%d-%d]", m, lo, hi }'
}

head -c 1048576 /dev/urandom > "$work/app.bin"
echo "| scheme | step | espsecure 5.6 | ironroot firmware esp |"
echo "|---|---|---|---|"
for scheme in rsa3072 ecdsa256 ecdsa384; do
    key=$work/$scheme.pem
    "$espsecure" generate-signing-key --version 2 --scheme "$scheme" "$key" >/dev/null
    : > "$work/es"; : > "$work/is"; : > "$work/ev"; : > "$work/iv"
    for _ in $(seq "$n"); do
        ms "$espsecure" sign-data --version 2 --keyfile "$key" --output "$work/e.bin" "$work/app.bin" >> "$work/es"
        ms "$ironroot" firmware esp sign-data --version 2 --keyfile "$key" --output "$work/i.bin" "$work/app.bin" >> "$work/is"
        ms "$espsecure" verify-signature --version 2 --keyfile "$key" "$work/i.bin" >> "$work/ev"
        ms "$ironroot" firmware esp verify-signature --version 2 --keyfile "$key" "$work/e.bin" >> "$work/iv"
    done
    echo "| $scheme | sign-data 1 MiB | $(stats < "$work/es") | $(stats < "$work/is") |"
    echo "| $scheme | verify-signature 1 MiB | $(stats < "$work/ev") | $(stats < "$work/iv") |"
done
