//! The native `framecast` command.

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "framecast", version, about = "Text-to-video on your own GPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the GPU adapter, its features and limits, and check every kernel
    /// against its CPU reference. Select an adapter with FRAMECAST_BACKEND and
    /// FRAMECAST_ADAPTER; force the f32 path with FRAMECAST_F16=0.
    Doctor,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor => pollster::block_on(doctor()),
    }
}

async fn doctor() -> Result<()> {
    let gpu = framecast::Gpu::new(&framecast::AdapterChoice::from_env()).await?;
    let report = framecast::doctor::run(&gpu).await;
    print!("{report}");
    if !report.passed() {
        anyhow::bail!("kernel self-check failed");
    }
    Ok(())
}
