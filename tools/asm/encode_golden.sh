#!/bin/sh
# Assembles every line of tools/asm/instructions.txt with GNU as and writes the golden fixture the emitter test
# compares against (X64EmitterTests): "hex bytes<TAB>instruction" per line. Needs binutils (as, objcopy, od);
# CI only reads the committed fixture.
#   tools/asm/encode_golden.sh > tests/fixtures/asm/x64-encodings.txt
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
grep -v '^#' "$(dirname "$0")/instructions.txt" | grep -v '^$' | while IFS= read -r line; do
    printf '.intel_syntax noprefix\n%s\n' "$line" > "$dir/i.s"
    as --64 "$dir/i.s" -o "$dir/i.o"
    objcopy -O binary -j .text "$dir/i.o" "$dir/i.bin"
    hex=$(od -An -tx1 -v "$dir/i.bin" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
    printf '%s\t%s\n' "$hex" "$line"
done
