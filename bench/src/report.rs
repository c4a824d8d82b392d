//! The results table (markdown, ready for BENCHMARKS.md).

use std::fmt::Write;

use framecast::Gpu;

use crate::cases::Case;
use crate::peak::Peak;
use crate::timing::{Budget, BurnTiming, FcTiming};

pub enum Outcome {
    Framecast(FcTiming),
    Burn(BurnTiming),
    Missing(String),
    Failed(String),
}

impl Outcome {
    fn ms(&self) -> Option<f64> {
        match self {
            Outcome::Framecast(t) => Some(t.wall_ms),
            Outcome::Burn(t) => Some(t.wall_ms),
            _ => None,
        }
    }

    /// The cell text when there is no time.
    fn absent(&self) -> String {
        match self {
            Outcome::Missing(why) => why.clone(),
            Outcome::Failed(_) => "failed".into(),
            _ => String::new(),
        }
    }
}

pub struct Row {
    pub case: Case,
    pub framecast: Outcome,
    pub burn: Outcome,
}

fn gflops(flops: f64, ms: f64) -> f64 {
    flops / ms / 1e6
}

fn gbs(bytes: f64, ms: f64) -> f64 {
    bytes / ms / 1e6
}

/// Three significant figures (rates here span 0.01 to thousands).
fn sig3(x: f64) -> String {
    match x.abs() {
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 10.0 => format!("{x:.1}"),
        a if a >= 1.0 => format!("{x:.2}"),
        _ => format!("{x:.3}"),
    }
}

impl Row {
    /// The cells after the case's own: framecast ms, GPU ms, GFLOP/s, GB/s,
    /// of peak, burn ms, burn rate, framecast/burn.
    fn cells(&self, peak: &Peak) -> Vec<String> {
        let c = &self.case;
        let compute = c.flops > 0.0;
        let mut cells = Vec::new();
        match (&self.framecast, self.framecast.ms()) {
            (Outcome::Framecast(t), Some(ms)) => {
                cells.push(format!("{ms:.3}"));
                cells.push(t.gpu_ms.map_or("-".into(), |g| format!("{g:.3}")));
                cells.push(if compute {
                    sig3(gflops(c.flops, ms))
                } else {
                    "-".into()
                });
                cells.push(sig3(gbs(c.bytes, ms)));
                cells.push(if compute {
                    format!("{:.0}%", 100.0 * gflops(c.flops, ms) / peak.f32_gflops)
                } else {
                    "-".into()
                });
            }
            _ => {
                cells.push(self.framecast.absent());
                cells.extend(std::iter::repeat_n("".to_string(), 4));
            }
        }
        match self.burn.ms() {
            Some(ms) => {
                cells.push(format!("{ms:.3}"));
                cells.push(if compute {
                    format!("{} GFLOP/s", sig3(gflops(c.flops, ms)))
                } else {
                    format!("{} GB/s", sig3(gbs(c.burn_bytes, ms)))
                });
            }
            None => {
                cells.push(self.burn.absent());
                cells.push(String::new());
            }
        }
        cells.push(match (self.framecast.ms(), self.burn.ms()) {
            (Some(f), Some(b)) => format!("{:.2}x", b / f),
            _ => String::new(),
        });
        cells
    }

    /// One progress line for stderr.
    pub fn summary(&self, peak: &Peak) -> String {
        let cells = self.cells(peak);
        let plan = |o: &Outcome| match o {
            Outcome::Framecast(t) => {
                format!(" [{} x {}, warm-up {:.0} ms]", t.reps, t.batch, t.warmup_ms)
            }
            Outcome::Burn(t) => {
                format!(" [{} x {}, warm-up {:.0} ms]", t.reps, t.batch, t.warmup_ms)
            }
            _ => String::new(),
        };
        let mut s = format!(
            "framecast {} ms{} ({} GFLOP/s, {} GB/s) | burn {} ms{} | ratio {}",
            cells[0],
            plan(&self.framecast),
            cells[2],
            cells[3],
            cells[5],
            plan(&self.burn),
            cells[7]
        );
        for (side, o) in [("framecast", &self.framecast), ("burn", &self.burn)] {
            if let Outcome::Failed(e) = o {
                let _ = write!(s, "\n  {side} failed: {e}");
            }
        }
        s
    }
}

pub fn markdown(
    gpu: &Gpu,
    burn_adapter: Option<&str>,
    peak: &Peak,
    budget: &Budget,
    quick: bool,
    rows: &[Row],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "framecast adapter: {} [{} {}]",
        gpu.describe(),
        gpu.info.driver,
        gpu.info.driver_info
    );
    let _ = writeln!(
        s,
        "burn adapter:      {}",
        burn_adapter.unwrap_or("(not run)")
    );
    let _ = write!(s, "FMA peak:          {:.1} GFLOP/s f32", peak.f32_gflops);
    if let Some(h) = peak.f16_gflops {
        let _ = write!(s, ", {h:.1} GFLOP/s f16");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "timing:            median of {}-{} samples after {} warm-up run(s){}; GPU ms from timestamps{}",
        budget.min_reps,
        budget.max_reps,
        budget.warmup,
        if quick { " (--quick)" } else { "" },
        if gpu.caps.timestamps {
            ""
        } else {
            " (not available on this adapter)"
        }
    );
    let _ = writeln!(
        s,
        "framecast ms:      wall clock per run: record into a Step, submit, gpu.wait(); GFLOP/s, GB/s and ratios use it"
    );
    let _ = writeln!(
        s,
        "burn ms:           wall clock per run on fresh inputs, stopped after {}",
        if budget.burn_readback {
            "reading back a scalar of the output"
        } else {
            "device.sync()"
        }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| kernel | shape | format | framecast ms | GPU ms | GFLOP/s | GB/s | of FMA peak | burn ms | burn rate | framecast/burn |"
    );
    let _ = writeln!(s, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for row in rows {
        let c = &row.case;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            c.family,
            c.shape,
            c.format,
            row.cells(peak).join(" | ")
        );
    }
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            [("framecast", &r.framecast), ("burn", &r.burn)]
                .into_iter()
                .filter_map(move |(side, o)| match o {
                    Outcome::Failed(e) => Some(format!("- {} ({side}): {e}", r.case.label())),
                    _ => None,
                })
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(s, "\nFailures:\n{}", failures.join("\n"));
    }
    s
}
