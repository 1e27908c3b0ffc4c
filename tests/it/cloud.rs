//! `az://` and `gs://` against storage emulators on loopback, configured only through the
//! environment a user would set (README, "Storage emulators"): Azurite for Azure Blob Storage,
//! fake-gcs-server for Google Cloud Storage (behind a translator of the two XML-API calls it lacks:
//! tests/servers/gcs_server.py). The same window read from the cloud gives the same
//! outputs as read from a folder.

use std::path::Path;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use crate::support::*;

/// Azurite's published development account and key (the same in every installation).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// `azurite-blob`, installed by the test command (`tests/run.sh`) with npm.
fn azurite() -> String {
    std::env::var("ABREPORT_TEST_AZURITE").unwrap_or_else(|_| {
        panic!("ABREPORT_TEST_AZURITE is not set: run the tests with ./.ci/run (it installs Azurite)")
    })
}

/// A small generated dataset, its job read from `url` instead of the local folder, as
/// `job-cloud.toml`.
fn scenario(url: &str, extra: &str) -> Scenario {
    let s = Scenario::generate(&["--units", "3000", "--days", "3", "--files-per-day", "2", "--experiment", "checkout"]);
    let job = std::fs::read_to_string(s.job()).expect("job file");
    assert!(job.contains("url = \"data\""), "{job}");
    std::fs::write(
        s.path().join("job-cloud.toml"),
        format!("{}\n{extra}", job.replace("url = \"data\"", &format!("url = \"{url}\""))),
    )
    .expect("job file");
    s
}

fn run(s: &Scenario, job: &str, out: &str, env: &[(&str, &str)]) -> Run {
    abreport_with_env(s.path(), &["run", "--job", job, "--date", REPORT_DATE, "--out", out], env)
}

