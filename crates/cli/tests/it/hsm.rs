//! The key-encryption key in a real PKCS#11 token: SoftHSM2 (Debian's `softhsm2`, which the
//! test command installs), with a token initialised here. The KEK moves into the token and
//! back out, every customer still opens, no key file is left behind, readiness asks the
//! token, and each way an operator can get the setting wrong is refused in words, leaving
//! the directory as it was.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::{cordon, http, start_server_in, stop_server};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "4711-cordon";

/// A SoftHSM2 configuration of its own, with one initialised token labelled `label`.
struct SoftHsm {
    conf: PathBuf,
}

impl SoftHsm {
    fn new(dir: &Path, label: &str) -> SoftHsm {
        assert!(
            Path::new(MODULE).is_file(),
            "SoftHSM2 is not installed (`{MODULE}`): scripts/test installs the Debian package softhsm2"
        );
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )
        .unwrap();
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "so-4711"])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
        SoftHsm { conf }
    }

    fn cordon(&self) -> Command {
        let mut command = cordon();
        command.env("SOFTHSM2_CONF", &self.conf);
        command
    }

    fn run(&self, arguments: &[&str]) -> (bool, String, String) {
        let output = self.cordon().args(arguments).output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// A data directory with two customers, an agent and a ticket for each customer.
fn directory(scratch: &Path) -> (PathBuf, String) {
    let data = scratch.join("data");
    let text = data.to_str().unwrap().to_string();
    assert!(crate::support::run(&["init", &text]).0);
    let files = [
        (
            "customers",
            "{\"id\": \"cus-1\", \"full_name\": \"Ottilie Brandvoll\", \"email\": \"ottilie@example.org\"}\n\
             {\"id\": \"cus-2\", \"full_name\": \"Rasmus Quellenhof\", \"email\": \"rasmus@example.org\"}\n",
        ),
        (
            "agents",
            "{\"id\": \"agt-1\", \"name\": \"Sam\", \"team\": \"l1\", \"site\": \"us\", \"employer\": \"staff\"}\n",
        ),
        (
            "tickets",
            "{\"id\": \"t-1\", \"requester\": \"cus-1\", \"category\": \"account_recovery\", \"assignee\": \"agt-1\"}\n\
             {\"id\": \"t-2\", \"requester\": \"cus-2\", \"category\": \"account_recovery\", \"assignee\": \"agt-1\"}\n",
        ),
    ];
    for (kind, lines) in files {
        let file = scratch.join(format!("{kind}.jsonl"));
        std::fs::write(&file, lines).unwrap();
        let (ok, _, stderr) = crate::support::run(&["import", kind, file.to_str().unwrap(), "--data", &text]);
        assert!(ok, "{stderr}");
    }
    (data, text)
}

/// Sets `[hsm]` in the directory's `cordon.toml` (empty strings for the keys not given).
fn set_hsm(data: &Path, module: &str, label: &str, pin_file: &str) {
    let path = data.join("cordon.toml");
    let mut table: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    table.insert(
        "hsm".into(),
        toml::Value::Table(toml::Table::from_iter([
            ("module".to_string(), toml::Value::from(module)),
            ("token_label".to_string(), toml::Value::from(label)),
            ("pin_file".to_string(), toml::Value::from(pin_file)),
        ])),
    );
    std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
}

fn write_pin(data: &Path, pin: &str, mode: u32) {
    let path = data.join("hsm-pin");
    std::fs::write(&path, format!("{pin}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn kek_files(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("keys"))
        .unwrap()
        .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("kek-") || name.starts_with("hsm-"))
        .collect();
    names.sort();
    names
}

/// Serves the directory, reveals both customers' names with the agent's token, checks
/// readiness and the KEK's gauge, and stops.
fn reveal_both(hsm: &SoftHsm, data: &str) {
    let agent = hsm.run(&["token", "issue", "--data", data, "--agent", "agt-1"]).1.trim().to_string();
    let (server, address, log) = start_server_in(hsm.cordon(), data, &["--listen", "127.0.0.1:0"]);
    for (customer, ticket, name) in [("cus-1", "t-1", "Ottilie Brandvoll"), ("cus-2", "t-2", "Rasmus Quellenhof")] {
        let (status, revealed) = http(
            &address,
            "POST",
            &format!("/v1/customers/{customer}/reveal"),
            Some(&agent),
            Some(&json!({"ticket": ticket, "fields": ["full_name"], "reason": "caller lost access"})),
        );
        assert_eq!((status, revealed["values"]["full_name"].as_str()), (200, Some(name)), "{revealed}");
    }
    let (status, ready) = http(&address, "GET", "/readyz", None, None);
    assert_eq!((status, ready["kek"].as_str()), (200, Some("ok")), "{ready}");
    let service = hsm.run(&["token", "issue", "--data", data, "--role", "service"]).1.trim().to_string();
    let (status, metrics) = http(&address, "GET", "/metrics", Some(&service), None);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(status == 200 && metrics.contains("cordon_kek_healthy 1"), "{status} {metrics}");
    stop_server(server);
    assert!(!log.lock().unwrap().contains(PIN), "the PIN is never logged");
}

#[test]
fn the_kek_moves_into_the_hsm_and_back_and_every_customer_still_opens() {
    let scratch = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(&scratch.path().join("softhsm"), "cordon");
    let (data, text) = directory(scratch.path());
    write_pin(&data, PIN, 0o600);
    set_hsm(&data, MODULE, "cordon", "hsm-pin");
    let (ok, _, stderr) = hsm.run(&["config", "check", "--data", &text]);
    assert!(ok, "{stderr}");
    let file_kek = kek_files(&data);
    assert_eq!(file_kek.len(), 1, "{file_kek:?}");

    // Into the token: the key file is gone, and the store names the token's key.
    let (ok, stdout, stderr) = hsm.run(&["keys", "rotate", "--data", &text, "--to", "hsm"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("`{}` to `hsm-", file_kek[0])) && stdout.contains("2 data keys"), "{stdout}");
    assert!(kek_files(&data).is_empty(), "no key-encryption key file is left: {:?}", kek_files(&data));
    reveal_both(&hsm, &text);

    // From one key in the token to a new one (where the current one is, by default).
    let (ok, stdout, stderr) = hsm.run(&["keys", "rotate", "--data", &text]);
    assert!(ok && stdout.contains("` to `hsm-"), "{stdout}{stderr}");
    reveal_both(&hsm, &text);

    // Another token under the same label holds no key of this directory: refused, naming it.
    let other = SoftHsm::new(&scratch.path().join("other-softhsm"), "cordon");
    let (ok, _, stderr) = other.run(&["keys", "rotate", "--data", &text, "--to", "file"]);
    assert!(!ok && stderr.contains("holds no key-encryption key `hsm-"), "{stderr}");

    // Without [hsm], the directory says where its key is instead of failing obscurely.
    set_hsm(&data, "", "", "");
    let (ok, _, stderr) = hsm.run(&["keys", "rotate", "--data", &text, "--to", "file"]);
    assert!(!ok && stderr.contains("is in an HSM, but cordon.toml has no [hsm]"), "{stderr}");
    set_hsm(&data, MODULE, "cordon", "hsm-pin");

    // And back out to a key file.
    let (ok, stdout, stderr) = hsm.run(&["keys", "rotate", "--data", &text, "--to", "file"]);
    assert!(ok && stdout.contains("` to `kek-"), "{stdout}{stderr}");
    assert_eq!(kek_files(&data).len(), 1);
    reveal_both(&hsm, &text);
    // And in again, to a new key in the token.
    let (ok, stdout, stderr) = hsm.run(&["keys", "rotate", "--data", &text, "--to", "hsm"]);
    assert!(ok && stdout.contains("` to `hsm-"), "{stdout}{stderr}");
    reveal_both(&hsm, &text);

    // A backup under the token's key restores with the token as the operator names it (the
    // backup's own [hsm] is never what opens it), and every customer opens in the copy.
    let archive = scratch.path().join("backup.tar");
    let (ok, stdout, stderr) = hsm.run(&["backup", "--data", &text, "--out", archive.to_str().unwrap()]);
    assert!(ok && stdout.contains("key-encryption key `hsm-"), "{stdout}{stderr}");
    let restored = scratch.path().join("restored");
    let pin = data.join("hsm-pin");
    let restore = |module: &str| {
        hsm.run(&[
            "restore",
            "--from",
            archive.to_str().unwrap(),
            "--data",
            restored.to_str().unwrap(),
            "--hsm-module",
            module,
            "--hsm-token-label",
            "cordon",
            "--hsm-pin-file",
            pin.to_str().unwrap(),
        ])
    };
    let (ok, _, stderr) =
        hsm.run(&["restore", "--from", archive.to_str().unwrap(), "--data", restored.to_str().unwrap()]);
    assert!(!ok && stderr.contains("--hsm-module"), "{stderr}");
    let (ok, _, stderr) = restore("/usr/lib/x86_64-linux-gnu/libc.so.6");
    assert!(!ok && !restored.exists(), "a library that is not the token's opens nothing: {stderr}");
    let (ok, stdout, stderr) = restore(MODULE);
    assert!(ok, "{stdout}{stderr}");
    assert!(std::fs::read_to_string(restored.join("hsm-pin")).unwrap().contains(PIN));
    reveal_both(&hsm, restored.to_str().unwrap());
}

/// The token goes away under a running server: readiness says the key does not answer, a
/// reveal is refused and recorded as refused, and no entry claims a reveal that did not happen.
#[test]
fn when_the_hsm_goes_away_readiness_says_so_and_a_reveal_is_refused_on_the_record() {
    let scratch = tempfile::tempdir().unwrap();
    let softhsm = scratch.path().join("softhsm");
    let hsm = SoftHsm::new(&softhsm, "cordon");
    let (data, text) = directory(scratch.path());
    write_pin(&data, PIN, 0o600);
    set_hsm(&data, MODULE, "cordon", "hsm-pin");
    assert!(hsm.run(&["keys", "rotate", "--data", &text, "--to", "hsm"]).0);
    let agent = hsm.run(&["token", "issue", "--data", &text, "--agent", "agt-1"]).1.trim().to_string();
    let service = hsm.run(&["token", "issue", "--data", &text, "--role", "service"]).1.trim().to_string();
    let (server, address, _) = start_server_in(hsm.cordon(), &text, &["--listen", "127.0.0.1:0"]);
    let reveal = || {
        http(
            &address,
            "POST",
            "/v1/customers/cus-1/reveal",
            Some(&agent),
            Some(&json!({"ticket": "t-1", "fields": ["full_name"], "reason": "caller lost access"})),
        )
    };
    assert_eq!(reveal().0, 200);
    let history = || http(&address, "GET", "/v1/customers/cus-1/access-history", Some(&service), None).1;
    let before = history();

    std::fs::rename(softhsm.join("tokens"), softhsm.join("tokens.away")).unwrap();
    let (status, ready) = http(&address, "GET", "/readyz", None, None);
    assert_eq!(status, 503, "{ready}");
    assert!(ready["detail"].as_str().unwrap_or_default().contains("key-encryption key does not answer"), "{ready}");
    let (status, refused) = reveal();
    assert_eq!(status, 500, "{refused}");
    assert!(!refused.to_string().contains("Ottilie"), "{refused}");
    // The attempt is on the record, as refused: no entry claims a reveal that opened nothing.
    let after = history();
    let events = |history: &serde_json::Value| history["events"].as_array().cloned().unwrap_or_default();
    let new: Vec<serde_json::Value> =
        events(&after).into_iter().filter(|event| !events(&before).contains(event)).collect();
    assert_eq!(new.len(), 1, "{after}");
    assert_eq!(new[0]["decision"], "deny", "{after}");
    stop_server(server);
}

#[test]
fn a_wrong_hsm_setting_is_refused_in_words_and_changes_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(&scratch.path().join("softhsm"), "cordon");
    let (data, text) = directory(scratch.path());
    let before = kek_files(&data);
    struct Case {
        name: &'static str,
        module: &'static str,
        label: &'static str,
        pin: &'static str,
        mode: u32,
        says: &'static str,
    }
    let cases = [
        Case { name: "wrong PIN", module: MODULE, label: "cordon", pin: "0000", mode: 0o600, says: "is wrong" },
        Case {
            name: "PIN others can read",
            module: MODULE,
            label: "cordon",
            pin: PIN,
            mode: 0o644,
            says: "can be read by others (mode 644)",
        },
        Case {
            name: "no such token",
            module: MODULE,
            label: "elsewhere",
            pin: PIN,
            mode: 0o600,
            says: "has no initialised token labelled `elsewhere`",
        },
        Case {
            name: "no such module",
            module: "/usr/lib/no-such-pkcs11.so",
            label: "cordon",
            pin: PIN,
            mode: 0o600,
            says: "cannot load the PKCS#11 module (module `/usr/lib/no-such-pkcs11.so`",
        },
        Case {
            name: "a module that is not PKCS#11",
            module: "/bin/sh",
            label: "cordon",
            pin: PIN,
            mode: 0o600,
            says: "cannot load the PKCS#11 module",
        },
        Case {
            name: "half a setting",
            module: MODULE,
            label: "",
            pin: PIN,
            mode: 0o600,
            says: "module, token_label and pin_file go together",
        },
        Case { name: "empty PIN", module: MODULE, label: "cordon", pin: "", mode: 0o600, says: "is empty" },
    ];
    for case in cases {
        write_pin(&data, case.pin, case.mode);
        set_hsm(&data, case.module, case.label, "hsm-pin");
        let (ok, stdout, stderr) = hsm.run(&["keys", "rotate", "--data", &text, "--to", "hsm"]);
        assert!(!ok, "{}: {stdout}", case.name);
        assert!(stderr.contains(case.says), "{}: `{stderr}` should say `{}`", case.name, case.says);
        assert!(case.pin.is_empty() || !stderr.contains(case.pin), "{}: the PIN is not repeated: {stderr}", case.name);
        assert_eq!(kek_files(&data), before, "{}: the key file stays", case.name);
    }
    // Each left the directory as it was: with the setting right, the move goes through.
    write_pin(&data, PIN, 0o600);
    set_hsm(&data, MODULE, "cordon", "hsm-pin");
    let (ok, _, stderr) = hsm.run(&["keys", "rotate", "--data", &text, "--to", "hsm"]);
    assert!(ok, "{stderr}");
    reveal_both(&hsm, &text);
}

/// A wrapped data key altered in the database, or moved to another customer, is refused by
/// the token's GCM tag check as undecryptable, not taken for a failing HSM; the refusal is on
/// the record, and readiness stays ready (the key itself answers).
#[test]
fn a_wrapped_key_altered_or_moved_is_refused_by_the_token_and_readiness_stays_ready() {
    let scratch = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(&scratch.path().join("softhsm"), "cordon");
    let (data, text) = directory(scratch.path());
    write_pin(&data, PIN, 0o600);
    set_hsm(&data, MODULE, "cordon", "hsm-pin");
    assert!(hsm.run(&["keys", "rotate", "--data", &text, "--to", "hsm"]).0);
    // cus-1's wrapped key replaced by cus-2's (bound to cus-2), with the server stopped.
    let database = data.join("cordon.sqlite");
    let moved = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             db = sqlite3.connect(sys.argv[1])\n\
             key = db.execute(\"SELECT wrapped_key FROM customers WHERE id = 'cus-2'\").fetchone()[0]\n\
             db.execute(\"UPDATE customers SET wrapped_key = ? WHERE id = 'cus-1'\", (key,))\n\
             db.commit()",
            database.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(moved.status.success(), "{}", String::from_utf8_lossy(&moved.stderr));
    let agent = hsm.run(&["token", "issue", "--data", &text, "--agent", "agt-1"]).1.trim().to_string();
    let (server, address, log) = start_server_in(hsm.cordon(), &text, &["--listen", "127.0.0.1:0"]);
    let reveal = |customer: &str, ticket: &str| {
        http(
            &address,
            "POST",
            &format!("/v1/customers/{customer}/reveal"),
            Some(&agent),
            Some(&json!({"ticket": ticket, "fields": ["full_name"], "reason": "caller lost access"})),
        )
    };
    let (status, refused) = reveal("cus-1", "t-1");
    assert_eq!(status, 500, "{refused}");
    assert!(!refused.to_string().contains("Rasmus") && !refused.to_string().contains("Ottilie"), "{refused}");
    let (status, revealed) = reveal("cus-2", "t-2");
    assert_eq!((status, revealed["values"]["full_name"].as_str()), (200, Some("Rasmus Quellenhof")));
    let (status, ready) = http(&address, "GET", "/readyz", None, None);
    assert_eq!((status, ready["kek"].as_str()), (200, Some("ok")), "{ready}");
    stop_server(server);
    let log = log.lock().unwrap().clone();
    assert!(log.contains("cannot decrypt the data key of customer `cus-1`"), "{log}");
}
