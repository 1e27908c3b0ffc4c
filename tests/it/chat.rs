//! The `chat` delivery against a real HTTP receiver on loopback (tests/servers/chat_server.py,
//! Python's http.server) that records every request and answers with the status a test sets:
//! one summary per experiment whose numbers are results.json's, the outbox and `abreport
//! deliver` when the webhook fails, at most one post per experiment, and the webhook URL —
//! a secret — in no output, log line, ledger record or outbox file.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::deliver::{FAST_RETRIES, files_under, outbox_state, small};
use crate::support::*;

/// The webhook URL's secret part: it must never show anywhere but in the request itself.
const TOKEN: &str = "XoxHookToken93f1NeverShown";

/// A running webhook receiver, the folder of what it received and the file setting its status.
struct Receiver {
    server: Server,
    store: PathBuf,
    status_file: PathBuf,
}

impl Receiver {
    fn start(dir: &Path) -> Self {
        Self::accepting_first(dir, 0)
    }

    /// A receiver that answers the first `n` requests with 200 whatever status is set.
    fn accepting_first(dir: &Path, n: u32) -> Self {
        let store = dir.join("chat-received");
        let status_file = dir.join("chat-status");
        let n = n.to_string();
        let args = [
            "--store",
            store.to_str().expect("utf-8"),
            "--status-file",
            status_file.to_str().expect("utf-8"),
            "--accept-first",
            n.as_str(),
        ];
        let server = Server::start("chat_server.py", &args, dir);
        Self { server, store, status_file }
    }

    /// Makes every later request get `status`.
    fn answer(&self, status: u16) {
        std::fs::write(&self.status_file, status.to_string()).expect("status file");
    }

    /// The webhook URL, with the secret token in its path as Slack's have.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/services/T0001/B0002/{TOKEN}", self.server.port)
    }

    /// Every request received, in arrival order.
    fn requests(&self) -> Vec<Value> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.store)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        found.retain(|p| p.extension().is_some_and(|e| e == "json"));
        found.sort();
        found
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("record")).expect("record json"))
            .collect()
    }

    /// The texts of the posts it accepted (answered 2xx), in arrival order.
    fn delivered(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r["status"].as_u64().is_some_and(|s| (200..300).contains(&s)))
            .map(|r| {
                assert_eq!(r["path"], format!("/services/T0001/B0002/{TOKEN}"), "posted to the webhook's path");
                assert_eq!(r["content_type"], "application/json");
                let body: Value = serde_json::from_str(r["body"].as_str().expect("body")).expect("a JSON body");
                body["text"].as_str().expect("a Slack `text`").to_string()
            })
            .collect()
    }
}

/// `+4.1%` or `−0.8%` as a number of percent.
fn percent(text: &str) -> f64 {
    text.trim().trim_end_matches('%').replace('−', "-").parse().unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// Asserts that the primary metric's line of `text` quotes, for every comparison of
/// `result`'s primary metric, the estimate and interval of its inference in results.json (at
/// the one decimal shown), and the test's label.
fn assert_primary_effect_matches(text: &str, result: &Value) {
    let primary =
        result["metrics"].as_array().and_then(|m| m.iter().find(|m| m["role"] == "primary")).expect("a primary metric");
    let name = primary["name"].as_str().expect("name");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("Primary *{name}*: ")))
        .unwrap_or_else(|| panic!("no primary line in {text}"));
    let comparisons = primary["comparisons"].as_array().expect("comparisons");
    assert!(!comparisons.is_empty());
    for comparison in comparisons {
        let inference = &comparison["inference"];
        assert_eq!(inference["scale"], "relative", "the generated data has a non-zero control mean");
        let variant = comparison["variant"].as_str().expect("variant");
        let rest = line
            .split("; ")
            .find_map(|part| part.strip_prefix(&format!("{variant} ")))
            .unwrap_or_else(|| panic!("{variant} in {line}"));
        let (effect, interval) = rest.split_once(" [").expect("an interval");
        let (low, high) = interval.split_once(']').expect("closed").0.split_once(", ").expect("two ends");
        let close = |shown: &str, exact: &Value| {
            let exact = 100.0 * exact.as_f64().expect("a number");
            assert!((percent(shown) - exact).abs() <= 0.05 + 1e-9, "{shown} vs {exact} in {line}");
        };
        close(effect, &inference["estimate"]);
        close(low, &inference["ci"][0]);
        close(high, &inference["ci"][1]);
    }
    let level = 100.0 * result["metrics"][0]["comparisons"][0]["inference"]["level"].as_f64().expect("level");
    assert!(line.ends_with(&format!(" {level:.0}% CI)")), "{line}");
}

