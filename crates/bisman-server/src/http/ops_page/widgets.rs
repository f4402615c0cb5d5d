//! Small pieces several pages use: status badges and summary tiles.

use super::html::{h, Markup};

/// How good a figure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Fine.
    Good,
    /// Needs a look.
    Warn,
    /// Broken or dangerous.
    Bad,
    /// Neither (off, none, unknown).
    Muted,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
            Tone::Muted => "muted",
        }
    }
}

/// A coloured label.
pub fn badge(tone: Tone, label: &'static str) -> Markup {
    let mut out = Markup::new();
    h!(
        out,
        "<span class=\"badge ",
        tone.class(),
        "\">",
        label,
        "</span>"
    );
    out
}

/// A summary tile: a label, a big value and a note under it.
pub fn tile(out: &mut Markup, label: &'static str, tone: Tone, value: Markup, note: &'static str) {
    h!(
        out,
        "<div class=\"tile ",
        tone.class(),
        "\"><div class=\"label\">",
        label,
        "</div><div class=\"value\">",
        value,
        "</div><div class=\"note\">",
        note,
        "</div></div>"
    );
}
