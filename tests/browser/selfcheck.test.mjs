// The kernel self-checks in a real browser: headless Debian Chromium with
// WebGPU on SwiftShader, the wasm module from scripts/build-web.sh (www/pkg).
//
//   FRAMECAST_BROWSER_FAMILIES   comma list to require (default: the four below)
//   FRAMECAST_BROWSER_STRICT=1   fail when a required family is not in the build
//   FRAMECAST_BROWSER_TIMEOUT_S  how long the page may take (default 1200)
//   CHROMIUM                     the browser binary (default: `command -v chromium`)
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { launch } from "./chromium.mjs";
import { startServer } from "./server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const www = path.join(here, "..", "..", "www");
const REQUIRED = (process.env.FRAMECAST_BROWSER_FAMILIES ?? "elementwise,matmul,attention,conv3d")
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);
const STRICT = process.env.FRAMECAST_BROWSER_STRICT === "1";
const TIMEOUT_MS = Number(process.env.FRAMECAST_BROWSER_TIMEOUT_S ?? 1200) * 1000;

const fmt = (x) => (x === null ? "inf" : x.toExponential(2));

test("kernel self-checks pass in headless Chromium on WebGPU", { timeout: TIMEOUT_MS + 120_000 }, async (t) => {
  assert.ok(
    existsSync(path.join(www, "pkg", "framecast_web_bg.wasm")),
    "www/pkg is missing: run scripts/build-web.sh first (scripts/test-browser.sh does both)",
  );
  const server = await startServer({ root: www });
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await server.close();
  });

  const page = await browser.newPage();
  // The page's errors and warnings (and the runtime's panics and log
  // records, which web/src/console.rs sends to the console) go to our output.
  const problems = [];
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") {
      const line = `[browser ${msg.type()}] ${msg.text()}`;
      if (msg.type() === "error") problems.push(line);
      console.log(line);
    }
  });
  page.on("pageerror", (e) => {
    problems.push(`[page error] ${e.message}`);
    console.log(`[page error] ${e.stack ?? e.message}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) console.log(`[http ${r.status()}] ${r.url()}`);
  });
  page.on("requestfailed", (r) => console.log(`[request failed] ${r.url()} ${r.failure()?.errorText}`));

  const started = Date.now();
  await page.goto(`${server.url}selfcheck.html?families=${REQUIRED.join(",")}`);
  // Wait on the page's own verdict: GPU work has no fixed duration.
  await page.waitForFunction(() => document.body.dataset.status !== "running", null, {
    timeout: TIMEOUT_MS,
    polling: 250,
  });
  const seconds = (Date.now() - started) / 1000;
  const status = await page.evaluate(() => document.body.dataset.status);
  const result = JSON.parse(await page.evaluate(() => document.getElementById("result").textContent));

  console.log(result.adapter?.summary?.trimEnd() ?? "(no adapter description)");
  console.log(`webgpu adapter: ${JSON.stringify(result.webgpu)}`);
  assert.equal(status, "done", `the page failed: ${result.error}\n${problems.join("\n")}`);

  // The adapter must be the browser's WebGPU on SwiftShader, not some fallback.
  assert.equal(result.adapter.backend, "BrowserWebGpu");
  assert.ok(result.webgpu, "navigator.gpu gave no adapter");
  assert.match(`${result.webgpu.architecture} ${result.webgpu.description}`, /swiftshader/i);

  console.log(`families in this build: ${result.available.join(", ")}`);
  if (result.missing.length) {
    console.log(`REQUIRED FAMILIES MISSING FROM THIS BUILD: ${result.missing.join(", ")}` +
      (STRICT ? "" : " (not checked; FRAMECAST_BROWSER_STRICT=1 makes this fail)"));
  }
  for (const f of result.families) {
    console.log(`${f.passed ? "ok  " : "FAIL"} ${f.family} ${f.precision}${f.error ? `: ${f.error}` : ""}`);
    for (const c of f.cases) {
      console.log(`     ${c.passed ? "ok  " : "FAIL"} ${c.name.padEnd(44)} nmse ${fmt(c.nmse)} (bound ${c.bound.toExponential(0)})`);
    }
  }
  for (const [family, s] of Object.entries(result.seconds)) console.log(`${family}: ${s.toFixed(1)} s`);
  console.log(`page total: ${seconds.toFixed(1)} s`);

  if (STRICT) assert.deepEqual(result.missing, [], "required families missing from the build");
  const ran = REQUIRED.filter((f) => result.available.includes(f));
  assert.ok(ran.length > 0, `none of ${REQUIRED.join(", ")} is in this build`);
  const precisions = result.adapter.features.f16 ? ["f32", "f16"] : ["f32"];
  for (const family of ran) {
    for (const precision of precisions) {
      const f = result.families.find((r) => r.family === family && r.precision === precision);
      assert.ok(f, `${family} ${precision} did not run`);
      assert.equal(f.error, null, `${family} ${precision}: ${f.error}`);
      assert.ok(f.cases.length > 0, `${family} ${precision} has no cases`);
      const failed = f.cases.filter((c) => !c.passed).map((c) => `${c.name} nmse ${fmt(c.nmse)} > ${c.bound}`);
      assert.deepEqual(failed, [], `${family} ${precision} cases out of bound`);
    }
  }
  assert.equal(result.passed, true);
});
