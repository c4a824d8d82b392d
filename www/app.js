// The demo site: capability check, model loading with progress, the prompt
// and its options, progress with an ETA, a live preview, the result with a
// download, and this visit's clips. The page's state is mirrored on
// <body data-state> (starting, loading, ready, generating, done, error)
// for people and for the end-to-end tests alike.
import { Framecast, capabilities } from "./client.js";
import { openCamera, readSource, takePicture } from "./source.js";
import { createStoryboard } from "./storyboard.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const EXAMPLES = [
  "a green triangle moves to the right",
  "a red ball bounces on the floor",
  "a small yellow square slides to the left",
  "a big blue star rotates on a white background",
  "a purple cross grows",
];

const state = { fc: null, opened: null, loaded: null, loading: false, running: null, clips: [], aspect: "1:1", model: null, source: null, board: null, sources: 0 };
const setState = (s) => (document.body.dataset.state = s);

function showError(err) {
  const box = $("error");
  const advice = {
    "too-large": "Try a smaller size or fewer seconds.",
    lost: "Press Load: the model comes back from this browser's cache, and the clips of this visit stay.",
    network: "Check the connection and press Load again; finished shards are kept.",
    integrity: "A downloaded file was damaged and was not kept. Press Load to fetch it again.",
    webgpu: "This browser cannot run WebGPU here.",
  }[err.kind];
  box.textContent = `${err.message}${advice ? ` — ${advice}` : ""}`;
  box.dataset.kind = err.kind ?? "error";
  box.hidden = false;
}

const clearError = () => ($("error").hidden = true);

function progress(el, fraction, text) {
  el.hidden = false;
  el.querySelector(".fill").style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  el.querySelector(".label").textContent = text;
}

const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
const eta = (started, fraction) => {
  if (fraction <= 0.02) return "";
  const left = ((performance.now() - started) / fraction) * (1 - fraction) / 1000;
  return left < 1 ? " · almost done" : ` · about ${Math.ceil(left)} s left`;
};

async function checkCapabilities() {
  const caps = await capabilities();
  const box = $("capability");
  if (!caps.ok) {
    box.innerHTML = `<strong>This browser cannot generate here.</strong> ${caps.message}`;
    box.hidden = false;
    setState("error");
    return false;
  }
  const notes = [];
  if (!caps.f16) notes.push("no shader-f16 on this adapter: framecast runs at f32 (slower, more memory)");
  if (caps.software) notes.push("this is a software GPU: generation works but is slow");
  if (caps.maxBuffer < 256 * 2 ** 20) notes.push(`the adapter allows only ${mb(caps.maxBuffer)} buffers: large sizes will be refused`);
  if (notes.length) {
    box.innerHTML = `<strong>Heads up.</strong> ${notes.join("; ")}.`;
    box.hidden = false;
  }
  $("adapter").textContent = caps.name;
  state.adapter = caps.name;
  return true;
}

function modelUrl() {
  if ($("model").value === "custom") return $("model-url").value.trim();
  return $("model").value;
}

async function load() {
  const url = modelUrl();
  if (!url) return showError({ kind: "invalid", message: "enter a bundle URL" });
  clearError();
  setState("loading");
  $("generate").disabled = true;
  state.fc?.terminate();
  state.fc = new Framecast();
  const started = performance.now();
  state.fc.onDownload = (p) => {
    const f = p.bytesTotal ? p.bytesDone / p.bytesTotal : 0;
    const where = p.fromCache ? "from this browser's cache" : "downloading";
    progress(
      $("download"),
      f,
      `${where}: ${mb(p.bytesDone)} of ${mb(p.bytesTotal)} · shard ${p.shardsDone}/${p.shardsTotal}${eta(started, f)}`,
    );
  };
  state.fc.onWarning = (m) => showError({ kind: "storage", message: m });
  // Generate works from the moment the manifest is in: the prompt is
  // encoded as soon as the text encoder arrives, the rest waits for the
  // download.
  state.fc.onOpened = (info) => {
    state.opened = { info };
    applyDefaults(info.defaults ?? {});
    $("generate").disabled = false;
  };
  state.loading = true;
  try {
    const loaded = await state.fc.load(url, { f32: params.get("f32") === "1" });
    state.loaded = loaded;
    state.model = url;
    const d = loaded.download;
    const how = d.fromNetwork === 0 ? "all from cache" : `${d.fromNetwork} shard(s) downloaded, ${d.fromCache} from cache`;
    progress($("download"), 1, `loaded in ${loaded.seconds.toFixed(1)} s (${how}) · ${loaded.info.f16 ? "f16" : "f32"} on ${state.adapter ?? loaded.info.adapter}`);
    $("generate").disabled = false;
    if (!state.running) setState("ready");
  } catch (e) {
    showError(e);
    setState("error");
    $("generate").disabled = true;
  } finally {
    state.loading = false;
  }
}

