//! The HTTP(S) probe against a real local server (tests/common/http_server.rs): status,
//! body, redirects, latency, certificates (valid, expiring, expired, wrong host, unknown CA),
//! and hostile peers (never answers, endless body, huge headers, refused connection).

#[path = "common/http_server.rs"]
mod http_server;

use std::time::{Duration, Instant};

use http_server::{Cert, start};
use snbox::document::params::{HttpParams, Pattern};
use snbox::probe::http::HttpProber;
use snbox::probe::{CheckResult, Status};

const TIMEOUT: Duration = Duration::from_secs(3);

fn params(url: &str) -> HttpParams {
    snbox::document::params::parse(serde_json::json!({ "url": url })).expect("params")
}

fn pattern(regex: &str) -> Pattern {
    serde_json::from_value(serde_json::json!(regex)).expect("a regex")
}

async fn check(p: &HttpParams) -> CheckResult {
    HttpProber::new().check("127.0.0.1", p, TIMEOUT).await
}

#[tokio::test]
async fn http_ok_with_status_latency_and_body() {
    let server = start(None).await;
    let mut p = params(&server.url("/ok"));
    p.body_contains = Some("hello".into());
    p.body_regex = Some(pattern("^hello o+k$"));
    let r = check(&p).await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    assert!(r.output.starts_with("HTTP 200, body matches in "), "{}", r.output);
    assert_eq!(r.metrics["status_code"], 200.0);
    assert_eq!(r.metrics["body_bytes"], 8.0);
    assert!(r.metrics["time_ms"] > 0.0);
}

#[tokio::test]
async fn http_unexpected_status_is_critical_unless_listed() {
    let server = start(None).await;
    let mut p = params(&server.url("/status/503"));
    let r = check(&p).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.output.starts_with("HTTP 503, expected 2xx"), "{}", r.output);
    p.expect_status = Some(vec![200, 503]);
    assert_eq!(check(&p).await.status, Status::Ok);
}

#[tokio::test]
async fn http_body_that_does_not_match_is_critical() {
    let server = start(None).await;
    let mut p = params(&server.url("/ok"));
    p.body_contains = Some("goodbye".into());
    let r = check(&p).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.output.contains("body does not contain \"goodbye\""), "{}", r.output);
    p.body_contains = None;
    p.body_regex = Some(pattern("^bye"));
    assert_eq!(check(&p).await.status, Status::Critical);
}

#[tokio::test]
async fn http_redirects_are_followed_unless_refused() {
    let server = start(None).await;
    let mut p = params(&server.url("/redirect"));
    let r = check(&p).await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    assert!(
        r.output.contains(&format!("redirected to {}", server.url("/ok"))),
        "{}",
        r.output
    );
    p.follow_redirects = Some(false);
    let r = check(&p).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.output.starts_with("HTTP 302"), "{}", r.output);
    let r = check(&params(&server.url("/loop"))).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.output.starts_with("too many redirects"), "{}", r.output);
}

#[tokio::test]
async fn http_latency_thresholds() {
    let server = start(None).await;
    let mut p = params(&server.url("/slow"));
    p.warn_ms = Some(100.0);
    let r = check(&p).await;
    assert_eq!(r.status, Status::Warning, "{}", r.output);
    assert!(r.metrics["time_ms"] >= 300.0);
    p.crit_ms = Some(200.0);
    assert_eq!(check(&p).await.status, Status::Critical);
}

#[tokio::test]
async fn https_valid_certificate_reports_days_left() {
    let server = start(Some(Cert::Valid)).await;
    let mut p = params(&server.url("/ok"));
    p.ca_file = server.ca_file.as_ref().map(|f| f.display().to_string());
    p.tls_warn_days = Some(30);
    p.tls_crit_days = Some(7);
    let r = check(&p).await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    let days = r.metrics["tls_days_left"];
    assert!((364.0..=365.1).contains(&days), "{days}");
}

