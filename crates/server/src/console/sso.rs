//! The console's sign-in through the exchange's OpenID provider: the authorization code flow
//! with PKCE (RFC 7636, S256), a nonce in the ID token, and a `state` bound to the browser by
//! a cookie. The provider's access token then starts the console session as any token does
//! (`Gateway::start_session`), so the directory names the agent, the session keeps how the
//! person signed in, and a reveal can require the second factor.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use http_body_util::Full;
use hyper::body::Bytes;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::pages::{SignedIn, render};
use super::{cookie, render_problem, request_id, set_cookie, signed_in_cookie};
use crate::client::percent_encode;
use crate::routes::AppState;
use crate::sso::{PendingSignIn, SIGN_IN_LIFETIME, SIGN_INS_MAX};

/// The cookie that binds a sign-in's `state` to the browser that began it. `SameSite=Lax`:
/// the provider's redirect back is a cross-site navigation, which a `Strict` cookie misses.
const STATE_COOKIE: &str = "cordon_oidc";
const STATE_PATH: &str = "/console/oidc";

fn random() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(BASE64URL.encode(bytes))
}

/// `GET /console/oidc/start`: off to the provider's sign-in page.
pub(crate) async fn start(State(state): State<Arc<AppState>>) -> Response {
    let Some(client) = state.gateway.oidc_console_client() else {
        return render_problem(
            StatusCode::NOT_FOUND,
            "The console does not sign in through an identity provider here.",
        );
    };
    let Some(endpoints) = state.provider.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone() else {
        return render_problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The identity provider has not answered yet; try again shortly.",
        );
    };
    let (Some(sign_in_state), Some(nonce), Some(verifier)) = (random(), random(), random()) else {
        return render_problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server has no random source now; try again shortly.",
        );
    };
    // In the store, so that the browser may come back to any gateway of the deployment.
    let begun = {
        let (sign_in_state, nonce, verifier) = (sign_in_state.clone(), nonce.clone(), verifier.clone());
        in_store(&state, "kept", move |gateway| {
            gateway.begin_sign_in(&sign_in_state, &nonce, &verifier, SIGN_IN_LIFETIME, SIGN_INS_MAX)
        })
        .await
    };
    match begun {
        Ok(true) => {}
        Ok(false) => {
            return render_problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sign-ins are under way; try again shortly.",
            );
        }
        Err(refused) => return refused,
    }
    let challenge = BASE64URL.encode(Sha256::digest(verifier.as_bytes()));
    let separator = if endpoints.authorization.contains('?') { '&' } else { '?' };
    // `prompt=login`: the person signs in now, with the methods the provider asks for now; a
    // second factor used days ago in a session the provider kept does not count.
    let mut location = format!(
        "{}{separator}response_type=code&client_id={}&redirect_uri={}&scope=openid%20email&state={}&nonce={}&code_challenge={}&code_challenge_method=S256&prompt=login&resource={}",
        endpoints.authorization,
        percent_encode(&client.client_id),
        percent_encode(&client.redirect_url),
        percent_encode(&sign_in_state),
        percent_encode(&nonce),
        percent_encode(&challenge),
        percent_encode(&client.audience),
    );
    if !client.acr_values.is_empty() {
        location.push_str(&format!("&acr_values={}", percent_encode(&client.acr_values)));
    }
    let mut cookie = set_cookie(&state, STATE_COOKIE, &sign_in_state, STATE_PATH, Some(600));
    cookie[0].1 = cookie[0].1.replace("SameSite=Strict", "SameSite=Lax");
    (StatusCode::SEE_OTHER, cookie, [(header::LOCATION, location)]).into_response()
}