function applyDefaults(d) {
  if (d.steps && !params.has("steps")) $("steps").value = d.steps;
  if (d.guidance && !params.has("guidance")) $("guidance").value = d.guidance;
  if (d.fps && !params.has("fps")) $("fps").value = d.fps;
  if (d.width && d.height) $("resolution").value = Math.min(d.width, d.height);
}

function options() {
  if (!$("seed-lock").checked) $("seed").value = Math.floor(Math.random() * 1e9);
  const o = {
    ...sharedSettings(),
    prompt: $("prompt").value.trim(),
    seconds: Number($("seconds").value),
    seed: Number($("seed").value),
  };
  const src = state.source;
  if (src?.kind === "image") {
    const picture = { data: src.data, width: src.width, height: src.height };
    if ($("source-at").value === "last") o.keyframes = [{ ...picture, frame: -1 }];
    else o.image = picture;
    o.imageStrength = Number($("source-strength").value);
    o.fit = $("source-fit").value;
  } else if (src?.kind === "video") {
    o.video = { data: src.data, width: src.width, height: src.height, frames: src.frames };
    o.denoiseStrength = Number($("source-strength").value);
    o.fit = $("source-fit").value;
  }
  if (params.has("frames")) {
    o.frames = Number(params.get("frames"));
    delete o.seconds;
  }
  return o;
}

/**
 * Runs one generation with the page's progress bar, preview and Cancel
 * button; `label` prefixes the progress text (a storyboard's shot).
 * Resolves to the result; rejects with the runtime's error.
 */
async function produce(opts, label = "") {
  if (state.running) throw { kind: "busy", message: "a clip is already being generated: wait for it or cancel it" };
  setState("generating");
  $("generate").hidden = true;
  $("cancel").hidden = false;
  const abort = new AbortController();
  state.running = abort;
  const started = performance.now();
  const bar = $("gen-progress");
  const prefix = label ? `${label} · ` : "";
  let size = null;
  // Weights of the stages in the progress bar: encoding and decoding are short.
  const at = { "text encoding": 0, conditioning: 0.03, denoising: 0.05, decoding: 0.85, encoding: 0.95 };
  progress(bar, 0, `${prefix}starting…`);
  const canvas = $("preview");
  try {
    const result = await state.fc.generate(opts, {
      signal: abort.signal,
      onEvent: (e) => {
        if (e.type === "size") {
          size = e;
          $("size-note").textContent = `${e.width}×${e.height}, ${e.frames} frames at ${e.fps} fps, seed ${e.seed}${e.snapped ? " (snapped to a size this model makes)" : ""}`;
        } else if (e.type === "stage") {
          const f = at[e.stage] ?? 0;
          progress(bar, f, `${prefix}${e.stage}…${eta(started, f)}`);
        } else if (e.type === "waiting") {
          const what = e.for === "text encoder" ? "waiting for the text encoder to download" : "prompt encoded; waiting for the rest of the model to download";
          progress(bar, 0, `${prefix}${what}…`);
        } else if (e.type === "warning") {
          showError({ kind: "prompt", message: e.message });
        } else if (e.type === "step") {
          const f = 0.05 + 0.8 * ((e.index + 1) / e.total);
          progress(bar, f, `${prefix}denoising: step ${e.index + 1} of ${e.total}${eta(started, f)}`);
        }
      },
      onPreview: (p) => {
        canvas.width = p.width;
        canvas.height = p.height;
        canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(p.rgba.buffer), p.width, p.height), 0, 0);
        canvas.hidden = false;
        $("placeholder").hidden = true;
        $("player").hidden = true;
        if (size) canvas.style.aspectRatio = `${size.width} / ${size.height}`;
      },
    });
    const seconds = (performance.now() - started) / 1000;
    progress(bar, 1, `${prefix}done in ${seconds.toFixed(1)} s`);
    setState(state.loading ? "loading" : "ready");
    return { ...result, seconds };
  } catch (e) {
    if (e.kind === "cancelled") progress(bar, 0, `${prefix}cancelled`);
    setState(e.kind === "lost" ? "error" : state.loading ? "loading" : "ready");
    throw e;
  } finally {
    state.running = null;
    $("generate").hidden = false;
    $("cancel").hidden = true;
  }
}

