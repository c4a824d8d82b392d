// The demo site end to end in headless Chromium (WebGPU on SwiftShader),
// against `framecast serve` with a tiny bundle (the v095 parity fixture's
// pipeline, converted to q4), through a proxy that counts requests and can
// corrupt a shard, cut a download short or hold shards back.
//
//   FRAMECAST_BIN         the framecast binary (default target/debug/framecast)
//   FRAMECAST_QUANTIZE    the quantizer (default target/debug/framecast-quantize)
//   FRAMECAST_SCREENSHOTS where screenshots go (default target/browser-screenshots)
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { launch } from "./chromium.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.join(here, "..", "..");
const bin = process.env.FRAMECAST_BIN ?? path.join(repo, "target", "debug", "framecast");
const quantize = process.env.FRAMECAST_QUANTIZE ?? path.join(repo, "target", "debug", "framecast-quantize");
const shots = process.env.FRAMECAST_SCREENSHOTS ?? path.join(repo, "target", "browser-screenshots");

// The clip both the page and the CLI make: the fixture's own size.
const CLIP = { prompt: "a red ball bounces on a blue floor", seed: 7, steps: 2, guidance: 1, width: 96, height: 64, frames: 17, fps: 24 };

function startFramecast(bundle) {
  const child = spawn(bin, ["serve", "--www", path.join(repo, "www"), "--bundle", `tiny=${bundle}`, "--addr", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /at (http:\/\/\S+)/.exec(out);
      if (m) resolve({ url: m[1], child });
    });
    child.on("exit", (code) => reject(new Error(`framecast serve exited (${code}): ${out}`)));
  });
}

/** A proxy to `target` that counts shard requests and injects faults. */
async function startProxy(target) {
  const t = new URL(target);
  const stats = { shards: 0, ranges: 0, paths: [] };
  // hold: shard files whose requests wait in `held` until release().
  const faults = { corrupt: null, cutOnce: null, hold: null, held: [] };
  const server = createServer((req, res) => {
    const isShard = req.url.endsWith(".bin");
    if (isShard) {
      stats.shards += 1;
      stats.paths.push(req.url);
      if (req.headers.range) stats.ranges += 1;
    }
    if (isShard && faults.hold?.has(req.url.split("/").pop())) {
      faults.held.push(() => forward(req, res));
      return;
    }
    forward(req, res);
  });
  const forward = (req, res) => {
    const isShard = req.url.endsWith(".bin");
    const up = request({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      const file = req.url.split("/").pop();
      if (isShard && faults.cutOnce && file === faults.cutOnce && !req.headers.range) {
        // Half the shard, then the connection drops.
        faults.cutOnce = null;
        res.writeHead(200, { ...r.headers });
        let sent = 0;
        const half = Number(r.headers["content-length"]) / 2;
        r.on("data", (chunk) => {
          if (sent >= half) return;
          res.write(chunk.subarray(0, Math.min(chunk.length, half - sent)));
          sent += chunk.length;
          if (sent >= half) setTimeout(() => res.destroy(), 20);
        });
        return;
      }
      res.writeHead(r.statusCode, r.headers);
      if (isShard && faults.corrupt === file) {
        let first = true;
        r.on("data", (chunk) => {
          if (first) {
            chunk = Buffer.from(chunk);
            chunk[0] ^= 0xff;
            first = false;
          }
          res.write(chunk);
        });
        r.on("end", () => res.end());
      } else {
        r.pipe(res);
      }
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  };
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    stats,
    faults,
    release: () => {
      faults.hold = null;
      for (const go of faults.held.splice(0)) go();
    },
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))),
  };
}

function psnr(a, b) {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i] - b[i]) ** 2;
  const mse = se / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10(1 / mse);
}

function readFrames(file) {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString());
  const [start, end] = header.frames.data_offsets;
  const body = buf.subarray(8 + n + start, 8 + n + end);
  return new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
}

/** `framecast generate` of CLIP with `extra` flags, raw frames to `framesOut`. */
function cliClip(bundle, framesOut, extra = []) {
  const c = CLIP;
  execFileSync(bin, ["generate", "--model", bundle, "--prompt", c.prompt, "--seed", String(c.seed), "--steps", String(c.steps),
    "--guidance", String(c.guidance), "--width", String(c.width), "--height", String(c.height), "--frames", String(c.frames),
    "--fps", String(c.fps), "--f32", ...extra, "--out", framesOut.replace(/\.safetensors$/, ".gif"), "--frames-out", framesOut], { stdio: "inherit" });
}

