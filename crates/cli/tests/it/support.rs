//! Running the real binary: commands, a server on a free port, and a minimal HTTP client.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub fn cordon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cordon"))
}

pub fn run(arguments: &[&str]) -> (bool, String, String) {
    let output = cordon().args(arguments).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A minimal HTTP/1.1 client: one request per connection.
pub fn http(address: &str, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    try_http(address, method, path, token, body)
        .unwrap_or_else(|| panic!("no answer from {address} to {method} {path}"))
}

/// [`http`] to a server that may be gone: `None` when the connection fails or is cut.
pub fn try_http(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(address).ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let authorization = token.map(|token| format!("authorization: Bearer {token}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\n{authorization}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0);
    let payload = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    let value = serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_string()));
    Some((status, value))
}

pub fn start_server(data: &str) -> (Child, String, Arc<Mutex<String>>) {
    start_server_with(data, &["--listen", "127.0.0.1:0"])
}

/// A server with these `serve` arguments; its address as it printed it (without the scheme).
pub fn start_server_with(data: &str, arguments: &[&str]) -> (Child, String, Arc<Mutex<String>>) {
    start_server_in(cordon(), data, arguments)
}

/// As [`start_server_with`], from `command` (with its environment, say).
pub fn start_server_in(mut command: Command, data: &str, arguments: &[&str]) -> (Child, String, Arc<Mutex<String>>) {
    let mut child = command
        .args(["serve", "--data", data])
        .args(arguments)
        .env("CORDON_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (address_sender, address) = std::sync::mpsc::channel();
    let captured = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Into the log first: a test that holds the address may read the line at once.
            {
                let mut log = captured.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                log.push_str(&line);
                log.push('\n');
            }
            let served = line.strip_prefix("cordon serving on http://");
            if let Some(rest) = served.or_else(|| line.strip_prefix("cordon serving on https://")) {
                let _ = address_sender.send(rest.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let address = address.recv_timeout(std::time::Duration::from_secs(30)).expect("the server did not start");
    (child, address, log)
}

/// Stops a server as an operator does (SIGTERM), and waits for it.
pub fn stop_server(mut server: Child) {
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
}
