#!/usr/bin/env bash
# Builds the browser module: framecast-web for wasm32, then wasm-bindgen
# --target web into www/pkg/, and vendors the site's muxer into www/vendor/
# (both gitignored). Idempotent; cargo skips what is
# up to date. Needs scripts/setup.sh (wasm32 target, wasm-bindgen-cli).
#
#   FRAMECAST_WEB_PROFILE   cargo profile (default `web`: optimised, no LTO,
#                           see Cargo.toml; `release` for a smaller, slower build)
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${FRAMECAST_WEB_PROFILE:-web}"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out=www/pkg

# The CLI must match the wasm-bindgen crate exactly, or the generated glue
# and the wasm disagree at load time.
locked=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$locked" ]; then
  echo "build-web: wasm-bindgen CLI is '${have:-missing}', Cargo.lock has $locked; run scripts/setup.sh" >&2
  exit 1
fi

start=$(date +%s)
cargo build -p framecast-web --target wasm32-unknown-unknown --profile "$profile"
built=$(date +%s)

dir="$profile"
[ "$profile" = dev ] && dir=debug
wasm="$target_dir/wasm32-unknown-unknown/$dir/framecast_web.wasm"
# Regenerate into a fresh folder so no file of an older build lingers.
rm -rf "$out.tmp"
wasm-bindgen --target web --out-dir "$out.tmp" "$wasm"
rm -rf "$out"
mv "$out.tmp" "$out"
done_at=$(date +%s)

# The site's muxer, from www/node_modules (scripts/setup.sh installs it).
bundle=www/node_modules/mediabunny/dist/bundles/mediabunny.min.mjs
if [ ! -f "$bundle" ]; then
  echo "build-web: $bundle is missing; run scripts/setup.sh" >&2
  exit 1
fi
mkdir -p www/vendor
cp "$bundle" www/vendor/mediabunny.min.mjs

size=$(stat -c %s "$out/framecast_web_bg.wasm")
echo "build-web: $out/framecast_web_bg.wasm $((size / 1024)) KiB (profile $profile;" \
  "cargo $((built - start)) s, wasm-bindgen $((done_at - built)) s)"
