#!/usr/bin/env bash
# Installs everything framecast's build and tests need on a fresh Debian machine
# that has only Rust, Node and Python. Idempotent: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130 # must equal the wasm-bindgen crate in Cargo.lock
APT_PACKAGES=(mesa-vulkan-drivers libvulkan1 chromium chromium-driver ffmpeg pkg-config libvpx-dev)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
  echo "setup: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes)"
  # --locked first (reproducible); its lockfile names a webpki-roots release that
  # crates.io no longer serves, so fall back to resolving compatible versions.
  cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked 2>/dev/null ||
    cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [ -f tests/browser/package.json ] && [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "setup: npm packages for the browser tests"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
fi
if [ ! -f www/node_modules/mediabunny/package.json ]; then
  echo "setup: npm packages for the site (mediabunny)"
  (cd www && npm ci --no-audit --no-fund --silent)
fi
echo "setup: ok"
