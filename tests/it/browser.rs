//! The demo's reports and mails as a reader sees them: rendered by headless Chromium (Debian's
//! `chromium`, driven by playwright-core through tests/browser/check.mjs) at a phone's width
//! (390 px) and a laptop's (1280 px). Each page must fit its width (whatever is wider scrolls
//! inside its own box), log no console error or warning, raise no page error, and request
//! nothing: a report is one self-contained file. The chart's smallest text must stay legible
//! on the phone.
//!
//! tests/run.sh installs Chromium when missing and playwright-core under target/test-npm, and
//! exports `ABREPORT_TEST_PLAYWRIGHT`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Server, abreport, abreport_env, python, repo_root};

/// The demo's four experiments, one per recommendation.
const EXPERIMENTS: [&str; 4] = ["checkout-redesign", "new-recommendations", "search-ranking-v2", "pricing-page"];
const PHONE: u32 = 390;
const LAPTOP: u32 = 1280;
/// The smallest chart text a phone may show, in CSS px.
const SMALLEST_TEXT_PX: f64 = 11.0;

fn playwright() -> String {
    std::env::var("ABREPORT_TEST_PLAYWRIGHT").unwrap_or_else(|_| {
        panic!("ABREPORT_TEST_PLAYWRIGHT is not set: run the tests with ./.ci/run (it installs playwright-core and Chromium)")
    })
}

/// Every page at its width, checked in one browser session: one JSON object per page.
fn check(pages: &[(PathBuf, u32)]) -> Vec<Value> {
    let mut command = Command::new("node");
    command.arg(repo_root().join("tests/browser/check.mjs")).env("ABREPORT_TEST_PLAYWRIGHT", playwright());
    for (page, width) in pages {
        command.arg("--page").arg(page).args(["--width", &width.to_string()]);
    }
    let output = command.output().expect("node runs tests/browser/check.mjs");
    assert!(
        output.status.success(),
        "check.mjs failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let checked: Vec<Value> = serde_json::from_slice(&output.stdout).expect("check.mjs prints JSON");
    assert_eq!(checked.len(), pages.len());
    checked
}

/// What is wrong with one checked page, in words; empty when nothing is.
fn problems(page: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let name = format!("{} at {} px", page["file"].as_str().unwrap_or("?"), page["width"]);
    if page["document_overflows"] != Value::Bool(false) {
        found.push(format!(
            "{name}: the page is {} px wide in a {} px window",
            page["scroll_width"], page["inner_width"]
        ));
    }
    for element in page["overflowing"].as_array().into_iter().flatten() {
        found.push(format!(
            "{name}: {} (right edge at {} px, not inside a box that scrolls sideways): {:?}",
            element["path"], element["right"], element["text"]
        ));
    }
    let innermost: Vec<String> = page["innermost"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{} ({} px wide) {:?}", e["element"], e["width"], e["text"]))
        .collect();
    if !innermost.is_empty() {
        found.push(format!("{name}: the innermost elements past the edge: {}", innermost.join("; ")));
    }
    for (field, what) in [("console", "console message"), ("page_errors", "page error"), ("requests", "request")] {
        for entry in page[field].as_array().into_iter().flatten() {
            found.push(format!("{name}: {what} {entry}"));
        }
    }
    found
}

/// The demo, made by the built binary in `dir`: its folder and the report date it printed.
fn demo(dir: &Path) -> (PathBuf, String) {
    let run = abreport(dir, &["demo", "--out", "demo"]);
    run.assert_code(0);
    let date = run
        .stdout
        .split("--date ")
        .nth(1)
        .and_then(|rest| rest.get(..10))
        .unwrap_or_else(|| panic!("the demo names its report date: {}", run.stdout))
        .to_string();
    (dir.join("demo"), date)
}

/// The checker itself: a page with each fault is caught on each count, and a box that scrolls
/// sideways is not an overflow.
#[test]
fn the_checker_sees_overflow_console_errors_page_errors_and_requests() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let page = dir.path().join("faulty.html");
    std::fs::write(
        &page,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>faulty</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>
<div style="overflow-x:auto"><table style="width:900px"><tr><td>scrolls in its box</td></tr></table></div>
<div style="overflow-x:hidden"><p id="cut" style="width:700px">cut off</p></div>
<p id="wide" style="width:600px">too wide</p>
<img src="http://127.0.0.1:9/tracker.png" alt="">
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="">
<svg viewBox="0 0 1000 100" width="100%"><text x="0" y="50" font-size="12">tiny</text></svg>
<script>console.warn("careful"); throw new Error("broken");</script>
</body></html>"#,
    )
    .expect("page");
    let checked = check(&[(page, PHONE)]);
    let page = &checked[0];
    assert_eq!(page["document_overflows"], Value::Bool(true), "{page}");
    let overflowing: Vec<&str> = page["overflowing"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["element"].as_str().expect("a name"))
        .collect();
    assert_eq!(overflowing, ["p#cut", "p#wide"], "what `hidden` cuts off counts, a scrolling box does not");
    assert_eq!(page["requests"], serde_json::json!(["http://127.0.0.1:9/tracker.png"]), "data: URIs are the page");
    let console = page["console"].to_string();
    assert!(console.contains("careful"), "{console}");
    assert!(page["page_errors"].to_string().contains("broken"), "{page}");
    let px = page["smallest_svg_text"]["px"].as_f64().expect("svg text");
    assert!(px < SMALLEST_TEXT_PX, "12 units in a 1000-unit viewBox on a phone: {px} px");
    assert!(problems(page).len() >= 5, "{:?}", problems(page));
}

#[test]
fn the_demo_reports_fit_a_phone_and_a_laptop_and_request_nothing() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let (demo, _) = demo(dir.path());
    let pages: Vec<(PathBuf, u32)> = EXPERIMENTS
        .iter()
        .flat_map(|e| [PHONE, LAPTOP].map(|w| (demo.join("reports").join(e).join("report.html"), w)))
        .collect();
    for (page, _) in &pages {
        assert!(page.is_file(), "{} was written", page.display());
    }
    let checked = check(&pages);
    let mut found: Vec<String> = checked.iter().flat_map(problems).collect();
    for page in checked.iter().filter(|p| p["width"] == PHONE) {
        let smallest = &page["smallest_svg_text"];
        let px = smallest["px"].as_f64().unwrap_or_else(|| panic!("the report draws a chart: {page}"));
        if px < SMALLEST_TEXT_PX {
            found.push(format!(
                "{} at {PHONE} px: chart text {:?} is {px} px, under {SMALLEST_TEXT_PX}",
                page["file"], smallest["text"]
            ));
        }
    }
    assert!(found.is_empty(), "{} problems:\n{}", found.len(), found.join("\n"));
}

