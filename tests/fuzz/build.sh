#!/usr/bin/env bash
# Build every tests/fuzz/fuzz_*.c as a libFuzzer binary in build-fuzz/,
# seed its corpus, and replay the corpus once as a smoke test.
# Called by `make fuzz`.
#
# Each target links src/lib/*.c and src/sif/*.c, compiled directly with
# ASan+UBSan (never libcapsa.a, which is built without instrumentation).
# A target declares anything else in its header comment, one key per line:
#   fuzz-sources: src/runtime/conf.c ...   extra sources to link
#   fuzz-libs: -ljson-c ...                extra libraries
#   fuzz-seeds: sif/sylabs/*.sif ...       seed inputs, globs under $FIXTURES
#                                          (or absolute: files of installed packages)
# Seeds and any regression inputs kept in tests/fuzz/regress-NAME/ are
# copied into tests/fuzz/corpus-NAME/ (git-ignored), the working corpus.
#
# Run one for longer with, e.g.:
#   build-fuzz/fuzz_sif tests/fuzz/corpus-sif -max_total_time=120
# Environment: CC (default clang), FIXTURES (default ../shared/fixtures),
# FUZZ_NO_REPLAY=1 to skip the replay.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$top/build-fuzz
fixtures=${FIXTURES:-$top/../shared/fixtures}
cc=${CC:-clang}
case $cc in cc|gcc|*/gcc) cc=clang ;; esac # libFuzzer needs clang

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-std=c17 -g -O1 -fno-omit-frame-pointer $san -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wvla
        -Wno-unused-parameter -Wno-format-nonliteral -D_GNU_SOURCE -I$out -I$top/src"

mkdir -p "$out/obj"
# The same generated header the Makefile writes, for sources that include it.
printf '#define CAPSA_VERSION "fuzz"\n#define CAPSA_SYSCONFDIR "/etc/capsa"\n#define CAPSA_LIBEXECDIR "/usr/libexec/capsa"\n#define CAPSA_BINDIR "/usr/bin"\n' \
    > "$out/config.h"

# meta FILE KEY: the value of "KEY: ..." in FILE's comments
meta () {
    sed -n -E "s@^[[:space:]/*]*$2:[[:space:]]*(.*[^[:space:]*/])[[:space:]]*(\*/)?[[:space:]]*\$@\1@p" "$1" | tr '\n' ' '
}

# compile SRC -> object path (rebuilt when the source or a header is newer)
compile () {
    local src=$1 obj
    obj=$out/obj/$(printf '%s' "${src#"$top"/}" | tr '/' '_').o
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$top/src" -name '*.h' -newer "$obj" -print -quit)" ]; then
        echo "  CC    ${src#"$top"/}" >&2
        # shellcheck disable=SC2086
        "$cc" $cflags -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
    printf '%s\n' "$obj"
}

common=()
for src in "$top"/src/lib/*.c "$top"/src/sif/*.c; do
    # sanitizer.c turns leak detection off for the installed programs only.
    [ "${src##*/}" = sanitizer.c ] && continue
    obj=$(compile "$src") || exit 1
    common+=("$obj")
done

shopt -s nullglob
built=0
for target in "$here"/fuzz_*.c; do
    name=$(basename "$target" .c)        # fuzz_sif
    short=${name#fuzz_}                  # sif
    objs=("${common[@]}")
    read -r -a extras <<< "$(meta "$target" fuzz-sources)"
    for extra in "${extras[@]}"; do
        obj=$(compile "$top/$extra") || exit 1
        objs+=("$obj")
    done
    echo "  LD    build-fuzz/$name" >&2
    # shellcheck disable=SC2086
    "$cc" $cflags -fsanitize=fuzzer "$target" "${objs[@]}" $(meta "$target" fuzz-libs) -o "$out/$name"

    corpus=$here/corpus-$short
    mkdir -p "$corpus"
    read -r -a patterns <<< "$(meta "$target" fuzz-seeds)"
    for pattern in "${patterns[@]}"; do
        case $pattern in /*) glob=$pattern ;; *) glob=$fixtures/$pattern ;; esac
        # shellcheck disable=SC2086 # the pattern is a glob
        for seed in $glob; do
            cp -f "$seed" "$corpus/seed-$(basename "$seed")"
        done
    done
    if [ -d "$here/regress-$short" ]; then
        cp -f "$here/regress-$short"/* "$corpus"/ 2>/dev/null || true
    fi
    if [ "${FUZZ_NO_REPLAY:-}" != 1 ]; then
        "$out/$name" -runs=0 "$corpus" > "$out/$name.replay.log" 2>&1 \
            || { echo "FAIL: $name crashes on its corpus (see $out/$name.replay.log)" >&2; exit 1; }
    fi
    echo "  OK    build-fuzz/$name (corpus: ${corpus#"$top"/}, $(find "$corpus" -type f | wc -l) inputs)" >&2
    built=$((built + 1))
done
echo "$built fuzz target(s) built in build-fuzz/" >&2
