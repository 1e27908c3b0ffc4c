//! Plain text for a mail's text part: the escaping `templates/email.txt` renders values with,
//! and the line wrapping applied to the result. No markup survives or is added: a plain-text
//! reader sees the words, not Markdown's backslashes and table pipes.

/// Lines of the text part are wrapped at this many characters (RFC 5322 recommends 78).
pub(super) const WIDTH: usize = 78;

/// A value in the text part: line breaks and other control characters become spaces, so a
/// name or reason from the data cannot end a line early, indent the next or carry terminal
/// escapes. Nothing else has a meaning in plain text.
pub(super) fn escape_plain(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Wraps every line longer than `width` characters at spaces; continuation lines are indented
/// under the line's text (after its indentation and a `- ` or `1. ` bullet). A word longer
/// than the width (a link) stays whole on a line of its own. Trailing spaces go, and runs of
/// blank lines become one.
pub(super) fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut blank = true;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
            continue;
        }
        blank = false;
        if line.chars().count() <= width {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // The indentation and bullet start the first line; continuation lines are indented as
        // far, so the text lines up under itself.
        let hanging = hanging_indent(line);
        let mut current = line[..hanging].to_string();
        let mut length = current.chars().count();
        let mut first = true;
        for word in line[hanging..].split(' ').filter(|w| !w.is_empty()) {
            let word_length = word.chars().count();
            if !first && length + 1 + word_length > width {
                out.push_str(current.trim_end());
                out.push('\n');
                current = " ".repeat(hanging);
                length = hanging;
                first = true;
            }
            if !first {
                current.push(' ');
                length += 1;
            }
            current.push_str(word);
            length += word_length;
            first = false;
        }
        out.push_str(current.trim_end());
        out.push('\n');
    }
    out
}

/// Where a line's text starts: after its leading spaces and a `- ` or `12. ` bullet.
fn hanging_indent(line: &str) -> usize {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[spaces..];
    let bullet = if rest.starts_with("- ") || rest.starts_with("* ") {
        2
    } else {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(". ") { digits + 2 } else { 0 }
    };
    spaces + bullet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_wrap_at_spaces_under_their_bullet_and_links_stay_whole() {
        let reason = "- `conversion` is up +4.1% for treatment, and every guardrail is within its margin at the always-valid level";
        let wrapped = wrap(reason, 40);
        for line in wrapped.lines() {
            assert!(line.chars().count() <= 40, "`{line}`");
        }
        assert!(wrapped.starts_with("- `conversion` is up"), "{wrapped}");
        assert!(wrapped.lines().skip(1).all(|l| l.starts_with("  ") && !l.starts_with("   ")), "{wrapped}");
        assert_eq!(wrapped.split_whitespace().collect::<Vec<_>>(), reason.split_whitespace().collect::<Vec<_>>());
        let link = "  Open the full report: https://reports.example.com/abreport/daily/2026-11-20/checkout/report.html";
        let wrapped = wrap(link, 40);
        assert_eq!(
            wrapped,
            "  Open the full report:\n  https://reports.example.com/abreport/daily/2026-11-20/checkout/report.html\n"
        );
        assert_eq!(wrap("12. a b c", 7), "12. a b\n    c\n");
    }

    #[test]
    fn blank_runs_become_one_and_short_lines_stay() {
        assert_eq!(wrap("a  \n\n\n\nb\n", 78), "a\n\nb\n");
        assert_eq!(wrap("\n\na", 78), "a\n", "no blank lines at the top");
    }

    #[test]
    fn values_cannot_break_lines() {
        assert_eq!(escape_plain("a\r\nb\u{1b}[31m"), "a  b [31m");
    }
}
