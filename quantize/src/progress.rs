//! A one-line progress bar on stderr (redrawn in place on a terminal,
//! silent otherwise) that other output can print around.

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct ProgressBar {
    total: u64,
    done: u64,
    start: Instant,
    last: Option<Instant>,
    enabled: bool,
}

impl ProgressBar {
    pub fn new(total: u64, enabled: bool) -> ProgressBar {
        ProgressBar {
            total,
            done: 0,
            start: Instant::now(),
            last: None,
            enabled: enabled && std::io::stderr().is_terminal(),
        }
    }

    pub fn advance(&mut self, bytes: u64, what: &str) {
        self.done += bytes;
        if !self.enabled {
            return;
        }
        // Redraw at most ten times a second.
        if self.last.is_some_and(|t| t.elapsed().as_millis() < 100) {
            return;
        }
        self.last = Some(Instant::now());
        let frac = self.done as f64 / self.total.max(1) as f64;
        let width = 30;
        let filled = ((frac * width as f64) as usize).min(width);
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let mut name: String = what.chars().take(48).collect();
        if what.chars().count() > 48 {
            name.push('…');
        }
        eprint!(
            "\r\x1b[2K[{}{}] {:5.1}% {:.2}/{:.2} GB {:6.1} MB/s {name}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            frac * 100.0,
            self.done as f64 / 1e9,
            self.total as f64 / 1e9,
            self.done as f64 / 1e6 / secs,
        );
        let _ = std::io::stderr().flush();
    }

    /// Prints a line above the bar.
    pub fn println(&mut self, line: &str) {
        if self.enabled {
            eprint!("\r\x1b[2K");
            self.last = None;
        }
        println!("{line}");
    }

    pub fn finish(&mut self) {
        if self.enabled {
            eprintln!("\r\x1b[2K");
        }
    }
}
