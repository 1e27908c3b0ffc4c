//! Deliveries against real servers on loopback, started here: an SMTP server (aiosmtpd, with
//! STARTTLS and AUTH when asked) that stores what it receives, and an S3-protocol server
//! (moto) that object_store uploads to over HTTP. Messages are parsed with Python's `email`
//! package (`tests/servers/mime_summary.py`); uploads are listed with object_store.
//! Also the failure paths: a rejected login, an unreachable or silent server, a missing
//! bucket, a folder that cannot be written, and the outbox sent once on retry.

use std::path::{Path, PathBuf};
use std::process::Command;

use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use serde_json::Value;

use crate::support::*;

const FROM: &str = "abreport <reports@example.com>";

/// Retries in these tests wait 20 ms, then 80 ms, instead of 0.2 s and 0.8 s.
pub(crate) const FAST_RETRIES: (&str, &str) = ("ABREPORT_RETRY_DELAY_MS", "20");

/// A running SMTP server and the folder where it stores each message it accepts.
struct Smtp {
    server: Server,
    store: PathBuf,
    tls_dir: PathBuf,
}

impl Smtp {
    /// Starts the server; with `starttls`, it makes a test CA and offers STARTTLS.
    fn start(dir: &Path, starttls: bool, args: &[&str]) -> Self {
        let store = dir.join("smtp-received");
        let tls_dir = dir.join("smtp-tls");
        let mut full = vec!["--store", store.to_str().expect("utf-8")];
        if starttls {
            full.extend(["--tls-dir", tls_dir.to_str().expect("utf-8")]);
        }
        full.extend_from_slice(args);
        let server = Server::start("smtp_server.py", &full, dir);
        Self { server, store, tls_dir }
    }

    /// Environment for a plain-text connection to this server.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("ABREPORT_SMTP_HOST".into(), "127.0.0.1".into()),
            ("ABREPORT_SMTP_PORT".into(), self.server.port.to_string()),
            ("ABREPORT_SMTP_TLS".into(), "none".into()),
            ("ABREPORT_SMTP_FROM".into(), FROM.into()),
        ]
    }

    /// Environment for STARTTLS with the test CA (credentials come separately).
    fn starttls_env(&self) -> Vec<(String, String)> {
        let mut env = self.env();
        env[2].1 = "starttls".into();
        env.push(("ABREPORT_SMTP_CA_FILE".into(), self.tls_dir.join("ca.pem").display().to_string()));
        env
    }

    /// The stored messages, in arrival order.
    fn messages(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.store)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        found.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        found.sort();
        found
    }

    /// Sender and recipients of a stored message, as the server saw them.
    fn envelope(&self, message: &Path) -> Value {
        let text = std::fs::read_to_string(message.with_extension("json")).expect("envelope");
        serde_json::from_str(&text).expect("envelope json")
    }
}

/// `(String, String)` pairs as the `(&str, &str)` the runner takes.
fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The MIME summary of a received message (see tests/servers/mime_summary.py).
fn mime(message: &Path) -> Value {
    let output = Command::new(python())
        .arg(repo_root().join("tests/servers/mime_summary.py"))
        .arg(message)
        .output()
        .expect("mime_summary runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("summary json")
}

/// The content types of a MIME tree, as `type[child, child]`.
fn shape(tree: &Value) -> String {
    let kind = tree["type"].as_str().unwrap_or("?");
    match tree["parts"].as_array() {
        Some(parts) => format!("{kind}[{}]", parts.iter().map(shape).collect::<Vec<_>>().join(", ")),
        None => kind.to_string(),
    }
}

/// A moto server with the bucket `reports`.
fn s3(dir: &Path) -> Server {
    Server::start("s3_server.py", &["--bucket", "reports"], dir)
}

/// What object_store (in abreport and here) needs to reach moto, and nothing beyond loopback.
fn s3_env(port: u16) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ENDPOINT".into(), format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
    ]
}

fn s3_store(port: u16) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("reports")
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .build()
        .expect("store")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Every key in the bucket `reports` under `prefix`, sorted.
fn s3_keys(port: u16, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let store = s3_store(port);
    let prefix = object_store::path::Path::from(prefix);
    let mut keys: Vec<String> = runtime()
        .block_on(store.list(Some(&prefix)).map_ok(|meta| meta.location.to_string()).try_collect::<Vec<_>>())
        .expect("listing");
    keys.sort();
    keys
}

fn s3_get(port: u16, key: &str) -> Vec<u8> {
    let store = s3_store(port);
    runtime()
        .block_on(async { store.get(&object_store::path::Path::from(key)).await?.bytes().await })
        .expect("object")
        .to_vec()
}

/// The nine outputs of one experiment, sorted.
const OUTPUT_FILES: [&str; 9] = [
    "allocation.parquet",
    "manifest.json",
    "report.html",
    "report.md",
    "results.csv",
    "results.json",
    "results.parquet",
    "run.log.jsonl",
    "units.parquet",
];

pub(crate) fn small(experiments: &[&str]) -> Scenario {
    let mut args = vec!["--units", "1000", "--days", "2"];
    for e in experiments {
        args.extend(["--experiment", e]);
    }
    Scenario::generate(&args)
}

