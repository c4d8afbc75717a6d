#!/usr/bin/env bash
# Builds tests/c/kernel_check.c with the runtime sources for this machine's
# architecture (as runtime/build_ffi.py selects them) under AddressSanitizer and
# UBSan, and runs it. Extra arguments are passed on (variant names).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CC:-gcc}

# kernel files of other architectures, by file-name prefix
case $(uname -m) in
    x86_64 | amd64 | i686 | i386) skip=(kern_arm_) ;;
    aarch64 | arm64) skip=(kern_x86_) ;;
    *) skip=(kern_x86_ kern_arm_) ;;
esac

srcs=()
for f in "$root"/runtime/src/*.c; do
    name=$(basename "$f") keep=1
    for prefix in "${skip[@]}"; do
        [[ $name == "$prefix"* ]] && keep=0
    done
    ((keep)) && srcs+=("$f")
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== building with $cc (ASan + UBSan)"
"$cc" -std=c11 -Wall -Wextra -O1 -g -fno-omit-frame-pointer -pthread \
    -fsanitize=address,undefined -fno-sanitize-recover=all -I "$root/runtime/src" \
    "${srcs[@]}" "$here/kernel_check.c" -o "$out/kernel_check" -lm

echo "== running"
"$out/kernel_check" "$@"
