// The storyboard view: a list of shots, each with its prompt, length, seed
// and optional first picture. Shots render in order; a shot that continues
// the previous one is conditioned on that shot's last frames (passed back
// to the runtime as f32, losslessly), so look and motion carry over the
// cut. "Export film" renders what is missing or out of date and joins the
// shots into one video, cross-fading those that start afresh. The frame
// counts and the join follow `framecast storyboard`
// (runtime/src/cli/storyboard.rs), so both make the same film.
import { encodeVideo } from "./encode.js";

/** Frame counts k x temporal + 1 nearest to `n` (at least temporal + 1). */
export const snapFrames = (n, temporal) => Math.max(1, Math.round((Math.max(n, 1) - 1) / temporal)) * temporal + 1;

/** The frames a shot renders, and how many of them are the previous take's. */
export function planShot(seconds, previous, fps, temporal) {
  const fresh = Math.max(1, Math.round(seconds * fps));
  if (!previous) return { frames: snapFrames(fresh + 1, temporal), carried: 0 };
  let carried = Math.min(snapFrames(temporal + 1, temporal), previous.frames);
  carried = Math.floor((carried - 1) / temporal) * temporal + 1;
  return { frames: snapFrames(carried + fresh, temporal), carried };
}

/** Joins takes ({pixels, frames, carried}) into one f32 RGB film. */
export function joinTakes(takes, width, height, fadeFrames) {
  const frame = width * height * 3;
  let total = 0;
  const parts = [];
  takes.forEach((t, i) => {
    const skip = t.carried > 0 ? t.carried : i === 0 ? 0 : Math.min(fadeFrames, total - 1, t.frames - 1);
    parts.push({ t, skip, fade: t.carried > 0 ? 0 : skip });
    total += t.frames - skip;
  });
  const film = new Float32Array(total * frame);
  let at = 0;
  for (const { t, skip, fade } of parts) {
    // Cross-fade the film's last `fade` frames into the take's first.
    for (let k = 0; k < fade; k++) {
      const a = (k + 1) / (fade + 1);
      const base = (at - fade + k) * frame;
      for (let j = 0; j < frame; j++) film[base + j] = (1 - a) * film[base + j] + a * t.pixels[k * frame + j];
    }
    film.set(t.pixels.subarray(skip * frame), at * frame);
    at += t.frames - skip;
  }
  return { pixels: film, frames: total };
}

const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};

const DURATIONS = [0.5, 1, 1.5, 2, 3];

/**
 * The view inside `root`. `render(options, label)` generates one clip (the
 * page's progress, preview and cancel); `settings()` the options every shot
 * shares (size, fps, steps, guidance); `temporal()` the model's temporal
 * compression; `onFilm(film)` receives the exported film.
 */
