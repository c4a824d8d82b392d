// Headless Debian Chromium with WebGPU on SwiftShader (see ENVIRONMENT.md),
// shared by the browser tests.
import { execFileSync } from "node:child_process";

import { chromium } from "playwright-core";

// WebGPU on the CPU (SwiftShader) in headless Chromium; the rest keeps
// Chromium from reaching for the network on a sealed machine.
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--enable-unsafe-webgpu",
  "--use-webgpu-adapter=swiftshader",
  "--enable-features=Vulkan",
  // A fake camera (a moving test pattern), allowed without a prompt.
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
];

export function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("no chromium on PATH: run scripts/setup.sh (Debian's chromium package)");
  }
}

export const launch = () => chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
