// A picture or clip the visitor starts from, read into RGBA pixels for the
// worker: {kind: "image" | "video", data, width, height, frames, url}; or
// a picture taken with the camera.
// Scaled so the short side is `shortSide` (the runtime fits it to the
// video's exact size, crop or pad); a clip is sampled at `fps` for at most
// `maxFrames` frames through a <video> element.

function scaledSize(w, h, shortSide) {
  const s = Math.min(1, shortSide / Math.min(w, h));
  return [Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s))];
}

function draw(source, w, h) {
  const canvas = new OffscreenCanvas(w, h);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, w, h);
  return ctx.getImageData(0, 0, w, h).data;
}

export async function readPicture(file, shortSide) {
  const bitmap = await createImageBitmap(file);
  const [w, h] = scaledSize(bitmap.width, bitmap.height, shortSide);
  const data = draw(bitmap, w, h);
  bitmap.close();
  return { kind: "image", data, width: w, height: h, frames: 1, url: URL.createObjectURL(file) };
}

export async function readClip(file, shortSide, fps, maxFrames) {
  const url = URL.createObjectURL(file);
  const video = document.createElement("video");
  video.muted = true;
  video.preload = "auto";
  video.src = url;
  await new Promise((ok, fail) => {
    video.onloadeddata = ok;
    video.onerror = () => fail(new Error("this browser cannot decode that clip; try an MP4 (H.264) or WebM"));
  });
  const [w, h] = scaledSize(video.videoWidth, video.videoHeight, shortSide);
  const count = Math.max(1, Math.min(maxFrames, Math.floor(video.duration * fps) + 1));
  const data = new Uint8ClampedArray(w * h * 4 * count);
  for (let i = 0; i < count; i++) {
    const t = Math.min(i / fps, Math.max(0, video.duration - 1e-3));
    if (Math.abs(video.currentTime - t) > 1e-4 || i === 0) {
      await new Promise((ok) => {
        video.onseeked = ok;
        video.currentTime = t;
      });
    }
    data.set(draw(video, w, h), i * w * h * 4);
  }
  return { kind: "video", data, width: w, height: h, frames: count, url };
}

export function readSource(file, shortSide, fps, maxFrames) {
  if (file.type.startsWith("image/")) return readPicture(file, shortSide);
  if (file.type.startsWith("video/")) return readClip(file, shortSide, fps, maxFrames);
  return Promise.reject(new Error(`${file.name}: drop a picture (PNG, JPEG) or a clip (MP4, WebM)`));
}

/** The camera's stream (the page shows it before the picture is taken). */
export async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) throw new Error("this browser offers no camera to pages");
  try {
    return await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
  } catch (e) {
    const why = {
      NotAllowedError: "the camera was not allowed (check the site's permissions)",
      NotFoundError: "no camera is attached",
      NotReadableError: "the camera is in use by another program",
    }[e.name];
    throw new Error(why ?? `the camera could not start (${e.message})`);
  }
}

/** The frame a playing camera <video> shows now, as a picture source. */
export async function takePicture(video, shortSide) {
  if (!video.videoWidth) throw new Error("the camera has not shown a picture yet");
  const [w, h] = scaledSize(video.videoWidth, video.videoHeight, shortSide);
  const data = draw(video, w, h);
  const canvas = new OffscreenCanvas(w, h);
  canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(data), w, h), 0, 0);
  const png = await canvas.convertToBlob({ type: "image/png" });
  return { kind: "image", data, width: w, height: h, frames: 1, url: URL.createObjectURL(png), png };
}