pub(crate) fn outbox_state(s: &Scenario) -> Value {
    let path = s.path().join("outbox/generated").join(REPORT_DATE).join("state.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("state json")
}

#[test]
fn email_over_starttls_with_auth_sends_one_multipart_message_per_experiment() {
    let s = small(&["checkout", "search"]);
    let smtp = Smtp::start(s.path(), true, &["--auth", "abreport:Sesame-2026"]);
    // Credentials from the job's secrets file, the rest from the environment.
    std::fs::write(
        s.path().join("smtp.env"),
        "# read by abreport\nABREPORT_SMTP_USERNAME=abreport\nABREPORT_SMTP_PASSWORD=\"Sesame-2026\"\n",
    )
    .expect("secrets file");
    s.prepend_to_job("secrets_file = \"smtp.env\"");
    s.append_to_job(
        "[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\", \"ba@example.com\"]\n\
         link_base_url = \"https://reports.example.com/abreport\"",
    );
    s.run_with_env(&[], &pairs(&smtp.starttls_env())).assert_code(0);

    let messages = smtp.messages();
    assert_eq!(messages.len(), 2, "one message per experiment; server log:\n{}", smtp.server.log());
    for (message, experiment) in messages.iter().zip(["checkout", "search"]) {
        let mail = mime(message);
        let subject = mail["subject"].as_str().expect("subject");
        let recommendation = recommendation(&s.result(experiment)).to_uppercase();
        assert!(subject.starts_with(&format!("[abreport] {experiment}: {recommendation}")), "{subject}");
        // Only a PROMOTE or a ROLLBACK quotes an effect; any other verdict's figures are no finding.
        let quotes_effect = matches!(recommendation.as_str(), "PROMOTE" | "ROLLBACK");
        assert_eq!(subject.ends_with(')'), quotes_effect, "{subject}");
        assert_eq!(mail["from"], FROM);
        assert_eq!(mail["to"], "pm@example.com, ba@example.com");
        assert_eq!(
            shape(&mail["tree"]),
            "multipart/mixed[multipart/alternative[text/plain, multipart/related[text/html, image/png, image/png, \
             image/png]], text/csv, application/vnd.apache.parquet, application/vnd.apache.parquet, application/jsonl]"
        );
        // The effects chart, then the story's: the primary's effect by day and units by day.
        let cids: Vec<String> =
            ["chart", "trend", "units"].iter().map(|kind| format!("{kind}.{experiment}@abreport")).collect();
        for (image, cid) in mail["inline_images"].as_array().expect("images").iter().zip(&cids) {
            assert_eq!(image["content_id"], cid.as_str());
            assert_eq!(image["disposition"], "inline");
            assert_eq!(image["png_signature"], true);
        }
        assert_eq!(mail["html_cids"], serde_json::json!(cids));
        let html = mail["html"].as_str().expect("html");
        assert!(!html.contains("<svg") && !html.contains("<script"), "mail clients show neither");
        assert!(html.contains(&format!("{recommendation} —")), "verdict first");
        assert!(
            html.contains("effect against the control with its always-valid 95% CI and always-valid p</caption>"),
            "the tables say which test the verdict reads"
        );
        let report = format!("https://reports.example.com/abreport/generated/{REPORT_DATE}/{experiment}/report.html");
        assert!(html.contains(&format!("<a href=\"{report}\"")), "the full report is linked");
        assert!(html.contains(">Open the full report</a>"));
        assert_plain_text(&mail, experiment, &recommendation, &report);
        assert_csv_equals_results_json(&mail, &s.result(experiment));
        let attachments: Vec<(String, u64)> = mail["attachments"]
            .as_array()
            .expect("attachments")
            .iter()
            .map(|a| (a["filename"].as_str().expect("name").to_string(), a["bytes"].as_u64().expect("size")))
            .collect();
        let expected: Vec<(String, u64)> = ["results.csv", "results.parquet", "allocation.parquet", "run.log.jsonl"]
            .iter()
            .map(|f| (f.to_string(), std::fs::metadata(s.out(experiment).join(f)).expect("export").len()))
            .collect();
        assert_eq!(attachments, expected, "the exports, byte for byte in size");
        let envelope = smtp.envelope(message);
        assert_eq!(envelope["mail_from"], "reports@example.com");
        assert_eq!(envelope["rcpt_tos"], serde_json::json!(["pm@example.com", "ba@example.com"]));
    }
    assert!(!s.path().join("outbox").exists(), "nothing waits when everything was delivered");
}

#[test]
fn email_over_implicit_tls_with_auth_is_delivered() {
    let s = small(&["checkout"]);
    let smtp = Smtp::start(s.path(), true, &["--implicit-tls", "--auth", "abreport:Sesame-2026"]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    let mut env = smtp.starttls_env();
    env[2].1 = "tls".into();
    env.extend([
        ("ABREPORT_SMTP_USERNAME".to_string(), "abreport".to_string()),
        ("ABREPORT_SMTP_PASSWORD".to_string(), "Sesame-2026".to_string()),
    ]);
    s.run_with_env(&[], &pairs(&env)).assert_code(0);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "server log:\n{}", smtp.server.log());
    assert!(mime(&messages[0])["subject"].as_str().expect("subject").starts_with("[abreport] checkout: "));
}

#[test]
fn a_run_that_cannot_read_its_source_tells_the_admin() {
    let s = small(&["checkout"]);
    let smtp = Smtp::start(s.path(), false, &[]);
    s.prepend_to_job("admin = \"ops@example.com\"");
    s.edit_job(|job| job.replace("url = \"data\"", "url = \"no-such-folder\""));
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    s.run_with_env(&[], &pairs(&smtp.env())).assert_code(3);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "only the admin notice; server log:\n{}", smtp.server.log());
    assert_eq!(smtp.envelope(&messages[0])["rcpt_tos"], serde_json::json!(["ops@example.com"]));
    let notice = mime(&messages[0]);
    assert_eq!(notice["subject"], format!("[abreport] job `generated` for {REPORT_DATE}: source_unavailable"));
    assert!(notice["plain"].as_str().expect("body").contains("no-such-folder"), "{}", notice["plain"]);

    // --no-deliver means no side effects: no notice either.
    s.run_with_env(&["--no-deliver"], &pairs(&smtp.env())).assert_code(3);
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn validate_checks_the_mail_settings_without_sending() {
    let s = small(&["checkout"]);
    s.prepend_to_job("secrets_file = \"missing.env\"");
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    // What the machine lacks is an environment problem (exit 7), not a job-file error (2),
    // and the source is checked all the same.
    let run = abreport_with_env(s.path(), &["validate", "job.toml", "--date", REPORT_DATE], &[]);
    run.assert_code(7);
    assert!(run.stderr.contains("job.toml: environment: cannot read secrets file `missing.env`"), "{}", run.stderr);
    assert!(run.stdout.contains("job.toml: source ok"), "the source was checked: {}", run.stdout);

    std::fs::write(s.path().join("missing.env"), "ABREPORT_SMTP_HOST=smtp.example.com\n").expect("secrets");
    let run = abreport_with_env(s.path(), &["validate", "job.toml", "--date", REPORT_DATE], &[]);
    run.assert_code(7);
    assert!(run.stderr.contains("email needs a sender address: set ABREPORT_SMTP_FROM"), "{}", run.stderr);
    assert!(run.stdout.contains("job.toml: source ok"), "{}", run.stdout);

    // A source problem outranks an environment problem; a job-file error outranks both.
    s.edit_job(|job| job.replace("url = \"data\"", "url = \"no-such-folder\""));
    abreport_with_env(s.path(), &["validate", "job.toml", "--date", REPORT_DATE], &[]).assert_code(3);
    s.edit_job(|job| job.replace("url = \"no-such-folder\"", "url = \"data\""));

    let run =
        abreport_with_env(s.path(), &["validate", "job.toml", "--date", REPORT_DATE], &[("ABREPORT_SMTP_FROM", FROM)]);
    run.assert_code(0);
    assert!(run.stdout.contains("job.toml: ok"), "{}", run.stdout);
}

#[test]
fn validate_fails_clearly_when_the_outbox_or_a_folder_destination_cannot_be_written() {
    // A job folder mounted read-only is what a container gives; as root, the way to refuse a
    // write on any file system is a path through a regular file (ENOTDIR).
    let s = small(&["checkout"]);
    std::fs::write(s.path().join("readonly"), "a file, not a folder").expect("file");
    s.prepend_to_job("outbox = \"readonly/outbox\"");
    s.append_to_job("[[deliver]]\nkind = \"dir\"\npath = \"readonly/reports\"");
    let run = abreport_with_env(s.path(), &["validate", "job.toml", "--date", REPORT_DATE], &[]);
    run.assert_code(7);
    assert!(run.stderr.contains("job.toml: environment: the outbox"), "{}", run.stderr);
    assert!(run.stderr.contains("readonly/outbox` cannot be written"), "{}", run.stderr);
    assert!(run.stderr.contains("outbox = "), "says how to move it: {}", run.stderr);
    assert!(run.stderr.contains("job.toml: environment: the dir destination"), "{}", run.stderr);
    assert!(run.stderr.contains("readonly/reports` cannot be written"), "{}", run.stderr);
    assert!(!s.path().join("readonly/outbox").exists() && s.path().join("readonly").is_file(), "no side effect");

    std::fs::remove_file(s.path().join("readonly")).expect("remove");
    let run = abreport_with_env(s.path(), &["validate", "job.toml", "--date", REPORT_DATE], &[]);
    run.assert_code(0);
    assert!(!s.path().join("readonly").exists(), "validate creates nothing");
}

#[test]
fn upload_puts_every_file_under_job_date_experiment_and_a_rerun_overwrites_the_same_keys() {
    let s = small(&["checkout"]);
    let moto = s3(s.path());
    s.append_to_job("[[deliver]]\nkind = \"upload\"\nurl = \"s3://reports/abreport\"");
    let env = s3_env(moto.port);
    s.run_with_env(&[], &pairs(&env)).assert_code(0);
    let prefix = format!("abreport/generated/{REPORT_DATE}/checkout");
    let expected: Vec<String> = OUTPUT_FILES.iter().map(|f| format!("{prefix}/{f}")).collect();
    assert_eq!(s3_keys(moto.port, "abreport"), expected);
    let local = std::fs::read(s.out("checkout").join("manifest.json")).expect("manifest");
    assert_eq!(s3_get(moto.port, &format!("{prefix}/manifest.json")), local);

    // The ledger says this date was delivered; --force sends it again.
    s.run_with_env(&["--force"], &pairs(&env)).assert_code(0);
    assert_eq!(s3_keys(moto.port, "abreport"), expected, "the same keys, no second copy");
    let again = std::fs::read(s.out("checkout").join("results.json")).expect("results");
    assert_eq!(s3_get(moto.port, &format!("{prefix}/results.json")), again, "overwritten by the re-run");
}

#[test]
fn a_digest_links_exports_over_the_attachment_limit_to_their_uploaded_copies() {
    let s = small(&["checkout", "search"]);
    let smtp = Smtp::start(s.path(), false, &[]);
    let moto = s3(s.path());
    s.append_to_job(
        "[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]\ndigest = true\nattach_max_bytes = 3000\n\
         link_base_url = \"https://files.example.com/reports/\"\n\n\
         [[deliver]]\nkind = \"upload\"\nurl = \"s3://reports/abreport\"",
    );
    let mut env = smtp.env();
    env.extend(s3_env(moto.port));
    s.run_with_env(&[], &pairs(&env)).assert_code(0);

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one digest for the job; server log:\n{}", smtp.server.log());
    let mail = mime(&messages[0]);
    let subject = mail["subject"].as_str().expect("subject");
    assert!(subject.starts_with(&format!("[abreport] generated {REPORT_DATE}: checkout ")), "{subject}");
    assert!(subject.contains("; search "), "{subject}");
    let images: Vec<&str> =
        mail["inline_images"].as_array().expect("images").iter().filter_map(|i| i["content_id"].as_str()).collect();
    let charts: Vec<&str> = images.iter().copied().filter(|cid| cid.starts_with("chart.")).collect();
    assert_eq!(charts, ["chart.checkout@abreport", "chart.search@abreport"]);
    assert!(images.contains(&"trend.search@abreport"), "each experiment's story too: {images:?}");
    // The results tables go first, then the small run logs while they fit under 3000 bytes;
    // the Parquet exports are linked.
    let attached: Vec<&str> =
        mail["attachments"].as_array().expect("attachments").iter().filter_map(|a| a["filename"].as_str()).collect();
    assert!(attached.first().is_some_and(|name| name.ends_with("-results.csv")), "{attached:?}");
    assert!(
        attached.iter().all(|name| name.ends_with("-run.log.jsonl") || name.ends_with("-results.csv")),
        "{attached:?}"
    );
    let link = format!("https://files.example.com/reports/generated/{REPORT_DATE}/checkout/allocation.parquet");
    let html = mail["html"].as_str().expect("html");
    assert!(html.contains(&format!("href=\"{link}\"")), "linked in the HTML");
    let plain = mail["plain"].as_str().expect("plain");
    let words = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains(&format!("too large to attach, download: {link}")), "and in the text: {plain}");
    assert!(words.contains("limit for attachments"), "the mail says why: {plain}");
    // The summary opens the digest: a row per experiment, linking to its section and report.
    let base = format!("https://files.example.com/reports/generated/{REPORT_DATE}");
    let summary = html.find("<caption").expect("a summary table");
    let first_section = html.find("<h1 id=\"xp-").expect("a section");
    for experiment in ["checkout", "search"] {
        let row = html.find(&format!("<a href=\"#xp-{experiment}\"")).expect("a summary row");
        assert!(summary < row && row < first_section, "{experiment}'s row comes before the sections");
        assert!(html.contains(&format!("<h1 id=\"xp-{experiment}\"")), "the row's anchor");
        assert!(html.contains(&format!("<a href=\"{base}/{experiment}/report.html\"")), "{experiment}'s report");
        assert!(plain.contains(&format!("   {base}/{experiment}/report.html\n")), "{plain}");
    }
    // The link points at a copy that exists: uploads go before mail.
    let keys = s3_keys(moto.port, "abreport");
    assert!(keys.contains(&format!("abreport/generated/{REPORT_DATE}/checkout/allocation.parquet")), "{keys:?}");
}