/// The token appears in no output of `runs` and no file under the scenario's folder but the
/// receiver's own records.
fn assert_token_nowhere(s: &Scenario, receiver: &Receiver, runs: &[&Run]) {
    for run in runs {
        assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN), "{}\n{}", run.stdout, run.stderr);
    }
    let files = files_under(s.path());
    assert!(files.iter().any(|f| f.ends_with("run.log.jsonl")), "the run log is among the files checked");
    for file in files.iter().filter(|f| !f.starts_with(&receiver.store) && !f.starts_with(s.path().join("data"))) {
        let text = String::from_utf8_lossy(&std::fs::read(file).expect("readable")).into_owned();
        assert!(!text.contains(TOKEN), "{} holds the webhook URL", file.display());
    }
}

#[test]
fn a_run_posts_one_summary_per_experiment_with_the_verdict_and_the_primary_effect_of_results_json() {
    let s = small(&["checkout", "search"]);
    let receiver = Receiver::start(s.path());
    s.append_to_job(
        "[[deliver]]\nkind = \"chat\"\nwebhook_env = \"TEAM_CHAT_HOOK\"\nlink_base_url = \"https://reports.example.com/ab/\"",
    );
    let url = receiver.url();
    let env = [("TEAM_CHAT_HOOK", url.as_str()), ("ABREPORT_LOG", "debug")];
    let run = s.run_with_env(&["--log-format", "json"], &env);
    run.assert_code(0);

    let posts = receiver.delivered();
    assert_eq!(posts.len(), 2, "one post per experiment: {posts:#?}");
    for (text, id) in posts.iter().zip(["checkout", "search"]) {
        let result = s.result(id);
        let lines: Vec<&str> = text.lines().collect();
        assert!((3..=5).contains(&lines.len()), "{text}");
        let verdict = recommendation(&result).to_uppercase();
        assert!(lines[0].starts_with(&format!("*{id}* — {verdict}")), "{text}");
        assert_primary_effect_matches(text, &result);
        let reason = result["decision"]["reasons"][0].as_str().expect("a reason");
        let escaped = reason.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        assert!(lines.contains(&escaped.as_str()), "the first reason, escaped for mrkdwn: {text}");
        let link = format!("https://reports.example.com/ab/generated/{REPORT_DATE}/{id}/report.html");
        assert_eq!(lines.last(), Some(&format!("<{link}|Full report> · generated, {REPORT_DATE}").as_str()));
    }
    let record = ledger_record(s.path(), "generated", REPORT_DATE);
    assert_eq!(record["deliveries"][0]["destination"], "chat webhook from $TEAM_CHAT_HOOK", "{record:#}");
    assert_eq!(record["delivered"][0]["experiments"], serde_json::json!(["checkout", "search"]));

    // Each experiment reaches the channel once: a re-run of the date posts nothing more.
    let rerun = s.run_with_env(&[], &env);
    rerun.assert_code(0);
    assert!(rerun.stdout.contains("already delivered"), "{}", rerun.stdout);
    assert_eq!(receiver.requests().len(), 2);
    assert_token_nowhere(&s, &receiver, &[&run, &rerun]);
}

