//! The gateway's errors. Each kind maps to one HTTP status and one problem type at the edge;
//! messages name the problem and the input, never a customer value.

use cordon_store::StoreError;

use crate::audit::AuditError;
use cordon_vault::VaultError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("this needs a token with role {needed}")]
    WrongRole { needed: &'static str, ledger_index: Option<u64> },
    #[error("access denied: {reason}")]
    Denied { reason: String, policies: Vec<String>, ledger_index: u64 },
    #[error(
        "verify refuses to check more statements about `{field}` of customer `{customer}`: too many wrong ones lately"
    )]
    VerifyLimit { field: String, customer: String, ledger_index: u64 },
    #[error("{what} `{id}` does not exist")]
    NotFound { what: &'static str, id: String, ledger_index: Option<u64> },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the audit log cannot record this request, so nothing is returned: {0}")]
    AuditUnavailable(#[source] AuditError),
    /// The store failed (a disk error, a corrupt file): the request is refused, the cause logged.
    #[error("the store failed: {0}")]
    Store(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The stable problem type code.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Unauthenticated(_) => "unauthenticated",
            GatewayError::WrongRole { .. } => "wrong-role",
            GatewayError::Denied { .. } => "access-denied",
            GatewayError::VerifyLimit { .. } => "verify-limit",
            GatewayError::NotFound { .. } => "not-found",
            GatewayError::BadRequest(_) => "bad-request",
            GatewayError::Conflict(_) => "conflict",
            GatewayError::AuditUnavailable(_) => "audit-unavailable",
            GatewayError::Store(_) => "internal",
            GatewayError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for GatewayError {
    fn from(error: StoreError) -> GatewayError {
        // A shared store out of reach holds the ledger too: nothing can be audited.
        if error.is_unavailable() {
            return GatewayError::AuditUnavailable(AuditError(error.to_string()));
        }
        GatewayError::Store(error)
    }
}

impl From<AuditError> for GatewayError {
    fn from(error: AuditError) -> GatewayError {
        GatewayError::AuditUnavailable(error)
    }
}

impl From<VaultError> for GatewayError {
    fn from(error: VaultError) -> GatewayError {
        match error {
            VaultError::BadValue { .. } => GatewayError::BadRequest(error.to_string()),
            other => GatewayError::Internal(other.to_string()),
        }
    }
}