#[tokio::test]
async fn https_certificate_expiring_soon_warns_then_goes_critical() {
    for (days, expected) in [(20, Status::Warning), (5, Status::Critical)] {
        let server = start(Some(Cert::ExpiresIn(days))).await;
        let mut p = params(&server.url("/ok"));
        p.ca_file = server.ca_file.as_ref().map(|f| f.display().to_string());
        p.tls_warn_days = Some(30);
        p.tls_crit_days = Some(7);
        let r = check(&p).await;
        assert_eq!(r.status, expected, "{days} days: {}", r.output);
        assert!(r.output.contains("certificate expires in"), "{}", r.output);
    }
}

#[tokio::test]
async fn https_expired_certificate_is_critical_with_its_date() {
    let server = start(Some(Cert::Expired)).await;
    let mut p = params(&server.url("/ok"));
    p.ca_file = server.ca_file.as_ref().map(|f| f.display().to_string());
    let r = check(&p).await;
    assert_eq!(r.status, Status::Critical);
    let expired_on = (time::OffsetDateTime::now_utc() - time::Duration::days(2)).date();
    let day = format!(
        "{:04}-{:02}-{:02}",
        expired_on.year(),
        u8::from(expired_on.month()),
        expired_on.day()
    );
    assert!(
        r.output.starts_with(&format!("TLS certificate expired on {day}")),
        "{}",
        r.output
    );
    assert!(r.metrics["tls_days_left"] < -1.9);
}

#[tokio::test]
async fn https_wrong_host_and_unknown_ca_are_critical() {
    let server = start(Some(Cert::WrongHost)).await;
    let mut p = params(&server.url("/ok"));
    p.ca_file = server.ca_file.as_ref().map(|f| f.display().to_string());
    let r = check(&p).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.output.contains("not valid for name"), "{}", r.output);

    let server = start(Some(Cert::Valid)).await;
    let r = check(&params(&server.url("/ok"))).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.output.contains("UnknownIssuer"), "{}", r.output);
}

#[tokio::test]
async fn https_insecure_tls_skips_verification_but_still_reports_expiry() {
    let server = start(Some(Cert::Expired)).await;
    let mut p = params(&server.url("/ok"));
    p.insecure_tls = Some(true);
    let r = check(&p).await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    assert!(r.metrics["tls_days_left"] < 0.0);
    p.tls_crit_days = Some(7);
    assert_eq!(check(&p).await.status, Status::Critical);
}

#[tokio::test]
async fn http_server_that_never_answers_times_out_in_time() {
    let server = start(None).await;
    let prober = HttpProber::new();
    let start = Instant::now();
    let r = prober
        .check("127.0.0.1", &params(&server.url("/hang")), Duration::from_secs(1))
        .await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.output.contains("1s") || r.output.contains("timed out"),
        "{}",
        r.output
    );
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());

    // A listener that accepts and never reads.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}/", silent.local_addr().expect("addr"));
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let r = prober.check("127.0.0.1", &params(&url), Duration::from_secs(1)).await;
    assert_eq!(r.status, Status::Critical, "{}", r.output);
    hold.abort();
}

#[tokio::test]
async fn http_refused_connection_is_critical() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let r = check(&params(&format!("http://{addr}/"))).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.output.starts_with("cannot connect"), "{}", r.output);
}

#[tokio::test]
async fn http_endless_body_is_cut_at_one_mebibyte() {
    let server = start(None).await;
    let mut p = params(&server.url("/endless"));
    p.body_contains = Some("x".into());
    let start = Instant::now();
    let r = check(&p).await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    assert_eq!(r.metrics["body_bytes"], 1048576.0);
    assert!(start.elapsed() < TIMEOUT);
    p.body_contains = Some("y".into());
    assert_eq!(check(&p).await.status, Status::Critical);
}

#[tokio::test]
async fn http_huge_headers_are_refused_not_a_panic() {
    let server = start(None).await;
    let r = check(&params(&server.url("/huge-headers"))).await;
    assert_eq!(r.status, Status::Critical, "{}", r.output);
}