#[test]
fn a_digest_puts_a_paused_experiment_before_one_that_keeps_running() {
    let s = small(&["calm", "skewed,treatment_share=0.3"]);
    let smtp = Smtp::start(s.path(), false, &[]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]\ndigest = true");
    s.run_with_env(&[], &pairs(&smtp.env())).assert_code(0);
    assert_eq!(recommendation(&s.result("skewed")), "pause");
    assert_ne!(recommendation(&s.result("calm")), "pause");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "server log:\n{}", smtp.server.log());
    let mail = mime(&messages[0]);
    let subject = mail["subject"].as_str().expect("subject");
    assert!(subject.starts_with(&format!("[abreport] generated {REPORT_DATE}: skewed PAUSE; calm ")), "{subject}");
    let images: Vec<&str> =
        mail["inline_images"].as_array().expect("images").iter().filter_map(|i| i["content_id"].as_str()).collect();
    let charts: Vec<&str> = images.iter().copied().filter(|cid| cid.starts_with("chart.")).collect();
    assert_eq!(charts, ["chart.skewed@abreport", "chart.calm@abreport"], "the most urgent first");
    let plain = mail["plain"].as_str().expect("plain");
    let at = |heading: &str| plain.find(heading).unwrap_or_else(|| panic!("{heading} in {plain}"));
    assert!(at("1. skewed: PAUSE") < at("2. calm: "), "the summary, most urgent first: {plain}");
    assert!(at("\n1. skewed\n") < at("\n2. calm\n"), "the sections too: {plain}");
}

