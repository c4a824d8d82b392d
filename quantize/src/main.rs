//! The `framecast-quantize` command.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use framecast::bundle::WeightDType;
use framecast_quantize::{Options, convert, dequantize, rules::Rule, verify};

#[derive(Parser)]
#[command(
    name = "framecast-quantize",
    version,
    about = "Checkpoints to framecast weight bundles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a diffusers pipeline folder into a bundle.
    Convert {
        pipeline_dir: PathBuf,
        bundle_dir: PathBuf,
        /// Type of matrix weights: q4, q8, f16 or f32.
        #[arg(long, default_value = "q4")]
        weights: WeightDType,
        /// Values per q4/q8 scale, along a row.
        #[arg(long, default_value_t = 32)]
        group_size: usize,
        /// Largest shard: MiB, or bytes with a K or M suffix (e.g. 256K).
        #[arg(long, default_value = "64", value_parser = parse_size)]
        shard_size: u64,
        /// Tensors with fewer elements keep f16.
        #[arg(long, default_value_t = 1024)]
        min_elements: usize,
        /// GLOB=TYPE, first match wins, before the defaults (norms, biases,
        /// embedding and modulation tables stay f16). A GLOB with a `/`
        /// matches `component/name`, e.g. 'vae/*=f16' or '*.to_q.weight=q8'.
        #[arg(long = "keep", value_name = "GLOB=TYPE")]
        rules: Vec<Rule>,
        /// Replace an existing bundle folder.
        #[arg(long)]
        force: bool,
        /// No per-tensor error lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Check a bundle's manifest and the hash of every shard.
    Verify { bundle_dir: PathBuf },
    /// Show a bundle's sizes, compression and worst-quantised tensors.
    Inspect {
        bundle_dir: PathBuf,
        /// How many of the worst tensors to list.
        #[arg(long, default_value_t = 10)]
        worst: usize,
        /// Also print the whole tensor table.
        #[arg(long)]
        tensors: bool,
    },
    /// Write a bundle back out as a diffusers folder in f32.
    Dequantize {
        bundle_dir: PathBuf,
        pipeline_dir: PathBuf,
        #[arg(long)]
        force: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Convert {
            pipeline_dir,
            bundle_dir,
            weights,
            group_size,
            shard_size,
            min_elements,
            rules,
            force,
            quiet,
        } => {
            let opts = Options {
                weights,
                group: group_size,
                shard_size,
                min_elements,
                rules,
                force,
                verbose: !quiet,
                progress: true,
            };
            let s = convert(&pipeline_dir, &bundle_dir, &opts)?;
            println!(
                "{}: {} tensors in {} shards, {:.1} MB from {:.1} MB ({:.2}x) in {:.1} s ({:.1} MB/s)",
                bundle_dir.display(),
                s.manifest.tensors.len(),
                s.manifest.shards.len(),
                s.bundle_bytes as f64 / 1e6,
                s.source_bytes as f64 / 1e6,
                s.source_bytes as f64 / s.bundle_bytes.max(1) as f64,
                s.seconds,
                s.source_bytes as f64 / 1e6 / s.seconds.max(1e-9)
            );
        }
        Command::Verify { bundle_dir } => {
            let m = verify::verify(&bundle_dir)?;
            println!(
                "{}: ok ({} tensors, {} shards, {:.1} MB, every sha256 matches)",
                bundle_dir.display(),
                m.tensors.len(),
                m.shards.len(),
                m.total_bytes() as f64 / 1e6
            );
        }
        Command::Inspect {
            bundle_dir,
            worst,
            tensors,
        } => print!("{}", verify::inspect(&bundle_dir, worst, tensors)?),
        Command::Dequantize {
            bundle_dir,
            pipeline_dir,
            force,
        } => {
            let m = dequantize::dequantize(&bundle_dir, &pipeline_dir, force)?;
            println!(
                "{}: {} tensors written as f32",
                pipeline_dir.display(),
                m.tensors.len()
            );
        }
    }
    Ok(())
}

/// `64` (MiB), `256K` or `16M`, in bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1u64 << 20),
        _ => (t, 1u64 << 20),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a number of MiB, or e.g. 256K"))?;
    match n.checked_mul(unit) {
        Some(0) => Err("the shard size must be positive".into()),
        Some(v) => Ok(v),
        None => Err(format!("{s:?} is too large")),
    }
}