#[tokio::test]
async fn http_basic_auth_and_no_credential_in_the_output() {
    let server = start(None).await;
    let mut p = params(&server.url("/auth"));
    assert_eq!(check(&p).await.status, Status::Critical);
    p.username = Some("user".into());
    p.password = Some(snbox::secret::Secret::new("s3cret"));
    let r = check(&p).await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);

    // Credentials written into the URL itself never come back in an output.
    let url = server.url("/hang").replace("http://", "http://admin:Hunter2pw@");
    let r = HttpProber::new()
        .check("127.0.0.1", &params(&url), Duration::from_millis(500))
        .await;
    assert!(!r.output.contains("Hunter2pw"), "{}", r.output);
    let r = check(&params("http://admin:Hunter2pw@127.0.0.1:1/")).await;
    assert!(!r.output.contains("Hunter2pw"), "{}", r.output);
    // Nothing redirected: the output does not say it did.
    let url = server.url("/ok").replace("http://", "http://admin:Hunter2pw@");
    let r = check(&params(&url)).await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    assert!(!r.output.contains("redirected"), "{}", r.output);
}

#[tokio::test]
async fn http_bad_parameters_are_refused_when_read_and_a_missing_ca_file_is_unknown() {
    use snbox::document::params::parse;
    for (fields, field) in [
        (serde_json::json!({ "url": "ftp://127.0.0.1/" }), "url"),
        (serde_json::json!({ "url": "file:///etc/passwd" }), "url"),
        (serde_json::json!({ "method": "GE T" }), "method"),
        (serde_json::json!({ "body_regex": "(unclosed" }), "body_regex"),
        (serde_json::json!({ "warn_ms": 500.0, "crit_ms": 100.0 }), "warn_ms"),
        (
            serde_json::json!({ "tls_warn_days": 5, "tls_crit_days": 30 }),
            "tls_warn_days",
        ),
        (serde_json::json!({ "expect_status": [99] }), "expect_status"),
    ] {
        let refused = parse::<HttpParams>(fields.clone()).err();
        assert_eq!(
            refused.as_ref().map(|e| e.0.as_str()),
            Some(field),
            "{fields}: {refused:?}"
        );
    }
    let mut p = params("https://127.0.0.1/");
    p.ca_file = Some("/nonexistent/ca.pem".into());
    let r = check(&p).await;
    assert_eq!(r.status, Status::Unknown);
    assert!(r.output.contains("/nonexistent/ca.pem"), "{}", r.output);
}

/// Two HTTPS services on one host, on other ports, share a client (the same TLS settings):
/// each reports its own certificate, and a server gone since reports no stale one.
#[tokio::test]
async fn https_days_left_belong_to_the_connection_the_check_made() {
    let prober = HttpProber::new();
    let long = start(Some(Cert::Valid)).await;
    let short = start(Some(Cert::ExpiresIn(5))).await;
    let insecure = |url: String| HttpParams {
        url: Some(url.parse().expect("a URL")),
        insecure_tls: Some(true),
        ..HttpParams::default()
    };
    let (p_long, p_short) = (insecure(long.url("/ok")), insecure(short.url("/ok")));
    for _ in 0..5 {
        let (a, b) = tokio::join!(
            prober.check("127.0.0.1", &p_long, TIMEOUT),
            prober.check("127.0.0.1", &p_short, TIMEOUT)
        );
        assert!(
            (364.0..=365.1).contains(&a.metrics.get("tls_days_left").copied().unwrap_or(0.0)),
            "{} {:?}",
            a.output,
            a.metrics
        );
        assert!(
            (4.0..=5.1).contains(&b.metrics.get("tls_days_left").copied().unwrap_or(0.0)),
            "{} {:?}",
            b.output,
            b.metrics
        );
    }
    let expired = start(Some(Cert::Expired)).await;
    let p_expired = insecure(expired.url("/ok"));
    let r = prober.check("127.0.0.1", &p_expired, TIMEOUT).await;
    assert!(r.metrics["tls_days_left"] < -1.9, "{}", r.output);
    drop(expired);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = prober.check("127.0.0.1", &p_expired, TIMEOUT).await;
    assert_eq!(r.status, Status::Critical);
    assert!(!r.output.contains("expired"), "a stale certificate: {}", r.output);
    assert!(!r.metrics.contains_key("tls_days_left"), "{:?}", r.metrics);
}