async function generate() {
  clearError();
  const opts = options();
  if (!opts.prompt) return showError({ kind: "invalid", message: "type a prompt first" });
  try {
    const result = await produce(opts);
    show(result, opts, result.seconds);
    setState("done");
  } catch (e) {
    if (e.kind !== "cancelled") showError(e);
  }
}

/** The page's size and sampling: what every clip and storyboard shot shares. */
function sharedSettings() {
  const o = {
    aspect: state.aspect,
    resolution: Number($("resolution").value),
    fps: Number($("fps").value),
    steps: Number($("steps").value),
    guidance: Number($("guidance").value),
    preview: $("live-preview").checked,
  };
  const neg = $("negative").value.trim();
  if (neg) o.negativePrompt = neg;
  if (params.has("width") && params.has("height")) {
    o.width = Number(params.get("width"));
    o.height = Number(params.get("height"));
    delete o.aspect;
  }
  return o;
}

function addShot() {
  const prompt = $("prompt").value.trim();
  if (!prompt) return showError({ kind: "invalid", message: "type the shot's prompt first" });
  clearError();
  const n = state.board.shots.length;
  const seed = $("seed-lock").checked ? Number($("seed").value) + n : Math.floor(Math.random() * 1e9);
  const image = state.source?.kind === "image" ? state.source : null;
  state.board.add({ prompt, seconds: Number($("seconds").value), seed, image });
}

function show(result, opts, seconds) {
  const url = URL.createObjectURL(result.video);
  const player = $("player");
  player.src = url;
  player.hidden = false;
  player.style.aspectRatio = `${result.width} / ${result.height}`;
  $("preview").hidden = true;
  $("placeholder").hidden = true;
  player.play().catch(() => {});
  const name = `framecast-${opts.prompt.replace(/[^a-z0-9]+/gi, "-").slice(0, 40)}-${result.seed}.${result.ext}`;
  const link = $("download-link");
  link.href = url;
  link.download = name;
  $("result-info").textContent = `${result.width}×${result.height} · ${result.frames} frames · ${result.fps} fps · ${(result.video.size / 1024).toFixed(0)} KB ${result.mime} · ${seconds.toFixed(1)} s`;
  $("result-bar").hidden = false;
  const clip = { url, name, prompt: opts.prompt, result };
  state.clips.unshift(clip);
  window.__framecast = { last: result, clips: state.clips.length };
  renderHistory();
}

function showFilm(film) {
  const opts = { prompt: `storyboard ${film.shots} shots` };
  show(film, opts, film.seconds);
  window.__framecast = { ...window.__framecast, film };
  $("board-film").textContent = `Exported: ${film.shots} shots, ${film.frames} frames, ${(film.frames / film.fps).toFixed(2)} s (${film.mime}), in the player above.`;
  $("board-film").hidden = false;
  setState("done");
}

function renderHistory() {
  const strip = $("history");
  strip.replaceChildren(
    ...state.clips.map((c) => {
      const item = document.createElement("button");
      item.className = "thumb";
      item.title = c.prompt;
      const v = document.createElement("video");
      v.src = c.url;
      v.muted = true;
      v.loop = true;
      v.playsInline = true;
      v.autoplay = true;
      const label = document.createElement("span");
      label.textContent = c.prompt;
      item.append(v, label);
      item.onclick = () => {
        $("player").src = c.url;
        $("download-link").href = c.url;
        $("download-link").download = c.name;
      };
      return item;
    }),
  );
  $("history-card").hidden = state.clips.length === 0;
}

