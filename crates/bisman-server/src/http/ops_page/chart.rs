//! A small line chart of rates (0–100%) over time, drawn as inline SVG on
//! the server: no script, no library, and it prints.

use chrono::{DateTime, Utc};

use super::history::Series;
use super::html::{h, Fixed, Markup, Render};

/// One line: its CSS class (colour), legend label and points.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// CSS class giving the colour (`s1`, `s2`, `s3`).
    pub class: &'static str,
    /// Legend text.
    pub label: &'static str,
    /// The points.
    pub points: &'a Series,
}

const W: f64 = 320.0;
const H: f64 = 120.0;
const LEFT: f64 = 34.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 18.0;

/// The chart of `lines` between `from` and `to`, with its legend;
/// `title` names it for screen readers.
pub fn rate_chart(
    title: &'static str,
    lines: &[Line<'_>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Markup {
    let span = (to - from).num_milliseconds().max(1) as f64;
    let x =
        |t: DateTime<Utc>| LEFT + (W - LEFT - RIGHT) * (t - from).num_milliseconds() as f64 / span;
    let y = |rate: f64| TOP + (H - TOP - BOTTOM) * (1.0 - rate.clamp(0.0, 1.0));
    let mut out = Markup::new();
    h!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 320 120\" role=\"img\" aria-label=\"",
        title,
        "\">"
    );
    for (rate, label) in [(1.0, "100%"), (0.5, "50%"), (0.0, "0%")] {
        let gy = Fixed(y(rate), 1);
        h!(
            out,
            "<line class=\"grid\" x1=\"",
            Fixed(LEFT, 1),
            "\" x2=\"",
            Fixed(W - RIGHT, 1),
            "\" y1=\"",
            gy,
            "\" y2=\"",
            gy,
            "\"/><text class=\"axis\" x=\"",
            Fixed(LEFT - 4.0, 1),
            "\" y=\"",
            Fixed(y(rate) + 3.0, 1),
            "\" text-anchor=\"end\">",
            label,
            "</text>"
        );
    }
    h!(
        out,
        "<text class=\"axis\" x=\"",
        Fixed(LEFT, 1),
        "\" y=\"116\">",
        Clock(from, span),
        "</text><text class=\"axis\" x=\"",
        Fixed(W - RIGHT, 1),
        "\" y=\"116\" text-anchor=\"end\">",
        Clock(to, span),
        " UTC</text>"
    );
    for line in lines {
        let mut d = String::new();
        let mut pen_down = false;
        for (i, (at, rate)) in line.points.iter().enumerate() {
            match rate {
                Some(r) => {
                    let cmd = if pen_down { 'L' } else { 'M' };
                    d.push_str(&format!("{cmd}{:.1},{:.1} ", x(*at), y(*r)));
                    let next_is_gap = line.points.get(i + 1).is_none_or(|p| p.1.is_none());
                    if !pen_down && next_is_gap {
                        // A lone point: a dot, or it would not show.
                        d.push_str("h0.01 ");
                    }
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        h!(
            out,
            "<path class=\"line ",
            line.class,
            "\" d=\"",
            Path(d),
            "\"/>"
        );
    }
    out.push("</svg><ul class=\"legend\">");
    for line in lines {
        h!(
            out,
            "<li><span class=\"swatch ",
            line.class,
            "\"></span>",
            line.label,
            "</li>"
        );
    }
    out.push("</ul>");
    out
}

/// `HH:MM` of a time, with seconds when the chart spans under ten minutes
/// (`span` in milliseconds).
struct Clock(DateTime<Utc>, f64);

impl Render for Clock {
    fn render_to(&self, out: &mut String) {
        let format = if self.1 < 600_000.0 {
            "%H:%M:%S"
        } else {
            "%H:%M"
        };
        out.push_str(&self.0.format(format).to_string());
    }
}

/// Path data made here from numbers and the letters `M`, `L`, `h`.
struct Path(String);

impl Render for Path {
    fn render_to(&self, out: &mut String) {
        debug_assert!(self
            .0
            .chars()
            .all(|c| c.is_ascii_digit() || " .,-MLh".contains(c)));
        out.push_str(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_break_at_gaps_and_lone_points_show() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let points = vec![
            (t(10), Some(1.0)),
            (t(20), Some(0.5)),
            (t(30), None),
            (t(40), Some(0.0)),
        ];
        let svg = rate_chart(
            "test",
            &[Line {
                class: "s1",
                label: "L1",
                points: &points,
            }],
            t(0),
            t(40),
        )
        .into_string();
        assert!(svg.contains("d=\"M"), "{svg}");
        assert_eq!(svg.matches('M').count(), 2, "{svg}");
        assert!(svg.contains("h0.01"), "{svg}");
        assert!(svg.contains("<li><span class=\"swatch s1\"></span>L1</li>"));
    }
}
