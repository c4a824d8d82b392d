// Loads the wasm module, describes the adapter, runs the requested kernel
// families' self-checks one by one (so progress shows) and writes the
// result into the page: #log for people, #result (JSON) for scripts.
import init, { families, probe, selfCheck } from "./pkg/framecast_web.js";

const log = document.getElementById("log");
const lines = [];
const say = (line) => {
  lines.push(line);
  log.textContent = lines.join("\n");
};

function finish(status, result) {
  document.getElementById("result").textContent = JSON.stringify(result);
  document.body.dataset.status = status;
}

// What the browser itself says about the adapter: wgpu reports only the
// description, while the architecture (e.g. "swiftshader") is what tells a
// software adapter apart.
async function browserAdapter() {
  if (!navigator.gpu) return null;
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return null;
  const { vendor, architecture, device, description } = adapter.info ?? {};
  return { vendor, architecture, device, description, features: [...adapter.features] };
}

async function main() {
  const result = { requested: [], available: [], missing: [], families: [], seconds: {} };
  try {
    await init();
    result.available = families();
    const asked = new URLSearchParams(location.search).get("families");
    result.requested = asked ? asked.split(",").map((s) => s.trim()).filter(Boolean) : result.available;
    // Families this build lacks are reported, not run: selfCheck rejects unknown names.
    result.missing = result.requested.filter((f) => !result.available.includes(f));
    const run = result.requested.filter((f) => result.available.includes(f));

    result.webgpu = await browserAdapter();
    result.adapter = await probe();
    say(result.adapter.summary.trimEnd());
    if (result.webgpu) say(`webgpu       ${result.webgpu.vendor} / ${result.webgpu.architecture}`);
    if (result.missing.length) say(`not in this build: ${result.missing.join(", ")}`);
    say("");

    for (const family of run) {
      const t0 = performance.now();
      const check = await selfCheck([family]);
      const ms = performance.now() - t0;
      for (const f of check.families) {
        result.families.push(f);
        say(`${f.passed ? "ok  " : "FAIL"} ${f.family} ${f.precision}${f.error ? `: ${f.error}` : ""}`);
        for (const c of f.cases) {
          const nmse = c.nmse === null ? "inf" : c.nmse.toExponential(2);
          say(`     ${c.passed ? "ok  " : "FAIL"} ${c.name.padEnd(44)} nmse ${nmse} (bound ${c.bound.toExponential(0)})`);
        }
      }
      result.seconds[family] = ms / 1000;
      say(`     ${family}: ${(ms / 1000).toFixed(1)} s`);
    }
    result.passed = result.families.every((f) => f.passed);
    say(`\n${result.passed ? "all requested families passed" : "SOME FAMILIES FAILED"}`);
    finish("done", result);
  } catch (e) {
    result.error = String(e?.message ?? e);
    say(`error: ${result.error}`);
    log.classList.add("fail");
    finish("error", result);
  }
}

main();
