//! Transport: `cordon init --tls` makes a self-signed pair and `serve` speaks HTTPS with it
//! (cookies `Secure`, plain HTTP on its port answered with nothing), the incident commands
//! reach it through the certificate its directory names and no other, and plain HTTP is
//! refused off loopback unless asked for, a certificate that does not load stops the start.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::support::{cordon, run, start_server_with, stop_server};

/// Whether a plain HTTP request to `address` gets an HTTP answer. (The server may close the
/// connection while the request is still being written: that is no answer either.)
fn plain_http_answers(address: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    let _ = write!(stream, "GET /v1/ledger/checkpoint HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/")
}

/// One HTTPS request through cordon's own client, trusting `ca` (or the web's roots).
fn https_get(address: &str, path: &str, ca: Option<&Path>) -> Result<cordon_server::client::Answer, String> {
    let tls = cordon_server::tls::client_config(ca)?;
    let port = address.rsplit_once(':').map(|(_, port)| port).unwrap();
    let endpoint = cordon_server::client::Endpoint::parse(&format!("https://localhost:{port}{path}"))?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, endpoint.authority())
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(cordon_server::client::send(&endpoint, Some(&tls), request))
}

#[test]
fn a_self_signed_pair_is_served_over_https_and_plain_http_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_text = data.to_str().unwrap();
    let (ok, _, stderr) = run(&["init", data_text, "--tls"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("tls/ca.pem"), "{stderr}");
    let key_mode = std::fs::metadata(data.join("tls/key.pem")).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600, "the private key is the owner's alone");
    let config = std::fs::read_to_string(data.join("cordon.toml")).unwrap();
    assert!(config.contains("tls_cert = \"tls/cert.pem\""), "{config}");

    let (server, address, log) = start_server_with(data_text, &["--listen", "127.0.0.1:0"]);
    assert!(log.lock().unwrap().contains("cordon serving on https://"), "{}", log.lock().unwrap());
    let ca = data.join("tls/ca.pem");
    let answer = https_get(&address, "/v1/ledger/checkpoint", Some(&ca)).unwrap();
    assert_eq!(answer.status, 200);
    assert!(String::from_utf8_lossy(&answer.body).starts_with("cordon.local/audit\n"));
    // The console's cookies are Secure over HTTPS.
    let login = https_get(&address, "/console/login", Some(&ca)).unwrap();
    let cookie = login.headers.get("set-cookie").and_then(|value| value.to_str().ok()).unwrap_or_default();
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"), "{cookie}");
    // A client that does not trust the authority gets no connection; plain HTTP gets nothing.
    let untrusted = https_get(&address, "/v1/ledger/checkpoint", None).unwrap_err();
    assert!(untrusted.contains("TLS") && untrusted.to_lowercase().contains("issuer"), "{untrusted}");
    assert!(!plain_http_answers(&address), "plain HTTP on the TLS port is not answered");

    // A client that completes the handshake and then sends nothing is closed within the bound.
    let idle_closed = {
        let tls = cordon_server::tls::client_config(Some(&ca)).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            use tokio::io::AsyncRead as _;
            let tcp = tokio::net::TcpStream::connect(address.as_str()).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.unwrap();
            let mut buffer = [0u8; 64];
            let read = std::future::poll_fn(|context| {
                let mut filled = tokio::io::ReadBuf::new(&mut buffer);
                std::pin::Pin::new(&mut stream)
                    .poll_read(context, &mut filled)
                    .map(|outcome| outcome.map(|()| filled.filled().len()))
            });
            matches!(tokio::time::timeout(std::time::Duration::from_secs(20), read).await, Ok(Ok(0) | Err(_)))
        })
    };
    assert!(idle_closed, "an idle connection is closed by the server");

    // The incident commands reach the server over TLS, trusting the certificate the directory names.
    let opened = cordon().args(["incident", "open", "--data", data_text, "--title", "over tls"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&opened.stderr);
    assert!(opened.status.success(), "{stderr}");
    assert!(stderr.contains("is served by https://"), "{stderr}");
    stop_server(server);
}

#[test]
fn plain_http_is_refused_off_loopback_unless_asked_for_and_a_bad_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_text = data.to_str().unwrap();
    assert!(run(&["init", data_text]).0);
    let (ok, _, stderr) = run(&["serve", "--data", data_text, "--listen", "0.0.0.0:0"]);
    assert!(!ok, "plain HTTP on every interface is refused");
    assert!(stderr.contains("refusing to serve plain HTTP on `0.0.0.0:0`") && stderr.contains("tls_cert"), "{stderr}");
    let (server, _address, log) = start_server_with(data_text, &["--listen", "0.0.0.0:0", "--insecure-http"]);
    assert!(log.lock().unwrap().contains("cordon serving on http://0.0.0.0:"), "{}", log.lock().unwrap());
    stop_server(server);

    let config_path = data.join("cordon.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    for (what, edited, expected) in [
        (
            "a missing certificate",
            config
                .replace("tls_cert = \"\"", "tls_cert = \"tls/none.pem\"")
                .replace("tls_key = \"\"", "tls_key = \"tls/none.key\""),
            "tls/none.pem",
        ),
        (
            "a certificate without its key",
            config.replace("tls_cert = \"\"", "tls_cert = \"tls/cert.pem\""),
            "go together",
        ),
    ] {
        std::fs::write(&config_path, &edited).unwrap();
        let (ok, _, stderr) = run(&["serve", "--data", data_text, "--listen", "127.0.0.1:0"]);
        assert!(!ok && stderr.contains(expected), "{what}: {stderr}");
    }
}
