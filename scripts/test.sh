#!/usr/bin/env bash
# The test command: sets up a fresh Debian machine (idempotent) and runs every
# test: shader validation, kernels on the machine's adapter (Mesa lavapipe
# where there is no GPU), the quantizer, the wasm build, and the kernels in
# headless Chromium over WebGPU.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Kernel tests must not silently skip on a machine that should have an adapter.
export FRAMECAST_REQUIRE_GPU=1
# Tests that need ffprobe/ffmpeg or Chromium fail rather than skip.
export FRAMECAST_REQUIRE_TOOLS=1

if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
else
  echo "test: rustfmt is not installed; skipping the format check"
fi

# The default members (shaders, runtime, web, quantize, tests): `--workspace`
# would also build the benchmark crate and burn, minutes for no test.
# --show-output prints what passing tests report: the parity tests' error
# figures (rel L2, PSNR) against the diffusers fixtures.
cargo test --no-fail-fast -- --show-output

# In the browser, the required kernel families must all be built and pass.
FRAMECAST_BROWSER_STRICT=1 bash scripts/test-browser.sh
