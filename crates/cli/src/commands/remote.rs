//! The analyst's commands against a running server. A data directory that `cordon serve` has
//! open cannot be opened again (its ledger has one writer), so the incident commands reach the
//! server at the address it recorded (`served-at`) through the same API the console uses,
//! with an analyst token minted from the directory's key: the calls are authorized and
//! recorded by the server like any other, and the answers are the same documents.

use std::path::Path;

use anyhow::{Context as _, bail};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request};
use serde_json::Value;

use cordon_gateway::{DataDir, GatewayError, SystemClock, TokenRole};

/// Where a command's calls go: the data directory itself, or the server that has it open.
pub(crate) enum Target {
    Local(Box<cordon_gateway::Gateway>),
    Remote(Remote),
}

impl Target {
    /// The directory opened by `open`, or, if a running server holds it, that server.
    pub(crate) fn of(
        data: &Path,
        open: impl FnOnce(&DataDir) -> Result<cordon_gateway::Gateway, GatewayError>,
    ) -> anyhow::Result<Target> {
        match open(&DataDir::new(data)) {
            Ok(gateway) => Ok(Target::Local(Box::new(gateway))),
            Err(error) => match Remote::for_busy(data, &error)? {
                Some(remote) => Ok(Target::Remote(remote)),
                None => Err(error.into()),
            },
        }
    }
}

/// How long the command line's token for a running server lives.
const TOKEN_LIFETIME_SECONDS: i64 = 600;

/// A running server's API, as an analyst.
pub(crate) struct Remote {
    url: String,
    endpoint: cordon_server::client::Endpoint,
    /// For a server speaking HTTPS: trust in exactly the certificate its directory serves.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    token: String,
}

impl Remote {
    /// The server answering for `data`, if `error` (from opening it) says it is in use and
    /// the server recorded where it answers.
    pub(crate) fn for_busy(data: &Path, error: &GatewayError) -> anyhow::Result<Option<Remote>> {
        Remote::for_busy_as(data, error, TokenRole::Analyst)
    }

    /// [`Remote::for_busy`], asking as `role`.
    pub(crate) fn for_busy_as(data: &Path, error: &GatewayError, role: TokenRole) -> anyhow::Result<Option<Remote>> {
        if !matches!(error, GatewayError::Conflict(_)) {
            return Ok(None);
        }
        let dir = DataDir::new(data);
        let Some(url) = dir.served_at() else { return Ok(None) };
        let endpoint = cordon_server::client::Endpoint::parse(url.trim_end_matches('/')).map_err(anyhow::Error::msg)?;
        let tls = match (endpoint.tls, dir.config()?.tls_files(data)) {
            (false, _) => None,
            (true, Some((cert, _))) => {
                Some(cordon_server::tls::pinned_client_config(&cert).map_err(anyhow::Error::msg)?)
            }
            (true, None) => bail!(
                "`{}` is served over HTTPS at {url}, but its cordon.toml names no certificate to check the server by",
                data.display()
            ),
        };
        let mut remote = Remote { url, endpoint, tls, token: String::new() };
        remote.check_it_serves(data)?;
        remote.token = dir.issue_short_token(role, &SystemClock, TOKEN_LIFETIME_SECONDS)?;
        eprintln!("`{}` is served by {}: asking it", data.display(), remote.url);
        Ok(Some(remote))
    }

    /// Before any token goes out: the address must answer with a checkpoint signed by this
    /// directory's ledger key, at least as far along as the one published on disk. A
    /// `served-at` left by a server that was killed may name a port someone else has since
    /// taken; that listener gets nothing.
    fn check_it_serves(&self, data: &Path) -> anyhow::Result<()> {
        let key_path = data.join(cordon_gateway::LEDGER_DIR).join(cordon_ledger::VERIFIER_KEY_FILE);
        let key =
            std::fs::read_to_string(&key_path).with_context(|| format!("cannot read `{}`", key_path.display()))?;
        let verifier = cordon_ledger::Verifier::parse(key.trim())
            .map_err(|error| anyhow::anyhow!("`{}`: {error}", key_path.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP client")?;
        // The one on disk first: the server may publish a newer one in between, never an
        // older; and its answer may trail the file it has just written for a moment.
        let on_disk =
            cordon_ledger::LogReader::new(&data.join("ledger")).checkpoint().ok().map(|found| found.checkpoint.size);
        let mut served = None;
        for _ in 0..10 {
            let (status, body) = runtime.block_on(self.send(Method::GET, "/v1/ledger/checkpoint", None))?;
            let note = String::from_utf8_lossy(&body);
            served = cordon_ledger::Checkpoint::open(&note, &verifier).ok().filter(|_| status.is_success());
            match &served {
                Some(checkpoint) if on_disk.is_some_and(|size| checkpoint.size < size) => {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                _ => break,
            }
        }
        match served {
            Some(checkpoint) if on_disk.is_none_or(|size| checkpoint.size >= size) => Ok(()),
            _ => bail!(
                "`{}` is in use, and `{}` in it names {}, which does not answer with this ledger's signed checkpoint: not sending it a token. If no `cordon serve` runs on this directory, another command holds it; wait for it to finish",
                data.display(),
                "served-at",
                self.url
            ),
        }
    }

    /// One request; the body of a 2xx answer, or an error with the server's own detail.
    pub(crate) fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Vec<u8>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP client")?;
        let (status, bytes) = runtime.block_on(self.send(method.clone(), path, body))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|problem| problem.get("detail").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
            bail!("{method} {}{path}: {status}: {detail}", self.url);
        }
        Ok(bytes)
    }

    /// One request whose 2xx answer is written to `out` as it arrives (a backup); an error
    /// with the server's own detail otherwise.
    pub(crate) fn call_into(
        &self,
        method: Method,
        path: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP client")?;
        let failed = || format!("{method} {}{path}", self.url);
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, self.endpoint.authority())
            .header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))
            .with_context(failed)?;
        let answer = runtime
            .block_on(cordon_server::client::send_into(&self.endpoint, self.tls.as_ref(), request, out))
            .map_err(anyhow::Error::msg)
            .with_context(failed)?;
        if !answer.status.is_success() {
            let detail = serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|problem| problem.get("detail").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).chars().take(300).collect());
            bail!("{method} {}{path}: {}: {detail}", self.url, answer.status);
        }
        Ok(())
    }

    /// A request whose answer is JSON.
    pub(crate) fn json(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let bytes = self.call(method.clone(), path, body)?;
        serde_json::from_slice(&bytes).with_context(|| format!("{method} {}{path}: the answer is not JSON", self.url))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(hyper::StatusCode, Vec<u8>)> {
        let failed = || format!("{method} {}{path}", self.url);
        let bytes = body.map(|body| body.to_string().into_bytes()).unwrap_or_default();
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, self.endpoint.authority())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        let request = if self.token.is_empty() {
            request
        } else {
            request.header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.token))
        };
        let request = request.body(Full::new(Bytes::from(bytes))).with_context(failed)?;
        let answer = cordon_server::client::send(&self.endpoint, self.tls.as_ref(), request)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(failed)?;
        Ok((answer.status, answer.body))
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    cordon_server::client::percent_encode(text)
}
