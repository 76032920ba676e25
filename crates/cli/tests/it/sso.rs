//! Single sign-on over real HTTP against a real OpenID provider (oidc-provider from npm,
//! `scripts/oidc-provider`): the provider's access tokens are the API's bearer tokens, a
//! claim names the directory's agent, and a reveal needs the second factor `[oidc]
//! require_amr` names, whoever's token it is.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::support::{http, run, start_server_with, stop_server};

const API: &str = "https://cordon.test/api";
const SECRET: &str = "a-client-secret-for-tests";

fn provider_script() -> String {
    format!("{}/../../scripts/oidc-provider/run", env!("CARGO_MANIFEST_DIR"))
}

/// A running oidc-provider, stopped when dropped.
struct RealProvider {
    child: Child,
    issuer: String,
    redirect: String,
}

impl RealProvider {
    /// A provider whose one client, the console, returns to `redirect`.
    fn start(redirect: &str) -> RealProvider {
        let port = free_port();
        let mut child = Command::new(provider_script())
            .args(["provider", &port.to_string(), SECRET, redirect, API])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.any(|line| line.is_ok_and(|line| line.contains("listening on"))), "oidc-provider did not start");
        std::thread::spawn(move || lines.for_each(drop));
        RealProvider { child, issuer: format!("http://127.0.0.1:{port}"), redirect: redirect.to_string() }
    }

    /// The token endpoint's answer after signing in as `login` with `password`.
    fn sign_in(&self, login: &str, password: &str) -> Value {
        let output = Command::new(provider_script())
            .args(["sign-in", &self.issuer, SECRET, &self.redirect, login, password])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for RealProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The details of the `change` entries in the published ledger of `data`.
fn changed_detail(data: &Path, change: &str) -> Vec<String> {
    let reader = cordon_ledger::LogReader::new(&data.join("ledger"));
    let size = reader.checkpoint().unwrap().checkpoint.size;
    let mut details = Vec::new();
    reader
        .for_each_entry(0, size, |_, bytes| {
            if let Ok(cordon_entry::Entry::Change(entry)) = cordon_entry::decode(bytes)
                && entry.change == change
            {
                details.push(entry.detail.unwrap_or_default());
            }
            Ok(())
        })
        .unwrap();
    details
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Signs in to the console at `address` through the provider as a browser would. Several
/// addresses, comma-separated, are gateways behind one load balancer: one cookie jar for all,
/// the sign-in begun at the first.
fn console_sign_in(address: &str, login: &str, password: &str, then: &[&str]) -> Value {
    let urls: Vec<String> = address.split(',').map(|address| format!("http://{address}")).collect();
    let mut command = Command::new(provider_script());
    command.args(["console-sign-in", &urls.join(","), login, password]).args(then);
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `data`'s `[oidc]` set to `provider`: its issuer, the API audience, the second factor a
/// reveal needs, and the console as its client.
fn configure(data: &Path, provider: &RealProvider) {
    let config = data.join("cordon.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml = toml.replace(
        "[oidc]\nissuer = \"\"\naudience = \"\"",
        &format!("[oidc]\nissuer = \"{}\"\naudience = \"{API}\"", provider.issuer),
    );
    toml = toml.replace("require_amr = \"\"", "require_amr = \"otp\"");
    toml = toml.replace("max_auth_age_seconds = 0", "max_auth_age_seconds = 600");
    toml = toml.replace(
        "client_id = \"\"\nclient_secret_file = \"\"\nredirect_url = \"\"",
        &format!(
            "client_id = \"cordon-console\"\nclient_secret_file = \"oidc-secret\"\nredirect_url = \"{}\"",
            provider.redirect
        ),
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(data.join("oidc-secret"), SECRET).unwrap();
        std::fs::set_permissions(data.join("oidc-secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(&config, &toml).unwrap();
}

fn write(path: &Path, lines: &[Value]) {
    std::fs::write(path, lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n") + "\n").unwrap();
}

#[test]
fn the_providers_access_tokens_sign_agents_in_to_the_api_and_a_reveal_needs_the_second_factor() {
    let cordon_address = format!("127.0.0.1:{}", free_port());
    let provider = RealProvider::start(&format!("http://{cordon_address}/console/oidc/callback"));
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let text = data.to_str().unwrap().to_string();
    let (ok, admin, stderr) = run(&["init", &text]);
    assert!(ok, "{stderr}");
    let admin = admin.trim().to_string();
    let files = scratch.path();
    write(
        &files.join("agents.jsonl"),
        &[
            json!({"id": "agt-1", "name": "Sam", "team": "l1-chat", "site": "us-sf", "employer": "staff", "email": "Sam@Exchange.example"}),
            json!({"id": "agt-2", "name": "Lee", "team": "l1-chat", "site": "us-sf", "employer": "staff", "email": "lee@exchange.example"}),
            json!({"id": "agt-3", "name": "Olga", "team": "l1-chat", "site": "us-sf", "employer": "staff", "email": "olga@exchange.example"}),
        ],
    );
    write(
        &files.join("customers.jsonl"),
        &[
            json!({"id": "cus-1", "full_name": "Oswin Trelawney", "email": "oswin@example.org"}),
            json!({"id": "cus-2", "full_name": "Perpetua Vane", "email": "perpetua@example.org"}),
        ],
    );
    write(
        &files.join("tickets.jsonl"),
        &[
            json!({"id": "t-1", "requester": "cus-1", "category": "account_recovery", "assignee": "agt-1"}),
            json!({"id": "t-2", "requester": "cus-2", "category": "account_recovery", "assignee": "agt-2"}),
            json!({"id": "t-3", "requester": "cus-1", "category": "account_recovery", "assignee": "agt-3"}),
        ],
    );
    for kind in ["agents", "customers", "tickets"] {
        let file = files.join(format!("{kind}.jsonl"));
        let (ok, stdout, stderr) = run(&["import", kind, file.to_str().unwrap(), "--data", &text]);
        assert!(ok, "{stdout}{stderr}");
    }
    configure(&data, &provider);
    let (ok, stdout, stderr) = run(&["config", "check", "--data", &text]);
    assert!(ok && stdout.contains(&provider.issuer), "{stdout}{stderr}");

    let (server, address, log) = start_server_with(&text, &["--listen", &cordon_address]);
    let fetched = || log.lock().unwrap().contains("the identity provider's keys are fetched");
    for _ in 0..100 {
        if fetched() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(fetched(), "the server fetched the provider's keys");

    let sam = provider.sign_in("sam", "pw+otp");
    let sam_access = sam["access_token"].as_str().unwrap().to_string();
    let reveal = |token: &str, customer: &str, ticket: &str| {
        http(
            &address,
            "POST",
            &format!("/v1/customers/{customer}/reveal"),
            Some(token),
            Some(&json!({"ticket": ticket, "fields": ["full_name"], "reason": "caller verified"})),
        )
    };
    // Sam signed in with a password and a one-time code: the email names agt-1 (in any case).
    let (status, card) = http(&address, "GET", "/v1/customers/cus-1?ticket=t-1", Some(&sam_access), None);
    assert_eq!(status, 200, "{card}");
    let (status, revealed) = reveal(&sam_access, "cus-1", "t-1");
    assert_eq!((status, revealed["values"]["full_name"].as_str()), (200, Some("Oswin Trelawney")), "{revealed}");

    // Lee signed in with a password only: the card, yes; a reveal, refused on the record.
    let lee = provider.sign_in("lee", "pw");
    let lee_access = lee["access_token"].as_str().unwrap();
    let (status, card) = http(&address, "GET", "/v1/customers/cus-2?ticket=t-2", Some(lee_access), None);
    assert_eq!(status, 200, "{card}");
    let (status, refused) = reveal(lee_access, "cus-2", "t-2");
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["policies"][0].as_str(), Some(cordon_gateway::SIGN_IN_POLICY), "{refused}");
    assert!(refused["detail"].as_str().unwrap_or_default().contains("otp"), "{refused}");
    assert!(refused["ledger_index"].as_u64().is_some(), "the refusal is recorded: {refused}");
    // Verify tells as much over enough statements: it asks the same.
    let (status, refused) = http(
        &address,
        "POST",
        "/v1/customers/cus-2/verify",
        Some(lee_access),
        Some(&json!({"ticket": "t-2", "field": "email", "value": "perpetua@example.org"})),
    );
    assert_eq!((status, refused["policies"][0].as_str()), (403, Some(cordon_gateway::SIGN_IN_POLICY)), "{refused}");
    // Olga used her second factor, but two hours ago: not within the last ten minutes.
    let olga = provider.sign_in("olga", "pw+otp");
    let (status, refused) = reveal(olga["access_token"].as_str().unwrap(), "cus-1", "t-3");
    assert_eq!((status, refused["policies"][0].as_str()), (403, Some(cordon_gateway::SIGN_IN_POLICY)), "{refused}");
    assert!(refused["detail"].as_str().unwrap_or_default().contains("within the last 600 s"), "{refused}");
    // cordon's own token for the same agent shows no second factor either.
    let own = run(&["token", "issue", "--data", &text, "--agent", "agt-1"]).1.trim().to_string();
    let (status, refused) = reveal(&own, "cus-1", "t-1");
    assert_eq!((status, refused["policies"][0].as_str()), (403, Some(cordon_gateway::SIGN_IN_POLICY)), "{refused}");

    // Tokens that name nobody, or are not access tokens for this API, authenticate nobody.
    let ghost = provider.sign_in("ghost", "pw+otp");
    let mallory = provider.sign_in("mallory", "pw+otp");
    let mut tampered = sam_access.clone().into_bytes();
    let at = sam_access.find('.').unwrap() + 3;
    tampered[at] = if tampered[at] == b'a' { b'b' } else { b'a' };
    let cases: Vec<(&str, String, &str)> = vec![
        ("an email no agent has", ghost["access_token"].as_str().unwrap().to_string(), "no directory agent"),
        (
            "another agent's email, unverified",
            mallory["access_token"].as_str().unwrap().to_string(),
            "not marked verified",
        ),
        ("an ID token", sam["id_token"].as_str().unwrap().to_string(), "at+jwt"),
        ("an altered token", String::from_utf8(tampered).unwrap(), "identity provider's token"),
    ];
    for (case, token, words) in cases {
        let (status, problem) = http(&address, "GET", "/v1/customers/cus-1?ticket=t-1", Some(&token), None);
        assert_eq!(status, 401, "{case}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains(words), "{case}: {problem}");
    }

    // The directory stays the authority: a suspended agent's provider token opens nothing, and
    // a revoked one authenticates nobody.
    let (status, body) = http(&address, "POST", "/v1/agents/agt-2/suspend", Some(&admin), Some(&json!({})));
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(&address, "GET", "/v1/customers/cus-2?ticket=t-2", Some(lee_access), None);
    assert!(status == 401 || status == 403, "a suspended agent: {status}");
    let jti = cordon_gateway::oidc::header(&sam_access).map(|_| ()).ok();
    assert!(jti.is_some());
    let claims: Value = {
        use base64::Engine as _;
        let part = sam_access.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let (status, body) =
        http(&address, "POST", "/v1/tokens/revoke", Some(&admin), Some(&json!({"jti": claims["jti"]})));
    assert_eq!(status, 200, "{body}");
    let (status, problem) = http(&address, "GET", "/v1/customers/cus-1?ticket=t-1", Some(&sam_access), None);
    assert_eq!(status, 401, "a revoked provider token: {problem}");

    // The console: sam signs in through the provider (PKCE, a nonce, the state bound to the
    // browser) and lands on the console as agt-1; the session keeps the second factor.
    let signed = console_sign_in(&address, "sam", "pw+otp", &["--reveal", "cus-1", "t-1", "full_name"]);
    assert_eq!(signed["callback_status"], 200, "{signed}");
    assert_eq!(signed["console_status"], 200, "{signed}");
    assert_eq!(signed["replay_status"], 403, "the callback's state is used once: {signed}");
    let page = signed["console_page"].as_str().unwrap_or_default();
    assert!(page.contains("agt-1") || page.contains("Sam"), "the console is agt-1's: {page}");
    // Its session keeps the second factor: a reveal in the console shows the value.
    let revealed = &signed["reveal"];
    assert_eq!((revealed["card_status"].as_u64(), revealed["status"].as_u64()), (Some(200), Some(200)), "{revealed}");
    assert!(revealed["page"].as_str().unwrap_or_default().contains("Oswin Trelawney"), "{revealed}");
    // A callback with another state than the one this browser began is refused.
    let tampered = console_sign_in(&address, "sam", "pw+otp", &["--tamper-state"]);
    assert_eq!(tampered["callback_status"], 403, "{tampered}");
    assert!(tampered["callback_page"].as_str().unwrap_or_default().contains("not begun in this browser"), "{tampered}");
    assert!(
        tampered["console_page"].as_str().unwrap_or_default().contains("Sign in to cordon"),
        "no session, so the console asks to sign in: {tampered}"
    );
    // Lee (suspended above) gets no session.
    let suspended = console_sign_in(&address, "lee", "pw+otp", &[]);
    assert_eq!(suspended["callback_status"], 401, "{suspended}");

    // An insider's worst values at the sign-in's doors: refused in words, nothing echoed.
    let huge = "s".repeat(20_000);
    let callbacks = [
        format!("/console/oidc/callback?state={huge}&code=x"),
        "/console/oidc/callback?state=%1b%5b2J%00&code=%00%0d%0a".to_string(),
        "/console/oidc/callback?code=x".to_string(),
        "/console/oidc/callback?state=abc&error=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_string(),
        "/console/oidc/callback?state=abc&state=def&code=x".to_string(),
        "/console/oidc/start?state=x".to_string(),
    ];
    for path in &callbacks {
        let (status, body) = http(&address, "GET", path, None, None);
        let body = body.as_str().unwrap_or_default().to_string();
        assert!(
            [303, 400, 403, 414].contains(&status),
            "{}: {status} {body}",
            path.chars().take(80).collect::<String>()
        );
        assert!(!body.contains("<script>alert"), "nothing the link carries is put on the page: {body}");
    }
    use base64::Engine as _;
    let b64 = |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let claims = b64(&json!({"iss": provider.issuer, "aud": API, "sub": "sam", "email": "sam@exchange.example",
        "email_verified": true, "jti": "forged", "iat": 1, "exp": 4_000_000_000_i64, "amr": ["otp"]}));
    let bearers = [
        format!("{}.{claims}.", b64(&json!({"alg": "none", "typ": "at+jwt"}))),
        format!("{}.{claims}.AAAA", b64(&json!({"alg": "HS256", "typ": "at+jwt", "kid": "x"}))),
        format!("{}.{claims}.AAAA", b64(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "\u{1b}[2J".repeat(500)}))),
        format!("{}.{claims}.AAAA", b64(&json!({"alg": "ES256", "typ": "at+jwt", "kid": huge}))),
    ];
    for token in &bearers {
        let (status, problem) = http(&address, "GET", "/v1/customers/cus-1?ticket=t-1", Some(token), None);
        // 431 for the one whose header block is over the server's bound, before any check.
        assert!(status == 401 || status == 431, "{status} {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.len() < 600 && !detail.contains('\u{1b}'), "short and printable: {detail:?}");
    }

    stop_server(server);
    // The same directory opens again, serves a fresh sign-in, and its ledger verifies.
    let (server, address, _) = start_server_with(&text, &["--listen", &cordon_address]);
    for _ in 0..100 {
        if http(&address, "GET", "/readyz", None, None).0 == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let fresh = provider.sign_in("sam", "pw+otp");
    let mut revealed = (0, Value::Null);
    for _ in 0..100 {
        revealed = reveal(fresh["access_token"].as_str().unwrap(), "cus-1", "t-1");
        if revealed.0 == 200 {
            break;
        }
        // Until the restarted server has fetched the provider's keys.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(revealed.0, 200, "{}", revealed.1);
    stop_server(server);
    let ledger = data.join("ledger");
    let key = ledger.join("private/verifier-key");
    let (ok, stdout, stderr) = run(&["log", "verify", ledger.to_str().unwrap(), "--vkey", key.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    // The session's start entry says how sam signed in (read once the server's last
    // checkpoint published it).
    let session_start = changed_detail(&data, "session.start");
    assert!(session_start.iter().any(|detail| detail.contains("amr pwd,otp")), "{session_start:?}");
    let log = log.lock().unwrap();
    assert!(!log.contains(&sam_access), "no token in the server's log");
}

/// Regression: a console sign-in under way was kept in the memory of the gateway that began it,
/// so behind a load balancer a provider's callback reaching another gateway was refused as
/// expired. With two gateways on PostgreSQL, a sign-in begun on the first finishes on the
/// second (the provider's redirect), its state used once there, and the session it starts
/// opens the console on the first.
#[test]
fn a_sign_in_begun_on_one_gateway_finishes_on_another() {
    let database = cordon_testpg::TestDatabase::new().unwrap();
    let first_address = format!("127.0.0.1:{}", free_port());
    let second_address = format!("127.0.0.1:{}", free_port());
    let provider = RealProvider::start(&format!("http://{second_address}/console/oidc/callback"));
    let scratch = tempfile::tempdir().unwrap();
    let first = scratch.path().join("first");
    let second = scratch.path().join("second");
    let (ok, _, stderr) = run(&["init", first.to_str().unwrap(), "--store", &database.url()]);
    assert!(ok, "{stderr}");
    let agents = scratch.path().join("agents.jsonl");
    write(
        &agents,
        &[
            json!({"id": "agt-1", "name": "Sam", "team": "l1-chat", "site": "us-sf", "employer": "staff", "email": "sam@exchange.example"}),
        ],
    );
    let (ok, stdout, stderr) = run(&["import", "agents", agents.to_str().unwrap(), "--data", first.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    configure(&first, &provider);
    assert!(Command::new("cp").arg("-a").arg(&first).arg(&second).status().unwrap().success());
    let mut servers = Vec::new();
    for (data, address) in [(&first, &first_address), (&second, &second_address)] {
        let (server, _, log) = start_server_with(data.to_str().unwrap(), &["--listen", address]);
        let fetched = || log.lock().unwrap().contains("the identity provider's keys are fetched");
        for _ in 0..100 {
            if fetched() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(fetched(), "{}", log.lock().unwrap());
        servers.push(server);
    }
    let signed = console_sign_in(&format!("{first_address},{second_address}"), "sam", "pw+otp", &[]);
    assert_eq!(signed["callback_status"], 200, "the callback on the other gateway: {signed}");
    assert_eq!(signed["replay_status"], 403, "the state is used once: {signed}");
    assert_eq!(signed["console_status"], 200, "{signed}");
    let page = signed["console_page"].as_str().unwrap_or_default();
    assert!(page.contains("agt-1") || page.contains("Sam"), "the console on the first gateway is agt-1's: {page}");
    for server in servers {
        stop_server(server);
    }
}
