//! The native `framecast` command.

mod cli;

use std::path::PathBuf;

use anyhow::{Context, Result};
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
    /// Generate a clip from a prompt and write it as MP4 (H.264), GIF or PNG frames.
    Generate(Box<cli::generate::GenerateArgs>),
    /// Generate a sequence of shots from a storyboard file (JSON) and join them into one video.
    Storyboard(cli::storyboard::StoryboardArgs),
    /// Serve the demo site and model bundles over HTTP, with Range requests,
    /// caching of content-addressed shards and CORS.
    Serve {
        /// The site served at `/` [default: the repository's www/]
        #[arg(long, value_name = "DIR")]
        www: Option<PathBuf>,
        /// A bundle served at `/models/NAME/`; repeat for several. The demo
        /// model is served as `demo` unless one is given by that name.
        #[arg(long = "bundle", value_name = "NAME=DIR", value_parser = parse_bundle)]
        bundles: Vec<(String, PathBuf)>,
        /// Address to listen on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Open the site in the default browser.
        #[arg(long)]
        open: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor => pollster::block_on(doctor()),
        Command::Generate(args) => pollster::block_on(cli::generate::run(*args)),
        Command::Storyboard(args) => pollster::block_on(cli::storyboard::run(args)),
        Command::Serve {
            www,
            bundles,
            addr,
            open,
        } => serve(www, bundles, addr, open),
    }
}

fn parse_bundle(arg: &str) -> Result<(String, PathBuf), String> {
    match arg.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
            Ok((name.to_string(), PathBuf::from(dir)))
        }
        _ => Err(format!("expected NAME=DIR, got {arg:?}")),
    }
}

fn serve(
    www: Option<PathBuf>,
    bundles: Vec<(String, PathBuf)>,
    addr: String,
    open: bool,
) -> Result<()> {
    use framecast::serve::{ServeConfig, Server, default_www};
    let www = match www {
        Some(dir) => dir,
        None => default_www().context(
            "no www/ folder found in this repository or next to the binary; pass --www DIR",
        )?,
    };
    let mut bundles = bundles;
    if !bundles.iter().any(|(n, _)| n == "demo") {
        if let Some(dir) = cli::demo_model_dir() {
            bundles.push(("demo".to_string(), dir));
        }
    }
    if !www.join("pkg/framecast_web_bg.wasm").is_file() {
        eprintln!(
            "note: {} has no pkg/ (the wasm build): run scripts/build-web.sh for the demo site",
            www.display()
        );
    }
    let config = ServeConfig {
        www: www.clone(),
        bundles: bundles.clone(),
        addr,
    };
    let server = Server::bind(&config)?;
    let url = server.url();
    println!("serving {} at {url}", www.display());
    for (name, dir) in &bundles {
        println!("  bundle {name} ({}) at {url}models/{name}/", dir.display());
    }
    if open {
        open_browser(&url);
    }
    server.wait();
    Ok(())
}

/// Opens `url` with the platform's opener; failing to is only worth a note.
fn open_browser(url: &str) {
    use std::process::{Command, Stdio};
    let mut command = if cfg!(target_os = "macos") {
        Command::new("open")
    } else if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else {
        Command::new("xdg-open")
    };
    let spawned = command
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        // Reap the opener when it exits rather than leave a zombie.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => eprintln!("could not open a browser ({e}); open {url} yourself"),
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
