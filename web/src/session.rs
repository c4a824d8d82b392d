//! A loaded model in the browser: `Session.load` streams a bundle through a
//! JS fetcher (the worker's network and cache code, `www/loader.js`), and
//! `generate` runs the same pipeline as `framecast generate`.
//!
//! Errors cross as plain objects `{kind, message, ...}` so the page can act
//! on them: `webgpu` (no adapter), `lost` (start again), `too-large` (with
//! the largest size that fits), `invalid` (a bad option), `cancelled`,
//! `bundle` (a corrupt or inconsistent model) and `gpu` (anything else).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use framecast::bundle::{BundleError, BundleLoader, Manifest, ShardEntry, ShardSource};
use framecast::gpu::DType;
use framecast::models::Weights;
use framecast::models::ltx::VaeConfig;
use framecast::pipeline::size::{SizeRequest, parse_aspect, resolve};
use framecast::pipeline::{
    Cancel, Condition, DEFAULT_DECODE_TIMESTEP, Event, Fit, Frames, GenerateOptions, LtxPipeline,
    PipelineError, TextStage, Tiling, VideoInput,
};
use framecast::{AdapterChoice, Gpu, GpuError};
use js_sys::{Float32Array, Function, Object, Promise, Reflect, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};

/// Shards through JS: `fetcher.manifest()` resolves to the manifest's bytes
/// and `fetcher.shard(entry)` to a shard's (a Uint8Array each); the fetcher
/// does the network, the cache and the resumption, and this side checks
/// every shard's size and sha256 again before use (the loader does).
struct JsSource {
    fetcher: JsValue,
    label: String,
}

impl JsSource {
    async fn call(&self, method: &str, arg: Option<JsValue>) -> Result<Vec<u8>, BundleError> {
        let err = |message: String| BundleError::Http {
            url: self.label.clone(),
            message,
        };
        let f: Function = Reflect::get(&self.fetcher, &JsValue::from_str(method))
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| err(format!("the fetcher has no {method}()")))?;
        let promise = match arg {
            Some(a) => f.call1(&self.fetcher, &a),
            None => f.call0(&self.fetcher),
        }
        .map_err(|e| err(describe(&e)))?;
        let value = JsFuture::from(Promise::from(promise))
            .await
            .map_err(|e| err(describe(&e)))?;
        Ok(Uint8Array::new(&value).to_vec())
    }
}

impl ShardSource for JsSource {
    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn manifest(&self) -> Result<Vec<u8>, BundleError> {
        self.call("manifest", None).await
    }

    async fn shard(
        &self,
        shard: &ShardEntry,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<u8>, BundleError> {
        let entry = Object::new();
        let set = |k: &str, v: JsValue| Reflect::set(&entry, &JsValue::from_str(k), &v);
        let _ = set("file", JsValue::from_str(&shard.file));
        let _ = set("bytes", JsValue::from_f64(shard.bytes as f64));
        let _ = set("sha256", JsValue::from_str(&shard.sha256));
        let bytes = self.call("shard", Some(entry.into())).await?;
        progress(bytes.len() as u64);
        Ok(bytes)
    }
}

/// A JS exception's message.
fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// `{kind, message}` plus extra fields.
fn error_object(kind: &str, message: &str, extra: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    let _ = Reflect::set(&o, &"kind".into(), &kind.into());
    let _ = Reflect::set(&o, &"message".into(), &message.into());
    for (k, v) in extra {
        let _ = Reflect::set(&o, &(*k).into(), v);
    }
    o.into()
}

fn gpu_error(e: &GpuError) -> JsValue {
    let kind = match e {
        GpuError::NoAdapter(_) | GpuError::Device(_) => "webgpu",
        GpuError::Lost(_) => "lost",
        GpuError::OutOfMemory { .. } | GpuError::TooLarge { .. } => "too-large",
        _ => "gpu",
    };
    error_object(kind, &e.to_string(), &[])
}

fn bundle_error(e: &BundleError) -> JsValue {
    match e {
        BundleError::Gpu(g) => gpu_error(g),
        BundleError::Http { .. } | BundleError::Io { .. } => {
            error_object("network", &e.to_string(), &[])
        }
        _ => error_object("bundle", &e.to_string(), &[]),
    }
}

fn pipeline_error(e: &PipelineError) -> JsValue {
    match e {
        PipelineError::Cancelled => error_object("cancelled", &e.to_string(), &[]),
        PipelineError::TooLarge(_) => error_object("too-large", &e.to_string(), &[]),
        PipelineError::InvalidSize { .. } | PipelineError::Option(_) => {
            error_object("invalid", &e.to_string(), &[])
        }
        PipelineError::Gpu(g) => gpu_error(g),
        _ => error_object("gpu", &e.to_string(), &[]),
    }
}

/// The options `generate` takes: those of `framecast generate`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JsOptions {
    prompt: String,
    negative_prompt: Option<String>,
    width: Option<usize>,
    height: Option<usize>,
    aspect: Option<String>,
    resolution: Option<usize>,
    frames: Option<usize>,
    seconds: Option<f64>,
    fps: Option<f64>,
    steps: Option<usize>,
    timesteps: Option<Vec<f32>>,
    guidance: Option<f32>,
    seed: Option<f64>,
    max_sequence_length: Option<usize>,
    decode_timestep: Option<f32>,
    decode_noise_scale: Option<f32>,
    preview: bool,
    /// With `image`: how closely frame 0 holds to it (1 pins it).
    image_strength: Option<f32>,
    /// With `video`: how much of the clip is re-imagined.
    denoise_strength: Option<f64>,
    /// "crop" (default) or "pad", for pictures of another aspect.
    fit: Option<String>,
    image_cond_noise_scale: Option<f32>,
    /// Long clips: windows of this many frames, denoised in turn.
    temporal_tile: Option<usize>,
    temporal_overlap: Option<usize>,
    temporal_overlap_strength: Option<f32>,
}

