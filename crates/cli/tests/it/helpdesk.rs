//! The Zendesk receiver over real HTTP, signed by an independent implementation (openssl's
//! HMAC, as a receiver's documentation recipe would compute it): a signed user event and a
//! ticket event are applied, an unsigned one is refused before it costs a blocking thread,
//! and the ticket then justifies a reveal.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{http, run, start_server, stop_server};

const SECRET: &str = "a-zendesk-webhook-signing-secret";

fn now_utc() -> String {
    let output = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// base64(HMAC-SHA256(secret, timestamp || body)), by openssl.
fn openssl_signature(timestamp: &str, body: &str) -> String {
    let mut child = Command::new("sh")
        .args(["-c", &format!("openssl dgst -sha256 -hmac '{SECRET}' -binary | base64")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{timestamp}{body}").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn post(address: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    write!(
        stream,
        "POST /v1/helpdesk/zendesk HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0);
    let payload = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

fn signed(address: &str, event: &Value) -> (u16, Value) {
    let body = event.to_string();
    let timestamp = now_utc();
    let signature = openssl_signature(&timestamp, &body);
    post(
        address,
        &body,
        &[("X-Zendesk-Webhook-Signature", &signature), ("X-Zendesk-Webhook-Signature-Timestamp", &timestamp)],
    )
}

#[test]
fn zendesk_events_signed_by_openssl_make_a_ticket_that_justifies_a_reveal() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let text = data.to_str().unwrap();
    assert!(run(&["init", text]).0);
    let secret = data.join("zendesk-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config_path = data.join("cordon.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        config.replace("zendesk_secret_file = \"\"", "zendesk_secret_file = \"zendesk-secret\""),
    )
    .unwrap();
    for (kind, lines) in [
        (
            "customers",
            "{\"id\": \"cus-1\", \"full_name\": \"Ottilie Brandvoll\", \"email\": \"ottilie@example.org\"}\n",
        ),
        (
            "agents",
            "{\"id\": \"agt-1\", \"name\": \"Sam\", \"team\": \"l1\", \"site\": \"us\", \"employer\": \"staff\", \
             \"email\": \"sam@exchange.example\"}\n",
        ),
    ] {
        let file = scratch.path().join(format!("{kind}.jsonl"));
        std::fs::write(&file, lines).unwrap();
        let (ok, _, stderr) = run(&["import", kind, file.to_str().unwrap(), "--data", text]);
        assert!(ok, "{stderr}");
    }
    let agent = run(&["token", "issue", "--data", text, "--agent", "agt-1"]).1.trim().to_string();
    let (server, address, log) = start_server(text);

    // Unsigned, and signed with the wrong secret: 401, nothing applied.
    let user = |id: &str, user: &str, role: &str, email: &str| {
        json!({"type": "zen:event-type:user.created", "id": id, "time": now_utc(),
               "detail": {"id": user, "email": email, "role": role}})
    };
    let body = user("u-1", "501", "end-user", "ottilie@example.org").to_string();
    let (status, refused) = post(&address, &body, &[]);
    assert_eq!(status, 401, "{refused}");
    let (status, _) = post(
        &address,
        &body,
        &[("X-Zendesk-Webhook-Signature", "bm90IGl0"), ("X-Zendesk-Webhook-Signature-Timestamp", &now_utc())],
    );
    assert_eq!(status, 401);

    for (id, user_id, role, email) in
        [("u-1", "501", "end-user", "ottilie@example.org"), ("u-2", "601", "agent", "sam@exchange.example")]
    {
        let (status, outcome) = signed(&address, &user(id, user_id, role, email));
        assert_eq!((status, outcome["outcome"].as_str()), (200, Some("applied")), "{outcome}");
    }
    let ticket = json!({"type": "zen:event-type:ticket.created", "id": "t-1", "time": now_utc(),
        "detail": {"id": "35436", "requester_id": "501", "submitter_id": "501", "assignee_id": "601",
                   "status": "OPEN", "tags": [], "updated_at": now_utc()}});
    let (status, outcome) = signed(&address, &ticket);
    assert_eq!((status, outcome["subject"].as_str()), (200, Some("zd-35436")), "{outcome}");
    let (status, again) = signed(&address, &ticket);
    assert_eq!((status, again["outcome"].as_str()), (200, Some("duplicate")), "{again}");

    let (status, revealed) = http(
        &address,
        "POST",
        "/v1/customers/cus-1/reveal",
        Some(&agent),
        Some(&json!({"ticket": "zd-35436", "fields": ["email"], "reason": "caller lost access"})),
    );
    assert_eq!((status, revealed["values"]["email"].as_str()), (200, Some("ottilie@example.org")), "{revealed}");
    stop_server(server);
    let log = log.lock().unwrap().clone();
    assert!(!log.contains("ottilie@") && !log.contains(SECRET), "no address or secret in the log");
}