/// The run from the cloud and the run from the folder give the same files, time stamps aside;
/// the reports differ only in the line naming the source.
fn assert_same_outputs_as_from_the_folder(s: &Scenario, out: &str, url: &str) {
    run(s, "job.toml", "out-local", &[]).assert_code(0);
    let local_dir = s.path().join("out-local/checkout");
    let cloud_dir = s.path().join(out).join("checkout");
    let mut local = output_hashes(&local_dir);
    let mut cloud = output_hashes(&cloud_dir);
    assert_eq!(local.len(), 8, "{local:?}");
    for report in ["report.html", "report.md"] {
        let text = |dir: &Path| {
            let bytes = without_timestamps(report, std::fs::read(dir.join(report)).expect("report")).expect("text");
            String::from_utf8(bytes).expect("UTF-8")
        };
        let (local_text, cloud_text) = (text(&local_dir), text(&cloud_dir));
        let source_line = |text: &str| text.lines().find(|l| l.contains("Source")).expect("a source line").to_string();
        assert!(source_line(&cloud_text).contains(url), "{}", source_line(&cloud_text));
        assert_eq!(
            cloud_text.replace(&source_line(&cloud_text), ""),
            local_text.replace(&source_line(&local_text), ""),
            "{report}"
        );
        local.remove(report);
        cloud.remove(report);
    }
    assert_eq!(cloud, local);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Every object under `prefix` and its bytes, sorted by key.
fn objects(store: &dyn object_store::ObjectStore, prefix: &str) -> Vec<(String, Vec<u8>)> {
    runtime().block_on(async {
        let prefix = object_store::path::Path::from(prefix);
        let mut keys: Vec<object_store::path::Path> =
            store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await.expect("listing");
        keys.sort();
        let mut objects = Vec::new();
        for key in keys {
            let bytes = store.get(&key).await.expect("object").bytes().await.expect("bytes");
            objects.push((key.to_string(), bytes.to_vec()));
        }
        objects
    })
}

fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("outputs")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_string();
            (name, std::fs::read(&path).expect("file"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_window_is_read_from_azure_blob_storage_and_the_report_set_uploaded_there() {
    let s = scenario("az://data/xp", "[[deliver]]\nkind = \"upload\"\nurl = \"az://reports/abreport\"\n");
    let data = s.path().join("data");
    let upload = format!("data/xp={}", data.display());
    let azurite = Server::start(
        "azure_server.py",
        &["--azurite", &azurite(), "--container", "data", "--container", "reports", "--upload", &upload],
        s.path(),
    );
    let url = format!("http://127.0.0.1:{}", azurite.port);
    let env = [("AZURE_STORAGE_USE_EMULATOR", "true"), ("AZURITE_BLOB_STORAGE_URL", url.as_str())];
    let cloud = run(&s, "job-cloud.toml", "out-cloud", &env);
    cloud.assert_code(0);
    assert_same_outputs_as_from_the_folder(&s, "out-cloud", "az://data/xp");

    // Every file of the set is in the container, byte for byte, under job/date/experiment.
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(AZURITE_ACCOUNT)
        .with_access_key(AZURITE_KEY)
        .with_container_name("reports")
        .with_endpoint(format!("{url}/{AZURITE_ACCOUNT}"))
        .with_allow_http(true)
        .build()
        .expect("store");
    let prefix = format!("abreport/generated/{REPORT_DATE}/checkout");
    let uploaded: Vec<(String, Vec<u8>)> = objects(&store, &prefix)
        .into_iter()
        .map(|(key, bytes)| (key.strip_prefix(&format!("{prefix}/")).expect("under the prefix").to_string(), bytes))
        .collect();
    let local = files_of(&s.path().join("out-cloud/checkout"));
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&uploaded), names(&local));
    assert_eq!(local.len(), 9);
    assert!(uploaded == local, "the uploaded files differ from the local ones");
}

#[test]
fn a_window_is_read_from_google_cloud_storage_and_the_report_set_uploaded_there() {
    let s = scenario("gs://data/xp", "[[deliver]]\nkind = \"upload\"\nurl = \"gs://reports/abreport\"\n");
    let data = s.path().join("data");
    let upload = format!("data/xp={}", data.display());
    let gcs =
        Server::start("gcs_server.py", &["--bucket", "data", "--bucket", "reports", "--upload", &upload], s.path());
    let url = format!("http://127.0.0.1:{}", gcs.port);
    // Any token: the emulator checks none; a static one also keeps object_store from asking a
    // metadata server for credentials.
    let env = [("GOOGLE_BASE_URL", url.as_str()), ("GOOGLE_BEARER_TOKEN", "emulator")];
    run(&s, "job-cloud.toml", "out-cloud", &env).assert_code(0);
    assert_same_outputs_as_from_the_folder(&s, "out-cloud", "gs://data/xp");

    // Every file of the set is in the bucket, byte for byte, under job/date/experiment.
    let store = object_store::gcp::GoogleCloudStorageBuilder::new()
        .with_bucket_name("reports")
        .with_config(object_store::gcp::GoogleConfigKey::BaseUrl, &url)
        .with_config(object_store::gcp::GoogleConfigKey::BearerToken, "emulator")
        .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
        .build()
        .expect("store");
    let prefix = format!("abreport/generated/{REPORT_DATE}/checkout");
    let uploaded: Vec<(String, Vec<u8>)> = objects(&store, &prefix)
        .into_iter()
        .map(|(key, bytes)| (key.strip_prefix(&format!("{prefix}/")).expect("under the prefix").to_string(), bytes))
        .collect();
    let local = files_of(&s.path().join("out-cloud/checkout"));
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&uploaded), names(&local));
    assert_eq!(local.len(), 9);
    assert!(uploaded == local, "the uploaded files differ from the local ones");

    // A re-run with --force replaces the set: the old manifest is deleted before the first new
    // object, and the new one vouches for the new files.
    let forced = abreport_with_env(
        s.path(),
        &["run", "--job", "job-cloud.toml", "--date", REPORT_DATE, "--out", "out-cloud", "--force"],
        &env,
    );
    forced.assert_code(0);
    let again = objects(&store, &prefix);
    assert_eq!(again.len(), 9);
    let manifest = &again.iter().find(|(key, _)| key.ends_with("manifest.json")).expect("a manifest").1;
    let local_manifest = std::fs::read(s.path().join("out-cloud/checkout/manifest.json")).expect("manifest");
    assert_eq!(manifest, &local_manifest);
}

#[test]
fn an_azure_container_that_does_not_exist_is_a_source_error_naming_it() {
    let s = scenario("az://missing/xp", "");
    let azurite = Server::start("azure_server.py", &["--azurite", &azurite()], s.path());
    let url = format!("http://127.0.0.1:{}", azurite.port);
    let env = [("AZURE_STORAGE_USE_EMULATOR", "true"), ("AZURITE_BLOB_STORAGE_URL", url.as_str())];
    let run = run(&s, "job-cloud.toml", "out-cloud", &env);
    run.assert_code(3);
    assert!(run.stderr.contains("az://missing/xp"), "{}", run.stderr);
}
