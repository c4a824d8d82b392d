// <framecast-clip>: a clip generated on the visitor's GPU, for any page.
//
//   <script type="module" src="https://HOST/framecast-clip.js"></script>
//   <framecast-clip prompt="a red ball bounces on the floor" seed="7"></framecast-clip>
//
// Attributes: prompt (required), model (a bundle URL; default the demo model
// beside this script), seed, aspect (16:9, 9:16, 1:1, 4:3, 3:4), seconds,
// steps, guidance. It loads the model in its own worker when it first comes
// into view, generates, and plays the clip in a loop; a "Download" link
// keeps it. Events: `framecast-progress` (detail: {stage, fraction}),
// `framecast-done` (detail: the result), `framecast-error` (detail: {kind, message}).
import { Framecast, capabilities } from "./client.js";

const here = new URL(".", import.meta.url);

const STYLE = `
:host { display: inline-block; width: 320px; max-width: 100%; font: 13px/1.4 system-ui, sans-serif; color: #e8eaf0; }
.box { position: relative; background: #0e1016; border-radius: 12px; overflow: hidden; aspect-ratio: var(--ratio, 1); display: grid; place-items: center; }
video { width: 100%; height: 100%; object-fit: contain; display: block; }
.status { position: absolute; inset: auto 0 0 0; padding: 8px 10px; background: linear-gradient(transparent, #000c); }
.bar { height: 4px; background: #ffffff22; border-radius: 4px; overflow: hidden; margin-top: 4px; }
.fill { height: 100%; width: 0; background: linear-gradient(90deg, #6c8cff, #9b6cff); }
a { color: #9bb0ff; }
.error { color: #ffb4b4; padding: 12px; }
`;

class FramecastClip extends HTMLElement {
  static observedAttributes = ["prompt", "seed", "aspect", "seconds", "steps", "guidance", "model"];

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    this.root.innerHTML = `<style>${STYLE}</style><div class="box"><video muted loop playsinline autoplay hidden></video>
      <div class="status"><span class="text">waiting…</span><div class="bar"><div class="fill"></div></div></div></div>
      <div class="links"></div>`;
    this.started = false;
  }

  connectedCallback() {
    const aspect = (this.getAttribute("aspect") ?? "1:1").split(":").map(Number);
    if (aspect.length === 2 && aspect[0] > 0 && aspect[1] > 0) this.style.setProperty("--ratio", `${aspect[0]} / ${aspect[1]}`);
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !this.started) {
        this.started = true;
        io.disconnect();
        this.run();
      }
    });
    io.observe(this);
  }

  disconnectedCallback() {
    this.fc?.terminate();
  }

  status(text, fraction) {
    this.root.querySelector(".text").textContent = text;
    if (fraction !== undefined) this.root.querySelector(".fill").style.width = `${fraction * 100}%`;
    this.dispatchEvent(new CustomEvent("framecast-progress", { detail: { text, fraction } }));
  }

  fail(err) {
    this.root.querySelector(".box").innerHTML = `<div class="error">${err.message}</div>`;
    this.dispatchEvent(new CustomEvent("framecast-error", { detail: { kind: err.kind, message: err.message } }));
  }

  async run() {
    const caps = await capabilities();
    if (!caps.ok) return this.fail({ kind: caps.reason, message: caps.message });
    const model = new URL(this.getAttribute("model") ?? "models/demo/", here).href;
    this.fc = new Framecast();
    this.fc.onDownload = (p) => this.status(`loading model ${Math.round((100 * p.bytesDone) / Math.max(p.bytesTotal, 1))}%`, (0.3 * p.bytesDone) / Math.max(p.bytesTotal, 1));
    try {
      await this.fc.load(model);
      const num = (k) => (this.hasAttribute(k) ? Number(this.getAttribute(k)) : undefined);
      const opts = {
        prompt: this.getAttribute("prompt") ?? "",
        seed: num("seed"),
        seconds: num("seconds"),
        steps: num("steps"),
        guidance: num("guidance"),
        aspect: this.getAttribute("aspect") ?? undefined,
      };
      const result = await this.fc.generate(opts, {
        onEvent: (e) => {
          if (e.type === "step") this.status(`denoising ${e.index + 1}/${e.total}`, 0.3 + (0.6 * (e.index + 1)) / e.total);
          else if (e.type === "stage") this.status(e.stage);
        },
      });
      const url = URL.createObjectURL(result.video);
      const video = this.root.querySelector("video");
      video.src = url;
      video.hidden = false;
      this.root.querySelector(".status").remove();
      const a = document.createElement("a");
      a.href = url;
      a.download = `framecast-${result.seed}.${result.ext}`;
      a.textContent = "Download";
      this.root.querySelector(".links").append(a);
      this.result = result;
      this.dispatchEvent(new CustomEvent("framecast-done", { detail: result }));
    } catch (e) {
      this.fail(e);
    }
  }
}

if (!customElements.get("framecast-clip")) customElements.define("framecast-clip", FramecastClip);