/// The text part reads as plain text: the verdict, the link, a line per variant, no Markdown.
fn assert_plain_text(mail: &Value, experiment: &str, recommendation: &str, report: &str) {
    let plain = mail["plain"].as_str().expect("plain");
    assert!(plain.starts_with(&format!("{experiment}\ngenerated · report for {REPORT_DATE}")), "{plain}");
    assert!(plain.contains(&format!("\n{recommendation} — ")), "the verdict: {plain}");
    let words = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains(&format!("Open the full report: {report}")), "{plain}");
    assert!(words.contains("- treatment: ") && words.contains("always-valid 95% CI ["), "a line per variant: {plain}");
    assert!(words.contains("Data quality: "), "{plain}");
    for markdown in ["\\", "|---", "| ", "## "] {
        assert!(!plain.contains(markdown), "`{markdown}` in the text part: {plain}");
    }
}

/// The attached `results.csv`, read by Python's csv module, holds results.json's figures of
/// the test the recommendation reads, to the last bit.
fn assert_csv_equals_results_json(mail: &Value, result: &Value) {
    let attachment = mail["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .find(|a| a["filename"] == "results.csv")
        .expect("results.csv attached");
    assert_eq!(attachment["charset"], "utf-8");
    let rows = attachment["csv_rows"].as_array().expect("rows");
    let cells = |row: &Value| -> Vec<String> {
        row.as_array().expect("row").iter().map(|c| c.as_str().expect("cell").to_string()).collect()
    };
    let header = cells(&rows[0]);
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("column {name}"));
    let number = |cell: &str| -> Value {
        if cell.is_empty() { Value::Null } else { serde_json::json!(cell.parse::<f64>().expect("a number")) }
    };
    let mut expected_rows = 0;
    for metric in result["metrics"].as_array().expect("metrics") {
        for variant in metric["variants"].as_array().expect("variants") {
            expected_rows += 1;
            let name = variant["variant"].as_str().expect("variant");
            let row = rows[1..]
                .iter()
                .map(cells)
                .find(|r| r[column("metric")] == metric["name"].as_str().expect("name") && r[column("variant")] == name)
                .unwrap_or_else(|| panic!("a row for {} {name}", metric["name"]));
            assert_eq!(row[column("units")], variant["units"].to_string());
            assert_eq!(number(&row[column("mean")]), variant["mean"]);
            let comparison =
                metric["comparisons"].as_array().expect("comparisons").iter().find(|c| c["variant"] == name);
            assert_eq!(row[column("is_control")], comparison.is_none().to_string());
            let inference = comparison.map(|c| &c["inference"]).filter(|i| !i.is_null());
            match inference {
                Some(i) => {
                    assert_eq!(number(&row[column("effect")]), i["estimate"]);
                    assert_eq!(number(&row[column("ci_lower")]), i["ci"][0]);
                    assert_eq!(number(&row[column("ci_upper")]), i["ci"][1]);
                    assert_eq!(number(&row[column("p_value")]), i["p_value"]);
                    assert_eq!(row[column("significant")], i["significant"].to_string());
                    assert_eq!(row[column("effect_scale")], i["scale"].as_str().expect("scale"));
                }
                None => assert_eq!(row[column("effect")], "", "no test, no figure"),
            }
        }
    }
    assert_eq!(rows.len(), 1 + expected_rows, "a row per metric and variant");
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { stack.push(path) } else { found.push(path) }
        }
    }
    found
}

#[test]
fn a_rejected_login_fails_the_email_only_keeps_the_outputs_and_never_shows_the_password() {
    const PASSWORD: &str = "Never-Print-Me-7731";
    let s = small(&["checkout"]);
    let smtp = Smtp::start(s.path(), true, &["--auth", "abreport:other", "--reject-login"]);
    s.prepend_to_job("admin = \"ops@example.com\"");
    s.append_to_job(
        "[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]\n\n[[deliver]]\nkind = \"dir\"\npath = \"shared\"",
    );
    let mut env = smtp.starttls_env();
    env.extend([
        ("ABREPORT_SMTP_USERNAME".to_string(), "abreport".to_string()),
        ("ABREPORT_SMTP_PASSWORD".to_string(), PASSWORD.to_string()),
        ("ABREPORT_LOG".to_string(), "debug".to_string()),
        (FAST_RETRIES.0.to_string(), FAST_RETRIES.1.to_string()),
    ]);
    let run = s.run_with_env(&["--log-format", "json"], &pairs(&env));
    run.assert_code(5);
    let port = smtp.server.port;
    assert!(
        run.stderr.contains(&format!(
            "error: delivery to email to pm@example.com failed: SMTP server 127.0.0.1:{port}: login rejected: permanent error (535)"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(not retried: trying again cannot help)"), "{}", run.stderr);
    // The admin notice goes through the same server, so it is refused too: the logged notice
    // says it was not mailed.
    assert!(run.stderr.contains("admin notice (not mailed: cannot notify ops@example.com"), "{}", run.stderr);
    assert!(smtp.messages().is_empty());
    // The other destination still got its set, and the report was not lost.
    assert!(s.path().join("shared/generated").join(REPORT_DATE).join("checkout/manifest.json").is_file());
    assert!(s.out("checkout").join("report.html").is_file());
    let state = outbox_state(&s);
    let destinations = state["destinations"].as_array().expect("destinations");
    let email = destinations.iter().find(|d| d["delivery"]["kind"] == "email").expect("email destination");
    assert_eq!(email["done"], false);
    assert!(email["last_error"].as_str().expect("error").contains("535"));
    let dir = destinations.iter().find(|d| d["delivery"]["kind"] == "dir").expect("dir destination");
    assert_eq!(dir["done"], true);

    // The password appears nowhere: not on stderr (debug logs included), not in any file of the
    // run — reports, exports, run log, outbox — and not base64-encoded as in AUTH PLAIN.
    let encoded = base64_encode(format!("\0abreport\0{PASSWORD}").as_bytes());
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(PASSWORD) && !text.contains(&encoded));
    }
    let files = files_under(s.path());
    assert!(files.iter().any(|f| f.ends_with("run.log.jsonl")) && files.iter().any(|f| f.ends_with("state.json")));
    for file in files.iter().filter(|f| !f.starts_with(s.path().join("data")) && !f.ends_with("job.toml")) {
        let bytes = std::fs::read(file).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(PASSWORD) && !text.contains(&encoded), "{} holds the password", file.display());
    }
}

