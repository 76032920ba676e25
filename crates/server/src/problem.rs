//! RFC 9457 problem details. Each gateway error kind has one stable `type`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cordon_gateway::GatewayError;
use serde_json::{Value, json};

/// The `type` URI of a problem code.
pub fn problem_type(code: &str) -> String {
    format!("urn:cordon:problem:{code}")
}

/// An error response.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extra: Vec<(&'static str, Value)>,
    /// When to try again, for a refusal that passes (`Retry-After`, seconds).
    pub retry_after_seconds: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, code, detail: detail.into(), extra: Vec::new(), retry_after_seconds: None }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }
}

impl From<GatewayError> for Problem {
    fn from(error: GatewayError) -> Problem {
        let code = error.code();
        let status = match &error {
            GatewayError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            GatewayError::WrongRole { .. } | GatewayError::Denied { .. } | GatewayError::VerifyLimit { .. } => {
                StatusCode::FORBIDDEN
            }
            GatewayError::NotFound { .. } => StatusCode::NOT_FOUND,
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::Conflict(_) => StatusCode::CONFLICT,
            GatewayError::AuditUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Internal(_) | GatewayError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut extra = Vec::new();
        let detail = match &error {
            // Internal details go to the log, not the caller.
            GatewayError::Internal(message) => {
                tracing::error!(error = %message, "internal error");
                "an internal error occurred; it has been logged".to_string()
            }
            GatewayError::Store(store) => {
                tracing::error!(error = %store, "store error");
                "an internal error occurred; it has been logged".to_string()
            }
            GatewayError::AuditUnavailable(message) => {
                tracing::error!(error = %message, "audit log unavailable; request refused");
                "the audit log cannot record this request, so nothing is returned".to_string()
            }
            GatewayError::Denied { reason, policies, ledger_index } => {
                extra.push(("policies", json!(policies)));
                extra.push(("ledger_index", json!(ledger_index)));
                format!("access denied: {reason}")
            }
            GatewayError::NotFound { ledger_index: Some(index), .. }
            | GatewayError::WrongRole { ledger_index: Some(index), .. }
            | GatewayError::VerifyLimit { ledger_index: index, .. } => {
                extra.push(("ledger_index", json!(index)));
                error.to_string()
            }
            other => other.to_string(),
        };
        Problem { status, code, detail, extra, retry_after_seconds: None }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": problem_type(self.code),
            "title": self.code.replace('-', " "),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Value::Object(object) = &mut body {
            for (key, value) in self.extra {
                object.insert(key.to_string(), value);
            }
        }
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        // RFC 6750: a 401 says which scheme to authenticate with.
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"cordon\""));
        }
        response
    }
}
