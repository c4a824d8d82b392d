//! Runs the LTX-Video stages at their real sizes on any bundle (random
//! weights do: only shapes matter here), to show that buffer splitting,
//! binding and dispatch limits and the memory plan hold: the T5 encoder on
//! a 256-token prompt, then one transformer forward at 512x320x49 (1120
//! latent tokens, batch 1, no CFG). Prints times and peak GPU memory.
//!
//! ```text
//! cargo run --release -p framecast --example real_shapes -- <bundle dir> \
//!     [--skip-transformer] [--f16]
//! ```
//!
//! Components are streamed in the manifest's order (text encoder, then
//! transformer) and each one's CPU copy is released once it is uploaded; the
//! T5 is dropped before the transformer loads, as the pipeline's memory plan
//! has it. The VAE is never loaded.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use framecast::bundle::{BundleLoader, FsSource, Manifest};
use framecast::gpu::{AdapterChoice, DType, Gpu, Tensor};
use framecast::models::Weights;
use framecast::models::ltx::text_encoder::T5Encoder;
use framecast::models::ltx::transformer::{self, Forward, LtxTransformer};
use framecast::models::ltx::{T5Config, TransformerConfig, VaeConfig};
use framecast::models::tokenizer::PromptTokenizer;
use framecast::pipeline::latents;
use framecast::pipeline::{MemoryEstimate, VideoSize};

const SEQ: usize = 256;
const SIZE: VideoSize = VideoSize {
    width: 512,
    height: 320,
    frames: 49,
};

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

fn config<T: serde::de::DeserializeOwned>(manifest: &Manifest, component: &str) -> Result<T> {
    let c = manifest
        .components
        .get(component)
        .with_context(|| format!("the bundle has no '{component}' component"))?;
    serde_json::from_value(c.config.clone()).with_context(|| format!("{component}/config.json"))
}

/// The components this harness uses; the VAE's tensors are dropped as they come.
const USED: [&str; 2] = ["text_encoder", "transformer"];