const pageUrl = (base, extra = {}) => {
  const q = new URLSearchParams({ model: `${base}models/tiny/`, ...Object.fromEntries(Object.entries({ ...CLIP, ...extra }).map(([k, v]) => [k, String(v)])) });
  return `${base}index.html?${q}`;
};

async function waitState(page, states, timeout = 900_000) {
  await page.waitForFunction((s) => s.includes(document.body.dataset.state), states, { timeout, polling: 200 });
  return page.evaluate(() => document.body.dataset.state);
}

test("the demo site generates, caches, recovers and cancels in a real browser", { timeout: 3_600_000 }, async (t) => {
  for (const [what, file] of [["framecast", bin], ["framecast-quantize", quantize], ["www/pkg", path.join(repo, "www", "pkg", "framecast_web_bg.wasm")], ["www/vendor", path.join(repo, "www", "vendor", "mediabunny.min.mjs")]]) {
    assert.ok(existsSync(file), `${what} is missing (${file}): cargo build and scripts/build-web.sh first (scripts/test.sh does both)`);
  }
  mkdirSync(shots, { recursive: true });
  const work = mkdtempSync(path.join(tmpdir(), "framecast-site-"));
  const bundle = path.join(work, "tiny");
  // Small shards, so that the bundle has several to count, corrupt, cut and
  // hold back (at 32K the transformer reaches past the text encoder's shard).
  execFileSync(quantize, ["convert", path.join(repo, "tests/fixtures/ltx/v095/pipeline"), bundle, "--weights", "q4", "--shard-size", "32K"], { stdio: "inherit" });
  const manifest = JSON.parse(readFileSync(path.join(bundle, "manifest.json")));
  assert.ok(manifest.shards.length >= 2, "the test bundle should have several shards");

  const fc = await startFramecast(bundle);
  const proxy = await startProxy(fc.url);
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await proxy.close();
    fc.child.kill();
  });
  const watch = (page) => {
    page.on("console", (m) => (m.type() === "error" || m.type() === "warning") && console.log(`[browser ${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => console.log(`[page error] ${e.stack ?? e.message}`));
  };

  // 1. A clip from a fresh browser: it downloads every shard once.
  const context = await browser.newContext({ viewport: { width: 1100, height: 1300 } });
  const page = await context.newPage();
  watch(page);
  await page.goto(pageUrl(proxy.url, { steps: 12 }));
  assert.equal(await waitState(page, ["ready", "error"]), "ready", await page.locator("#error").textContent());
  assert.equal(proxy.stats.shards, manifest.shards.length, "each shard fetched once on a first visit");
  assert.match(await page.locator("#download .label").textContent(), /shard\(s\) downloaded/);
  await page.screenshot({ path: path.join(shots, "idle.png"), fullPage: true });

  // 2. Cancel mid-generation (12 steps): it stops within a step, then a new run works.
  await page.click("#generate");
  await page.waitForFunction(() => /step [1-9] of/.test(document.querySelector("#gen-progress .label").textContent), null, { timeout: 600_000, polling: 50 });
  await page.screenshot({ path: path.join(shots, "generating.png"), fullPage: true });
  const stepAtCancel = await page.evaluate(() => Number(/step (\d+)/.exec(document.querySelector("#gen-progress .label").textContent)[1]));
  await page.click("#cancel");
  assert.equal(await waitState(page, ["ready", "done", "error"]), "ready");
  assert.match(await page.locator("#gen-progress .label").textContent(), /cancelled/);
  console.log(`cancelled after step ${stepAtCancel} of 12`);

  // 3. The clip itself (2 steps, as the CLI below).
  await page.fill("#steps", String(CLIP.steps));
  await page.click("#generate");
  assert.equal(await waitState(page, ["done", "error"]), "done", await page.locator("#error").textContent());
  await page.screenshot({ path: path.join(shots, "done.png"), fullPage: true });
  const got = await page.evaluate(async () => {
    const v = document.getElementById("player");
    if (v.readyState < 2) await new Promise((r) => v.addEventListener("loadeddata", r, { once: true }));
    const c = document.createElement("canvas");
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    let min = 255, max = 0;
    for (let i = 0; i < px.length; i += 4) {
      min = Math.min(min, px[i]);
      max = Math.max(max, px[i]);
    }
    const last = window.__framecast.last;
    return {
      width: v.videoWidth,
      height: v.videoHeight,
      duration: v.duration,
      range: max - min,
      pixels: Array.from(last.pixels),
      frames: last.frames,
      mime: last.mime,
      f16: JSON.parse(document.body.dataset.f16 ?? "false"),
      info: document.getElementById("download").textContent,
    };
  });
  console.log(`video ${got.width}x${got.height}, ${got.duration.toFixed(3)} s, ${got.mime}; ${got.info.trim()}`);
  assert.equal(got.width, CLIP.width);
  assert.equal(got.height, CLIP.height);
  assert.ok(Math.abs(got.duration - CLIP.frames / CLIP.fps) < 1.5 / CLIP.fps, `duration ${got.duration}`);
  assert.ok(got.range > 10, "the video's pixels are not constant");
  assert.match(got.info, /f32 on/, "SwiftShader has no shader-f16: the f32 path");

  // The same clip from the CLI: raw frames within float rounding.
  const framesOut = path.join(work, "cli.safetensors");
  cliClip(bundle, framesOut, []);
  const cli = readFrames(framesOut);
  assert.equal(cli.length, got.pixels.length);
  const db = psnr(cli, got.pixels);
  console.log(`browser frames vs framecast generate: PSNR ${db.toFixed(1)} dB (bar 40)`);
  assert.ok(db >= 40, `PSNR ${db.toFixed(1)} dB < 40`);

  // 3b. Image-to-video: a picture dropped in as the first frame gives the
  // CLI's frames for the same picture.
  const picture = path.join(work, "picture.png");
  const png = await page.evaluate(async ([w, h]) => {
    const c = new OffscreenCanvas(w, h);
    const g = c.getContext("2d");
    const grad = g.createLinearGradient(0, 0, w, h);
    grad.addColorStop(0, "#203050");
    grad.addColorStop(1, "#a0c0e0");
    g.fillStyle = grad;
    g.fillRect(0, 0, w, h);
    g.fillStyle = "#e02020";
    g.beginPath();
    g.arc(w * 0.3, h * 0.4, h * 0.2, 0, 2 * Math.PI);
    g.fill();
    return Array.from(new Uint8Array(await (await c.convertToBlob({ type: "image/png" })).arrayBuffer()));
  }, [CLIP.width, CLIP.height]);
  writeFileSync(picture, Buffer.from(png));
  await page.setInputFiles("#source-file", picture);
  await page.waitForSelector("#source-chosen:not([hidden])");
  await page.click("#generate");
  assert.equal(await waitState(page, ["done", "error"]), "done", await page.locator("#error").textContent());
  const i2v = await page.evaluate(() => Array.from(window.__framecast.last.pixels));
  const i2vOut = path.join(work, "cli-i2v.safetensors");
  cliClip(bundle, i2vOut, ["--image", picture]);
  const cliI2v = readFrames(i2vOut);
  const dbI2v = psnr(cliI2v, i2v);
  console.log(`image-to-video, browser vs framecast generate --image: PSNR ${dbI2v.toFixed(1)} dB (bar 40); vs the text-only clip ${psnr(cliI2v, got.pixels).toFixed(1)} dB`);
  assert.ok(dbI2v >= 40, `image-to-video PSNR ${dbI2v.toFixed(1)} dB < 40`);
  assert.ok(psnr(cliI2v, got.pixels) < 40, "the picture changed nothing");
  await page.screenshot({ path: path.join(shots, "image-to-video.png"), fullPage: true });

  // The same picture as the last frame: the CLI's --keyframe at the last index.
  await page.selectOption("#source-at", "last");
  await page.click("#generate");
  assert.equal(await waitState(page, ["done", "error"]), "done", await page.locator("#error").textContent());
  const atEnd = await page.evaluate(() => Array.from(window.__framecast.last.pixels));
  const endOut = path.join(work, "cli-end.safetensors");
  cliClip(bundle, endOut, ["--keyframe", `${CLIP.frames - 1}:${picture}`]);
  const dbEnd = psnr(readFrames(endOut), atEnd);
  console.log(`picture as the last frame, browser vs framecast generate --keyframe: PSNR ${dbEnd.toFixed(1)} dB (bar 40); vs as the first ${psnr(atEnd, i2v).toFixed(1)} dB`);
  assert.ok(dbEnd >= 40, `last-frame PSNR ${dbEnd.toFixed(1)} dB < 40`);
  assert.ok(psnr(atEnd, i2v) < 40, "first and last frame conditioning made the same clip");
  await page.selectOption("#source-at", "first");
  await page.click("#source-clear");

  // 3b'. The first frame from the camera (Chromium's fake camera, a moving
  // test pattern): the page's clip equals the CLI's from the same picture.
  await page.click("#source-camera");
  await page.waitForFunction(() => document.getElementById("camera-view").readyState >= 2, null, { timeout: 60_000 });
  await page.screenshot({ path: path.join(shots, "camera.png"), fullPage: true });
  await page.click("#camera-take");
  await page.waitForSelector("#source-chosen:not([hidden])");
  assert.match(await page.locator("#source-name").textContent(), /camera/);
  assert.ok(await page.locator("#camera").isHidden(), "the camera closes once the picture is taken");
  const cameraPng = await page.evaluate(() => window.__framecastPage.sourcePng());
  assert.ok(cameraPng?.length > 0, "the camera picture");
  const cameraPicture = path.join(work, "camera.png");
  writeFileSync(cameraPicture, Buffer.from(cameraPng));
  await page.click("#generate");
  assert.equal(await waitState(page, ["done", "error"]), "done", await page.locator("#error").textContent());
  const fromCamera = await page.evaluate(() => Array.from(window.__framecast.last.pixels));
  const cameraOut = path.join(work, "cli-camera.safetensors");
  cliClip(bundle, cameraOut, ["--image", cameraPicture]);
  const dbCamera = psnr(readFrames(cameraOut), fromCamera);
  console.log(`camera picture, browser vs framecast generate --image: PSNR ${dbCamera.toFixed(1)} dB (bar 40)`);
  assert.ok(dbCamera >= 40, `camera PSNR ${dbCamera.toFixed(1)} dB < 40`);
  await page.click("#source-clear");

  // 3c. The storyboard view: three shots (the second continues the first,
  // the third starts afresh and cross-fades in), exported as one film: the
  // film `framecast storyboard` makes from the same board.
  const BOARD = {
    width: CLIP.width, height: CLIP.height, fps: CLIP.fps, seed: CLIP.seed, steps: CLIP.steps, guidance: CLIP.guidance, crossfade: 0.25,
    shots: [
      { prompt: "a red ball bounces on a blue floor", seconds: 1 },
      { prompt: "a red ball moves to the right", seconds: 1 },
      { prompt: "a blue star rotates", seconds: 0.5, continue: false },
    ],
  };
  for (const shot of BOARD.shots) {
    await page.fill("#prompt", shot.prompt);
    await page.selectOption("#seconds", "1");
    await page.click("#shot-add");
  }
  const third = page.locator("#shots li").nth(2);
  await third.locator(".shot-seconds").selectOption("0.5");
  await third.locator(".shot-continue").uncheck();
  await page.selectOption("#board-fade", "0.25");
  // Reordering and back leaves the board as it was.
  await page.locator("#shots li").nth(1).locator("button[title=later]").click();
  await page.locator("#shots li").nth(2).locator("button[title=earlier]").click();
  assert.deepEqual(await page.locator("#shots .shot-prompt").evaluateAll((e) => e.map((x) => x.value)), BOARD.shots.map((s) => s.prompt));
  await page.click("#board-export");
  await page.waitForFunction(() => window.__framecast?.film || !document.getElementById("error").hidden, null, { timeout: 900_000, polling: 200 });
  assert.ok(await page.locator("#error").isHidden(), await page.locator("#error").textContent());
  await page.screenshot({ path: path.join(shots, "storyboard.png"), fullPage: true });
  const film = await page.evaluate(async () => {
    const v = document.getElementById("player");
    if (v.readyState < 1) await new Promise((r) => v.addEventListener("loadedmetadata", r, { once: true }));
    const f = window.__framecast.film;
    return { pixels: Array.from(f.pixels), frames: f.frames, fps: f.fps, duration: v.duration, note: document.getElementById("board-film").textContent };
  });
  const boardFile = path.join(work, "board.json");
  writeFileSync(boardFile, JSON.stringify(BOARD));
  const filmOut = path.join(work, "cli-film.safetensors");
  execFileSync(bin, ["storyboard", boardFile, "--model", bundle, "--f32", "--out", path.join(work, "cli-film.gif"), "--frames-out", filmOut], { stdio: "inherit" });
  const cliFilm = readFrames(filmOut);
  const cliFrames = cliFilm.length / (CLIP.width * CLIP.height * 3);
  const summed = BOARD.shots.reduce((a, s) => a + s.seconds, 0);
  console.log(`storyboard: ${film.note}; video ${film.duration.toFixed(3)} s for ${summed} s of shots; the CLI's film ${cliFrames} frames`);
  assert.equal(film.frames, cliFrames, "the browser's film and the CLI's have the same length");
  assert.ok(Math.abs(film.duration - film.frames / film.fps) < 1.5 / film.fps, `video duration ${film.duration}`);
  // Each shot's new footage is its seconds, up to the VAE's frame step and
  // the cross-fade's overlap.
  assert.ok(Math.abs(film.frames / film.fps - summed) <= 0.5, `film ${film.frames} frames for ${summed} s`);
  const dbFilm = psnr(cliFilm, film.pixels);
  console.log(`storyboard, browser vs framecast storyboard: PSNR ${dbFilm.toFixed(1)} dB (bar 40)`);
  assert.ok(dbFilm >= 40, `storyboard PSNR ${dbFilm.toFixed(1)} dB < 40`);

  // 3d. A lost device (destroyed as a driver reset would): a clear error
  // that says to load again, and after Load a clip is made again.
  await page.evaluate(() => window.__framecastPage.loseDevice());
  await page.click("#generate");
  assert.equal(await waitState(page, ["done", "error"]), "error");
  const lostMessage = await page.locator("#error").textContent();
  console.log(`lost device: ${lostMessage}`);
  assert.equal(await page.locator("#error").getAttribute("data-kind"), "lost", lostMessage);
  assert.match(lostMessage, /Press Load/);
  await page.click("#load");
  assert.equal(await waitState(page, ["ready", "error"]), "ready", await page.locator("#error").textContent());
  await page.click("#generate");
  assert.equal(await waitState(page, ["done", "error"]), "done", await page.locator("#error").textContent());

  // 4. A second visit loads from the cache: no shard requests at all.
  const before = proxy.stats.shards;
  await page.reload();
  assert.equal(await waitState(page, ["ready", "error"]), "ready");
  await page.click("#generate");
  assert.equal(await waitState(page, ["done", "error"]), "done");
  assert.equal(proxy.stats.shards - before, 0, `shard requests on the second visit: ${proxy.stats.paths.slice(before)}`);
  assert.match(await page.locator("#download .label").textContent(), /all from cache/);
  await context.close();

  // 5. A corrupted shard: a clear error, and nothing cached from it.
  const bad = manifest.shards[1].file;
  proxy.faults.corrupt = bad;
  const c2 = await browser.newContext();
  const p2 = await c2.newPage();
  watch(p2);
  await p2.goto(pageUrl(proxy.url));
  assert.equal(await waitState(p2, ["ready", "error"]), "error");
  const message = await p2.locator("#error").textContent();
  console.log(`corrupted shard: ${message}`);
  assert.match(message, /corrupt/);
  assert.equal(await p2.locator("#error").getAttribute("data-kind"), "integrity");
  const cached = await p2.evaluate(async () => (await (await caches.open("framecast-shards-v1")).keys()).map((r) => r.url));
  assert.ok(!cached.some((u) => u.endsWith(bad)), `the corrupt shard was cached: ${cached}`);
  proxy.faults.corrupt = null;
  await c2.close();

  // 6. An interrupted download resumes with a Range request.
  proxy.faults.cutOnce = manifest.shards[0].file;
  const ranges = proxy.stats.ranges;
  const c3 = await browser.newContext();
  const p3 = await c3.newPage();
  watch(p3);
  await p3.goto(pageUrl(proxy.url));
  assert.equal(await waitState(p3, ["ready", "error"]), "ready", await p3.locator("#error").textContent());
  assert.ok(proxy.stats.ranges > ranges, "the cut shard was resumed with a Range request");
  await c3.close();

  // 7. Storage quota too small for the model (Chromium's quota override):
  // a clear message, generation still works, and the next visit downloads
  // again rather than failing.
  const c4 = await browser.newContext();
  const p4 = await c4.newPage();
  watch(p4);
  const cdp = await c4.newCDPSession(p4);
  await cdp.send("Storage.overrideQuotaForOrigin", { origin: new URL(proxy.url).origin, quotaSize: 4096 });
  const firstVisit = proxy.stats.shards;
  await p4.goto(pageUrl(proxy.url));
  assert.equal(await waitState(p4, ["ready", "error"]), "ready", await p4.locator("#error").textContent());
  const warning = await p4.locator("#error").textContent();
  console.log(`storage quota exceeded: ${warning}`);
  assert.match(warning, /would not store the model/);
  assert.equal(await p4.locator("#error").getAttribute("data-kind"), "storage");
  await p4.click("#generate");
  assert.equal(await waitState(p4, ["done", "error"]), "done", await p4.locator("#error").textContent());
  const secondVisit = proxy.stats.shards;
  assert.equal(secondVisit - firstVisit, manifest.shards.length, "every shard downloaded once");
  await p4.reload();
  assert.equal(await waitState(p4, ["ready", "error"]), "ready", await p4.locator("#error").textContent());
  assert.equal(proxy.stats.shards - secondVisit, manifest.shards.length, "nothing was stored, so the next visit downloads again");
  await c4.close();

  // 8. Generate pressed while the model downloads: the prompt is encoded as
  // soon as the text encoder's shards are in, while the proxy still holds
  // every other shard back; released, the clip is the CLI's.
  const textShards = new Set(manifest.tensors.filter((e) => e.component === "text_encoder").flatMap((e) => e.parts.map((p) => p.shard)));
  const rest = manifest.shards.filter((_, i) => !textShards.has(i)).map((s) => s.file);
  const heldTransformer = manifest.tensors.some((e) => e.component === "transformer" && e.parts.some((p) => !textShards.has(p.shard)));
  assert.ok(textShards.size > 0 && heldTransformer, "the test bundle has transformer tensors outside the text encoder's shards");
  proxy.faults.hold = new Set(rest);
  const c5 = await browser.newContext();
  const p5 = await c5.newPage();
  watch(p5);
  await p5.goto(pageUrl(proxy.url));
  await p5.waitForFunction(() => !document.getElementById("generate").disabled || document.body.dataset.state === "error", null, { timeout: 600_000, polling: 50 });
  assert.equal(await p5.evaluate(() => document.body.dataset.state), "loading", "Generate is offered while the model loads");
  await p5.click("#generate");
  await p5.waitForFunction(() => /waiting for the rest of the model/.test(document.querySelector("#gen-progress .label").textContent), null, { timeout: 600_000, polling: 50 });
  const heldBack = proxy.faults.held.length;
  const label = await p5.locator("#gen-progress .label").textContent();
  await p5.screenshot({ path: path.join(shots, "encoded-while-loading.png"), fullPage: true });
  console.log(`generate while loading: "${label.trim()}" with ${heldBack} of ${rest.length} other shard(s) held back`);
  assert.ok(heldBack > 0, "the prompt was encoded while shards were still held back");
  proxy.release();
  assert.equal(await waitState(p5, ["done", "error"], 900_000), "done", await p5.locator("#error").textContent());
  const early = await p5.evaluate(() => Array.from(window.__framecast.last.pixels));
  const dbEarly = psnr(cli, early);
  console.log(`generated while loading, browser vs framecast generate: PSNR ${dbEarly.toFixed(1)} dB (bar 40)`);
  assert.ok(dbEarly >= 40, `PSNR ${dbEarly.toFixed(1)} dB < 40`);
  await c5.close();
});
