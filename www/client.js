// The page side of the worker protocol (worker.js): one object per worker,
// promises for load and generate, callbacks for progress. Used by the demo
// site (app.js) and by the <framecast-clip> element.

/** A module worker, also when this script comes from another origin (a
 * page may not start a worker from a cross-origin URL, but a same-origin
 * blob may import one; the host then needs CORS, see README). */
export function startWorker(base = new URL(".", import.meta.url)) {
  const url = new URL("worker.js", base);
  if (url.origin === location.origin) return new Worker(url, { type: "module" });
  const shim = new Blob([`import ${JSON.stringify(url.href)};`], { type: "text/javascript" });
  return new Worker(URL.createObjectURL(shim), { type: "module" });
}

export class FramecastError extends Error {
  constructor({ kind, message }) {
    super(message);
    this.kind = kind;
  }
}

export class Framecast {
  constructor(worker = startWorker()) {
    this.worker = worker;
    this.next = 1;
    this.calls = new Map();
    this.onDownload = () => {};
    /** The manifest is in (`info`): generate may be called before load resolves. */
    this.onOpened = () => {};
    /** A stage's weights are in: `{component, seconds}` ("text_encoder", "all"). */
    this.onReady = () => {};
    this.onWarning = () => {};
    this.loading = null;
    worker.onmessage = ({ data }) => this.#receive(data);
    worker.onerror = (e) => {
      const err = new FramecastError({ kind: "worker", message: `the worker failed to start: ${e.message ?? e}` });
      for (const c of this.calls.values()) c.reject(err);
      this.calls.clear();
      this.loading?.reject(err);
    };
  }

  #receive(msg) {
    const call = this.calls.get(msg.id);
    switch (msg.type) {
      case "download":
        this.onDownload(msg);
        break;
      case "warning":
        this.onWarning(msg.message);
        break;
      case "opened":
        this.onOpened(msg.info);
        break;
      case "ready":
        this.onReady(msg);
        break;
      case "loaded":
        this.loading?.resolve(msg);
        this.loading = null;
        break;
      case "event":
        call?.onEvent(msg.event);
        break;
      case "preview":
        call?.onPreview(msg);
        break;
      case "result":
        this.calls.delete(msg.id);
        call?.resolve(msg);
        break;
      case "error": {
        const err = new FramecastError(msg.error);
        if (msg.during === "load") {
          this.loading?.reject(err);
          this.loading = null;
        } else if (call) {
          this.calls.delete(msg.id);
          call.reject(err);
        }
        break;
      }
    }
  }

  /** Loads a bundle (a URL of a folder with manifest.json). */
  load(url, { f32 = false } = {}) {
    return new Promise((resolve, reject) => {
      this.loading = { resolve, reject };
      this.worker.postMessage({ type: "load", url: new URL(url, location.href).href, f32 });
    });
  }

  /** Generates a clip; `signal` (an AbortSignal) cancels it. */
  generate(options, { onEvent = () => {}, onPreview = () => {}, signal } = {}) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject, onEvent, onPreview });
      signal?.addEventListener("abort", () => this.worker.postMessage({ type: "cancel" }), { once: true });
      this.worker.postMessage({ type: "generate", id, options });
    });
  }

  /** Destroys the worker's GPU device, as a driver reset would (for tests
   * of the recovery path); the next call rejects with kind "lost". */
  loseDevice() {
    this.worker.postMessage({ type: "loseDevice" });
  }

  terminate() {
    this.worker.terminate();
  }
}

/** What this browser offers, before any download: WebGPU, f16, limits. */
export async function capabilities() {
  if (!("gpu" in navigator)) {
    return { ok: false, reason: "no-webgpu", message: "This browser has no WebGPU. Use a recent Chrome, Edge or another browser with WebGPU enabled." };
  }
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {}
  if (!adapter) {
    return { ok: false, reason: "no-adapter", message: "WebGPU is present but no GPU adapter is available (it may be blocklisted or disabled)." };
  }
  const i = adapter.info ?? {};
  return {
    ok: true,
    f16: adapter.features.has("shader-f16"),
    maxBuffer: adapter.limits.maxBufferSize,
    maxBinding: adapter.limits.maxStorageBufferBindingSize,
    name: [i.vendor, i.architecture, i.description].filter(Boolean).join(" ") || "unknown adapter",
    software: /swiftshader|llvmpipe|software/i.test(`${i.architecture} ${i.description} ${i.device}`),
  };
}
