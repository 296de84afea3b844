#!/bin/sh
# test_neon.sh — the ISA suite (tests/test_isa.c) and the threads suite (tests/test_threads.c) for the NEON backend: every spec under
# tests/specs/isa generated for scalar and for neon (--name <name>_neon), cross-compiled for
# AArch64 with the runtime and a runner of those two suites (tests/isa/run_isa_tests.c), and
# run under qemu-aarch64: NEON against scalar, both running on (emulated) aarch64. `make test-neon`
# calls it after building the native rnnc, which generates the sources.
#
# Needs (Debian; installed with apt-get when root, else the exact commands are printed):
#   gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (the cross compiler and the libc it links
#   against), qemu-user-static (or qemu-user), and from the arm64 architecture (dpkg
#   --add-architecture arm64) libc6:arm64 (the loader qemu runs), libsleef-dev:arm64,
#   libjansson-dev:arm64 and check:arm64.
#
# Environment: BUILD (default build): objects and the runner go to $BUILD/neon; sources are
# generated into out/tests/neon. V=1 prints full commands. JOBS: parallel compiles (default: the
# number of CPUs). Exits with the runner's status; prints the time each phase took.
# shellcheck disable=SC2086,SC2116 # $names, $missing, $headers, $objects are split on purpose
set -eu
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
V=${V:-0}
TRIPLET=aarch64-linux-gnu
CROSS_CC=${CROSS_CC:-$TRIPLET-gcc}
GEN=out/tests/neon
OBJ=$BUILD/neon
JOBS=${JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
WARN="-std=c11 -Wall -Wextra -Werror"
OPT="-O2 -g"

say() { printf '  %-5s %s\n' "$1" "$2"; }
die() { echo "test_neon.sh: $*" >&2; exit 1; }
now() { date +%s; }
start=$(now)

# ---- Packages --------------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
candidate() { LC_ALL=C apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p'; }

qemu=""
for q in qemu-aarch64-static qemu-aarch64; do
    if command -v "$q" >/dev/null 2>&1; then qemu=$q; break; fi
done
missing=""
for p in gcc-$TRIPLET libc6-dev-arm64-cross libc6:arm64 libsleef-dev:arm64 libjansson-dev:arm64 check:arm64; do
    installed "$p" || missing="$missing $p"
done
arm64_known=0
dpkg --print-foreign-architectures 2>/dev/null | grep -qx arm64 && arm64_known=1
if [ -n "$missing" ] || [ -z "$qemu" ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        need=$missing
        [ -n "$qemu" ] || need="$need qemu-user-static"
        echo "test_neon.sh: missing Debian packages:$need" >&2
        echo "install them with:" >&2
        [ "$arm64_known" = 1 ] || echo "  sudo dpkg --add-architecture arm64" >&2
        echo "  sudo apt-get update" >&2
        echo "  sudo apt-get install$need" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    [ "$arm64_known" = 1 ] || dpkg --add-architecture arm64
    echo "test_neon.sh: apt-get update (arm64 added)"
    apt-get update -q >/dev/null
    if [ -z "$qemu" ]; then
        # Either provides qemu-aarch64; the static one pulls in nothing else.
        for q in qemu-user-static qemu-user; do
            c=$(candidate "$q")
            if [ -n "$c" ] && [ "$c" != "(none)" ]; then missing="$missing $q"; break; fi
        done
    fi
    for p in $missing; do
        c=$(candidate "$p")
        if [ -z "$c" ] || [ "$c" = "(none)" ]; then die "no installation candidate for $p (apt-cache policy $p)"; fi
    done
    echo "test_neon.sh: installing:$missing"
    apt-get install -y -q --no-install-recommends $missing >/dev/null
    for q in qemu-aarch64-static qemu-aarch64; do
        if command -v "$q" >/dev/null 2>&1; then qemu=$q; break; fi
    done
    [ -n "$qemu" ] || die "qemu-aarch64 is still missing after the installation"
fi
command -v "$CROSS_CC" >/dev/null 2>&1 || die "$CROSS_CC not found"
[ -x "$BUILD/rnnc" ] || die "$BUILD/rnnc is missing: run make first"
deps_done=$(now)

# ---- Generate --------------------------------------------------------------------------------
# In place (the headers name the directory in their compile commands); a file whose text did not
# change gets its previous modification time back, so that unchanged models are not compiled again.
names=""
for spec in tests/specs/isa/*.lua; do
    [ -e "$spec" ] || die "no specs in tests/specs/isa"
    base=${spec##*/}
    names="$names ${base%.lua}"
done
old="$GEN.old"
rm -rf "$old"
[ -d "$GEN" ] && mv "$GEN" "$old"
mkdir -p "$GEN" "$OBJ/runtime" "$OBJ/tests"
for name in $names; do
    "$BUILD/rnnc" generate "tests/specs/isa/$name.lua" -o "$GEN" --isa scalar >/dev/null
    "$BUILD/rnnc" generate "tests/specs/isa/$name.lua" -o "$GEN" --isa neon --name "${name}_neon" >/dev/null
done
sh tests/gen_isa_registry.sh neon $names > "$GEN/registry.c"
rm -f "$GEN"/*_main.c "$GEN"/*.py # the drivers and PyTorch modules are not needed here
for f in "$GEN"/*.c "$GEN"/*.h; do
    previous="$old/${f##*/}"
    if [ -e "$previous" ] && cmp -s "$f" "$previous"; then
        touch -r "$previous" "$f"
    elif [ "$V" != 1 ]; then
        say GEN "$f"
    fi
done
rm -rf "$old"
gen_done=$(now)

# ---- Cross-compile ---------------------------------------------------------------------------
# One line per object: "OBJECT SOURCE FLAGS...", compiled JOBS at a time when older than its source
# or the headers it depends on.
pc() { PKG_CONFIG_LIBDIR=/usr/lib/$TRIPLET/pkgconfig:/usr/share/pkgconfig pkg-config "$@" 2>/dev/null; }
jobs_file="$OBJ/jobs"
: > "$jobs_file"
newer() { # newer TARGET FILE...: some FILE is newer than TARGET (or TARGET is missing)
    t=$1
    shift
    [ -e "$t" ] || return 0
    for f in "$@"; do [ -n "$(find "$f" -newer "$t")" ] && return 0; done
    return 1
}
add_job() { # add_job OBJECT SOURCE "FLAGS" DEPENDENCY...
    o=$1 s=$2
    flags=$(echo $3) # one line each, no trailing blank: xargs -L would join the next line
    shift 3
    if newer "$o" "$s" "$@"; then printf '%s %s %s\n' "$o" "$s" "$flags" >> "$jobs_file"; fi
}
headers=$(echo runtime/*.h)
for src in runtime/*.c; do
    base=${src##*/}
    add_job "$OBJ/runtime/${base%.c}.o" "$src" "-Iruntime $(pc --cflags jansson)" $headers
done
for name in $names; do
    for model in "$name" "${name}_neon"; do
        add_job "$OBJ/tests/$model.o" "$GEN/$model.c" "-Iruntime -I$GEN" "$GEN/$model.h" $headers
    done
done
add_job "$OBJ/tests/registry.o" "$GEN/registry.c" "-Iruntime -Itests" tests/isa_models.h $headers
for src in tests/test_isa.c tests/test_threads.c tests/reference.c tests/isa/run_isa_tests.c; do
    base=${src##*/}
    add_job "$OBJ/tests/${base%.c}.o" "$src" "-pthread -Iruntime -Itests $(pc --cflags check)" \
        tests/isa_models.h tests/reference.h $headers
done
export CROSS_CC WARN OPT V
if [ -s "$jobs_file" ]; then
    # Each line: compile $2 into $1 with the flags that follow.
    # shellcheck disable=SC2016 # expanded by the inner sh
    xargs -P "$JOBS" -L 1 sh -c '
        o=$1 s=$2
        shift 2
        [ "$V" = 1 ] && echo "$CROSS_CC $WARN $OPT $* -c $s -o $o" || printf "  %-5s %s\n" CC "$o"
        $CROSS_CC $WARN $OPT "$@" -c "$s" -o "$o.tmp" && mv "$o.tmp" "$o"
    ' sh < "$jobs_file" || die "cross-compilation failed"
fi
rm -f "$jobs_file"

runner="$OBJ/run_isa_tests"
objects="$OBJ/runtime/*.o $OBJ/tests/*.o"
if newer "$runner" $objects; then
    [ "$V" = 1 ] || say LD "$runner"
    libs="$(pc --libs check || echo -lcheck) $(pc --libs sleef || echo -lsleef) $(pc --libs jansson || echo -ljansson)"
    $CROSS_CC -pthread $objects $libs -lm -o "$runner.tmp"
    mv "$runner.tmp" "$runner"
fi
build_done=$(now)

# ---- Run -------------------------------------------------------------------------------------
# The loader and libraries are the arm64 architecture's own (libc6:arm64 and the -dev packages'
# libraries in /usr/lib/aarch64-linux-gnu), found by the emulated ld.so at their usual paths. Not
# `-L /usr/aarch64-linux-gnu`: with that prefix qemu 7.2 (bookworm) deadlocks in fork(), and Check
# forks once per test.
say TEST "$qemu $runner"
status=0
"$qemu" "$runner" || status=$?
end=$(now)
echo "test_neon.sh: packages $((deps_done - start)) s, generate $((gen_done - deps_done)) s," \
    "cross-compile $((build_done - gen_done)) s, run under $qemu $((end - build_done)) s," \
    "total $((end - start)) s"
exit $status
