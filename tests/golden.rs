//! Golden explain reports: the worked example of shared/fixtures (an independent reading of
//! rules.md) and the shipped standalone example, compared as JSON values.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn explain(args: &[&str]) -> (Value, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args(["config", "explain"])
        .args(args)
        .env_remove("SNBOX_CONFIG")
        .output()
        .expect("snbox runs");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (report, out.status.code().unwrap_or(-1))
}

fn golden(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file")).expect("golden JSON")
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn golden_seed_example_explain() {
    let (report, code) = explain(&["--monitoring", &fixture("seed-example.json"), "--format", "json"]);
    assert_eq!(code, 0);
    assert_eq!(report, golden("fixtures/seed-example.explain.json"));
}

#[test]
fn golden_seed_example_explain_at_paris_dst_night() {
    let (report, code) = explain(&[
        "--monitoring",
        &fixture("seed-example.json"),
        "--at",
        "2027-03-28T00:30:00Z",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        report,
        golden("fixtures/seed-example.explain-at-2027-03-28T00-30Z.json")
    );
}

#[test]
fn golden_standalone_example_explain() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/standalone.json");
    let (report, code) = explain(&["--monitoring", &doc.display().to_string()]);
    assert_eq!(code, 0);
    assert_eq!(report, golden("golden/standalone.explain.json"));
}

#[test]
fn golden_standalone_example_explain_on_christmas_eve() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let (report, code) = explain(&[
        "--monitoring",
        &dir.join("standalone.json").display().to_string(),
        "--at",
        "2026-12-24T16:00:00Z",
        "--config",
        &dir.join("snbox.toml").display().to_string(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(report, golden("golden/standalone.explain-at-2026-12-24T16-00Z.json"));
}
