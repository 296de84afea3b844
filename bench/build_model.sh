#!/bin/sh
# build_model.sh RNNC SPEC ISA DIR — the benchmark binary of one configuration and ISA:
# `rnnc generate SPEC --isa ISA -o DIR`, then the compile command rnnc itself runs for `rnnc build`
# (the "Compile:" line of the generated header: same compiler, flags, runtime and libraries) with
# the generated driver main replaced by bench/rnnc_main.c, which adds `describe` and `check` and
# hands every other command (bench, forward, init, ...) to the same driver. Writes DIR/NAME.
set -eu
rnnc=$1 spec=$2 isa=$3 dir=$4
here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$spec" .lua)
"$rnnc" generate "$spec" --isa "$isa" -o "$dir" >/dev/null
compile=$(sed -n 's/^ \* Compile: //p' "$dir/$name.h" | head -n 1)
case "$compile" in
    *"$dir/${name}_main.c"*) ;;
    *) echo "build_model.sh: $dir/$name.h: no compile command naming $dir/${name}_main.c" >&2; exit 1 ;;
esac
# Replace the one token (paths under out/bench need no shell quoting).
before=${compile%%"$dir/${name}_main.c"*}
after=${compile#*"$dir/${name}_main.c"}
cmd="$before$here/rnnc_main.c -DBENCH_MODEL=${name}_model$after"
[ "${V:-0}" = 1 ] && echo "$cmd"
eval "$cmd"