/// Pixels the page passes: `{data, width, height, frames?}` with `data`
/// RGBA8 (an ImageData's, frames one after another) or a Float32Array of
/// RGB in [0, 1] (frames a generation returned, carried on losslessly).
fn js_frames(options: &JsValue, key: &str) -> Result<Option<Frames>, JsValue> {
    let Ok(v) = Reflect::get(options, &key.into()) else {
        return Ok(None);
    };
    frames_of(&v, key)
}

/// `keyframes: [{data, width, height, frames?, frame}]`: pictures or clips
/// pinned at `frame` (negative counts from the end: -1 is the last frame).
fn js_keyframes(options: &JsValue) -> Result<Vec<(Frames, i64)>, JsValue> {
    let Ok(list) = Reflect::get(options, &"keyframes".into()) else {
        return Ok(Vec::new());
    };
    if list.is_undefined() || list.is_null() {
        return Ok(Vec::new());
    }
    let list: js_sys::Array = list
        .dyn_into()
        .map_err(|_| error_object("invalid", "keyframes: expected an array", &[]))?;
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let what = format!("keyframes[{i}]");
        let frame = Reflect::get(&item, &"frame".into())
            .ok()
            .and_then(|f| f.as_f64())
            .ok_or_else(|| error_object("invalid", &format!("{what}: needs frame"), &[]))?;
        if let Some(f) = frames_of(&item, &what)? {
            out.push((f, frame as i64));
        }
    }
    Ok(out)
}

fn frames_of(v: &JsValue, key: &str) -> Result<Option<Frames>, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    let v = v.clone();
    let bad = |m: &str| error_object("invalid", &format!("{key}: {m}"), &[]);
    let num = |k: &str| {
        Reflect::get(&v, &k.into())
            .ok()
            .and_then(|n| n.as_f64())
            .map(|n| n as usize)
    };
    let (w, h) = num("width")
        .zip(num("height"))
        .ok_or_else(|| bad("needs width and height"))?;
    let frames = num("frames").unwrap_or(1);
    let data = Reflect::get(&v, &"data".into()).map_err(|_| bad("needs data"))?;
    // Frames the runtime made (a storyboard's previous shot): f32 RGB as is.
    if let Ok(rgb) = data.clone().dyn_into::<Float32Array>() {
        if rgb.length() as usize != w * h * 3 * frames {
            return Err(bad(&format!(
                "{} floats are not {frames} RGB frames of {w}x{h}",
                rgb.length()
            )));
        }
        return Frames::new(rgb.to_vec(), frames, h, w)
            .map(Some)
            .map_err(|e| bad(&e.to_string()));
    }
    let rgba = Uint8Array::new(&data).to_vec();
    if rgba.len() != w * h * 4 * frames {
        return Err(bad(&format!(
            "{} bytes are not {frames} RGBA frames of {w}x{h}",
            rgba.len()
        )));
    }
    let rgb: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    Frames::from_rgb8(&rgb, frames, h, w)
        .map(Some)
        .map_err(|e| bad(&e.to_string()))
}