#[test]
fn a_failing_webhook_keeps_the_posts_in_the_outbox_and_deliver_sends_them_once() {
    let s = small(&["checkout", "search"]);
    let receiver = Receiver::start(s.path());
    receiver.answer(500);
    s.append_to_job("[[deliver]]\nkind = \"chat\"");
    let url = receiver.url();
    let env = [("ABREPORT_CHAT_WEBHOOK", url.as_str()), FAST_RETRIES, ("ABREPORT_LOG", "debug")];
    let run = s.run_with_env(&["--log-format", "json"], &env);
    run.assert_code(5);
    let port = receiver.server.port;
    assert!(
        run.stderr.contains(&format!(
            "chat webhook at 127.0.0.1:{port} (from `ABREPORT_CHAT_WEBHOOK`): HTTP 500 Internal Server Error: \
             internal_error (gave up after 3 attempts)"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("abreport deliver --retry --job job.toml"), "{}", run.stderr);
    assert_eq!(receiver.requests().len(), 3, "three attempts at the first post, then the destination waits");
    assert!(receiver.delivered().is_empty());
    let state = outbox_state(&s);
    let chat = &state["destinations"][0];
    assert_eq!(
        chat["delivery"],
        serde_json::json!({"kind": "chat", "webhook_env": "ABREPORT_CHAT_WEBHOOK", "link_base_url": null})
    );
    assert_eq!(chat["done"], false);
    assert!(chat["last_error"].as_str().expect("error").contains("HTTP 500"), "{state:#}");

    // Still failing: `deliver` keeps the entry.
    let failed = abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &env);
    failed.assert_code(5);
    assert!(s.path().join("outbox/generated").join(REPORT_DATE).join("state.json").is_file());

    receiver.answer(200);
    let retry = abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &env);
    retry.assert_code(0);
    assert!(retry.stdout.contains("delivered to chat webhook from $ABREPORT_CHAT_WEBHOOK"), "{}", retry.stdout);
    let posts = receiver.delivered();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    assert!(posts[0].starts_with("*checkout* — ") && posts[1].starts_with("*search* — "), "{posts:#?}");
    assert_primary_effect_matches(&posts[0], &s.result("checkout"));
    assert!(!s.path().join("outbox/generated").join(REPORT_DATE).exists(), "the entry is gone once sent");
    let record = ledger_record(s.path(), "generated", REPORT_DATE);
    assert_eq!(record["delivered"][0]["experiments"], serde_json::json!(["checkout", "search"]), "{record:#}");

    let again = abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &env);
    again.assert_code(0);
    assert!(again.stdout.contains("nothing waiting"), "{}", again.stdout);
    let rerun = s.run_with_env(&[], &env);
    rerun.assert_code(0);
    assert!(rerun.stdout.contains("already delivered"), "{}", rerun.stdout);
    assert_eq!(receiver.delivered().len(), 2, "nothing posted twice");
    assert_token_nowhere(&s, &receiver, &[&run, &failed, &retry, &again, &rerun]);
}

#[test]
fn a_post_accepted_before_a_failure_is_not_posted_again() {
    let s = small(&["checkout", "search"]);
    let receiver = Receiver::accepting_first(s.path(), 1);
    receiver.answer(503);
    s.append_to_job("[[deliver]]\nkind = \"chat\"");
    let url = receiver.url();
    let env = [("ABREPORT_CHAT_WEBHOOK", url.as_str()), FAST_RETRIES];
    s.run_with_env(&[], &env).assert_code(5);
    assert_eq!(receiver.requests().len(), 4, "one accepted post, then three attempts at the second");
    let state = outbox_state(&s);
    assert_eq!(state["destinations"][0]["sent"], serde_json::json!(["checkout"]), "{state:#}");
    let record = ledger_record(s.path(), "generated", REPORT_DATE);
    assert_eq!(record["delivered"][0]["experiments"], serde_json::json!(["checkout"]), "{record:#}");

    receiver.answer(200);
    abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &env).assert_code(0);
    let posts = receiver.delivered();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    assert!(posts[0].starts_with("*checkout* — ") && posts[1].starts_with("*search* — "), "{posts:#?}");
}

