// Frames to a file a <video> plays: WebCodecs through mediabunny (a
// maintained muxer, vendored into www/vendor by scripts/build-web.sh).
// MP4/H.264 where the browser can encode it, else WebM/VP9 (then VP8).
import {
  BufferTarget,
  Mp4OutputFormat,
  Output,
  QUALITY_HIGH,
  VideoSample,
  VideoSampleSource,
  WebMOutputFormat,
  canEncodeVideo,
} from "./vendor/mediabunny.min.mjs";

const CHOICES = [
  { codec: "avc", format: () => new Mp4OutputFormat({ fastStart: "in-memory" }), mime: "video/mp4", ext: "mp4" },
  { codec: "vp9", format: () => new WebMOutputFormat(), mime: "video/webm", ext: "webm" },
  { codec: "vp8", format: () => new WebMOutputFormat(), mime: "video/webm", ext: "webm" },
];

export async function pickCodec(width, height) {
  for (const c of CHOICES) {
    if (await canEncodeVideo(c.codec, { width, height })) return c;
  }
  throw { kind: "encoder", message: "this browser cannot encode H.264, VP9 or VP8 video (WebCodecs)" };
}

/** pixels: f32 RGB [F, H, W, 3] in [0, 1]. */
export async function encodeVideo(pixels, width, height, frames, fps) {
  const choice = await pickCodec(width, height);
  const output = new Output({ format: choice.format(), target: new BufferTarget() });
  const source = new VideoSampleSource({ codec: choice.codec, quality: QUALITY_HIGH, keyFrameInterval: 1 });
  output.addVideoTrack(source, { frameRate: fps });
  await output.start();
  const plane = width * height;
  const rgba = new Uint8ClampedArray(plane * 4);
  for (let f = 0; f < frames; f++) {
    const src = f * plane * 3;
    for (let i = 0; i < plane; i++) {
      rgba[i * 4] = pixels[src + i * 3] * 255 + 0.5;
      rgba[i * 4 + 1] = pixels[src + i * 3 + 1] * 255 + 0.5;
      rgba[i * 4 + 2] = pixels[src + i * 3 + 2] * 255 + 0.5;
      rgba[i * 4 + 3] = 255;
    }
    const sample = new VideoSample(rgba, {
      format: "RGBA",
      codedWidth: width,
      codedHeight: height,
      timestamp: f / fps,
      duration: 1 / fps,
    });
    await source.add(sample);
    sample.close();
  }
  await output.finalize();
  return { blob: new Blob([output.target.buffer], { type: choice.mime }), mime: choice.mime, ext: choice.ext };
}
