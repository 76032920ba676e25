//! `cordon log …`: the ledger's commands, their output, and their refusals.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use cordon_ledger::{Checkpoint, Hash, Verifier, verify_consistency, verify_receipt};

fn cordon(arguments: &[&str], input: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(arguments)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn succeed(arguments: &[&str], input: Option<&[u8]>) -> String {
    let output = cordon(arguments, input);
    assert!(output.status.success(), "cordon {arguments:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn fail(arguments: &[&str], input: Option<&[u8]>) -> String {
    let output = cordon(arguments, input);
    assert!(!output.status.success(), "cordon {arguments:?} should have failed");
    String::from_utf8(output.stderr).unwrap()
}

fn init(dir: &Path) -> (String, Verifier) {
    let log = dir.to_str().unwrap();
    let vkey = succeed(&["log", "init", log, "--origin", "audit.example/support"], None).trim().to_string();
    let verifier = Verifier::parse(&vkey).unwrap();
    (vkey, verifier)
}

#[test]
fn init_append_prove_verify() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("log");
    let log = dir.to_str().unwrap();
    let (vkey, verifier) = init(&dir);
    assert_eq!(verifier.name(), "audit.example/support");
    let key_mode = fs::metadata(dir.join("private/signing-key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600, "the signing key is private");
    let public: Vec<_> = fs::read_dir(&dir).unwrap().map(|item| item.unwrap().file_name()).collect();
    assert_eq!(public.len(), 2, "only `checkpoint` and `private/` before any entry: {public:?}");

    let lines: String = (0..300).map(|index| format!("decision {index}\n")).collect();
    let file = scratch.path().join("entries.txt");
    fs::write(&file, &lines).unwrap();
    assert_eq!(succeed(&["log", "append", log, file.to_str().unwrap()], None).trim(), "300");
    assert_eq!(succeed(&["log", "append", log], Some(b"from stdin\nand one more")).trim(), "302");
    let first_checkpoint = succeed(&["log", "checkpoint", log], None);
    let trusted_file = scratch.path().join("trusted");
    fs::write(&trusted_file, &first_checkpoint).unwrap();
    assert_eq!(Checkpoint::open(&first_checkpoint, &verifier).unwrap().size, 302);

    let receipt = succeed(&["log", "prove", log, "--index", "301"], None);
    assert_eq!(verify_receipt(&receipt, b"and one more", &verifier).unwrap().0, 301);
    let receipt = succeed(&["log", "prove", log, "--index", "7"], None);
    assert!(verify_receipt(&receipt, b"decision 7", &verifier).is_ok());
    assert!(verify_receipt(&receipt, b"decision 8", &verifier).is_err());

    succeed(&["log", "append", log], Some(b"later entry\n"));
    let current = Checkpoint::open(&succeed(&["log", "checkpoint", log], None), &verifier).unwrap();
    let proof: Vec<Hash> = succeed(&["log", "consistency", log, "--old", "302"], None)
        .lines()
        .map(|line| Hash::from_base64(line).unwrap())
        .collect();
    let old = Checkpoint::open(&first_checkpoint, &verifier).unwrap();
    verify_consistency(302, current.size, &proof, old.root.as_bytes(), current.root.as_bytes()).unwrap();

    let summary = succeed(&["log", "verify", log, "--vkey", &vkey, "--trusted", trusted_file.to_str().unwrap()], None);
    assert!(summary.starts_with("ok: log `audit.example/support` verified: 303 entries"), "{summary}");
    assert!(summary.contains("consistent with the trusted checkpoint at size 302"), "{summary}");
    let vkey_file = dir.join("private/verifier-key");
    assert!(succeed(&["log", "verify", log, "--vkey", vkey_file.to_str().unwrap()], None).starts_with("ok:"));

    // Tampering with an entry makes verify fail and name the entry.
    let bundle = dir.join("tile/entries/000");
    let mut bytes = fs::read(&bundle).unwrap();
    bytes[2 + 40] ^= 1;
    fs::write(&bundle, bytes).unwrap();
    let error = fail(&["log", "verify", log, "--vkey", &vkey], None);
    assert!(error.contains("does not match its leaf hash"), "{error}");
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("log");
    let log = dir.to_str().unwrap();
    let (vkey, _) = init(&dir);
    succeed(&["log", "append", log], Some(b"one\ntwo\n"));
    let other_vkey = {
        let other = scratch.path().join("other");
        init(&other).0
    };
    let long_line = format!("ok\n{}\n", "x".repeat(70_000));
    let missing = scratch.path().join("missing");
    // (arguments, standard input, what the error must say)
    type Case<'a> = (Vec<&'a str>, Option<&'a [u8]>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["log", "init", log, "--origin", "x.example"], None, "exists and is not empty"),
        (
            vec!["log", "init", missing.to_str().unwrap(), "--origin", "has space"],
            None,
            "key name `has space` is not valid",
        ),
        (vec!["log", "append", missing.to_str().unwrap()], Some(b"x\n"), "is not a cordon log"),
        (vec!["log", "append", log], Some(long_line.as_bytes()), "line 2 of standard input is 70000 bytes"),
        (vec!["log", "append", log, missing.to_str().unwrap()], None, "cannot read"),
        (vec!["log", "prove", log, "--index", "2"], None, "index 2 is not in the tree of size 2"),
        (vec!["log", "consistency", log, "--old", "3"], None, "must be between 1 and the current tree size 2"),
        (vec!["log", "checkpoint", missing.to_str().unwrap()], None, "is not a cordon log"),
        (vec!["log", "verify", log, "--vkey", "nonsense"], None, "is neither a verifier key nor a file"),
        (vec!["log", "verify", log, "--vkey", &other_vkey], None, "no signature by key"),
        (
            vec!["log", "verify", log, "--vkey", &vkey, "--trusted", missing.to_str().unwrap()],
            None,
            "cannot read trusted checkpoint",
        ),
    ];
    for (arguments, input, expected) in cases {
        let error = fail(&arguments, input);
        assert!(error.contains(expected), "cordon {arguments:?}: `{error}` should contain `{expected}`");
    }
    // The refused long input appended nothing, not even its good first line.
    assert_eq!(succeed(&["log", "append", log], Some(b"")).trim(), "2");
}
