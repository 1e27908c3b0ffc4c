//! Unit tests of the Spark Connect client that need no server: URL parsing, error
//! classification, and that no token ever shows.

use prost::Message as _;
use tonic::{Code, Status};

use super::proto::google::rpc as grpc_status;
use super::*;

fn parsed(url: &str) -> SparkRemote {
    SparkRemote::parse(url).unwrap_or_else(|e| panic!("`{url}` should parse: {e}"))
}

fn parse_error(url: &str) -> String {
    match SparkRemote::parse(url) {
        Ok(remote) => panic!("`{url}` should not parse, got {remote:?}"),
        Err(e) => {
            assert!(matches!(e, SparkError::InvalidRemote(_)), "{e:?}");
            assert!(!e.is_transient());
            e.to_string()
        }
    }
}

#[test]
fn a_bare_host_gets_the_default_port_and_plain_http2() {
    let remote = parsed("sc://localhost");
    assert_eq!((remote.host.as_str(), remote.port, remote.use_ssl), ("localhost", DEFAULT_PORT, false));
    assert_eq!(remote.user_id, DEFAULT_USER_ID);
    assert_eq!(remote.session_id, None);
    assert!(!remote.has_token());
    assert_eq!(remote.endpoint_uri(), "http://localhost:15002");
    assert_eq!(parsed("sc://localhost/").display_addr(), "localhost:15002");
}

#[test]
fn parameters_set_the_user_the_session_tls_and_extra_headers() {
    let remote = parsed(
        "sc://spark.example.com:443/;user_id=alice;use_ssl=true;session_id=00112233-4455-6677-8899-aabbccddeeff;x-team=ab",
    );
    assert_eq!((remote.host.as_str(), remote.port), ("spark.example.com", 443));
    assert_eq!(remote.user_id, "alice");
    assert!(remote.use_ssl);
    assert_eq!(remote.endpoint_uri(), "https://spark.example.com:443");
    assert_eq!(remote.session_id.as_deref(), Some("00112233-4455-6677-8899-aabbccddeeff"));
    assert_eq!(remote.headers.get("x-team").map(String::as_str), Some("ab"));
}

#[test]
fn a_token_implies_tls() {
    let remote = parsed("sc://spark.example.com:15002/;token=s3cr3t");
    assert!(remote.has_token());
    assert!(remote.use_ssl);
    assert!(parse_error("sc://h/;token=s3cr3t;use_ssl=false").contains("needs TLS"));
}

#[test]
fn ipv6_hosts_are_bracketed() {
    let remote = parsed("sc://[::1]:15003");
    assert_eq!((remote.host.as_str(), remote.port), ("::1", 15003));
    assert_eq!(remote.display_addr(), "[::1]:15003");
    assert_eq!(parsed("sc://[::1]").port, DEFAULT_PORT);
}

#[test]
fn malformed_urls_say_what_is_wrong() {
    assert!(parse_error("http://localhost:15002").contains("must start with `sc://`"));
    assert!(parse_error("sc://:15002").contains("no host"));
    assert!(parse_error("sc://h:spark").contains("port `spark`"));
    assert!(parse_error("sc://h:0").contains("port `0`"));
    assert!(parse_error("sc://h:70000").contains("port `70000`"));
    assert!(parse_error("sc://h/db").contains("path"));
    assert!(parse_error("sc://[::1").contains("without closing"));
    assert!(parse_error("sc://h/;use_ssl=yes").contains("`use_ssl` must be true or false"));
    assert!(parse_error("sc://h/;session_id=42").contains("not a UUID"));
    assert!(parse_error("sc://h/;user_id").contains("`user_id` has no `=value`"));
    assert!(parse_error("sc://h/;token=").contains("`token` is empty"));
    assert!(parse_error("sc://h/;bad header=1").contains("gRPC header name"));
}

#[test]
fn no_token_shows_in_debug_or_in_errors() {
    let remote = parsed("sc://spark.example.com/;token=s3cr3t");
    assert!(!format!("{remote:?}").contains("s3cr3t"), "{remote:?}");
    // a parameter without `=`: the token's text must not be echoed back
    let message = parse_error("sc://h/;tokens3cr3t");
    assert!(!message.contains("s3cr3t"), "{message}");
    assert!(message.contains("`token`"), "{message}");
}

/// A session over a channel that connects only when first used: enough to look at requests.
fn lazy_session(url: &str) -> SparkSession {
    let remote = parsed(url);
    let channel = Endpoint::from_shared(format!("http://{}", remote.display_addr())).expect("uri").connect_lazy();
    SparkSession {
        session_id: "00112233-4455-6677-8899-aabbccddeeff".into(),
        remote,
        client: SparkConnectServiceClient::new(channel),
    }
}

#[test]
fn the_token_travels_as_sensitive_bearer_metadata_and_extra_parameters_as_headers() {
    let _runtime_for_the_lazy_channel = crate::test_support::runtime().enter();
    let session = lazy_session("sc://localhost/;token=s3cr3t;x-team=ab");
    let mut metadata = tonic::metadata::MetadataMap::new();
    session.add_metadata(&mut metadata);
    let authorization = metadata.get("authorization").expect("authorization metadata");
    assert_eq!(authorization.to_str().expect("ascii"), "Bearer s3cr3t");
    assert!(authorization.is_sensitive());
    assert!(!format!("{metadata:?}").contains("s3cr3t"), "{metadata:?}");
    assert_eq!(metadata.get("x-team").and_then(|v| v.to_str().ok()), Some("ab"));
    assert!(!format!("{session:?}").contains("s3cr3t"));
}