/// Streams shards until every tensor of `component` is in `weights`. A
/// shard can hold the end of one component and the start of the next, so
/// tensors of the other used component met on the way are kept.
async fn load(
    loader: &mut BundleLoader<FsSource>,
    weights: &mut Weights,
    component: &str,
) -> Result<()> {
    let started = Instant::now();
    let manifest = loader.manifest().clone();
    let present = |w: &Weights| {
        manifest
            .tensors
            .iter()
            .filter(|t| t.component == component && w.root(component).has(&t.name))
            .count()
    };
    let total = manifest
        .tensors
        .iter()
        .filter(|t| t.component == component)
        .count();
    let mut have = present(weights);
    while have < total {
        let Some(batch) = loader.next(&mut |_| {}).await? else {
            bail!("the bundle ended before all of '{component}' was read");
        };
        let used: Vec<_> = batch
            .into_iter()
            .filter(|t| USED.contains(&t.entry.component.as_str()))
            .collect();
        have += used
            .iter()
            .filter(|t| t.entry.component == component)
            .count();
        weights.extend(used);
    }
    eprintln!(
        "read {component} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How many of the values are not finite: random weights must still give numbers.
async fn non_finite(gpu: &Gpu, t: &Tensor) -> Result<usize> {
    Ok(gpu.read(t).await?.iter().filter(|v| !v.is_finite()).count())
}

fn report(gpu: &Gpu, stage: &str, seconds: f64, weights: u64) {
    let m = gpu.memory();
    println!(
        "{stage}: {seconds:.1} s; weights {} on the GPU; peak {} (live {})",
        mib(weights),
        mib(m.peak),
        mib(m.live)
    );
}

async fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .context("usage: real_shapes <bundle dir> [--skip-transformer] [--f16]")?;
    let skip_transformer = args.iter().any(|a| a == "--skip-transformer");
    let f16 = args.iter().any(|a| a == "--f16");

    let gpu = Gpu::new(&AdapterChoice::from_env()).await?;
    println!("adapter: {}", gpu.describe());
    println!(
        "limits: storage binding {}, buffer {}, workgroups/dim {}",
        mib(gpu.limits.max_storage_buffer_binding_size as u64),
        mib(gpu.limits.max_buffer_size),
        gpu.limits.max_compute_workgroups_per_dimension
    );
    let act = if f16 && gpu.caps.f16 {
        DType::F16
    } else {
        DType::F32
    };
    let mut loader = BundleLoader::open(FsSource::new(dir)).await?;
    let manifest = loader.manifest().clone();
    let t5_config: T5Config = config(&manifest, "text_encoder")?;
    let dit_config: TransformerConfig = config(&manifest, "transformer")?;
    let vae_config: VaeConfig = config(&manifest, "vae")?;
    let mut weights = Weights::new();

    // 1. T5 on a prompt long enough to fill all 256 positions.
    load(&mut loader, &mut weights, "text_encoder").await?;
    let t5 = T5Encoder::load(&gpu, weights.root("text_encoder"), &t5_config)?;
    weights.release("text_encoder");
    let json = manifest
        .tokenizer
        .get("tokenizer.json")
        .context("the bundle has no tokenizer.json")?;
    let tokenizer = PromptTokenizer::from_json(&serde_json::to_vec(json)?, "<pad>")?;
    let prompt = "a red ball rolls across a wooden table in warm evening light, the camera \
                  slowly pans to follow it while dust floats in the sunbeams "
        .repeat(8);
    let tokens = tokenizer.encode(&prompt, SEQ)?;
    println!(
        "prompt: {} tokens of {SEQ} real (truncated: {})",
        tokens.mask.iter().filter(|&&m| m == 1).count(),
        tokens.truncated
    );
    gpu.reset_peak();
    let started = Instant::now();
    let mut step = gpu.step("t5");
    let states = t5.encode(&mut step, &tokens.ids, &tokens.mask, 1)?;
    step.submit()?;
    gpu.wait().await?;
    gpu.check()?;
    report(
        &gpu,
        "t5 encode",
        started.elapsed().as_secs_f64(),
        t5.bytes(),
    );
    println!(
        "  states {:?}, non-finite {}; embedding table on the CPU {}",
        states.shape,
        non_finite(&gpu, &states).await?,
        mib(t5.host_bytes())
    );
    drop(t5);
    gpu.trim();
    if skip_transformer {
        return Ok(());
    }

    // 2. One denoising forward on random latents.
    let states = if act == DType::F32 {
        states
    } else {
        gpu.upload(&gpu.read(&states).await?, &states.shape, act)?
    };
    load(&mut loader, &mut weights, "transformer").await?;
    let dit = LtxTransformer::load(&gpu, weights.root("transformer"), &dit_config, act)?;
    weights.release("transformer");
    let (spatial, temporal) = (
        vae_config.spatial_compression(),
        vae_config.temporal_compression(),
    );
    let [lf, lh, lw] = SIZE.latent(spatial, temporal);
    let (pt, p) = (dit_config.patch_size_t, dit_config.patch_size);
    let n = (lf / pt) * (lh / p) * (lw / p);
    let estimate = MemoryEstimate::ltx(
        &t5_config,
        &dit_config,
        &vae_config,
        SIZE,
        SEQ,
        1,
        act,
        dit.bytes(),
    );
    println!(
        "transformer: {n} tokens ({lf}x{lh}x{lw} latent), {act:?}; plan: activations {}, \
         largest buffer {}",
        mib(estimate.activations),
        mib(estimate.largest_buffer)
    );
    let mut step = gpu.step("caption and rope");
    let caption = dit.project_caption(&mut step, &states)?;
    let bias = transformer::mask_bias(&tokens.mask);
    let mask = gpu.upload(&bias, &[1, SEQ], DType::F32)?;
    let grid = transformer::rope_grid(&vae_config, &dit_config);
    let rope = dit.rope(&mut step, &grid.latent_coords(lf, lh, lw, 25.0))?;
    step.submit()?;
    gpu.wait().await?;
    let noise = latents::noise(0, 0, n * dit_config.in_channels);
    let hidden = gpu.upload(&noise, &[n, dit_config.in_channels], act)?;
    let out = gpu.empty(&[n, dit_config.out_channels], act)?;
    gpu.reset_peak();
    let started = Instant::now();
    let mut step = gpu.step("denoising step");
    let x = Forward {
        hidden: &hidden,
        batch: 1,
        tokens: n,
        timesteps: &[1000.0],
        caption: &caption,
        caption_len: SEQ,
        mask: &mask,
        rope: &rope,
    };
    dit.forward(&mut step, x, &out)?;
    step.submit()?;
    gpu.wait().await?;
    gpu.check()?;
    report(
        &gpu,
        "transformer step",
        started.elapsed().as_secs_f64(),
        dit.bytes(),
    );
    println!(
        "  out {:?}, non-finite {}",
        out.shape,
        non_finite(&gpu, &out).await?
    );
    Ok(())
}

fn main() -> Result<()> {
    pollster::block_on(run())
}
