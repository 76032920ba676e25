//! Console sessions. A person signs in with a bearer token once; the console then holds a
//! session: a secret in an HttpOnly cookie (only its SHA-256 is stored), a code that every
//! screen of data shows in its watermark, a CSRF token for its forms, idle and absolute
//! expiry. Each start and end is a ledger entry naming the code, and every access made through
//! the session carries the code in its entry, so a photo of a screen leads to the session and
//! to everything it was shown ([`Gateway::session_report`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use cordon_store::StoredSession;
use sha2::{Digest as _, Sha256};

use crate::error::GatewayError;
use crate::service::Gateway;
use crate::token::{Claims, TokenRole};

/// A session ends after this long without a request.
pub const SESSION_IDLE_MS: i64 = 30 * 60_000;
/// A session ends this long after it started, however busy (sooner if its token expires).
pub const SESSION_LIFETIME_MS: i64 = 12 * 3_600_000;
/// The watermark code's alphabet: digits and capitals without look-alikes (0 and O, 1, I and
/// L, 2 and Z, 5 and S, 8 and B), so a code read off a blurred photo is read right.
pub const SESSION_CODE_ALPHABET: &str = "34679ACDEFGHJKMNPQRTUVWXY";
/// Characters in a session code: 25^8, about 1.5e11 codes.
pub const SESSION_CODE_LENGTH: usize = 8;
/// Ledger entries a session report reads at most: a session lasts at most
/// `SESSION_LIFETIME_MS`, and this bounds the scan of a very busy ledger.
const SESSION_REPORT_ENTRIES_MAX: u64 = 50_000_000;

/// A console session as the console sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub code: String,
    pub subject: String,
    pub role: TokenRole,
    /// Every form of the session carries it; a post without it is refused.
    pub csrf: String,
    pub started_ms: i64,
    pub expires_ms: i64,
}

/// A session just started: the secret goes into the cookie and nowhere else.
#[derive(Debug)]
pub struct StartedSession {
    pub secret: String,
    pub session: ConsoleSession,
    pub ledger_index: u64,
}

/// What a session was, for an analyst holding a photo of its watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    pub code: String,
    pub subject: String,
    pub role: String,
    pub started_ms: i64,
    pub start_index: u64,
    /// When it ended and why (`logout`, `idle`, `expired`, `revoked`), if it has.
    pub ended: Option<(i64, String, u64)>,
    pub expires_ms: i64,
    /// Access decisions made through the session.
    pub accesses: u64,
    /// Every customer the session was shown, with the first entry that showed it.
    pub customers: Vec<(String, u64)>,
}

fn random_text(bytes: usize) -> Result<String, GatewayError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|error| GatewayError::Internal(format!("random source failed: {error}")))?;
    Ok(BASE64URL.encode(buffer))
}

fn session_code() -> Result<String, GatewayError> {
    let alphabet = SESSION_CODE_ALPHABET.as_bytes();
    let mut buffer = [0u8; SESSION_CODE_LENGTH];
    getrandom::fill(&mut buffer).map_err(|error| GatewayError::Internal(format!("random source failed: {error}")))?;
    // 250 is the largest multiple of 25 below 256: redraw above it, so every letter is as likely.
    let mut code = String::with_capacity(SESSION_CODE_LENGTH);
    let mut spare = [0u8; 1];
    for byte in buffer {
        let mut value = byte;
        while usize::from(value) >= alphabet.len() * (256 / alphabet.len()) {
            getrandom::fill(&mut spare)
                .map_err(|error| GatewayError::Internal(format!("random source failed: {error}")))?;
            value = spare[0];
        }
        code.push(char::from(*alphabet.get(usize::from(value) % alphabet.len()).unwrap_or(&b'X')));
    }
    Ok(code)
}

fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Gateway {
    /// Keeps a console sign-in through the identity provider under way, by a hash of its
    /// `state`, in the store, so that the callback may come back to any gateway of the
    /// deployment; false if `at_most` are under way already (those older than `lifetime`
    /// are dropped first).
    pub fn begin_sign_in(
        &self,
        state: &str,
        nonce: &str,
        verifier: &str,
        lifetime: std::time::Duration,
        at_most: usize,
    ) -> Result<bool, GatewayError> {
        let now = self.clock.now_ms();
        let pending =
            cordon_store::PendingSignIn { nonce: nonce.to_string(), verifier: verifier.to_string(), started_ms: now };
        let at_most = i64::try_from(at_most).unwrap_or(i64::MAX);
        Ok(self.store.begin_sign_in(&secret_hash(state), &pending, now - lifetime_ms(lifetime), at_most)?)
    }

    /// The sign-in `state` names, taken once: its nonce and PKCE verifier; none if it is
    /// unknown, was taken, or is older than `lifetime`.
    pub fn take_sign_in(
        &self,
        state: &str,
        lifetime: std::time::Duration,
    ) -> Result<Option<(String, String)>, GatewayError> {
        let expired_before = self.clock.now_ms() - lifetime_ms(lifetime);
        Ok(self
            .store
            .take_sign_in(&secret_hash(state), expired_before)?
            .map(|pending| (pending.nonce, pending.verifier)))
    }
}