#[test]
fn a_webhook_that_never_answers_times_out_and_is_retried() {
    let s = small(&["checkout"]);
    s.append_to_job("[[deliver]]\nkind = \"chat\"");
    // The kernel accepts connections into the backlog, but no answer ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let url = format!("http://127.0.0.1:{port}/services/T0001/B0002/{TOKEN}");
    let env = [("ABREPORT_CHAT_WEBHOOK", url.as_str()), ("ABREPORT_CHAT_TIMEOUT_SECONDS", "0.3"), FAST_RETRIES];
    let started = std::time::Instant::now();
    let run = s.run_with_env(&[], &env);
    run.assert_code(5);
    assert!(
        run.stderr.contains(&format!("chat webhook at 127.0.0.1:{port} (from `ABREPORT_CHAT_WEBHOOK`): timed out")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(gave up after 3 attempts)"), "{}", run.stderr);
    assert!(started.elapsed().as_secs_f64() < 20.0, "bounded by the timeout");
    assert!(!run.stderr.contains(TOKEN) && !run.stdout.contains(TOKEN));
    drop(silent);
}

#[test]
fn a_webhook_that_refuses_the_request_is_not_retried() {
    let s = small(&["checkout"]);
    let receiver = Receiver::start(s.path());
    receiver.answer(404);
    s.append_to_job("[[deliver]]\nkind = \"chat\"");
    let url = receiver.url();
    let run = s.run_with_env(&[], &[("ABREPORT_CHAT_WEBHOOK", url.as_str()), FAST_RETRIES]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("HTTP 404 Not Found: internal_error (not retried: trying again cannot help)"),
        "{}",
        run.stderr
    );
    assert_eq!(receiver.requests().len(), 1);
    assert_token_nowhere(&s, &receiver, &[&run]);
}

#[test]
fn an_unreachable_webhook_is_retried_and_named_by_host_only() {
    let s = small(&["checkout"]);
    s.append_to_job("[[deliver]]\nkind = \"chat\"");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/services/T0001/B0002/{TOKEN}");
    let run = s.run_with_env(&[], &[("ABREPORT_CHAT_WEBHOOK", url.as_str()), FAST_RETRIES]);
    run.assert_code(5);
    assert!(
        run.stderr
            .contains(&format!("chat webhook at 127.0.0.1:{port} (from `ABREPORT_CHAT_WEBHOOK`): cannot connect")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(gave up after 3 attempts)"), "{}", run.stderr);
    assert!(!run.stderr.contains(TOKEN) && !run.stdout.contains(TOKEN));
}

#[test]
fn validate_says_when_the_webhook_variable_is_not_set_and_never_shows_its_value() {
    let s = small(&["checkout"]);
    s.append_to_job("[[deliver]]\nkind = \"chat\"\nwebhook_env = \"TEAM_CHAT_HOOK\"");
    let validate =
        |env: &[(&str, &str)]| abreport_with_env(s.path(), &["validate", "job.toml", "--date", REPORT_DATE], env);
    let run = validate(&[]);
    run.assert_code(7);
    assert!(
        run.stderr
            .contains("job.toml: environment: chat webhook: the environment variable `TEAM_CHAT_HOOK` is not set"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("job.toml: source ok"), "{}", run.stdout);

    let not_a_url = format!("hooks.example.com/services/{TOKEN}");
    let run = validate(&[("TEAM_CHAT_HOOK", not_a_url.as_str())]);
    run.assert_code(7);
    assert!(run.stderr.contains("`TEAM_CHAT_HOOK` does not hold an http:// or https:// URL"), "{}", run.stderr);
    assert!(!run.stderr.contains(TOKEN) && !run.stdout.contains(TOKEN));

    let url = format!("https://hooks.example.com/services/{TOKEN}");
    let run = validate(&[("TEAM_CHAT_HOOK", url.as_str())]);
    run.assert_code(0);
    assert!(run.stdout.contains("job.toml: ok"), "nothing is posted to check it: {}", run.stdout);
}
