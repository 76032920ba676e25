//! cordon's own HTTP/1 client, over TCP or TLS: the webhooks' deliveries and the command
//! line's calls to a running server. One request per connection (both send a handful).

use std::sync::Arc;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

/// How long a connection, and then its TLS handshake, may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The largest answer read (an evidence bundle is the largest cordon asks its server for).
const ANSWER_BYTES_MAX: usize = 1 << 30;

/// Where a request goes: `http://host:port/path` or `https://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path and query, `/` at least.
    pub path: String,
}

impl Endpoint {
    /// Reads a URL, or says what is wrong with it.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("`{url}` is not an http:// or https:// address"));
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("`{url}` names no host (or carries credentials, which cordon does not send)"));
        }
        let default_port = if tls { 443 } else { 80 };
        // `[::1]:8443`, `host:8443`, `host`.
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| format!("`{url}`: an unclosed `[`"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().map_err(|_| format!("`{url}`: `{port}` is not a port"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("`{url}`: unexpected `{after}` after the address")),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => {
                    (host.to_string(), port.parse().map_err(|_| format!("`{url}`: `{port}` is not a port"))?)
                }
                None => (authority.to_string(), default_port),
            }
        };
        Ok(Endpoint { tls, host, port, path: path.to_string() })
    }

    /// `host:port` as the `Host` header and the connection want it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `text` with every byte outside RFC 3986's unreserved characters percent-encoded: a path
/// segment, a query value or a form value that reads back as exactly `text`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// An answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: hyper::StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

/// Sends one request to `endpoint` (TLS with `tls` if the endpoint is https; an https endpoint
/// without a TLS configuration is refused, never sent in the clear).
pub async fn send(
    endpoint: &Endpoint,
    tls: Option<&Arc<ClientConfig>>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<Answer, String> {
    send_limited(endpoint, tls, request, ANSWER_BYTES_MAX).await
}

/// As [`send`], reading at most `limit` bytes of the answer (an identity provider's answers
/// are small; a larger one is refused before it is held).
pub async fn send_limited(
    endpoint: &Endpoint,
    tls: Option<&Arc<ClientConfig>>,
    request: hyper::Request<Full<Bytes>>,
    limit: usize,
) -> Result<Answer, String> {
    let response = connect(endpoint, tls).await?.send_request(request).await.map_err(|error| error.to_string())?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_limited(response.into_body(), limit).await?;
    Ok(Answer { status, headers, body })
}

/// As [`send`], for an answer too large to hold (a backup): a 2xx answer's body is written
/// to `out` as it arrives, and the answer returned has an empty body; any other answer is
/// read whole, as `send` reads it. A body cut short is an error.
pub async fn send_into(
    endpoint: &Endpoint,
    tls: Option<&Arc<ClientConfig>>,
    request: hyper::Request<Full<Bytes>>,
    out: &mut (dyn std::io::Write + Send),
) -> Result<Answer, String> {
    let response = connect(endpoint, tls).await?.send_request(request).await.map_err(|error| error.to_string())?;
    let status = response.status();
    let headers = response.headers().clone();
    if !status.is_success() {
        let body = read_limited(response.into_body(), ANSWER_BYTES_MAX).await?;
        return Ok(Answer { status, headers, body });
    }
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| format!("the answer was cut short: {error}"))?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data).map_err(|error| format!("cannot write the answer: {error}"))?;
        }
    }
    Ok(Answer { status, headers, body: Vec::new() })
}

/// A connection to `endpoint`, over TLS if it is https, ready for one request.
async fn connect(
    endpoint: &Endpoint,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    let connecting = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port));
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("connect {}: no answer within {} s", endpoint.authority(), CONNECT_TIMEOUT.as_secs()))?
        .map_err(|error| format!("connect {}: {error}", endpoint.authority()))?;
    let _ = stream.set_nodelay(true);
    if !endpoint.tls {
        return handshake(stream).await;
    }
    let Some(config) = tls else {
        return Err(format!("{} is https, and no TLS settings were given", endpoint.authority()));
    };
    let name = ServerName::try_from(endpoint.host.clone())
        .map_err(|error| format!("`{}` is not a name TLS can check: {error}", endpoint.host))?;
    let handshaking = tokio_rustls::TlsConnector::from(Arc::clone(config)).connect(name, stream);
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, handshaking)
        .await
        .map_err(|_| format!("TLS with {}: no handshake within {} s", endpoint.authority(), CONNECT_TIMEOUT.as_secs()))?
        .map_err(|error| format!("TLS with {}: {error}", endpoint.authority()))?;
    handshake(stream).await
}

async fn handshake<IO>(io: IO) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|error| error.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn read_limited(body: hyper::body::Incoming, limit: usize) -> Result<Vec<u8>, String> {
    Ok(http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|error| format!("the answer could not be read (at most {limit} bytes): {error}"))?
        .to_bytes()
        .to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::Endpoint;

    /// What a URL should read as: TLS, host, port, path; or words of the refusal.
    type Wanted = Result<(bool, &'static str, u16, &'static str), &'static str>;

    #[test]
    fn urls_are_read_or_refused_in_words() {
        let cases: [(&str, Wanted); 8] = [
            ("http://127.0.0.1:8080/hook", Ok((false, "127.0.0.1", 8080, "/hook"))),
            ("https://hooks.exchange.example/cordon?x=1", Ok((true, "hooks.exchange.example", 443, "/cordon?x=1"))),
            ("https://[::1]:8443", Ok((true, "::1", 8443, "/"))),
            ("http://host", Ok((false, "host", 80, "/"))),
            ("ftp://host/", Err("not an http")),
            ("https://user:pw@host/", Err("credentials")),
            ("https://host:99999/", Err("not a port")),
            ("https:///path", Err("names no host")),
        ];
        for (url, wanted) in cases {
            match (Endpoint::parse(url), wanted) {
                (Ok(found), Ok((tls, host, port, path))) => {
                    assert_eq!(
                        (found.tls, found.host.as_str(), found.port, found.path.as_str()),
                        (tls, host, port, path)
                    );
                }
                (Err(error), Err(words)) => assert!(error.contains(words), "{url}: {error}"),
                (found, wanted) => panic!("{url}: {found:?}, wanted {wanted:?}"),
            }
        }
    }
}
