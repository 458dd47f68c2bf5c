//! The .deb (issue 6): built by packaging/build-deb.sh from the binary under test, installed
//! into a throwaway root with `dpkg --root`, checked (files, modes, conffiles, the unit),
//! then purged. Maintainer scripts run chrootless with DPKG_ROOT set, so they touch no
//! systemd of the host.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}: {text}");
    text
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
#[ignore = "needs dpkg and dpkg-deb (Debian): bash .ci/run runs it"]
fn the_deb_installs_its_files_modes_conffiles_and_unit_and_purges_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = dir.path().join("snbox");
    // A stripped copy: the test binary's debug information would make a slow package.
    run(
        "strip",
        &["-o", &binary.display().to_string(), env!("CARGO_BIN_EXE_snbox")],
    );
    let out = dir.path().join("out");
    let built = run(
        "bash",
        &[
            "packaging/build-deb.sh",
            "--binary",
            &binary.display().to_string(),
            "--arch",
            "amd64",
            "--out",
            &out.display().to_string(),
        ],
    );
    let deb = built.trim().to_string();
    assert!(deb.ends_with("_amd64.deb"), "{deb}");
    let info = run("dpkg-deb", &["--field", &deb, "Package", "Architecture", "Depends"]);
    assert!(
        info.contains("Package: snbox") && info.contains("Depends: libc6 (>= 2.34)"),
        "{info}"
    );

    let root = dir.path().join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"] {
        std::fs::create_dir_all(root.join(d)).expect("dpkg db");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("status");
    std::fs::write(root.join("var/lib/dpkg/available"), "").expect("available");
    let root_arg = format!("--root={}", root.display());
    let dpkg = |args: &[&str]| {
        let mut all = vec![
            root_arg.as_str(),
            "--force-depends",
            "--force-script-chrootless",
            "--force-not-root",
        ];
        all.extend_from_slice(args);
        run("dpkg", &all)
    };
    dpkg(&["-i", &deb]);

    assert_eq!(mode(&root.join("usr/bin/snbox")), 0o755);
    assert_eq!(
        mode(&root.join("etc/snbox/snbox.toml")),
        0o644,
        "readable by the service's dynamic user"
    );
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/snbox.service")).expect("unit");
    assert_eq!(unit, include_str!("../systemd/snbox.service"));
    let settings = std::fs::read_to_string(root.join("etc/snbox/snbox.toml")).expect("settings");
    assert!(
        settings.contains("document = \"/etc/snbox/standalone.json\""),
        "the example document by absolute path"
    );
    assert!(root.join("etc/snbox/standalone.json").exists());
    assert!(root.join("usr/share/doc/snbox/copyright").exists());
    let status = dpkg(&["-s", "snbox"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(
        status.contains("/etc/snbox/snbox.toml") && status.contains("/etc/snbox/standalone.json"),
        "both are conffiles: {status}"
    );
    // The installed settings check, once pointed at the installed example.
    let check = dir.path().join("check.toml");
    std::fs::write(
        &check,
        settings
            .replace(
                "/etc/snbox/standalone.json",
                &root.join("etc/snbox/standalone.json").display().to_string(),
            )
            .replace("/var/lib/snbox", &dir.path().join("state").display().to_string()),
    )
    .expect("check settings");
    run(
        &root.join("usr/bin/snbox").display().to_string(),
        &["config", "check", "--config", &check.display().to_string()],
    );

    // Upgrade in place (the same version again), then purge: files, settings and state go.
    dpkg(&["-i", &deb]);
    std::fs::create_dir_all(root.join("var/lib/snbox")).expect("state");
    std::fs::write(root.join("var/lib/snbox/snbox.db"), "x").expect("db");
    dpkg(&["--purge", "snbox"]);
    for gone in [
        "usr/bin/snbox",
        "lib/systemd/system/snbox.service",
        "etc/snbox/snbox.toml",
        "var/lib/snbox",
    ] {
        assert!(!root.join(gone).exists(), "{gone} is still there after purge");
    }
}