#[test]
fn the_demo_mails_fit_a_phone_and_request_nothing() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let (demo, date) = demo(dir.path());
    let store = dir.path().join("smtp-received");
    let smtp = Server::start("smtp_server.py", &["--store", store.to_str().expect("utf-8")], dir.path());
    let job = demo.join("job.toml");
    let mut text = std::fs::read_to_string(&job).expect("the demo's job file");
    text.push_str("\n[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]\n");
    std::fs::write(&job, text).expect("job file");
    let env = [
        ("ABREPORT_SMTP_HOST", "127.0.0.1".to_string()),
        ("ABREPORT_SMTP_PORT", smtp.port.to_string()),
        ("ABREPORT_SMTP_TLS", "none".to_string()),
        ("ABREPORT_SMTP_FROM", "abreport@example.com".to_string()),
    ];
    let job = job.to_str().expect("utf-8");
    abreport_env(dir.path(), &["run", "--job", job, "--date", &date, "--out", "mailed"], &env).assert_code(0);

    let mut messages: Vec<PathBuf> = std::fs::read_dir(&store)
        .expect("the server stored the mail")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    messages.sort();
    assert_eq!(messages.len(), EXPERIMENTS.len(), "one mail per experiment; server log:\n{}", smtp.log());
    // Each mail's HTML as a mail client shows it: its inline charts in place of `cid:`.
    let pages: Vec<(PathBuf, u32)> = messages
        .iter()
        .map(|message| {
            let html = message.with_extension("html");
            let status = Command::new(python())
                .arg(repo_root().join("tests/browser/mail_html.py"))
                .args([message, &html])
                .status()
                .expect("mail_html.py runs");
            assert!(status.success(), "{} has an HTML part", message.display());
            let text = std::fs::read_to_string(&html).expect("mail html");
            assert!(!text.contains("cid:"), "every inline image is in the message");
            (html, PHONE)
        })
        .collect();
    let found: Vec<String> = check(&pages).iter().flat_map(problems).collect();
    assert!(found.is_empty(), "{} problems:\n{}", found.len(), found.join("\n"));
}
