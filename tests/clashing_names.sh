#!/bin/sh
# clashing_names.sh — print every model name whose generated files could clash with what they are
# compiled or imported with, one "NAME WHY" per line, derived from the sources and the compiler
# (tests/test_hostile.c checks that rnnc check refuses each one, or that it builds).
#
# usage: tests/clashing_names.sh RNNC SOURCE_DIR WORK_DIR
#
# - headers: `rnnc build` compiles with -I DIR, so DIR/<name>.h shadows every header reached by
#   #include <name.h>: what the generated code includes on every x86 backend and --isa multi,
#   directly or through nnrt.h and the system headers (the compiler's own dependency list, each
#   file taken relative to the search directory it was found in), and every #include <...> the
#   templates, the backends (neon too) and nnrt.h write;
# - macros: a macro NAME_SUFFIX of those headers where the generated code defines name_SUFFIX (as
#   atomic_init and atomic_load of <stdatomic.h> against <name>_init, <name>_load);
# - Python: the modules templates/model.py imports (DIR/<name>.py would shadow them).
set -eu
rnnc=$1 src=$2 work=$3
cc=${CC:-cc}
mkdir -p "$work"
probe=zzprobe
printf 'return model { name = "%s", input = 3, seq_len = 4, batch = 2, recurrent = { lstm(8), gru(4) }, head = { dense(2) } }\n' \
    "$probe" > "$work/probe.lua"
search=$(echo | $cc -E -Wp,-v - 2>&1 | sed -n '/search starts here/,/End of search/p' | grep '^ ' | sed 's/^ *//')
for isa in scalar sse4 avx2 avx512 multi; do
    dir="$work/$isa"
    "$rnnc" generate "$work/probe.lua" --isa "$isa" -o "$dir" >/dev/null
    flags=$(grep 'Compile:' "$dir/$probe.h" | grep -o -- ' -m[a-z0-9.=-]*' | tr '\n' ' ' || true)
    for file in "$dir/$probe.c" "$dir/${probe}_main.c"; do
        # shellcheck disable=SC2086
        $cc -std=c11 $flags -I"$dir" -I"$src/runtime" -M "$file"
        # shellcheck disable=SC2086
        $cc -std=c11 $flags -I"$dir" -I"$src/runtime" -E -dM "$file" | awk '{ sub(/\(.*/, "", $2); print "macro", $2 }'
    done
    grep -o "${probe}_[A-Za-z0-9_]*" "$dir/$probe.h" "$dir/$probe.c" | sed "s/.*${probe}_/suffix /"
done > "$work/raw"
# Headers from the dependency lists, relative to their search directory.
tr ' \\' '\n\n' < "$work/raw" | grep '\.h$' | sort -u | while read -r path; do
    for d in $search; do
        case $path in "$d"/*) rel=${path#"$d"/}; case $rel in */*) ;; *) echo "${rel%.h} header" ;; esac ;; esac
    done
done
# Every #include <...> the sources write (the neon backend's too).
cat "$src"/templates/* "$src"/generator/*.lua "$src"/generator/backend/*.lua "$src/runtime/nnrt.h" |
    grep -o '#include <[a-z][a-z0-9_]*\.h>' | sed 's/#include <\(.*\)\.h>/\1 header/'
# Macros that read as <name>_<suffix> of the generated code.
awk '$1 == "suffix" { suffix[$2] = 1 }
     $1 == "macro" { macro[$2] = 1 }
     END {
         for (m in macro)
             for (i = 2; i < length(m); i++)
                 if (substr(m, i, 1) == "_" && (substr(m, i + 1) in suffix)) {
                     p = substr(m, 1, i - 1)
                     if (p ~ /^[a-z][a-z0-9_]*$/) print p, "macro:" m
                 }
     }' "$work/raw"
# Python modules model.py imports.
grep -E '^(import|from) [a-z_]+' "$src/templates/model.py" | awk '{ print $2, "python" }'
