#!/usr/bin/env bash
# The browser tests in one command: build the wasm module into www/pkg, then
# run tests/browser/ (node:test; headless Debian Chromium, WebGPU on
# SwiftShader). Needs scripts/setup.sh. Exits non-zero on any failure.
# Environment knobs for the tests are listed in tests/browser/selfcheck.test.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "test-browser: tests/browser/node_modules is missing; run scripts/setup.sh" >&2
  exit 1
fi
scripts/build-web.sh
start=$(date +%s)
node --test --test-reporter=spec tests/browser/
echo "test-browser: tests took $(($(date +%s) - start)) s"
