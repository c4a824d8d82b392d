// A cheap look at the latents while denoising: the middle latent frame
// mapped to RGB by the model's linear preview map (its bundle's
// `defaults.preview`), or by its first three channels where it has none.
export function previewImage(event, map) {
  const { channels: c, frames: f, height: h, width: w, latents } = event;
  const frame = Math.floor(f / 2);
  const plane = h * w;
  const rgba = new Uint8ClampedArray(plane * 4);
  for (let i = 0; i < plane; i++) {
    const rgb = [0, 0, 0];
    if (map) {
      for (let k = 0; k < 3; k++) rgb[k] = map.bias[k];
      for (let ch = 0; ch < c; ch++) {
        const v = latents[(ch * f + frame) * plane + i];
        const row = map.weights[ch];
        rgb[0] += row[0] * v;
        rgb[1] += row[1] * v;
        rgb[2] += row[2] * v;
      }
    } else {
      for (let k = 0; k < 3; k++) rgb[k] = 0.5 + 0.25 * latents[(k * f + frame) * plane + i];
    }
    rgba[i * 4] = rgb[0] * 255;
    rgba[i * 4 + 1] = rgb[1] * 255;
    rgba[i * 4 + 2] = rgb[2] * 255;
    rgba[i * 4 + 3] = 255;
  }
  return { index: event.index, width: w, height: h, rgba };
}