/// Standard base64, enough for the check above (no dependency for one assertion).
fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn an_unreachable_smtp_server_is_retried_and_the_outbox_is_sent_exactly_once_on_retry() {
    let s = small(&["checkout"]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    let port = free_port().to_string();
    let down = [
        ("ABREPORT_SMTP_HOST", "127.0.0.1"),
        ("ABREPORT_SMTP_PORT", port.as_str()),
        ("ABREPORT_SMTP_TLS", "none"),
        ("ABREPORT_SMTP_FROM", FROM),
        FAST_RETRIES,
    ];
    let run = s.run_with_env(&[], &down);
    run.assert_code(5);
    assert!(
        run.stderr.contains(&format!("SMTP server 127.0.0.1:{port}: cannot connect")),
        "names the server: {}",
        run.stderr
    );
    assert!(run.stderr.contains("(gave up after 3 attempts)"), "{}", run.stderr);
    assert!(run.stderr.contains("abreport deliver --retry --job job.toml"), "says how to resend: {}", run.stderr);
    assert_eq!(outbox_state(&s)["destinations"][0]["done"], false);

    let listing = abreport_with_env(s.path(), &["deliver", "--job", "job.toml"], &[]);
    listing.assert_code(0);
    assert!(listing.stdout.contains(&format!("generated: {REPORT_DATE} waits in")), "{}", listing.stdout);
    assert!(listing.stdout.contains("for: email to pm@example.com"), "{}", listing.stdout);

    let smtp = Smtp::start(s.path(), false, &[]);
    let up = smtp.env();
    let retry = abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &pairs(&up));
    retry.assert_code(0);
    assert!(retry.stdout.contains("delivered to email to pm@example.com"), "{}", retry.stdout);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert!(mime(&messages[0])["subject"].as_str().expect("subject").starts_with("[abreport] checkout: "));
    assert!(!s.path().join("outbox/generated").join(REPORT_DATE).exists(), "the entry is gone once sent");
    // The late delivery is in the run ledger: neither a re-run nor catch-up sends it again.
    let record = ledger_record(s.path(), "generated", REPORT_DATE);
    assert_eq!(record["status"], "ok", "{record:#}");
    assert_eq!(record["deliveries"][0]["ok"], true);
    let rerun = s.run_with_env(&[], &pairs(&up));
    rerun.assert_code(0);
    assert!(rerun.stdout.contains("already delivered"), "{}", rerun.stdout);

    let again = abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &pairs(&up));
    again.assert_code(0);
    assert!(again.stdout.contains("nothing waiting"), "{}", again.stdout);
    assert_eq!(smtp.messages().len(), 1, "no duplicate");
}

