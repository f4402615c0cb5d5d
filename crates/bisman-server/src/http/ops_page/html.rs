//! HTML that is escaped unless proven safe.
//!
//! [`Markup`] only grows through [`Render`]: string *literals*
//! (`&'static str`) go in as they are, everything else goes through a
//! wrapper that escapes it ([`text`]) or prints numbers, sizes and times.
//! A `String` or a borrowed `&str` from the database has no `Render` of its
//! own, so forgetting to escape a table name or a query text is a compile
//! error, not an injection.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// A piece of HTML that is safe to send.
#[derive(Debug, Default, Clone)]
pub struct Markup(String);

impl Markup {
    /// Empty markup.
    pub fn new() -> Self {
        Self::default()
    }

    /// Markup of one literal.
    pub fn from_static(s: &'static str) -> Self {
        Self(s.to_string())
    }

    /// Appends `part`.
    pub fn push(&mut self, part: impl Render) -> &mut Self {
        part.render_to(&mut self.0);
        self
    }

    /// The HTML.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Appends every part to a [`Markup`]: `h!(out, "<td>", text(&name), "</td>")`.
macro_rules! h {
    ($out:expr, $($part:expr),+ $(,)?) => {{
        $( $out.push($part); )+
    }};
}
pub(crate) use h;

/// Something that can be written into HTML safely.
pub trait Render {
    /// Appends its HTML to `out`.
    fn render_to(&self, out: &mut String);
}

/// String literals are markup written by us.
impl Render for &'static str {
    fn render_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Render for Markup {
    fn render_to(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}

impl Render for &Markup {
    fn render_to(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}

macro_rules! render_integers {
    ($($t:ty),*) => {$(
        impl Render for $t {
            fn render_to(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
render_integers!(i32, i64, u32, u64, usize);

/// Text, escaped for element content and quoted attribute values.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a>(pub &'a str);

/// Escapes `s`.
pub fn text(s: &str) -> Text<'_> {
    Text(s)
}

impl Render for Text<'_> {
    fn render_to(&self, out: &mut String) {
        escape_into(self.0, out);
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'`.
pub fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// An integer with thousands separators (`1,234,567`).
#[derive(Debug, Clone, Copy)]
pub struct Num(pub i64);

impl Render for Num {
    fn render_to(&self, out: &mut String) {
        let digits = self.0.unsigned_abs().to_string();
        if self.0 < 0 {
            out.push('-');
        }
        for (i, d) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(d);
        }
    }
}

/// A size in bytes, in binary units (`12.5 MiB`).
#[derive(Debug, Clone, Copy)]
pub struct Bytes(pub i64);

impl Render for Bytes {
    fn render_to(&self, out: &mut String) {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = self.0.max(0) as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit < UNITS.len() - 1 {
            v /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            let _ = write!(out, "{} B", self.0.max(0));
        } else {
            let _ = write!(out, "{v:.1} {}", UNITS[unit]);
        }
    }
}

/// A share as a percentage with one decimal (`97.5%`), `–` when unknown.
#[derive(Debug, Clone, Copy)]
pub struct Pct(pub Option<f64>);

impl Render for Pct {
    fn render_to(&self, out: &mut String) {
        match self.0 {
            Some(v) if v.is_finite() => {
                let _ = write!(out, "{:.1}%", v * 100.0);
            }
            _ => out.push('–'),
        }
    }
}

/// Milliseconds, with a unit that keeps the number short.
#[derive(Debug, Clone, Copy)]
pub struct Ms(pub f64);

impl Render for Ms {
    fn render_to(&self, out: &mut String) {
        let ms = self.0;
        let _ = if !ms.is_finite() {
            write!(out, "–")
        } else if ms < 10.0 {
            write!(out, "{ms:.2} ms")
        } else if ms < 10_000.0 {
            write!(out, "{ms:.0} ms")
        } else if ms < 600_000.0 {
            write!(out, "{:.1} s", ms / 1000.0)
        } else {
            write!(out, "{:.1} min", ms / 60_000.0)
        };
    }
}

/// A point in time: UTC text in a `<time>` element (the page's script adds
/// "3 min ago" beside it).
#[derive(Debug, Clone, Copy)]
pub struct When(pub DateTime<Utc>);

impl Render for When {
    fn render_to(&self, out: &mut String) {
        let _ = write!(
            out,
            "<time datetime=\"{}\">{}</time>",
            self.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.0.format("%Y-%m-%d %H:%M UTC")
        );
    }
}

/// An optional value: its rendering, or a dash.
#[derive(Debug, Clone, Copy)]
pub struct Or<T>(pub Option<T>);

impl<T: Render> Render for Or<T> {
    fn render_to(&self, out: &mut String) {
        match &self.0 {
            Some(v) => v.render_to(out),
            None => out.push('–'),
        }
    }
}

/// A floating-point figure with a fixed number of decimals.
#[derive(Debug, Clone, Copy)]
pub struct Fixed(pub f64, pub usize);

impl Render for Fixed {
    fn render_to(&self, out: &mut String) {
        let _ = write!(out, "{:.*}", self.1, self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(part: impl Render) -> String {
        let mut m = Markup::new();
        m.push(part);
        m.into_string()
    }

    #[test]
    fn text_is_escaped_and_literals_are_not() {
        let hostile = String::from(r#"<script>alert("x")</script> & 'q'"#);
        assert_eq!(
            render(text(&hostile)),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;"
        );
        assert_eq!(render("<b>"), "<b>");
    }

    #[test]
    fn figures() {
        assert_eq!(render(Num(0)), "0");
        assert_eq!(render(Num(999)), "999");
        assert_eq!(render(Num(1_234_567)), "1,234,567");
        assert_eq!(render(Num(-12_345)), "-12,345");
        assert_eq!(render(Bytes(512)), "512 B");
        assert_eq!(render(Bytes(8 * 1024 * 1024 + 512 * 1024)), "8.5 MiB");
        assert_eq!(render(Pct(Some(0.975))), "97.5%");
        assert_eq!(render(Pct(None)), "–");
        assert_eq!(render(Ms(1.234)), "1.23 ms");
        assert_eq!(render(Ms(123.4)), "123 ms");
        assert_eq!(render(Ms(12_345.0)), "12.3 s");
        assert_eq!(render(Or::<Num>(None)), "–");
    }
}