export function createStoryboard(root, { render, settings, temporal, onFilm, onError }) {
  const shots = [];
  let nextId = 1;
  let takes = 0;
  let busy = false;
  const list = root.querySelector("#shots");
  const empty = root.querySelector("#board-empty");
  const note = root.querySelector("#board-note");

  const continues = (i) => i > 0 && shots[i].continues && !shots[i].image;
  const keyOf = (i) => {
    const s = shots[i];
    const { preview, ...shared } = settings(); // the preview changes no frame
    return JSON.stringify({
      prompt: s.prompt,
      seconds: s.seconds,
      seed: s.seed,
      image: s.image?.id ?? null,
      after: continues(i) ? shots[i - 1].take?.id ?? "none" : null,
      shared,
    });
  };
  const stale = (i) => !shots[i].take || shots[i].take.key !== keyOf(i);

  function add({ prompt, seconds, seed, image = null }) {
    shots.push({ id: nextId++, prompt, seconds, seed, image, continues: !image, take: null });
    draw();
  }

  async function renderShot(i) {
    if (continues(i) && stale(i - 1)) await renderShot(i - 1);
    const shot = shots[i];
    const shared = settings();
    const previous = continues(i) ? shots[i - 1].take : null;
    const plan = planShot(shot.seconds, previous, shared.fps, temporal());
    const options = { ...shared, prompt: shot.prompt, seed: shot.seed, frames: plan.frames };
    if (previous) {
      const frame = previous.width * previous.height * 3;
      options.image = {
        data: previous.pixels.slice((previous.frames - plan.carried) * frame),
        width: previous.width,
        height: previous.height,
        frames: plan.carried,
      };
      options.imageStrength = 1;
    } else if (shot.image) {
      options.image = { data: shot.image.data, width: shot.image.width, height: shot.image.height };
      options.imageStrength = 1;
      options.fit = "crop";
    }
    const key = keyOf(i);
    const result = await render(options, `shot ${i + 1} of ${shots.length}`);
    if (shot.take) URL.revokeObjectURL(shot.take.url);
    shot.take = { ...result, carried: plan.carried, key, id: ++takes, url: URL.createObjectURL(result.video) };
    draw();
  }

  // One job at a time; errors (and cancelling) end the job, not the board.
  async function job(work) {
    if (busy) return;
    busy = true;
    draw();
    try {
      await work();
    } catch (e) {
      if (e?.kind !== "cancelled") onError(e);
    } finally {
      busy = false;
      draw();
    }
  }

  async function renderAll() {
    for (let i = 0; i < shots.length; i++) if (stale(i)) await renderShot(i);
  }

  async function exportFilm() {
    if (!shots.length) return onError({ kind: "invalid", message: "add a shot first" });
    const started = performance.now();
    await renderAll();
    const first = shots[0].take;
    const fade = Math.round(Number(root.querySelector("#board-fade").value) * first.fps);
    const film = joinTakes(shots.map((s) => s.take), first.width, first.height, fade);
    const { blob, mime, ext } = await encodeVideo(film.pixels, first.width, first.height, film.frames, first.fps);
    onFilm({
      ...film,
      width: first.width,
      height: first.height,
      fps: first.fps,
      seed: first.seed,
      shots: shots.length,
      video: blob,
      mime,
      ext,
      prompt: shots.map((s) => s.prompt).join(" / "),
      seconds: (performance.now() - started) / 1000,
    });
  }

  function move(i, by) {
    const j = i + by;
    if (j < 0 || j >= shots.length) return;
    [shots[i], shots[j]] = [shots[j], shots[i]];
    draw();
  }

  function remove(i) {
    const [s] = shots.splice(i, 1);
    if (s.take) URL.revokeObjectURL(s.take.url);
    draw();
  }

  function row(shot, i) {
    const thumb = shot.take
      ? el("video", { src: shot.take.url, muted: true, loop: true, autoplay: true, playsInline: true })
      : el("div", { className: "shot-empty" }, "not rendered");
    const wrap = el("div", { className: "shot-thumb" }, thumb);
    if (shot.take && stale(i)) wrap.append(el("span", { className: "shot-badge" }, "out of date"));
    const prompt = el("input", { className: "shot-prompt", type: "text", value: shot.prompt, maxLength: 1000 });
    prompt.onchange = () => ((shot.prompt = prompt.value.trim() || shot.prompt), draw());
    const seconds = el("select", { className: "shot-seconds", title: "new footage in this shot" },
      ...DURATIONS.map((d) => el("option", { value: String(d), textContent: `${d} s`, selected: d === shot.seconds })));
    seconds.onchange = () => ((shot.seconds = Number(seconds.value)), draw());
    const cont = el("input", { className: "shot-continue", type: "checkbox", checked: continues(i), disabled: i === 0 || !!shot.image });
    cont.onchange = () => ((shot.continues = cont.checked), draw());
    const seed = el("input", { className: "shot-seed", type: "number", min: 0, step: 1, value: shot.seed, title: "seed" });
    seed.onchange = () => ((shot.seed = Math.max(0, Math.floor(Number(seed.value) || 0))), draw());
    const picture = shot.image ? el("img", { className: "shot-picture", src: shot.image.url, title: "first frame" }) : "";
    const button = (text, title, action, disabled = false) => {
      const b = el("button", { className: "secondary", textContent: text, title, disabled: busy || disabled });
      b.onclick = action;
      return b;
    };
    const take = shot.take ? `${shot.take.frames} frames${shot.take.carried ? `, ${shot.take.carried} carried over` : ""}` : "";
    return el("li", { className: "shot" },
      el("span", { className: "shot-number" }, String(i + 1)),
      wrap,
      el("div", { className: "shot-fields" },
        el("div", { className: "shot-line" }, picture, prompt),
        el("div", { className: "shot-line" },
          seconds,
          el("label", { className: "check" }, cont, i === 0 ? " first shot" : shot.image ? " starts from the picture" : " continues the last shot"),
          el("label", { className: "check" }, "seed ", seed),
          el("span", { className: "muted" }, take))),
      el("div", { className: "shot-actions" },
        button("↑", "earlier", () => move(i, -1), i === 0),
        button("↓", "later", () => move(i, 1), i === shots.length - 1),
        button("⟳", "render this shot again", () => job(() => renderShot(i))),
        button("✕", "remove", () => remove(i))));
  }

  function draw() {
    list.replaceChildren(...shots.map(row));
    empty.hidden = shots.length > 0;
    for (const id of ["board-render", "board-export"]) root.querySelector(`#${id}`).disabled = busy || !shots.length;
    root.querySelector("#shot-add").disabled = busy;
    const total = shots.reduce((s, x) => s + x.seconds, 0);
    const ready = shots.filter((_, i) => !stale(i)).length;
    note.textContent = shots.length ? `${shots.length} shot(s), about ${total} s · ${ready} of ${shots.length} rendered` : "";
  }

  root.querySelector("#board-render").onclick = () => job(renderAll);
  root.querySelector("#board-export").onclick = () => job(exportFilm);
  draw();
  return { add, shots, draw, busy: () => busy };
}