#[test]
fn an_smtp_server_that_never_answers_times_out_and_is_retried() {
    let s = small(&["checkout"]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    // The kernel accepts connections into the backlog, but no greeting ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port().to_string();
    let env = [
        ("ABREPORT_SMTP_HOST", "127.0.0.1"),
        ("ABREPORT_SMTP_PORT", port.as_str()),
        ("ABREPORT_SMTP_TLS", "none"),
        ("ABREPORT_SMTP_FROM", FROM),
        ("ABREPORT_SMTP_TIMEOUT_SECONDS", "0.3"),
        FAST_RETRIES,
    ];
    let started = std::time::Instant::now();
    let run = s.run_with_env(&[], &env);
    run.assert_code(5);
    assert!(run.stderr.contains(&format!("SMTP server 127.0.0.1:{port}: timed out")), "{}", run.stderr);
    assert!(run.stderr.contains("(gave up after 3 attempts)"), "{}", run.stderr);
    assert!(started.elapsed().as_secs_f64() < 20.0, "bounded by the timeout");
    drop(silent);
}

#[test]
fn a_missing_bucket_fails_that_upload_only_and_the_admin_is_told() {
    let s = small(&["checkout"]);
    let smtp = Smtp::start(s.path(), false, &[]);
    let moto = s3(s.path());
    s.prepend_to_job("admin = \"ops@example.com\"");
    s.append_to_job(
        "[[deliver]]\nkind = \"upload\"\nurl = \"s3://no-such-bucket/abreport\"\n\n\
         [[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]",
    );
    let mut env = smtp.env();
    env.extend(s3_env(moto.port));
    let run = s.run_with_env(&[], &pairs(&env));
    run.assert_code(5);
    assert!(
        run.stderr.contains("error: delivery to upload s3://no-such-bucket/abreport failed: cannot upload"),
        "names the destination: {}",
        run.stderr
    );
    assert!(run.stderr.contains("not found (does the bucket or folder exist?)"), "and the cause: {}", run.stderr);
    assert!(!run.stderr.contains("testing"), "no credentials in messages");

    let messages = smtp.messages();
    assert_eq!(messages.len(), 2, "the report mail still went out, then the admin notice");
    assert_eq!(smtp.envelope(&messages[0])["rcpt_tos"], serde_json::json!(["pm@example.com"]));
    let notice = mime(&messages[1]);
    assert_eq!(smtp.envelope(&messages[1])["rcpt_tos"], serde_json::json!(["ops@example.com"]));
    assert_eq!(notice["subject"], format!("[abreport] job `generated` for {REPORT_DATE}: delivery_failed"));
    assert_eq!(shape(&notice["tree"]), "text/plain");
    let body = notice["plain"].as_str().expect("body");
    assert!(body.contains("delivery to upload s3://no-such-bucket/abreport failed: cannot upload"), "{body}");
    assert!(body.contains("abreport deliver --retry --job job.toml"), "{body}");
    let state = outbox_state(&s);
    let owed: Vec<&str> = state["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .filter(|d| d["done"] == false)
        .filter_map(|d| d["destination"].as_str())
        .collect();
    assert_eq!(owed, ["upload s3://no-such-bucket/abreport"]);
}

#[test]
fn a_folder_that_cannot_be_written_waits_in_the_outbox_and_only_it_is_sent_on_retry() {
    // Tests run as root, so permission bits would not stop a write. A real refusal instead:
    // the destination's parent `blocked` is a regular file, so creating folders under it
    // fails with "Not a directory" (ENOTDIR) on any file system.
    let s = small(&["checkout"]);
    std::fs::write(s.path().join("blocked"), "a file, not a folder").expect("file");
    s.append_to_job(
        "[[deliver]]\nkind = \"dir\"\npath = \"blocked/reports\"\n\n[[deliver]]\nkind = \"dir\"\npath = \"shared\"",
    );
    let run = s.run_with_env(&[], &[FAST_RETRIES]);
    run.assert_code(5);
    assert!(run.stderr.contains("error: delivery to dir "), "{}", run.stderr);
    assert!(run.stderr.contains("blocked/reports failed: cannot write"), "names the folder: {}", run.stderr);
    assert!(run.stderr.contains("Not a directory"), "and the cause: {}", run.stderr);
    let shared = s.path().join("shared/generated").join(REPORT_DATE).join("checkout");
    assert!(shared.join("manifest.json").is_file(), "the other destination got its set");

    // Fix the destination, remove the delivered copy, and retry: only the owed folder is
    // written; the one already delivered is not written again.
    std::fs::remove_file(s.path().join("blocked")).expect("unblock");
    std::fs::remove_dir_all(s.path().join("shared")).expect("remove");
    let retry = abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &[]);
    retry.assert_code(0);
    let blocked = s.path().join("blocked/reports/generated").join(REPORT_DATE).join("checkout");
    let mut names: Vec<String> = std::fs::read_dir(&blocked)
        .expect("delivered")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    names.sort();
    assert_eq!(names, OUTPUT_FILES);
    assert_eq!(
        std::fs::read(blocked.join("results.json")).expect("copy"),
        std::fs::read(s.out("checkout").join("results.json")).expect("original")
    );
    assert!(!s.path().join("shared").exists(), "the done destination was not sent again");
    assert!(!s.path().join("outbox/generated").exists());
}

#[test]
fn a_delivery_that_would_outlast_the_sla_is_stopped_and_waits_in_the_outbox() {
    let s = small(&["checkout"]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    s.edit_job(|job| job.replace("sla_seconds = 60", "sla_seconds = 4"));
    // A server that never greets, with a mail timeout far beyond the SLA: only the run's
    // deadline can end this send.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port().to_string();
    let env = [
        ("ABREPORT_SMTP_HOST", "127.0.0.1"),
        ("ABREPORT_SMTP_PORT", port.as_str()),
        ("ABREPORT_SMTP_TLS", "none"),
        ("ABREPORT_SMTP_FROM", FROM),
        ("ABREPORT_SMTP_TIMEOUT_SECONDS", "120"),
    ];
    let started = std::time::Instant::now();
    let run = s.run_with_env(&[], &env);
    let took = started.elapsed().as_secs_f64();
    run.assert_code(6);
    assert!(took < 10.0, "the SLA bounds delivery: {took:.1} s");
    assert!(run.stderr.contains("during stage `deliver`"), "{}", run.stderr);
    let state = outbox_state(&s);
    let destinations = state["destinations"].as_array().expect("destinations");
    assert!(destinations.iter().any(|d| d["done"] == false), "the email is still owed: {state}");
    drop(silent);
}

#[test]
fn after_a_failed_write_the_summary_points_each_experiment_at_its_own_report() {
    // `out/checkout` is a regular file, so checkout's folder cannot be made (ENOTDIR, even as
    // root); search, listed after it, is written.
    let s = small(&["checkout", "search"]);
    std::fs::create_dir_all(s.path().join("out")).expect("out");
    std::fs::write(s.path().join("out/checkout"), "a file, not a folder").expect("file");
    let run = s.run(&[]);
    run.assert_code(5);
    let line = |id: &str| {
        run.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no summary line for {id}:\n{}", run.stdout))
            .to_string()
    };
    assert!(line("search").ends_with("out/search/report.html"), "{}", run.stdout);
    assert!(!line("checkout").contains("report.html"), "checkout was not written: {}", run.stdout);
    assert!(line("checkout").contains("not written"), "{}", run.stdout);
    assert!(s.out("search").join("manifest.json").is_file());
}

#[test]
fn an_upload_that_fails_half_way_through_a_rerun_leaves_no_old_manifest_beside_new_files() {
    let s = small(&["checkout"]);
    let moto = s3(s.path());
    let proxy = crate::servers::Proxy::start(moto.port);
    s.append_to_job("[[deliver]]\nkind = \"upload\"\nurl = \"s3://reports/abreport\"");
    let env = s3_env(proxy.port);
    s.run_with_env(&[], &pairs(&env)).assert_code(0);
    let manifest = format!("abreport/generated/{REPORT_DATE}/checkout/manifest.json");
    assert!(s3_keys(moto.port, "abreport").contains(&manifest));
    let one_upload = proxy.bytes_up();

    // A forced re-run; the store fails once half of the set has gone up. The old manifest must
    // not vouch for a set that is now half new.
    proxy.fail_after_bytes(one_upload / 2);
    let run = s.run_with_env(
        &["--force", "--log-format", "json"],
        &pairs(
            &env.iter().cloned().chain([(FAST_RETRIES.0.to_string(), FAST_RETRIES.1.to_string())]).collect::<Vec<_>>(),
        ),
    );
    run.assert_code(5);
    assert!(run.stderr.contains("delivery to upload s3://reports/abreport failed"), "{}", run.stderr);
    assert!(proxy.bytes_up() > one_upload + one_upload / 4, "the failure came half-way, after new objects");
    let keys = s3_keys(moto.port, "abreport");
    assert!(!keys.contains(&manifest), "no manifest beside a half-replaced set: {keys:?}");

    // The store comes back: the outbox completes the set, manifest last.
    proxy.stop_failing();
    abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &pairs(&env)).assert_code(0);
    let local = std::fs::read(s.out("checkout").join("manifest.json")).expect("manifest");
    assert_eq!(s3_get(moto.port, &manifest), local);
}

#[test]
fn an_smtp_server_with_an_untrusted_certificate_is_not_retried() {
    let s = small(&["checkout"]);
    let smtp = Smtp::start(s.path(), true, &["--implicit-tls"]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    // Implicit TLS, and the test CA is not given: the certificate cannot be verified.
    let mut env = smtp.env();
    env[2].1 = "tls".into();
    env.push((FAST_RETRIES.0.to_string(), FAST_RETRIES.1.to_string()));
    let run = s.run_with_env(&[], &pairs(&env));
    run.assert_code(5);
    assert!(run.stderr.contains("UnknownIssuer"), "{}", run.stderr);
    assert!(run.stderr.contains("(not retried: trying again cannot help)"), "{}", run.stderr);
    assert!(run.stderr.contains("ABREPORT_SMTP_CA_FILE"), "says how to trust a private CA: {}", run.stderr);
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    assert!(smtp.messages().is_empty());
}

/// The experiment each received message is about, in arrival order (`digest` messages as
/// `digest:<experiments>`).
fn mailed(smtp: &Smtp) -> Vec<String> {
    smtp.messages()
        .iter()
        .map(|m| {
            let subject = mime(m)["subject"].as_str().expect("subject").to_string();
            let rest = subject.strip_prefix("[abreport] ").expect("an abreport subject");
            match rest.strip_prefix(&format!("generated {REPORT_DATE}: ")) {
                Some(digest) => {
                    let ids: Vec<&str> = digest.split("; ").filter_map(|part| part.split(' ').next()).collect();
                    format!("digest:{}", ids.join(","))
                }
                None => rest.split(':').next().expect("an experiment").to_string(),
            }
        })
        .collect()
}

#[test]
fn no_sequence_of_runs_sends_a_message_twice_unless_forced() {
    let s = small(&["checkout", "search"]);
    let smtp = Smtp::start(s.path(), false, &[]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    let env = smtp.env();
    let run = |args: &[&str]| s.run_with_env(args, &pairs(&env));

    run(&[]).assert_code(0);
    assert_eq!(mailed(&smtp), ["checkout", "search"]);
    // A --no-deliver run rewrites the local outputs; it does not make the date owed again.
    run(&["--no-deliver"]).assert_code(0);
    let again = run(&[]);
    again.assert_code(0);
    assert!(again.stdout.contains("already delivered"), "{}", again.stdout);
    assert_eq!(mailed(&smtp), ["checkout", "search"], "nothing sent twice after --no-deliver");
    // An experiment already delivered is not sent again on its own either.
    let single = run(&["--experiment", "search"]);
    single.assert_code(0);
    assert!(single.stdout.contains("already delivered"), "{}", single.stdout);
    assert_eq!(smtp.messages().len(), 2);
    // --force sends again, once, and is then remembered like any delivery.
    run(&["--force"]).assert_code(0);
    assert_eq!(mailed(&smtp), ["checkout", "search", "checkout", "search"]);
    run(&["--no-deliver"]).assert_code(0);
    run(&[]).assert_code(0);
    run(&["--experiment", "checkout"]).assert_code(0);
    assert_eq!(smtp.messages().len(), 4, "{:?}", mailed(&smtp));
    let record = ledger_record(s.path(), "generated", REPORT_DATE);
    let delivered = &record["delivered"][0];
    assert_eq!(delivered["experiments"], serde_json::json!(["checkout", "search"]), "{record:#}");
}

#[test]
fn a_single_experiment_run_then_a_full_run_sends_each_experiment_once() {
    let s = small(&["checkout", "search"]);
    let smtp = Smtp::start(s.path(), false, &[]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    let env = smtp.env();
    s.run_with_env(&["--experiment", "checkout"], &pairs(&env)).assert_code(0);
    s.run_with_env(&["--experiment", "checkout"], &pairs(&env)).assert_code(0);
    assert_eq!(mailed(&smtp), ["checkout"], "the same experiment twice is sent once");
    s.run_with_env(&[], &pairs(&env)).assert_code(0);
    assert_eq!(mailed(&smtp), ["checkout", "search"], "the full run sends only what is owed");
    let rerun = s.run_with_env(&[], &pairs(&env));
    rerun.assert_code(0);
    assert!(rerun.stdout.contains("already delivered"), "{}", rerun.stdout);
    assert_eq!(smtp.messages().len(), 2);
}

#[test]
fn a_digest_after_a_single_experiment_run_holds_only_what_was_not_sent() {
    let s = small(&["checkout", "search"]);
    let smtp = Smtp::start(s.path(), false, &[]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]\ndigest = true");
    let env = smtp.env();
    s.run_with_env(&["--experiment", "search"], &pairs(&env)).assert_code(0);
    s.run_with_env(&[], &pairs(&env)).assert_code(0);
    s.run_with_env(&[], &pairs(&env)).assert_code(0);
    assert_eq!(mailed(&smtp), ["digest:search", "digest:checkout"]);
}

#[test]
fn failed_deliveries_retried_around_no_deliver_and_single_experiment_runs_are_sent_once() {
    let s = small(&["checkout", "search"]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    let port = free_port().to_string();
    let down = [
        ("ABREPORT_SMTP_HOST", "127.0.0.1"),
        ("ABREPORT_SMTP_PORT", port.as_str()),
        ("ABREPORT_SMTP_TLS", "none"),
        ("ABREPORT_SMTP_FROM", FROM),
        FAST_RETRIES,
    ];
    // The server is down: everything waits in the outbox.
    s.run_with_env(&[], &down).assert_code(5);
    s.run_with_env(&["--no-deliver"], &down).assert_code(0);
    let smtp = Smtp::start(s.path(), false, &[]);
    let up = smtp.env();
    // One experiment by hand, then the outbox, then a plain run and catch-up's equal.
    s.run_with_env(&["--experiment", "checkout"], &pairs(&up)).assert_code(0);
    assert_eq!(mailed(&smtp), ["checkout"]);
    abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &pairs(&up)).assert_code(0);
    assert_eq!(mailed(&smtp), ["checkout", "search"], "the outbox sends only what the run did not");
    let rerun = s.run_with_env(&[], &pairs(&up));
    rerun.assert_code(0);
    assert!(rerun.stdout.contains("already delivered"), "{}", rerun.stdout);
    let again = abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &pairs(&up));
    again.assert_code(0);
    assert_eq!(mailed(&smtp), ["checkout", "search"]);
}

#[test]
fn a_no_deliver_run_between_a_failure_and_the_retry_does_not_make_the_date_owed_again() {
    let s = small(&["checkout", "search"]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]");
    let port = free_port().to_string();
    let down = [
        ("ABREPORT_SMTP_HOST", "127.0.0.1"),
        ("ABREPORT_SMTP_PORT", port.as_str()),
        ("ABREPORT_SMTP_TLS", "none"),
        ("ABREPORT_SMTP_FROM", FROM),
        FAST_RETRIES,
    ];
    s.run_with_env(&[], &down).assert_code(5);
    s.run_with_env(&["--no-deliver"], &down).assert_code(0);
    let smtp = Smtp::start(s.path(), false, &[]);
    let up = smtp.env();
    abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &pairs(&up)).assert_code(0);
    assert_eq!(mailed(&smtp), ["checkout", "search"]);
    let rerun = s.run_with_env(&[], &pairs(&up));
    rerun.assert_code(0);
    assert!(rerun.stdout.contains("already delivered"), "{}", rerun.stdout);
    assert_eq!(smtp.messages().len(), 2);
}

#[test]
fn a_waiting_digest_sent_after_a_single_experiment_run_leaves_that_experiment_out() {
    let s = small(&["checkout", "search"]);
    s.append_to_job("[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]\ndigest = true");
    let port = free_port().to_string();
    let down = [
        ("ABREPORT_SMTP_HOST", "127.0.0.1"),
        ("ABREPORT_SMTP_PORT", port.as_str()),
        ("ABREPORT_SMTP_TLS", "none"),
        ("ABREPORT_SMTP_FROM", FROM),
        FAST_RETRIES,
    ];
    s.run_with_env(&[], &down).assert_code(5);
    let smtp = Smtp::start(s.path(), false, &[]);
    let up = smtp.env();
    s.run_with_env(&["--experiment", "checkout"], &pairs(&up)).assert_code(0);
    abreport_with_env(s.path(), &["deliver", "--retry", "--job", "job.toml"], &pairs(&up)).assert_code(0);
    assert_eq!(mailed(&smtp), ["digest:checkout", "digest:search"]);
    s.run_with_env(&[], &pairs(&up)).assert_code(0);
    assert_eq!(smtp.messages().len(), 2);
}

#[test]
fn a_ledger_record_that_cannot_be_read_is_not_overwritten() {
    let s = small(&["checkout"]);
    s.append_to_job("[[deliver]]\nkind = \"dir\"\npath = \"shared\"");
    let record = s.path().join("out/ledger/generated").join(format!("{REPORT_DATE}.json"));
    std::fs::create_dir_all(record.parent().expect("folder")).expect("ledger folder");
    std::fs::write(&record, "{ half a record").expect("damaged record");
    let run = s.run(&[]);
    run.assert_code(5);
    assert!(run.stderr.contains("the run was not started"), "{}", run.stderr);
    // What it said about the date's deliveries is someone's to repair, not to replace.
    assert_eq!(std::fs::read_to_string(&record).expect("record"), "{ half a record");
    assert!(!s.path().join("shared").exists(), "nothing sent without knowing what was");
}

/// The ledger's delivery key before `v2:` keys, kept here as it was: a digest of the
/// `Debug` text of the whole delivery.
fn legacy_delivery_key(delivery: &abreport::config::Delivery) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{delivery:?}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_date_delivered_by_a_version_with_the_legacy_delivery_key_is_not_sent_again() {
    let s = small(&["checkout"]);
    s.append_to_job("[[deliver]]\nkind = \"dir\"\npath = \"shared\"");
    s.run(&[]).assert_code(0);
    // The record as the version before `v2:` keys wrote it: the same destination, its old key.
    let text = std::fs::read_to_string(s.path().join("job.toml")).expect("job file");
    let job = abreport::config::check(&text, Path::new("job.toml")).expect("a valid job");
    let legacy = legacy_delivery_key(&job.deliveries[0]);
    let path = s.path().join("out/ledger/generated").join(format!("{REPORT_DATE}.json"));
    let record = std::fs::read_to_string(&path).expect("record");
    let key =
        ledger_record(s.path(), "generated", REPORT_DATE)["delivered"][0]["key"].as_str().expect("key").to_string();
    assert!(key.starts_with("v2:"), "{key}");
    std::fs::write(&path, record.replace(&key, &legacy)).expect("legacy record");
    std::fs::remove_dir_all(s.path().join("shared")).expect("delivered folder");

    let rerun = s.run(&[]);
    rerun.assert_code(0);
    assert!(rerun.stdout.contains("already delivered"), "{}", rerun.stdout);
    assert!(!s.path().join("shared").exists(), "not copied again");
}

#[test]
fn when_the_outbox_cannot_be_written_the_notice_says_so_instead_of_pointing_at_it() {
    let s = small(&["checkout"]);
    let smtp = Smtp::start(s.path(), false, &[]);
    // `blocked` is a file: neither the dir destination nor the outbox under it can be made.
    std::fs::write(s.path().join("blocked"), "a file, not a folder").expect("file");
    s.prepend_to_job("admin = \"ops@example.com\"\noutbox = \"blocked/outbox\"");
    s.append_to_job("[[deliver]]\nkind = \"dir\"\npath = \"blocked/reports\"");
    let run = s.run_with_env(&[], &pairs(&smtp.env()));
    run.assert_code(5);
    assert!(!run.stderr.contains("wait in the outbox"), "{}", run.stderr);
    assert!(run.stderr.contains("could not be kept in the outbox"), "{}", run.stderr);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "the admin notice; server log:\n{}", smtp.server.log());
    let body = mime(&messages[0])["plain"].as_str().expect("body").to_string();
    assert!(!body.contains("wait in the outbox") && !body.contains("wait in the job's outbox"), "{body}");
    assert!(body.contains("could not be kept in the outbox"), "{body}");
    assert!(body.contains(&format!("abreport run --job job.toml --date {REPORT_DATE}")), "{body}");
    let record = ledger_record(s.path(), "generated", REPORT_DATE);
    assert_eq!(record["outbox"], Value::Null, "{record:#}");
}

/// Writes `path` (and its folders) and dates it `age` ago.
fn plant(path: &Path, age: std::time::Duration) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("folders");
    std::fs::write(path, vec![0u8; 1024]).expect("written");
    let file = std::fs::File::options().write(true).open(path).expect("opens");
    file.set_modified(std::time::SystemTime::now() - age).expect("dated");
}