function useSource(src, name) {
  if (state.source?.url) URL.revokeObjectURL(state.source.url);
  state.source = { ...src, id: ++state.sources };
  $("source-thumb").src = src.kind === "image" ? src.url : "";
  $("source-thumb").hidden = src.kind !== "image";
  $("source-name").textContent = `${name}${src.kind === "image" ? "" : ` (${src.frames} frames, re-imagined)`}`;
  $("source-at").hidden = src.kind !== "image";
  $("source-strength-label").textContent = src.kind === "image" ? "Hold" : "Change";
  $("source-strength").value = src.kind === "image" ? 1 : 0.6;
  $("source-strength-value").textContent = Number($("source-strength").value).toFixed(2);
  $("source-chosen").hidden = false;
  $("source-hint").hidden = true;
}

function closeCamera() {
  const view = $("camera-view");
  for (const track of view.srcObject?.getTracks() ?? []) track.stop();
  view.srcObject = null;
  $("camera").hidden = true;
}

async function startCamera() {
  clearError();
  try {
    $("camera-view").srcObject = await openCamera();
    $("camera").hidden = false;
  } catch (err) {
    showError({ kind: "camera", message: err.message });
  }
}

async function takeCameraPicture() {
  try {
    const src = await takePicture($("camera-view"), Number($("resolution").value));
    closeCamera();
    useSource(src, "camera");
  } catch (err) {
    showError({ kind: "camera", message: err.message });
  }
}

async function chooseSource(file) {
  clearError();
  try {
    const fps = Number($("fps").value);
    const frames = Math.round(Number($("seconds").value) * fps) + 1;
    const src = await readSource(file, Number($("resolution").value), fps, frames);
    useSource(src, file.name);
  } catch (err) {
    showError({ kind: "invalid", message: err.message ?? String(err) });
  }
}

function clearSource() {
  if (state.source?.url) URL.revokeObjectURL(state.source.url);
  state.source = null;
  $("source-chosen").hidden = true;
  $("source-hint").hidden = false;
  $("source-file").value = "";
}

function wire() {
  $("source-pick").onclick = () => $("source-file").click();
  $("source-file").onchange = () => $("source-file").files[0] && chooseSource($("source-file").files[0]);
  $("source-clear").onclick = clearSource;
  $("source-camera").onclick = startCamera;
  $("camera-take").onclick = takeCameraPicture;
  $("camera-close").onclick = closeCamera;
  $("source-strength").oninput = () => ($("source-strength-value").textContent = Number($("source-strength").value).toFixed(2));
  const zone = $("source-zone");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files[0]) chooseSource(e.dataTransfer.files[0]);
  });
  for (const text of EXAMPLES) {
    const chip = document.createElement("button");
    chip.className = "chip";
    chip.textContent = text;
    chip.onclick = () => ($("prompt").value = text);
    $("examples").append(chip);
  }
  for (const b of $("aspect").querySelectorAll("button")) {
    b.onclick = () => {
      for (const o of $("aspect").querySelectorAll("button")) o.classList.toggle("on", o === b);
      state.aspect = b.dataset.aspect;
    };
  }
  $("model").onchange = () => ($("model-url").hidden = $("model").value !== "custom");
  $("load").onclick = load;
  state.board = createStoryboard($("board"), {
    render: produce,
    settings: sharedSettings,
    temporal: () => (state.loaded ?? state.opened)?.info.temporalCompression ?? 8,
    onFilm: showFilm,
    onError: (e) => showError(e),
  });
  $("shot-add").onclick = addShot;
  $("generate").onclick = generate;
  $("cancel").onclick = () => state.running?.abort();
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.metaKey || e.ctrlKey) && !$("generate").disabled) generate();
  });
  if (params.has("model")) {
    $("model").value = "custom";
    $("model-url").value = params.get("model");
    $("model-url").hidden = false;
  }
  if (params.has("prompt")) $("prompt").value = params.get("prompt");
  if (params.has("seed")) $("seed").value = params.get("seed");
  for (const k of ["steps", "guidance", "fps"]) if (params.has(k)) $(k).value = params.get(k);
}

wire();
// For the end-to-end tests: the page's recovery from a lost device.
window.__framecastPage = {
  loseDevice: () => state.fc?.loseDevice(),
  // The chosen picture as the PNG the page holds (camera pictures).
  sourcePng: async () => (state.source?.png ? Array.from(new Uint8Array(await state.source.png.arrayBuffer())) : null),
};
if (await checkCapabilities()) await load();