/// A sign-in's store work, off the async workers; its failure as the page to answer with
/// (logged as a sign-in that could not be `done`).
async fn in_store<T: Send + 'static>(
    state: &Arc<AppState>,
    done: &'static str,
    work: impl FnOnce(&cordon_gateway::Gateway) -> Result<T, cordon_gateway::GatewayError> + Send + 'static,
) -> Result<T, Response> {
    let state = Arc::clone(state);
    match tokio::task::spawn_blocking(move || work(&state.gateway)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::error!(%error, "a sign-in could not be {done}");
            Err(render_problem(StatusCode::SERVICE_UNAVAILABLE, "Sign-in is not available now; try again shortly."))
        }
        Err(error) => {
            tracing::error!(%error, "a sign-in could not be {done}");
            Err(render_problem(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed; try again."))
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /console/oidc/callback`: the provider sends the browser back with a code.
pub(crate) async fn callback(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return render_problem(StatusCode::BAD_REQUEST, "The identity provider's answer is not one the console reads.");
    };
    let Some(returned_state) = query.state else {
        return render_problem(StatusCode::BAD_REQUEST, "The identity provider's answer has no state.");
    };
    // The state must be this browser's, and is used once.
    if cookie(&parts, STATE_COOKIE).is_none_or(|bound| bound != returned_state) {
        return render_problem(StatusCode::FORBIDDEN, "This sign-in was not begun in this browser; begin it again.");
    }
    let taken = in_store(&state, "read", move |gateway| gateway.take_sign_in(&returned_state, SIGN_IN_LIFETIME)).await;
    let pending = match taken {
        Ok(taken) => taken.map(|(nonce, verifier)| PendingSignIn { nonce, verifier }),
        Err(refused) => return refused,
    };
    let Some(pending) = pending else {
        return render_problem(StatusCode::FORBIDDEN, "This sign-in has expired or was used; begin it again.");
    };
    // The provider's own words are not shown: a link anyone can make would put them on the
    // console's page.
    if let Some(error) = query.error {
        let message = match error.as_str() {
            "access_denied" => "The identity provider did not sign you in (access denied).",
            "login_required" | "interaction_required" => "The identity provider asks you to sign in again.",
            _ => "The identity provider did not sign you in.",
        };
        return render_problem(StatusCode::UNAUTHORIZED, message);
    }
    let Some(code) = query.code else {
        return render_problem(StatusCode::BAD_REQUEST, "The identity provider's answer has no code.");
    };
    match finish(&state, &code, &pending, &request_id(&parts)).await {
        Ok(secret) => {
            let [cleared] = set_cookie(&state, STATE_COOKIE, "", STATE_PATH, Some(0));
            let [session] = signed_in_cookie(&state, &secret);
            // Two cookies: appended, not one replacing the other.
            let cleared = (cleared.0, cleared.1.replace("SameSite=Strict", "SameSite=Lax"));
            (axum::response::AppendHeaders([session, cleared]), render(&SignedIn { landing: "/console/".into() }))
                .into_response()
        }
        Err((status, message)) => render_problem(status, &message),
    }
}

/// Trades the code for the provider's tokens, checks the ID token (this sign-in's nonce) and
/// that the access token is the same person's, and starts the session with the access token.
async fn finish(
    state: &AppState,
    code: &str,
    pending: &PendingSignIn,
    request: &str,
) -> Result<String, (StatusCode, String)> {
    let unavailable =
        |why: String| (StatusCode::BAD_GATEWAY, format!("The identity provider could not be asked: {why}."));
    let refused =
        |why: String| (StatusCode::UNAUTHORIZED, format!("The identity provider's answer was refused: {why}."));
    let client =
        state.gateway.oidc_console_client().ok_or_else(|| (StatusCode::NOT_FOUND, "No sign-in here.".to_string()))?;
    let endpoints = state
        .provider
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .ok_or_else(|| unavailable("it has not answered yet".into()))?;
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
        percent_encode(code),
        percent_encode(&client.redirect_url),
        percent_encode(&pending.verifier)
    );
    // RFC 6749 §2.3.1: HTTP Basic over the form-encoded client id and secret.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        percent_encode(&client.client_id),
        percent_encode(&client.client_secret)
    ));
    let endpoint = crate::client::Endpoint::parse(&endpoints.token).map_err(unavailable)?;
    let request_to_provider = hyper::Request::post(endpoint.path.as_str())
        .header(hyper::header::HOST, endpoint.authority())
        .header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(hyper::header::AUTHORIZATION, format!("Basic {basic}"))
        .header("user-agent", "cordon")
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| unavailable(error.to_string()))?;
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        crate::client::send_limited(&endpoint, state.outbound.tls(), request_to_provider, crate::sso::ANSWER_BYTES_MAX),
    )
    .await
    .map_err(|_| unavailable("no answer within 10 s".into()))?
    .map_err(unavailable)?;
    let tokens: Value =
        serde_json::from_slice(&answer.body).map_err(|_| refused("the token endpoint's answer is not JSON".into()))?;
    if !answer.status.is_success() {
        let error =
            tokens.get("error").and_then(Value::as_str).unwrap_or("unknown").chars().take(100).collect::<String>();
        return Err(refused(format!("the token endpoint said `{error}`")));
    }
    let text =
        |name: &str| tokens.get(name).and_then(Value::as_str).ok_or_else(|| refused(format!("it has no `{name}`")));
    let (id_token, access_token) = (text("id_token")?, text("access_token")?);
    let subject = state.gateway.check_id_token(id_token, &pending.nonce).map_err(|error| refused(error.to_string()))?;
    // The access token is the provider's (never one of cordon's own, which start_session
    // would take too), the same person's, for this client; start_session then checks it in
    // full (keys, audience, the agent it names).
    let header = cordon_gateway::oidc::header(access_token).map_err(|error| refused(error.to_string()))?;
    if header.alg == "HS256" {
        return Err(refused("the access token is not the provider's".into()));
    }
    let claims = access_token
        .split('.')
        .nth(1)
        .and_then(|claims| BASE64URL.decode(claims).ok())
        .and_then(|bytes: Vec<u8>| serde_json::from_slice::<Value>(&bytes).ok())
        .unwrap_or_default();
    if claims.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
        return Err(refused("the access token is not the ID token's person's".into()));
    }
    let issued_to = claims.get("client_id").or_else(|| claims.get("azp")).and_then(Value::as_str);
    if issued_to != Some(client.client_id.as_str()) {
        return Err(refused("the access token was not issued to the console".into()));
    }
    // The access token is checked here in full (keys, audience, the agent it names).
    let started =
        state.gateway.start_session(access_token, request).await.map_err(|error| refused(error.to_string()))?;
    Ok(started.secret)
}
