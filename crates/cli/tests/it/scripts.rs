//! The repository's scripts, where they can touch a user's files.

use std::path::Path;
use std::process::Command;

/// Regression: `scripts/quickstart` deleted whatever `CORDON_DATA` named, and the demo tells
/// users to export that variable for their real data directory. The script may delete only
/// the folder it made itself.
#[test]
fn quickstart_deletes_only_what_it_made() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sandbox = tempfile::tempdir().unwrap();
    std::fs::create_dir(sandbox.path().join("scripts")).unwrap();
    std::fs::copy(root.join("scripts/quickstart"), sandbox.path().join("scripts/quickstart")).unwrap();
    let precious = sandbox.path().join("real-data");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("cordon.sqlite"), "a user's data").unwrap();
    let theirs = sandbox.path().join("cordon-data");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("notes"), "not quickstart's").unwrap();

    let output = Command::new("bash")
        .arg(sandbox.path().join("scripts/quickstart"))
        .env("CORDON_DATA", &precious)
        // Without cargo on the path, a script that got past its check would stop at the
        // build, before deleting anything, rather than build cordon.
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("was not made by quickstart"), "{stderr}");
    assert!(precious.join("cordon.sqlite").exists(), "CORDON_DATA's folder was touched");
    assert!(theirs.join("notes").exists(), "a cordon-data folder quickstart did not make was deleted");
}
