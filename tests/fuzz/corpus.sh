#!/bin/sh
# tests/fuzz/corpus.sh -- the seed corpus of the fuzz harnesses, from the
# golden cases.
#
#   sh tests/fuzz/corpus.sh [OUTDIR]        (default build-fuzz/seeds)
#
# Every %%program section of tests/golden/*.test becomes one file in OUTDIR,
# named FILE-CASE (the .test file without its suffix, the case name with
# anything but letters, digits, '-' and '_' made '_'), holding the program
# exactly as run.sh gives it to matdiff: the lines up to the next %% line,
# trailing blank lines dropped.  %%program-printf sections are expanded with
# printf, as run.sh does; %%program-gen sections (large generated inputs,
# beyond the harnesses' 4096-byte cap) are skipped.
#
# OUTDIR-mode gets the same programs behind one mode byte, for the harnesses
# that read their options from the first byte (fuzz_steps, fuzz_emit).
# Each program appears twice there: once with mode byte i mod 16 (i the
# program's number; no --size for fuzz_emit) and once with i mod 256, so
# that every option combination starts from real programs.
set -eu
out=${1:-build-fuzz/seeds}
here=$(dirname "$0")
golden="$here/../golden"
rm -rf "$out" "$out-mode"
mkdir -p "$out" "$out-mode"

awk -v out="$out" '
function flush(   f, n, i) {
    if (name == "" || nl == 0 && !printf_prog) { name = ""; nl = 0; return }
    f = out "/" name
    if (printf_prog) {
        # the format goes through the shell printf: write it to a side file
        printf "%s", fmt > (f ".printf")
        close(f ".printf")
    } else {
        n = nl
        while (n > 0 && lines[n] == "") n--
        printf "" > f
        for (i = 1; i <= n; i++) print lines[i] > f
        close(f)
    }
    name = ""; nl = 0; printf_prog = 0
}
function casename(s,   b) {
    b = FILENAME; sub(/.*\//, "", b); sub(/\.test$/, "", b)
    gsub(/[^A-Za-z0-9_-]/, "_", s)
    return b "-" s
}
FNR == 1 { flush(); sec = "" }
/^%%case[ \t]/ { flush(); c = $0; sub(/^%%case[ \t]+/, "", c); cname = casename(c); sec = ""; next }
/^%%program-printf[ \t]/ {
    flush(); fmt = $0; sub(/^%%program-printf[ \t]+/, "", fmt)
    name = cname; printf_prog = 1; sec = ""; next
}
/^%%program[ \t]*$/ { flush(); name = cname; nl = 0; sec = "program"; next }
/^%%/ { if (sec == "program") flush(); sec = ""; next }
sec == "program" { lines[++nl] = $0 }
END { flush() }
' "$golden"/*.test

for f in "$out"/*.printf; do
    [ -e "$f" ] || continue
    # shellcheck disable=SC2059
    printf "$(cat "$f")" > "${f%.printf}"
    rm -f "$f"
done

i=0
for f in "$out"/*; do
    b=$(basename "$f")
    m1=$((i % 16))
    m2=$((i % 256))
    { printf "\\$(printf %03o "$m1")"; cat "$f"; } > "$out-mode/$b-m$m1"
    if [ "$m2" != "$m1" ]; then
        { printf "\\$(printf %03o "$m2")"; cat "$f"; } > "$out-mode/$b-m$m2"
    fi
    i=$((i + 1))
done
echo "corpus.sh: $(ls "$out" | wc -l) programs in $out, $(ls "$out-mode" | wc -l) with a mode byte in $out-mode"