fn lifetime_ms(lifetime: std::time::Duration) -> i64 {
    i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Whether `code` has a session code's shape (checked before it reaches the store or a log).
pub fn is_session_code(code: &str) -> bool {
    code.len() == SESSION_CODE_LENGTH && code.chars().all(|letter| SESSION_CODE_ALPHABET.contains(letter))
}

impl Gateway {
    /// Starts a console session for the bearer of `token`: the `session.start` entry first,
    /// then the session row. Role tokens of services get none (a person signs in).
    pub async fn start_session(&self, token: &str, request: &str) -> Result<StartedSession, GatewayError> {
        let claims = self.authenticate(token)?;
        if claims.role == TokenRole::Service {
            return Err(GatewayError::WrongRole { needed: "agent, analyst, admin or customer", ledger_index: None });
        }
        if claims.role == TokenRole::Agent {
            // An agent no longer active gets no session (its token may still be unexpired).
            self.active_agent(&claims.sub)?;
        }
        if claims.role == TokenRole::Customer {
            // A customer's token gets a session while the customer is on file.
            let customer = self.customer_of(&claims)?;
            if self.directory.customer(&self.store, &customer)?.is_none() {
                return Err(GatewayError::NotFound { what: "customer", id: customer, ledger_index: None });
            }
        }
        let now = self.clock.now_ms();
        let expires_ms = (now + SESSION_LIFETIME_MS).min(claims.exp.saturating_mul(1000));
        let secret = random_text(32)?;
        let mut code = session_code()?;
        for _ in 0..8 {
            if !self.store.session_code_taken(&code)? {
                break;
            }
            code = session_code()?;
        }
        let session = ConsoleSession {
            code: code.clone(),
            subject: claims.sub.clone(),
            role: claims.role,
            csrf: random_text(24)?,
            started_ms: now,
            expires_ms,
        };
        let _changing = self.changing().await;
        let ledger_index = self
            .change_entry(
                &claims.sub,
                "session.start",
                &code,
                Some(format!(
                    "role {} token {} until {}{}",
                    claims.role.name(),
                    claims.jti,
                    expires_ms,
                    claims.sign_in.describe()
                )),
                request,
            )
            .await?;
        let stored = StoredSession {
            code,
            subject: session.subject.clone(),
            role: claims.role.name().to_string(),
            token_id: claims.jti.clone(),
            csrf: session.csrf.clone(),
            started_ms: now,
            expires_ms,
            last_seen_ms: now,
            start_index: ledger_index,
            ended_ms: None,
            end_reason: None,
            end_index: None,
            sign_in: claims.sign_in.to_stored(),
        };
        if !self.store.insert_session(&secret_hash(&secret), &stored)? {
            return Err(GatewayError::Internal("a fresh session secret or code was already in use".into()));
        }
        Ok(StartedSession { secret, session, ledger_index })
    }

    /// The caller behind a session cookie's secret, acting through the session (its accesses
    /// carry the code). An unknown or ended session is refused; one past its idle or absolute
    /// expiry, or whose token was revoked, is ended (a ledger entry) and refused.
    pub async fn session_claims(&self, secret: &str, request: &str) -> Result<(Claims, ConsoleSession), GatewayError> {
        let refused = || GatewayError::Unauthenticated("no session: sign in again".into());
        let stored = self.store.session_by_secret(&secret_hash(secret))?.ok_or_else(refused)?;
        if stored.ended_ms.is_some() {
            return Err(refused());
        }
        let role = TokenRole::from_name(&stored.role).ok_or_else(refused)?;
        let now = self.clock.now_ms();
        let revoked = self.revoked.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&stored.token_id);
        let ending = if revoked {
            Some("revoked")
        } else if now >= stored.expires_ms {
            Some("expired")
        } else if now - stored.last_seen_ms >= SESSION_IDLE_MS {
            Some("idle")
        } else {
            None
        };
        if let Some(reason) = ending {
            self.close_session(&stored, reason, request).await?;
            return Err(GatewayError::Unauthenticated(format!("the session ended ({reason}): sign in again")));
        }
        // Idle expiry counts from the last use; a write a minute is enough for it.
        if now - stored.last_seen_ms >= 60_000 {
            self.store.touch_session(&stored.code, now)?;
        }
        let claims = Claims {
            sub: stored.subject.clone(),
            role,
            iat: stored.started_ms / 1000,
            nbf: None,
            exp: stored.expires_ms / 1000,
            jti: stored.token_id.clone(),
            session: Some(stored.code.clone()),
            sign_in: crate::token::SignIn::from_stored(&stored.sign_in),
        };
        let session = ConsoleSession {
            code: stored.code,
            subject: stored.subject,
            role,
            csrf: stored.csrf,
            started_ms: stored.started_ms,
            expires_ms: stored.expires_ms,
        };
        Ok((claims, session))
    }

    /// Ends the session behind `secret` (a sign-out); an unknown or ended one is no error.
    pub async fn end_session(&self, secret: &str, request: &str) -> Result<(), GatewayError> {
        match self.store.session_by_secret(&secret_hash(secret))? {
            Some(stored) if stored.ended_ms.is_none() => self.close_session(&stored, "logout", request).await,
            _ => Ok(()),
        }
    }

    /// Ends every open session with `reason` (each a `session.end` entry); how many. The token
    /// key's rotation after a leak calls it: a session outlives the token that opened it.
    pub(crate) async fn end_all_sessions(&self, reason: &str, request: &str) -> Result<usize, GatewayError> {
        let open = self.store.open_sessions()?;
        for stored in &open {
            self.close_session(stored, reason, request).await?;
        }
        Ok(open.len())
    }

    async fn close_session(&self, stored: &StoredSession, reason: &str, request: &str) -> Result<(), GatewayError> {
        let _changing = self.changing().await;
        let index =
            self.change_entry(&stored.subject, "session.end", &stored.code, Some(reason.to_string()), request).await?;
        self.store.end_session(&stored.code, self.clock.now_ms(), reason, index)?;
        Ok(())
    }

    /// Session `code` as its `session.start` and `session.end` entries record it, read from
    /// the whole ledger (only when the store has no row for it).
    fn session_from_ledger(&self, code: &str) -> Result<Option<StoredSession>, GatewayError> {
        let mut found: Option<StoredSession> = None;
        self.audit
            .for_each_entry_from(0, self.audit.size(), &mut |index, bytes| {
                let Ok(cordon_entry::Entry::Change(change)) = cordon_entry::decode(bytes) else { return Ok(()) };
                if change.target != code {
                    return Ok(());
                }
                let detail = change.detail.clone().unwrap_or_default();
                let word_after = |word: &str| {
                    let mut words = detail.split_whitespace();
                    words.by_ref().find(|found| *found == word);
                    words.next().map(str::to_string)
                };
                match change.change.as_str() {
                    "session.start" if found.is_none() => {
                        found = Some(StoredSession {
                            code: code.to_string(),
                            subject: change.actor.clone(),
                            role: word_after("role").unwrap_or_default(),
                            token_id: word_after("token").unwrap_or_default(),
                            csrf: String::new(),
                            started_ms: change.time_ms,
                            expires_ms: word_after("until").and_then(|ms| ms.parse().ok()).unwrap_or(change.time_ms),
                            last_seen_ms: change.time_ms,
                            start_index: index,
                            ended_ms: None,
                            end_reason: None,
                            end_index: None,
                            // Not taken from the entry's words: a session read back from
                            // the ledger shows no second factor, so it reveals nothing that
                            // needs one.
                            sign_in: String::new(),
                        });
                    }
                    "session.end" => {
                        if let Some(session) = found.as_mut().filter(|session| session.ended_ms.is_none()) {
                            session.ended_ms = Some(change.time_ms);
                            session.end_reason = Some(detail.clone());
                            session.end_index = Some(index);
                        }
                    }
                    _ => {}
                }
                Ok(())
            })
            .map_err(GatewayError::AuditUnavailable)?;
        Ok(found)
    }

    /// Who held session `code`, when, and every customer it was shown (an analyst's answer
    /// to a photo of a screen). The customers are read from the ledger: the access entries
    /// between the session's start and its end (or now) that carry its code. The start entry
    /// is checked to be the session's.
    pub async fn session_report(&self, who: &Claims, code: &str, request: &str) -> Result<SessionReport, GatewayError> {
        self.analyst(who, request).await?;
        let not_found = || GatewayError::NotFound { what: "session", id: code.to_string(), ledger_index: None };
        if !is_session_code(code) {
            return Err(GatewayError::BadRequest(format!(
                "`{}` is not a session code: {SESSION_CODE_LENGTH} characters of {SESSION_CODE_ALPHABET}",
                code.chars().take(40).collect::<String>().escape_debug()
            )));
        }
        // The ledger is the record: a session the store no longer holds (a lost or restored
        // database) is found from its entries.
        let stored = match self.store.session_by_code(code)? {
            Some(stored) => stored,
            None => self.session_from_ledger(code)?.ok_or_else(not_found)?,
        };
        let end = match stored.end_index {
            Some(index) => index.saturating_add(1),
            None => self.audit.size(),
        };
        let end = end.min(stored.start_index.saturating_add(SESSION_REPORT_ENTRIES_MAX));
        let mut started = false;
        let mut accesses = 0u64;
        let mut customers: Vec<(String, u64)> = Vec::new();
        let mut known = std::collections::HashSet::new();
        self.audit
            .for_each_entry_from(stored.start_index, end, &mut |index, bytes| {
                match cordon_entry::decode(bytes) {
                    Ok(cordon_entry::Entry::Change(change)) if index == stored.start_index => {
                        started = change.change == "session.start" && change.target == stored.code;
                    }
                    Ok(cordon_entry::Entry::Access(access)) if access.session.as_deref() == Some(code) => {
                        accesses += 1;
                        for customer in access.customers_shown() {
                            if known.insert(customer.clone()) {
                                customers.push((customer, index));
                            }
                        }
                    }
                    _ => {}
                }
                Ok(())
            })
            .map_err(GatewayError::AuditUnavailable)?;
        if !started {
            return Err(GatewayError::Internal(format!(
                "session `{code}` names ledger entry {} as its start, and that entry is not its `session.start`",
                stored.start_index
            )));
        }
        Ok(SessionReport {
            code: stored.code,
            subject: stored.subject,
            role: stored.role,
            started_ms: stored.started_ms,
            start_index: stored.start_index,
            ended: stored
                .ended_ms
                .zip(stored.end_reason)
                .zip(stored.end_index)
                .map(|((ms, why), index)| (ms, why, index)),
            expires_ms: stored.expires_ms,
            accesses,
            customers,
        })
    }
}