/// What has arrived of the model so far.
#[derive(Default)]
struct Loaded {
    /// The tokenizer and T5, built as soon as their tensors are in.
    text: Option<Arc<TextStage>>,
    /// Everything, once the last shard is in.
    pipe: Option<Rc<LtxPipeline>>,
    /// Why the load stopped, for the generations waiting on it.
    failed: Option<JsValue>,
}

struct Inner {
    gpu: Gpu,
    manifest: Manifest,
    act: DType,
    cancel: Cancel,
    /// The VAE's compression, from its config: sizes can be resolved
    /// before the weights are in.
    spatial: usize,
    temporal: usize,
    loaded: RefCell<Loaded>,
    /// Generations waiting for a stage to arrive.
    waiting: RefCell<Vec<Waker>>,
}

impl Inner {
    fn update(&self, f: impl FnOnce(&mut Loaded)) {
        f(&mut self.loaded.borrow_mut());
        for w in self.waiting.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Waits until `pick` finds what it needs in the loaded state; rejects
    /// when the load failed or the run is cancelled.
    async fn wait_for<T>(&self, pick: impl Fn(&Loaded) -> Option<T>) -> Result<T, JsValue> {
        std::future::poll_fn(|cx| {
            let loaded = self.loaded.borrow();
            if let Some(v) = pick(&loaded) {
                return Poll::Ready(Ok(v));
            }
            if let Some(e) = &loaded.failed {
                return Poll::Ready(Err(e.clone()));
            }
            if self.cancel.is_cancelled() {
                let e = PipelineError::Cancelled;
                return Poll::Ready(Err(pipeline_error(&e)));
            }
            self.waiting.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// A model on this page's GPU: opened (device and manifest), then loaded
/// shard by shard; a generation may start before the load ends.
#[wasm_bindgen]
pub struct Session {
    inner: Rc<Inner>,
    source: RefCell<Option<JsSource>>,
}

#[wasm_bindgen]
impl Session {
    /// Opens WebGPU and reads the manifest of the bundle `label` (its URL,
    /// for messages) through `fetcher`. `f32` forces f32 activations where
    /// the adapter has f16. Nothing is downloaded yet: see `load`.
    pub async fn open(fetcher: JsValue, label: String, f32: bool) -> Result<Session, JsValue> {
        let gpu = Gpu::new(&AdapterChoice::default())
            .await
            .map_err(|e| gpu_error(&e))?;
        let source = JsSource { fetcher, label };
        let bytes = source.manifest().await.map_err(|e| bundle_error(&e))?;
        let manifest = Manifest::parse(&bytes).map_err(|e| bundle_error(&e))?;
        let vae: VaeConfig = manifest
            .components
            .get("vae")
            .and_then(|c| serde_json::from_value(c.config.clone()).ok())
            .ok_or_else(|| error_object("bundle", "the bundle has no readable vae config", &[]))?;
        let act = if gpu.caps.f16 && !f32 {
            DType::F16
        } else {
            DType::F32
        };
        Ok(Session {
            inner: Rc::new(Inner {
                gpu,
                act,
                cancel: Cancel::new(),
                spatial: vae.spatial_compression(),
                temporal: vae.temporal_compression(),
                manifest,
                loaded: RefCell::default(),
                waiting: RefCell::default(),
            }),
            source: RefCell::new(Some(source)),
        })
    }

    /// Streams the shards in the manifest's order; `on_progress({component,
    /// done, total})` as bytes arrive and `{component, ready: true}` when a
    /// stage can run (`text_encoder` first, then `all`). A generation
    /// started before this resolves encodes its prompt as soon as the text
    /// encoder is in and waits for the rest.
    pub fn load(&self, on_progress: Function) -> Promise {
        let inner = self.inner.clone();
        let source = self.source.borrow_mut().take();
        future_to_promise(async move {
            let source = source
                .ok_or_else(|| error_object("invalid", "this model is already loading", &[]))?;
            let result = stream(&inner, source, &on_progress).await;
            if let Err(e) = &result {
                inner.update(|l| l.failed = Some(e.clone()));
            }
            result.map(|()| JsValue::UNDEFINED)
        })
    }

    /// What the page needs to offer choices: the model's native settings,
    /// its size rules, and the adapter (`weightBytes`: on the GPU, once
    /// loaded; `null` before).
    pub fn info(&self) -> Result<JsValue, JsValue> {
        let i = &self.inner;
        let weight_bytes = i.loaded.borrow().pipe.as_ref().map(|p| p.weight_bytes());
        let value = serde_json::json!({
            "defaults": i.manifest.defaults,
            "spatialCompression": i.spatial,
            "temporalCompression": i.temporal,
            "weightBytes": weight_bytes,
            "adapter": i.gpu.describe(),
            "f16": i.act == DType::F16,
            "maxBufferBytes": i.gpu.limits.max_buffer_size,
        });
        js_sys::JSON::parse(&value.to_string())
    }

    /// Generates a clip. Resolves to `{width, height, frames, fps, seed,
    /// pixels}` (`pixels`: f32 RGB [F, H, W, 3] in [0, 1]); rejects with an
    /// error object. `on_event` gets `{type: "stage", stage}`, `{type:
    /// "step", index, total, timestep}` and `{type: "stageDone", stage,
    /// seconds}`, `{type: "size", width, height, frames, fps, snapped, seed}`
    /// first, and with `preview: true` `{type: "preview", index, channels,
    /// frames, height, width, latents}` after each step.
    pub fn generate(&self, options: JsValue, on_event: Function) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let latents = Reflect::get(&options, &"latents".into())
                .ok()
                .and_then(|v| v.dyn_into::<Float32Array>().ok())
                .map(|a| a.to_vec());
            let image = js_frames(&options, "image")?;
            let clip = js_frames(&options, "video")?;
            let keyframes = js_keyframes(&options)?;
            // The rest as JSON, without the pixel arrays.
            let plain = Object::assign(&Object::new(), &options.clone().into());
            for key in ["image", "video", "latents", "keyframes"] {
                let _ = Reflect::delete_property(&plain, &key.into());
            }
            let json = js_sys::JSON::stringify(&plain)
                .map(String::from)
                .unwrap_or_default();
            let o: JsOptions = serde_json::from_str(&json)
                .map_err(|e| error_object("invalid", &format!("options: {e}"), &[]))?;
            if o.prompt.trim().is_empty() {
                return Err(error_object("invalid", "the prompt is empty", &[]));
            }
            let aspect = o
                .aspect
                .as_deref()
                .map(parse_aspect)
                .transpose()
                .map_err(|e| error_object("invalid", &e, &[]))?;
            let mut request = SizeRequest {
                width: o.width,
                height: o.height,
                aspect,
                resolution: o.resolution,
                frames: o.frames,
                seconds: o.seconds,
                fps: o.fps,
            };
            // A clip to re-generate sets the aspect and length unless given.
            if let Some(c) = &clip {
                if request.width.is_none() && request.aspect.is_none() {
                    request.aspect = Some((c.width, c.height));
                }
                if request.frames.is_none() && request.seconds.is_none() {
                    request.frames = Some(c.frames);
                }
            }
            let fit = o
                .fit
                .as_deref()
                .map(Fit::parse)
                .transpose()
                .map_err(|e| error_object("invalid", &e, &[]))?
                .unwrap_or_default();
            let (spatial, temporal) = (inner.spatial, inner.temporal);
            let mut resolved = resolve(&request, &inner.manifest.defaults, spatial, temporal)
                .map_err(|e| error_object("invalid", &e, &[]))?;
            if let Some(c) = &clip {
                while resolved.size.frames > c.frames && resolved.size.frames > temporal {
                    resolved.size.frames -= temporal;
                }
            }
            let size = resolved.size;
            let mut conditions: Vec<Condition> = image
                .map(|f| Condition {
                    frames: f.fit(size.width, size.height, fit),
                    frame_index: 0,
                    strength: o.image_strength.unwrap_or(1.0),
                })
                .into_iter()
                .collect();
            for (f, at) in keyframes {
                let index = if at < 0 { size.frames as i64 + at } else { at };
                if index < 0 || index >= size.frames as i64 {
                    return Err(error_object(
                        "invalid",
                        &format!(
                            "a keyframe at frame {at} is outside the clip's {} frames",
                            size.frames
                        ),
                        &[],
                    ));
                }
                conditions.push(Condition {
                    frames: f.fit(size.width, size.height, fit),
                    frame_index: index as usize,
                    strength: o.image_strength.unwrap_or(1.0),
                });
            }
            let video_input = clip.map(|c| VideoInput {
                frames: c.fit(size.width, size.height, fit),
                denoise_strength: o.denoise_strength.unwrap_or(0.6),
            });
            let d = &inner.manifest.defaults;
            let seed = o
                .seed
                .map(|s| s.max(0.0) as u64)
                .unwrap_or_else(|| (js_sys::Math::random() * 1_000_000_007.0) as u64);
            let opts = GenerateOptions {
                prompt: o.prompt.clone(),
                negative_prompt: o.negative_prompt.clone(),
                width: size.width,
                height: size.height,
                num_frames: size.frames,
                frame_rate: resolved.fps,
                num_inference_steps: o.steps.or(d.steps).unwrap_or(8),
                timesteps: match (&o.timesteps, o.steps) {
                    (Some(t), _) => Some(t.clone()),
                    (None, Some(_)) => None,
                    (None, None) => d.timesteps.clone(),
                },
                guidance_scale: o.guidance.or(d.guidance).unwrap_or(1.0),
                guidance_rescale: 0.0,
                seed,
                max_sequence_length: o.max_sequence_length.unwrap_or(256),
                latents,
                decode_timestep: o.decode_timestep.unwrap_or(DEFAULT_DECODE_TIMESTEP),
                decode_noise_scale: o.decode_noise_scale,
                preview: o.preview,
                conditions,
                video: video_input,
                image_cond_noise_scale: o.image_cond_noise_scale.unwrap_or(0.15),
                tiling: o.temporal_tile.map(|frames| Tiling {
                    frames,
                    overlap: o.temporal_overlap.unwrap_or(2 * temporal),
                    strength: o.temporal_overlap_strength.unwrap_or(0.5),
                }),
            };
            let emit = |fields: &[(&str, JsValue)]| {
                let e = Object::new();
                for (k, v) in fields {
                    let _ = Reflect::set(&e, &(*k).into(), v);
                }
                let _ = on_event.call1(&JsValue::NULL, &e);
            };
            emit(&[
                ("type", "size".into()),
                ("width", (size.width as f64).into()),
                ("height", (size.height as f64).into()),
                ("frames", (size.frames as f64).into()),
                ("fps", resolved.fps.into()),
                ("snapped", resolved.snapped().into()),
                ("seed", (seed as f64).into()),
            ]);
            inner.cancel.reset();
            let mut on = |e: Event| match e {
                Event::StageStarted(s) => {
                    emit(&[("type", "stage".into()), ("stage", s.name().into())])
                }
                Event::Step {
                    index,
                    total,
                    timestep,
                } => emit(&[
                    ("type", "step".into()),
                    ("index", (index as f64).into()),
                    ("total", (total as f64).into()),
                    ("timestep", (timestep as f64).into()),
                ]),
                Event::StageFinished { stage, seconds } => emit(&[
                    ("type", "stageDone".into()),
                    ("stage", stage.name().into()),
                    ("seconds", seconds.into()),
                ]),
                Event::Preview {
                    index,
                    shape,
                    latents,
                } => emit(&[
                    ("type", "preview".into()),
                    ("index", (index as f64).into()),
                    ("channels", (shape[0] as f64).into()),
                    ("frames", (shape[1] as f64).into()),
                    ("height", (shape[2] as f64).into()),
                    ("width", (shape[3] as f64).into()),
                    ("latents", Float32Array::from(latents.as_slice()).into()),
                ]),
                Event::PromptTruncated {
                    negative,
                    tokens,
                    kept,
                } => emit(&[
                    ("type", "warning".into()),
                    (
                        "message",
                        Event::truncation_message(negative, tokens, kept).into(),
                    ),
                ]),
            };
            // The prompt as soon as the text encoder is in (the rest of the
            // model may still be downloading), then the rest.
            let waiting = |what: &str| {
                emit(&[("type", "waiting".into()), ("for", what.into())]);
            };
            if inner.loaded.borrow().text.is_none() {
                waiting("text encoder");
            }
            let text = inner.wait_for(|l| l.text.clone()).await?;
            let prompt = text
                .encode(&inner.gpu, &opts, &mut on, &inner.cancel)
                .await
                .map_err(|e| pipeline_error(&e))?;
            if inner.loaded.borrow().pipe.is_none() {
                waiting("model");
            }
            let pipe = inner.wait_for(|l| l.pipe.clone()).await?;
            let video = pipe
                .generate_from(&inner.gpu, &opts, prompt, &mut on, &inner.cancel)
                .await
                .map_err(|e| pipeline_error(&e))?;
            let out = Object::new();
            let set = |k: &str, v: JsValue| Reflect::set(&out, &k.into(), &v);
            let _ = set("width", (video.width as f64).into());
            let _ = set("height", (video.height as f64).into());
            let _ = set("frames", (video.num_frames as f64).into());
            let _ = set("fps", video.fps.into());
            let _ = set("seed", (seed as f64).into());
            let _ = set("pixels", Float32Array::from(video.frames.as_slice()).into());
            Ok(out.into())
        })
    }

    /// Stops the running generation before its next GPU submission.
    pub fn cancel(&self) {
        self.inner.cancel.cancel();
        // A generation waiting for the download hears it now.
        self.inner.update(|_| {});
    }

    /// Destroys the GPU device, as a driver reset or a GPU process crash
    /// would: later calls reject with kind `lost`. It lets the page's
    /// recovery be tested without waiting for a real loss.
    #[wasm_bindgen(js_name = loseDevice)]
    pub fn lose_device(&self) {
        self.inner.gpu.destroy();
    }
}

/// Streams the shards into `inner`: the text stage as soon as its tensors
/// are in, the whole pipeline after the last shard.
async fn stream(inner: &Inner, source: JsSource, on_progress: &Function) -> Result<(), JsValue> {
    let mut loader = BundleLoader::with_manifest(source, inner.manifest.clone())
        .map_err(|e| bundle_error(&e))?;
    let ready = |component: &str| {
        let o = Object::new();
        let _ = Reflect::set(&o, &"component".into(), &component.into());
        let _ = Reflect::set(&o, &"ready".into(), &true.into());
        let _ = on_progress.call1(&JsValue::NULL, &o);
    };
    let text_tensors = TextStage::tensor_count(&inner.manifest);
    let mut weights = Weights::new();
    let mut text_arrived = 0;
    let mut text: Option<Arc<TextStage>> = None;
    loop {
        let batch = loader
            .next(&mut |p| {
                let o = Object::new();
                let _ = Reflect::set(&o, &"component".into(), &p.component.as_str().into());
                let _ = Reflect::set(&o, &"done".into(), &(p.done as f64).into());
                let _ = Reflect::set(&o, &"total".into(), &(p.total as f64).into());
                let _ = on_progress.call1(&JsValue::NULL, &o);
            })
            .await
            .map_err(|e| bundle_error(&e))?;
        let Some(batch) = batch else { break };
        text_arrived += batch
            .iter()
            .filter(|t| t.entry.component == "text_encoder")
            .count();
        weights.extend(batch);
        if text.is_none() && text_arrived == text_tensors {
            let stage = TextStage::load(&inner.gpu, &inner.manifest, &weights)
                .map_err(|e| error_object("bundle", &e.to_string(), &[]))?;
            // Its CPU copies are on the GPU now.
            weights.release("text_encoder");
            let stage = Arc::new(stage);
            text = Some(stage.clone());
            inner.update(|l| l.text = Some(stage));
            ready("text_encoder");
        }
    }
    let text = text.ok_or_else(|| {
        error_object(
            "bundle",
            "the bundle's text encoder tensors are incomplete",
            &[],
        )
    })?;
    let pipe = LtxPipeline::with_text(&inner.gpu, &inner.manifest, &weights, inner.act, text)
        .map_err(|e| error_object("bundle", &e.to_string(), &[]))?;
    inner.update(|l| l.pipe = Some(Rc::new(pipe)));
    ready("all");
    Ok(())
}
