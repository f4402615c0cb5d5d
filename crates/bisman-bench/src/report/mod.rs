//! The results of a run: the spec's table with measured columns, the aims
//! of docs/AIMS.md with their verdicts, the peers, and every measurement
//! with all its samples; written as Markdown (`bench.md`), JSON
//! (`bench.json`) and an SVG chart (`bench.svg`).

mod chart;
mod markdown;
mod tables;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use tables::{Aim, PeerRow, SpecRow, Verdict, SPEC_ROWS};

use crate::data::{DatasetMeta, Shape};
use crate::error::{BenchError, Result};
use crate::machine::Machine;
use crate::measure::{Layer, Measurement, Operation};
use crate::options::Effort;

/// A data set as the report records it.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    /// Its database.
    pub database: String,
    /// Reused from an earlier run (else built by this one).
    pub reused: bool,
    /// Size on disk, bytes.
    pub size_bytes: i64,
    /// What it holds.
    pub meta: DatasetMeta,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `bisman bench`.
    pub tool: String,
    /// The bisman version.
    pub version: String,
    /// The command line, as typed.
    pub command: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// How long it took, seconds (data generation included).
    pub seconds: f64,
    /// Whether it was a `--quick` run.
    pub quick: bool,
    /// The machine and servers.
    pub machine: Machine,
    /// The data sets' shape.
    pub shape: Shape,
    /// The two data sets.
    pub datasets: Vec<DatasetInfo>,
    /// Iteration counts.
    pub effort: Effort,
    /// Whether the peers were built in.
    pub peers_built: bool,
    /// The spec's §10 table, measured.
    pub spec_table: Vec<SpecRow>,
    /// The aims of docs/AIMS.md.
    pub aims: Vec<Aim>,
    /// Peers next to our layers.
    pub peers: Vec<PeerRow>,
    /// Every measurement, with every sample.
    pub measurements: Vec<Measurement>,
    /// Things worth knowing about this run.
    pub notes: Vec<String>,
}

/// The files a report was written to.
#[derive(Debug, Clone)]
pub struct Written {
    /// `bench.md`.
    pub markdown: PathBuf,
    /// `bench.json`.
    pub json: PathBuf,
    /// `bench.svg`.
    pub chart: PathBuf,
}

impl Report {
    /// The measurement of `operation` on `layer`, if there is one.
    pub fn find(&self, operation: Operation, layer: Layer) -> Option<&Measurement> {
        find(&self.measurements, operation, layer)
    }

    /// Fills in the derived tables from the measurements.
    pub fn derive_tables(&mut self) {
        let rows = self.shape.rows.to_string();
        self.spec_table = tables::spec_table(&self.measurements, &rows);
        self.aims = tables::aims(&self.measurements);
        self.peers = tables::peers(&self.measurements);
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        markdown::render(self)
    }

    /// The chart as an SVG document.
    pub fn chart_svg(&self) -> Result<String> {
        chart::render(self)
    }

    /// Writes `bench.md`, `bench.json` and `bench.svg` into `dir` (made if missing).
    pub fn write(&self, dir: &Path) -> Result<Written> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BenchError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let written = Written {
            markdown: dir.join("bench.md"),
            json: dir.join("bench.json"),
            chart: dir.join("bench.svg"),
        };
        std::fs::write(&written.markdown, self.markdown()).map_err(io(&written.markdown))?;
        // Compact: a full run keeps a few hundred thousand samples.
        std::fs::write(&written.json, serde_json::to_vec(self)?).map_err(io(&written.json))?;
        std::fs::write(&written.chart, self.chart_svg()?).map_err(io(&written.chart))?;
        Ok(written)
    }
}

/// The measurement of `operation` on `layer` in `all`.
pub fn find(all: &[Measurement], operation: Operation, layer: Layer) -> Option<&Measurement> {
    all.iter()
        .find(|m| m.operation == operation && m.layer == layer)
}
