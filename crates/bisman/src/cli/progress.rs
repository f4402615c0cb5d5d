//! Progress bars for long work: rate and ETA on a terminal, nothing otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use bisman_db::lifecycle::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A [`Progress`] drawn with indicatif on stderr, hidden when stderr is not a
/// terminal (scripts, CI, tests).
#[derive(Default)]
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
}

impl Bar {
    /// A new, idle bar.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        if !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let template = if total.is_some() {
            "{msg} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta}"
        } else {
            "{spinner} {msg} {human_pos} {per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(phase.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.replace(bar) {
                old.finish_and_clear();
            }
        }
    }

    fn advance(&self, done: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                // An estimate may be low: grow the length rather than overflow.
                if let Some(len) = bar.length() {
                    if bar.position() + done > len {
                        bar.set_length(bar.position() + done);
                    }
                }
                bar.inc(done);
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
    }

    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}