#[test]
fn the_request_asks_for_a_non_reattachable_sql_relation() {
    let _runtime_for_the_lazy_channel = crate::test_support::runtime().enter();
    let session = lazy_session("sc://localhost/;user_id=alice");
    let request = session.execute_request("SELECT 1", "op");
    assert_eq!(request.session_id, "00112233-4455-6677-8899-aabbccddeeff");
    assert_eq!(request.user_context.as_ref().map(|u| u.user_id.as_str()), Some("alice"));
    assert_eq!(request.operation_id.as_deref(), Some("op"));
    let Some(pb::Plan { op_type: Some(pb::plan::OpType::Root(relation)) }) = &request.plan else {
        panic!("a relation plan: {request:?}")
    };
    assert!(matches!(&relation.rel_type, Some(pb::relation::RelType::Sql(sql)) if sql.query == "SELECT 1"));
    assert!(matches!(
        request.request_options[..],
        [pb::execute_plan_request::RequestOption {
            request_option: Some(pb::execute_plan_request::request_option::RequestOption::ReattachOptions(
                pb::ReattachOptions { reattachable: false }
            ))
        }]
    ));
}

/// A status as a Spark Connect server sends it: `INTERNAL` with an `ErrorInfo` detail.
fn spark_status(message: &str, classes: &str, sql_state: Option<&str>) -> Status {
    let mut info = grpc_status::ErrorInfo {
        reason: "org.apache.spark.SparkException".into(),
        domain: "org.apache.spark".into(),
        metadata: [("classes".to_string(), classes.to_string())].into_iter().collect(),
    };
    if let Some(sql_state) = sql_state {
        info.metadata.insert("sqlState".into(), sql_state.into());
    }
    let details = grpc_status::Status {
        code: Code::Internal as i32,
        message: message.into(),
        details: vec![grpc_status::PackedDetail {
            type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
            value: info.encode_to_vec(),
        }],
    };
    Status::with_details(Code::Internal, message, details.encode_to_vec().into())
}

fn check(status: &Status, expected: fn(&SparkError) -> bool, transient: bool) -> SparkError {
    let error = classify(status, "spark.example.com:15002");
    assert!(expected(&error), "{status:?} → {error:?}");
    assert_eq!(error.is_transient(), transient, "{error:?}");
    assert!(error.to_string().contains("spark.example.com:15002"), "{error}");
    error
}

#[test]
fn spark_errors_are_classified_by_their_exception_classes_and_sqlstate() {
    let analysis = |e: &SparkError| matches!(e, SparkError::Analysis { .. });
    let execution = |e: &SparkError| matches!(e, SparkError::Execution { .. });
    let error = check(
        &spark_status(
            "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with name `nope` cannot be resolved.",
            r#"["org.apache.spark.sql.AnalysisException","org.apache.spark.sql.catalyst.ExtendedAnalysisException"]"#,
            Some("42703"),
        ),
        analysis,
        false,
    );
    assert!(error.to_string().contains("`nope`"), "{error}");
    // a parse error's class extends AnalysisException; its SQLSTATE is of class 42 as well
    check(
        &spark_status(
            "[PARSE_SYNTAX_ERROR] Syntax error",
            r#"["org.apache.spark.sql.catalyst.parser.ParseException"]"#,
            Some("42601"),
        ),
        analysis,
        false,
    );
    check(&spark_status("[TABLE_OR_VIEW_NOT_FOUND] ...", "[]", Some("42P01")), analysis, false);
    check(
        &spark_status("Job aborted due to stage failure", r#"["org.apache.spark.SparkException"]"#, None),
        execution,
        true,
    );
    check(
        &spark_status(
            "[DIVIDE_BY_ZERO] Division by zero.",
            r#"["org.apache.spark.SparkArithmeticException"]"#,
            Some("22012"),
        ),
        execution,
        false,
    );
    check(&Status::internal("no details at all"), execution, true);
    check(&Status::invalid_argument("[PARSE_SYNTAX_ERROR] ..."), analysis, false);
}

#[test]
fn transport_failures_and_refusals_are_told_apart() {
    check(&Status::unavailable("connection refused"), |e| matches!(e, SparkError::Unreachable { .. }), true);
    check(&Status::deadline_exceeded("too slow"), |e| matches!(e, SparkError::Timeout { .. }), true);
    check(&Status::unauthenticated("bad token"), |e| matches!(e, SparkError::Rejected { .. }), false);
    check(&Status::unimplemented("not a Spark Connect service"), |e| matches!(e, SparkError::Rejected { .. }), false);
}

#[test]
fn long_server_messages_are_cut_on_a_character_boundary() {
    let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
    let cut = shorten(&long);
    assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS + 1);
    assert!(cut.ends_with('…'));
    assert_eq!(shorten("short"), "short");
}
