#!/usr/bin/env bash
# Cross-compiles the runtime's AArch64 build with tests/c/kernel_check.c and runs
# it under qemu-user twice: on a CPU model with the dot-product extension (all
# variants run) and on one without it (the dotprod variant must be refused and
# skipped). Then, when the cross sanitizer runtimes are installed (they come
# with gcc-aarch64-linux-gnu), once more built with ASan + UBSan: qemu's
# emulated loads are checked too, so an out-of-bounds NEON load fails the run.
# ARM_SANITIZE=0 skips that third run. Extra arguments are passed to
# kernel_check (variant names).
#
# Needs: apt-get install -y gcc-aarch64-linux-gnu qemu-user libc6-dev-arm64-cross
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CROSS_CC:-aarch64-linux-gnu-gcc}
qemu=${QEMU_AARCH64:-qemu-aarch64}

missing=()
command -v "$cc" >/dev/null 2>&1 || missing+=("$cc")
command -v "$qemu" >/dev/null 2>&1 || missing+=("$qemu")
if ((${#missing[@]})); then
    echo "run_arm_emulated.sh: missing ${missing[*]}" >&2
    echo "install the cross tools with:" >&2
    echo "    apt-get update && apt-get install -y gcc-aarch64-linux-gnu qemu-user libc6-dev-arm64-cross" >&2
    exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

srcs=()
for f in "$root"/runtime/src/*.c; do
    case $(basename "$f") in kern_x86_*) ;; *) srcs+=("$f") ;; esac
done

# static, so that qemu needs no AArch64 sysroot to load it
echo "== building with $cc"
"$cc" -std=c11 -Wall -Wextra -Werror -O2 -pthread -static -I "$root/runtime/src" \
    "${srcs[@]}" "$here/kernel_check.c" -o "$out/kernel_check" -lm

status=0
# run CPU_MODEL EXPECTED_DOTPROD_STATE [ARGS]: runs the check and, when every
# variant is checked, verifies that dotprod was tested or skipped as that CPU
# model implies (a passing run that silently skipped it would prove nothing)
run() {
    local cpu=$1 expect=$2 log="$out/log-$1"
    shift 2
    echo "== qemu-aarch64 -cpu $cpu"
    if ! "$qemu" -cpu "$cpu" "$out/kernel_check" "$@" 2>&1 | tee "$log"; then
        echo "run_arm_emulated.sh: kernel_check failed on -cpu $cpu" >&2
        status=1
    fi
    if (($# == 0)) && ! grep -Eq "^variant dotprod +$expect" "$log"; then
        echo "run_arm_emulated.sh: on -cpu $cpu the dotprod variant should have been $expect" >&2
        status=1
    fi
}
run max tested "$@"
run cortex-a53 skipped "$@"

sysroot=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
if [[ ${ARM_SANITIZE:-1} != 0 ]]; then
    if compgen -G "$sysroot/lib/libasan.so*" >/dev/null; then
        # dynamic: the sanitizer runtimes do not link statically; qemu loads them from the sysroot
        echo "== building with $cc, ASan + UBSan"
        "$cc" -std=c11 -Wall -Wextra -Werror -O1 -g -fno-omit-frame-pointer -pthread \
            -fsanitize=address,undefined -fno-sanitize-recover=all -I "$root/runtime/src" \
            "${srcs[@]}" "$here/kernel_check.c" -o "$out/kernel_check_asan" -lm
        echo "== qemu-aarch64 -cpu max, ASan + UBSan"
        # LeakSanitizer cannot run under qemu-user (it relies on ptrace)
        if ! ASAN_OPTIONS=detect_leaks=0 "$qemu" -L "$sysroot" -cpu max "$out/kernel_check_asan" "$@"; then
            echo "run_arm_emulated.sh: kernel_check failed under ASan + UBSan" >&2
            status=1
        fi
    else
        echo "== no AArch64 libasan in $sysroot: skipping the sanitizer run"
    fi
fi

if ((status)); then
    echo "run_arm_emulated.sh: FAILED" >&2
else
    echo "run_arm_emulated.sh: all passed"
fi
exit $status
