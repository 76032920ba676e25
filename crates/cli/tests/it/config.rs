//! `cordon config check` reads `cordon.toml` as `serve` does: the configuration in effect, or
//! the same refusal `serve` starts with.

use crate::support::{cordon, run};

/// Runs `cordon ARGUMENTS` with `environment`; success and standard error.
fn with_env(arguments: &[&str], environment: &[(&str, &str)]) -> (bool, String, String) {
    let output = cordon().args(arguments).envs(environment.iter().copied()).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn config_check_prints_what_is_in_effect_or_the_refusal_serve_starts_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_text = data.to_str().unwrap();
    assert!(run(&["init", data_text]).0);
    let (ok, stdout, stderr) =
        with_env(&["config", "check", "--data", data_text], &[("CORDON_INCIDENT_CONTACT", "dpo@x.example")]);
    assert!(ok && stderr.contains("is valid") && stderr.contains("CORDON_INCIDENT_CONTACT"), "{stderr}");
    assert!(stdout.contains("contact = \"dpo@x.example\"") && stdout.contains("[detection.thresholds]"), "{stdout}");

    let config_path = data.join("cordon.toml");
    let original = std::fs::read_to_string(&config_path).unwrap();
    /// What is wrong, the file's text, the environment, and words the refusal must hold.
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 3] = [
        (
            "an override of the wrong type",
            original.clone(),
            vec![("CORDON_DETECTION_ENABLED", "maybe")],
            "CORDON_DETECTION_ENABLED",
        ),
        (
            "a certificate that is not there",
            original
                .replace("tls_cert = \"\"", "tls_cert = \"tls/gone.pem\"")
                .replace("tls_key = \"\"", "tls_key = \"tls/gone.key\""),
            vec![],
            "tls/gone.pem",
        ),
        ("a misspelt key", original.replace("[incident]", "[incident]\ncontakt = \"x\""), vec![], "contakt"),
    ];
    for (what, text, environment, words) in cases {
        std::fs::write(&config_path, text).unwrap();
        let (ok, _, check) = with_env(&["config", "check", "--data", data_text], &environment);
        assert!(!ok && check.contains(words), "{what}: {check}");
        let (ok, _, serve) = with_env(&["serve", "--data", data_text, "--listen", "127.0.0.1:0"], &environment);
        assert!(!ok, "{what}: serve started");
        assert_eq!(serve.trim(), check.trim(), "{what}: serve refuses with the same message");
    }
}

/// `cordon --version` names the commit it was built from (an operator's first question).
#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let (ok, stdout, _) = run(&["--version"]);
    assert!(ok);
    let commit = stdout
        .trim()
        .strip_prefix(&format!("cordon {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'));
    let commit = commit.unwrap_or_else(|| panic!("{stdout}"));
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success());
    match head {
        // Built from this checkout: its HEAD (or a commit made since the build, which would
        // have rebuilt it: the build reruns when HEAD moves).
        Some(head) => assert_eq!(commit, String::from_utf8_lossy(&head.stdout).trim()),
        None => assert_eq!(commit, "unknown"),
    }
}