/// A session report as the API and the command line show it.
pub fn session_json(report: &SessionReport) -> serde_json::Value {
    let time = cordon_incident::iso_time;
    serde_json::json!({
        "code": report.code,
        "subject": report.subject,
        "role": report.role,
        "started_at": time(report.started_ms),
        "start_entry": report.start_index,
        "ended_at": report.ended.as_ref().map(|(ms, _, _)| time(*ms)),
        "end_reason": report.ended.as_ref().map(|(_, why, _)| why.clone()),
        "end_entry": report.ended.as_ref().map(|(_, _, index)| *index),
        "expires_at": time(report.expires_ms),
        "accesses": report.accesses,
        "customers": report.customers.iter()
            .map(|(customer, index)| serde_json::json!({ "customer": customer, "first_entry": index }))
            .collect::<Vec<_>>(),
    })
}

impl Gateway {
    /// The open tickets assigned to the agent behind `who` (its queue), most recent first.
    pub fn ticket_queue(&self, who: &Claims, limit: usize) -> Result<Vec<cordon_directory::Ticket>, GatewayError> {
        let (agent, _) = self.acting_agent(who)?;
        Ok(self.store.open_tickets_of(&agent.id, limit.min(TICKET_QUEUE_MAX))?)
    }
}

impl Gateway {
    /// The fields a ticket's category needs, if `ticket` is one of the open tickets assigned
    /// to the agent behind `who` (what its reveal form offers; policy still decides).
    pub fn fields_for_ticket(
        &self,
        who: &Claims,
        ticket: &str,
    ) -> Result<Option<Vec<cordon_vault::Field>>, GatewayError> {
        let (agent, _) = self.acting_agent(who)?;
        Ok(self
            .directory
            .ticket(&self.store, ticket)?
            .filter(|found| found.assignee.as_deref() == Some(agent.id.as_str()))
            .map(|found| self.categories.needs(&found.category).to_vec()))
    }
}

/// Tickets a queue shows at most.
pub const TICKET_QUEUE_MAX: usize = 200;
