//! The live lines a terminal shows on standard error while `start`, `stop` or `restart` wait
//! for their jobs. Only where standard error is a terminal: anywhere else they would be noise.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::stack::Component;
use crate::systemd::{Job, JobResult};

/// One line a component, as systemd shows its start jobs: `es  restarting…` becomes
/// `es  ready in 0.21 s`.
pub struct Progress {
    started: Instant,
    rows: Vec<ProgressRow>,
    /// How many lines the last drawing left on the screen.
    drawn: usize,
}

struct ProgressRow {
    component: Component,
    job: Job,
    ended: Option<(JobResult, Duration)>,
}

impl Progress {
    /// Draws the first lines; `None` where nothing extra may be printed: standard error is no
    /// terminal, or `quiet` (the output is JSON, or several hosts share the terminal).
    pub fn on_terminal(jobs: &[Job], quiet: bool) -> Option<Progress> {
        if quiet || !io::stderr().is_terminal() {
            return None;
        }
        let rows: Vec<ProgressRow> = jobs
            .iter()
            .filter_map(|job| {
                Component::from_unit(&job.unit).map(|component| ProgressRow {
                    component,
                    job: job.clone(),
                    ended: None,
                })
            })
            .collect();
        let mut progress = Progress {
            started: Instant::now(),
            rows,
            drawn: 0,
        };
        progress.draw();
        Some(progress)
    }

    /// Shows that `job` ended with `result`.
    pub fn ended(&mut self, job: &Job, result: &JobResult) {
        if let Some(row) = self.rows.iter_mut().find(|row| row.job.path == job.path) {
            row.ended = Some((result.clone(), self.started.elapsed()));
            self.draw();
        }
    }

    fn draw(&mut self) {
        let mut text = String::new();
        if self.drawn > 0 {
            // Back to the first line, to write over what was drawn.
            text.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for row in &self.rows {
            let (going, gone) = match row.job.kind.as_str() {
                "stop" => ("stopping", "stopped"),
                "start" => ("starting", "ready"),
                _ => ("restarting", "ready"),
            };
            let state = match &row.ended {
                None => format!("{going}…"),
                Some((JobResult::Done, took)) => format!("{gone} in {:.2} s", took.as_secs_f64()),
                Some((result, took)) => {
                    format!("{} after {:.2} s", result.explain(), took.as_secs_f64())
                }
            };
            text.push_str(&format!("\r\x1b[2K{:<4} {state}\n", row.component.name()));
        }
        self.drawn = self.rows.len();
        let mut err = io::stderr().lock();
        // A terminal that cannot be written to loses nothing but the progress.
        let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
    }
}
