#!/usr/bin/env bash
# Vendor MathJax 3 so the built book renders math offline.
#
# Installs mathjax@3 with npm into _build/.npm (never committed) and copies its
# es5/ bundle to _static_vendor/mathjax, which _config.yml serves through
# html_static_path and points mathjax_path at. Idempotent: does nothing when the
# bundle is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=_static_vendor/mathjax
if [ -f "$DEST/tex-chtml.js" ]; then
  echo "vendor_mathjax: $DEST already present"
  exit 0
fi
command -v npm >/dev/null || { echo "vendor_mathjax: npm not found (install Node.js)" >&2; exit 1; }

mkdir -p _build/.npm
npm install --no-save --no-audit --no-fund --silent --prefix _build/.npm mathjax@3
SRC=_build/.npm/node_modules/mathjax/es5
[ -f "$SRC/tex-chtml.js" ] || { echo "vendor_mathjax: $SRC/tex-chtml.js missing after npm install" >&2; exit 1; }

rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
cp -r "$SRC" "$DEST"
echo "vendor_mathjax: copied $(du -sh "$DEST" | cut -f1) to $DEST"
