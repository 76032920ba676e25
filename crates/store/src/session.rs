//! Console sessions: the row behind each session cookie. The ledger holds each session's
//! start and end; this table finds a session by its secret's hash (a request) or its code
//! (a watermark in a photo).

use crate::db::{DbError, Row, Sql as _, values};
use crate::store::{Store, StoreError};

/// A console session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub code: String,
    pub subject: String,
    pub role: String,
    /// The id of the token the session was started with: revoking it ends the session.
    pub token_id: String,
    pub csrf: String,
    pub started_ms: i64,
    pub expires_ms: i64,
    pub last_seen_ms: i64,
    pub start_index: u64,
    pub ended_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub end_index: Option<u64>,
    /// How the person signed in at the identity provider (the gateway's JSON); empty for a
    /// session started with cordon's own token.
    pub sign_in: String,
}

const COLUMNS: &str = "code, subject, role, token_id, csrf, started_ms, expires_ms, last_seen_ms, start_index, ended_ms, \
                       end_reason, end_index, sign_in";

fn session_columns(row: &Row<'_>) -> Result<StoredSession, DbError> {
    Ok(StoredSession {
        code: row.get(0)?,
        subject: row.get(1)?,
        role: row.get(2)?,
        token_id: row.get(3)?,
        csrf: row.get(4)?,
        started_ms: row.get(5)?,
        expires_ms: row.get(6)?,
        last_seen_ms: row.get(7)?,
        start_index: row.get::<i64>(8)?.max(0) as u64,
        ended_ms: row.get(9)?,
        end_reason: row.get(10)?,
        end_index: row.get::<Option<i64>>(11)?.map(|index| index.max(0) as u64),
        sign_in: row.get(12)?,
    })
}

/// A console sign-in through the identity provider under way: what its callback must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    pub nonce: String,
    /// The PKCE code verifier, sent to the provider with the code.
    pub verifier: String,
    pub started_ms: i64,
}

impl Store {
    /// Stores a sign-in under way, by a hash of its `state`, once those begun before
    /// `expired_before_ms` are dropped; false (nothing stored) if `at_most` are under way.
    pub fn begin_sign_in(
        &self,
        state_sha256: &str,
        pending: &PendingSignIn,
        expired_before_ms: i64,
        at_most: i64,
    ) -> Result<bool, StoreError> {
        let mut connection = self.write()?;
        let error = self.error("store a sign-in");
        connection
            .execute("DELETE FROM pending_sign_ins WHERE started_ms < ?1", values![expired_before_ms])
            .map_err(&error)?;
        let under_way = connection
            .query_row("SELECT count(*) FROM pending_sign_ins", values![], |row| row.get::<i64>(0))
            .map_err(&error)?
            .unwrap_or(0);
        if under_way >= at_most {
            return Ok(false);
        }
        let inserted = connection
            .execute(
                "INSERT INTO pending_sign_ins (state_sha256, nonce, verifier, started_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO NOTHING",
                values![state_sha256, pending.nonce, pending.verifier, pending.started_ms],
            )
            .map_err(&error)?;
        Ok(inserted == 1)
    }

    /// Takes the sign-in whose `state` hashes to `state_sha256`, once (whichever gateway asks,
    /// it is gone after); none if there is none, or it began before `expired_before_ms`.
    pub fn take_sign_in(
        &self,
        state_sha256: &str,
        expired_before_ms: i64,
    ) -> Result<Option<PendingSignIn>, StoreError> {
        let taken = self
            .write()?
            .query_row(
                "DELETE FROM pending_sign_ins WHERE state_sha256 = ?1 RETURNING nonce, verifier, started_ms",
                values![state_sha256],
                |row| Ok(PendingSignIn { nonce: row.get(0)?, verifier: row.get(1)?, started_ms: row.get(2)? }),
            )
            .map_err(self.error("take a sign-in"))?;
        Ok(taken.filter(|pending| pending.started_ms >= expired_before_ms))
    }

    /// Stores a new session; a secret or a code already in use is an error (the caller draws
    /// another), never an overwrite.
    pub fn insert_session(&self, secret_sha256: &str, session: &StoredSession) -> Result<bool, StoreError> {
        let inserted = self
            .write()?
            .execute(
                "INSERT INTO console_sessions (secret_sha256, code, subject, role, token_id, csrf, \
                 started_ms, expires_ms, last_seen_ms, start_index, sign_in) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING",
                values![
                    secret_sha256,
                    session.code,
                    session.subject,
                    session.role,
                    session.token_id,
                    session.csrf,
                    session.started_ms,
                    session.expires_ms,
                    session.last_seen_ms,
                    session.start_index as i64,
                    session.sign_in
                ],
            )
            .map_err(self.error("store a session"))?;
        Ok(inserted == 1)
    }

    /// Whether a session already has `code`.
    pub fn session_code_taken(&self, code: &str) -> Result<bool, StoreError> {
        Ok(self
            .query_one("SELECT 1 FROM console_sessions WHERE code = ?1", values![code], "read a session", |_| Ok(()))?
            .is_some())
    }

    /// The session whose secret hashes to `secret_sha256`.
    pub fn session_by_secret(&self, secret_sha256: &str) -> Result<Option<StoredSession>, StoreError> {
        self.query_one(
            &format!("SELECT {COLUMNS} FROM console_sessions WHERE secret_sha256 = ?1"),
            values![secret_sha256],
            "read a session",
            session_columns,
        )
    }

    /// Every session not ended yet (a rotation of the token key after a leak ends them all).
    pub fn open_sessions(&self) -> Result<Vec<StoredSession>, StoreError> {
        self.read()?
            .query_map(
                &format!("SELECT {COLUMNS} FROM console_sessions WHERE ended_ms IS NULL ORDER BY code"),
                values![],
                session_columns,
            )
            .map_err(self.error("read the open sessions"))
    }

    /// The session with watermark code `code`.
    pub fn session_by_code(&self, code: &str) -> Result<Option<StoredSession>, StoreError> {
        self.query_one(
            &format!("SELECT {COLUMNS} FROM console_sessions WHERE code = ?1"),
            values![code],
            "read a session",
            session_columns,
        )
    }

    /// Notes that the session was used at `now_ms` (idle expiry counts from the last use).
    pub fn touch_session(&self, code: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write()?
            .execute(
                "UPDATE console_sessions SET last_seen_ms = ?2 WHERE code = ?1 AND ended_ms IS NULL AND last_seen_ms < ?2",
                values![code, now_ms],
            )
            .map_err(self.error("note a session's use"))?;
        Ok(())
    }

    /// Ends the session, as the ledger's `session.end` entry at `end_index` says; a session
    /// already ended keeps its first end. Whether this call ended it.
    pub fn end_session(&self, code: &str, ended_ms: i64, reason: &str, end_index: u64) -> Result<bool, StoreError> {
        let changed = self
            .write()?
            .execute(
                "UPDATE console_sessions SET ended_ms = ?2, end_reason = ?3, end_index = ?4
                 WHERE code = ?1 AND ended_ms IS NULL",
                values![code, ended_ms, reason, end_index as i64],
            )
            .map_err(self.error("end a session"))?;
        Ok(changed == 1)
    }
}
