//! Escaping text for HTML, SVG and XML: one function for the report, the e-mail and the chart,
//! so they cannot drift apart.

/// HTML, SVG and XML escaping: the five significant characters as entities.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
