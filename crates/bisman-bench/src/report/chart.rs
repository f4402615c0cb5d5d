//! The chart: one bar per operation and layer at its median, a whisker from
//! p95 to p99, on a logarithmic time axis. SVG, drawn with plotters' SVG
//! backend: text is left to the viewer's fonts, so no font files are needed.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::Report;
use crate::error::{BenchError, Result};
use crate::measure::Layer;

fn colour(layer: Layer) -> RGBColor {
    match layer {
        Layer::Postgres | Layer::FlatNoIndex | Layer::JsonbNoGin | Layer::Delete => {
            RGBColor(214, 96, 77)
        }
        Layer::VacuumAfterDelete | Layer::FlatP3Index | Layer::JsonbGin => RGBColor(244, 165, 130),
        Layer::Redis | Layer::Partitioned | Layer::Normalized | Layer::DetachDrop => {
            RGBColor(67, 147, 195)
        }
        Layer::ReadPosition => RGBColor(33, 102, 172),
        Layer::NearCache => RGBColor(33, 102, 172),
        Layer::RawRedisGet | Layer::RawPkSelect => RGBColor(160, 160, 160),
        Layer::Casbin | Layer::TowerSessionsRedis => RGBColor(153, 112, 171),
    }
}

fn chart_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Chart(e.to_string())
}

/// Renders the chart of `r` as an SVG document.
pub(super) fn render(r: &Report) -> Result<String> {
    let rows: Vec<_> = r
        .measurements
        .iter()
        .filter_map(|m| m.summary.map(|s| (m, s)))
        .collect();
    let mut svg = String::new();
    let height = 140 + 22 * rows.len().max(1) as u32;
    // The first measurement at the top.
    let n_rows = rows.len() as i32;
    let y = move |i: usize| n_rows - 1 - i as i32;
    {
        let root = SVGBackend::with_string(&mut svg, (1100, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        root.draw(&Text::new(
            "red: before P3 · orange: P3 indexes on the flat table · blue: after P3 · grey: yardsticks · purple: peers",
            (350, height as i32 - 18),
            ("sans-serif", 12),
        ))
        .map_err(chart_error)?;
        let root = root.margin(0, 20, 0, 0);
        let lo = rows
            .iter()
            .map(|(_, s)| s.p50_us.min(s.min_us))
            .fold(f64::INFINITY, f64::min);
        let hi = rows
            .iter()
            .map(|(_, s)| s.p99_us.max(s.p50_us))
            .fold(0.0, f64::max);
        let (lo, hi) = if rows.is_empty() {
            (0.1, 10.0)
        } else {
            ((lo / 2.0).max(0.01), (hi * 2.0).max(lo * 10.0))
        };
        let labels: Vec<String> = rows
            .iter()
            .map(|(m, _)| format!("{} · {}", m.operation.label(), m.layer.short()))
            .collect();
        let n = rows.len().max(1) as i32;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "bisman bench, {} messages: latency per operation and layer",
                    r.shape.rows
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(330)
            .build_cartesian_2d((lo..hi).log_scale(), (0..n).into_segmented())
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .y_labels(rows.len().max(1))
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if (0..n).contains(i) => labels
                    .get((n - 1 - *i) as usize)
                    .cloned()
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("microseconds per call (log scale): bar = p50, whisker = p95 to p99")
            .x_label_formatter(&|v| format!("{v}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (m, s))| {
                let mut bar = Rectangle::new(
                    [
                        (lo, SegmentValue::Exact(y(i))),
                        (s.p50_us, SegmentValue::Exact(y(i) + 1)),
                    ],
                    colour(m.layer).filled(),
                );
                bar.set_margin(3, 3, 0, 0);
                bar
            }))
            .map_err(chart_error)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (_, s))| {
                PathElement::new(
                    vec![
                        (s.p95_us, SegmentValue::CenterOf(y(i))),
                        (s.p99_us.max(s.p95_us), SegmentValue::CenterOf(y(i))),
                    ],
                    BLACK.stroke_width(2),
                )
            }))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}
