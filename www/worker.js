// The runtime in a dedicated worker, so the page never freezes. Messages:
//   in:  {type: "load", url, f32}            {type: "generate", id, options}
//        {type: "cancel"}                   {type: "loseDevice"} (tests: as a driver reset)
//   out: {type: "download", ...progress}      {type: "loaded", info, seconds, download}
//        {type: "opened", info} (the manifest is in: generate may be sent now)
//        {type: "ready", component, seconds} ("text_encoder": prompts can be encoded)
//        {type: "event", id, event}           {type: "preview", id, index, width, height, rgba}
//        {type: "result", id, width, height, frames, fps, seed, pixels, video, mime, ext}
//        {type: "error", id, error: {kind, message}}   {type: "warning", message}
import init, { Session } from "./pkg/framecast_web.js";
import { createFetcher, LoadError } from "./loader.js";
import { encodeVideo } from "./encode.js";
import { previewImage } from "./preview.js";

let session = null;
let opening = null; // the session being opened, for a generate sent meanwhile
let info = null;
let ready = null;

const post = (msg, transfer = []) => self.postMessage(msg, transfer);

function asError(e) {
  if (e instanceof LoadError) return { kind: e.kind, message: e.message };
  if (e && typeof e === "object" && "kind" in e) return { kind: e.kind, message: e.message };
  return { kind: "gpu", message: String(e?.message ?? e) };
}

async function load(url, f32) {
  const started = performance.now();
  let fetchError = null;
  const fetcher = createFetcher(url, {
    onProgress: (p) => post({ type: "download", ...p }),
    onWarning: (message) => post({ type: "warning", message }),
  });
  // The fetcher's own error (with its kind) is the one to report; the
  // runtime sees it as a message only.
  const guarded = {
    manifest: () => fetcher.manifest().catch((e) => Promise.reject((fetchError = e))),
    shard: (entry) => fetcher.shard(entry).catch((e) => Promise.reject((fetchError = e))),
  };
  session?.free();
  session = null;
  let s;
  // Set before the first await, so that a generate right behind this load
  // message waits for it.
  const open = (async () => {
    ready ??= init();
    await ready;
    return Session.open(guarded, url, Boolean(f32));
  })();
  opening = open;
  try {
    s = await open;
    session = s;
    info = s.info();
    post({ type: "opened", info });
    // A generate sent from here on encodes its prompt as soon as the text
    // encoder is in, while the rest downloads.
    await s.load((p) => {
      if (p.ready) post({ type: "ready", component: p.component, seconds: (performance.now() - started) / 1000 });
    });
  } catch (e) {
    if (session === s) session = null;
    throw fetchError ?? e;
  } finally {
    if (opening === open) opening = null;
  }
  info = s.info();
  return { info, seconds: (performance.now() - started) / 1000, download: { ...fetcher.state } };
}

async function generate(id, options) {
  const s = session ?? (await opening?.catch(() => null));
  if (!s) throw { kind: "invalid", message: "no model is loaded" };
  const preview = info?.defaults?.preview ?? null;
  const result = await s.generate({ ...options, preview: Boolean(options.preview) }, (event) => {
    if (event.type === "preview") {
      const img = previewImage(event, preview);
      post({ type: "preview", id, ...img }, [img.rgba.buffer]);
    } else {
      post({ type: "event", id, event });
    }
  });
  post({ type: "event", id, event: { type: "stage", stage: "encoding" } });
  const started = performance.now();
  const { blob, mime, ext } = await encodeVideo(result.pixels, result.width, result.height, result.frames, result.fps);
  post({ type: "event", id, event: { type: "stageDone", stage: "encoding", seconds: (performance.now() - started) / 1000 } });
  post({ type: "result", id, ...result, video: blob, mime, ext }, [result.pixels.buffer]);
}

self.onmessage = async ({ data }) => {
  try {
    if (data.type === "load") {
      post({ type: "loaded", ...(await load(data.url, data.f32)) });
    } else if (data.type === "generate") {
      await generate(data.id, data.options);
    } else if (data.type === "cancel") {
      session?.cancel();
    } else if (data.type === "loseDevice") {
      session?.loseDevice();
    }
  } catch (e) {
    const error = asError(e);
    if (error.kind === "lost") {
      session = null; // a new load opens a new device
    }
    post({ type: "error", id: data.id, during: data.type, error });
  }
};
