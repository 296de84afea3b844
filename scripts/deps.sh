#!/bin/sh
# deps.sh GROUP... — makes sure the Debian packages a make target needs are installed.
# As root it installs what is missing with apt-get; otherwise it prints the exact command and
# fails. Groups: build (compile rnnc, the runtime and generated code, SLEEF for vector math),
# test (build + Check + PyTorch and numpy for the conformance tests), plot (gnuplot, for charts),
# bench (build + oneDNN, PyTorch and numpy for the comparisons; g++ for the oneDNN program),
# bench-optional (gnuplot: installed when root; otherwise only a note, when no other group is named).
set -eu
packages=""
optional=1 # every group named is optional: missing packages are a note, not a failure
for group in "$@"; do
    [ "$group" = bench-optional ] || optional=0
    case "$group" in
        build) packages="$packages gcc make pkg-config liblua5.4-dev libjansson-dev libsleef-dev" ;;
        test) packages="$packages gcc make pkg-config liblua5.4-dev libjansson-dev libsleef-dev check python3 python3-torch python3-numpy" ;;
        plot) packages="$packages gnuplot-nox" ;;
        bench) packages="$packages gcc g++ make pkg-config liblua5.4-dev libjansson-dev libsleef-dev libdnnl-dev python3 python3-torch python3-numpy" ;;
        bench-optional) packages="$packages gnuplot-nox" ;;
        *) echo "deps.sh: unknown group '$group'" >&2; exit 2 ;;
    esac
done
missing=""
for p in $packages; do
    case " $missing " in *" $p "*) continue ;; esac
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || true
    apt-get install -y -q --no-install-recommends $missing >/dev/null || [ "$optional" = 1 ]
elif [ "$optional" = 1 ]; then
    echo "deps.sh: optional packages not installed (not root):$missing" >&2
    exit 0
else
    echo "deps.sh: missing Debian packages:$missing" >&2
    echo "install them with:  sudo apt-get install$missing" >&2
    exit 1
fi