#[test]
fn a_run_removes_the_stale_temporary_files_of_killed_runs_and_nothing_else() {
    let s = small(&["checkout"]);
    s.append_to_job("[[deliver]]\nkind = \"dir\"\npath = \"shared\"");
    let old = std::time::Duration::from_secs(2 * 86_400);
    let p = |relative: &str| s.path().join(relative);
    // What killed runs leave: abreport's own temporary names, in the folders it writes.
    let stale = [
        p("out/checkout/.report.html.tmp-99999"),
        p("shared/generated/2026-11-19/checkout/.results.json.tmp-42"),
        p("outbox/generated/2026-11-18/.state.json.tmp-7"),
        p("outbox/generated/2026-11-18/checkout/.units.parquet.tmp-7"),
        p("out/ledger/generated/2026-11-18.json#3"),
        p("out/ledger/.designs/generated/checkout.json#1"),
    ];
    for path in &stale {
        plant(path, old);
    }
    // What must stay: a temporary file young enough to belong to a run going on now, files
    // that only look alike, and folders of other experiments or jobs.
    let kept = [
        p("out/checkout/.report.md.tmp-12"),
        p("out/checkout/notes.tmp-5"),
        p("out/checkout/.draft.tmp-abc"),
        p("out/other-experiment/.report.html.tmp-1"),
        p("shared/other-job/2026-11-19/x/.results.json.tmp-1"),
    ];
    for (i, path) in kept.iter().enumerate() {
        plant(path, if i == 0 { std::time::Duration::from_secs(5) } else { old });
    }
    s.run(&[]).assert_code(0);
    for path in &stale {
        assert!(!path.exists(), "{} was removed", path.display());
    }
    for path in &kept {
        assert!(path.exists(), "{} was kept", path.display());
    }
}

#[test]
fn validating_the_example_job_as_a_new_user_names_every_missing_setting() {
    // The shipped template, checked as a new user would: no SMTP settings, no AWS keys (the
    // instance-metadata service is a loopback port where nothing listens).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_abreport"));
    command
        .args(["validate", repo_root().join("jobs").to_str().expect("utf-8"), "--date", "2026-11-25"])
        .current_dir(dir.path());
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("ABREPORT_")) {
        if key != "AWS_CA_BUNDLE" {
            command.env_remove(key);
        }
    }
    command.env("AWS_REGION", "us-east-1").env("AWS_METADATA_ENDPOINT", format!("http://127.0.0.1:{}", free_port()));
    let output = command.output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The job file is valid (not 2); its source cannot be read without credentials (3).
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("daily.toml: environment: email needs the SMTP server"), "{stderr}");
    assert!(stderr.contains("no AWS credentials"), "{stderr}");
    let template = std::fs::read_to_string(repo_root().join("jobs/daily.toml")).expect("template");
    assert!(template.contains("abreport-demo/job.toml"), "the template points at a job that runs");
}
