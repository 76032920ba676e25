//! "Who viewed my data": a customer's own view of every access staff made to their record.
//!
//! A customer holds a token of their own (subject `customer:<id>`, role `customer`), issued by
//! `cordon token issue --customer` or by the exchange's customer-facing app through the
//! service role; every staff door refuses it (`principal.rs`). With it the customer lists the
//! accesses to their data (when, which team and site, which fields, why), newest first, and
//! takes each one's receipt: the ledger entry itself with its inclusion proof and the signed
//! checkpoint, which they can check against the public checkpoint without trusting cordon.
//!
//! A receipt carries the entry's exact bytes (nothing less can be checked), so it is given
//! only for an entry that names this customer alone: a search that also showed others would
//! name them, and its receipt is withheld with the reason.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cordon_directory::{Agent, CUSTOMER_SUBJECT_PREFIX};
use cordon_entry::{AccessAction, Entry};
use cordon_ledger::{Checkpoint, Verifier, verify_consistency, verify_receipt};
use serde::{Deserialize, Serialize};

use crate::error::GatewayError;
use crate::service::Gateway;
use crate::token::{Claims, TokenRole};

/// Accesses one page of the customer's view lists.
pub const CUSTOMER_ACCESSES_PAGE: usize = 100;
/// The receipt file's format name.
pub const CUSTOMER_RECEIPT_FORMAT: &str = "cordon-receipt/1";

/// Why an access was made, as far as cordon can say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessReason {
    /// A ticket: its category, and whether this customer raised it.
    Ticket { category: String, raised_by_customer: bool },
    /// A ticket the directory no longer holds.
    UnknownTicket,
    /// No ticket was given (a search, a break-glass approval, or a refused attempt).
    NoTicket,
}

/// Who made an access, as the customer may know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessedBy {
    Staff {
        team: String,
        site: String,
        /// The vendor employing the agent, if not the exchange's own staff.
        vendor: Option<String>,
        /// Only where `[customer_view] show_agent_names` allows.
        name: Option<String>,
    },
    /// An agent the directory no longer holds.
    FormerStaff,
    /// A customer's own token, refused at the staff door: this customer's, or another's.
    Customer { this_customer: bool },
    /// One of the exchange's role identities (`role:service`, ...), refused at the agent door.
    Role(String),
}

/// One access to the customer's data, as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerAccess {
    pub ledger_index: u64,
    pub time_ms: i64,
    /// `search`, `view`, `reveal` or `verify`.
    pub action: String,
    /// The fields revealed or checked (none for a card or a search hit).
    pub fields: Vec<String>,
    /// False for a refused attempt: nothing was shown.
    pub allowed: bool,
    pub by: AccessedBy,
    pub reason: AccessReason,
    /// For a search: the customers its results showed in all, this one included.
    pub shown_with: u64,
    /// Why no receipt can be given for this access, if none can.
    pub receipt_withheld: Option<String>,
}

/// A page of the customer's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerAccesses {
    pub customer: String,
    pub accesses: Vec<CustomerAccess>,
    /// The ledger index to ask below for the next (older) page, if there is one.
    pub older: Option<u64>,
}

/// A receipt a customer downloads: the entry's bytes, its C2SP tlog-proof (inclusion proof and
/// signed checkpoint) and the log's verifier key, as one JSON file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerReceipt {
    pub format: String,
    pub index: u64,
    /// The entry's bytes, base64 (standard alphabet, padded).
    pub entry: String,
    /// `c2sp.org/tlog-proof@v1`: index, proof hashes, the signed checkpoint note.
    pub proof: String,
    /// The key that signed the checkpoint, `name+id+key`; compare it with the one the
    /// exchange publishes.
    pub verifier_key: String,
}

impl CustomerReceipt {
    /// Reads a receipt file, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<CustomerReceipt, GatewayError> {
        let receipt: CustomerReceipt = serde_json::from_str(text)
            .map_err(|error| GatewayError::BadRequest(format!("not a cordon receipt file: {error}")))?;
        if receipt.format != CUSTOMER_RECEIPT_FORMAT {
            return Err(GatewayError::BadRequest(format!(
                "receipt format `{}` is not `{CUSTOMER_RECEIPT_FORMAT}`",
                receipt.format.chars().take(64).collect::<String>()
            )));
        }
        Ok(receipt)
    }

    /// The entry's bytes.
    pub fn entry_bytes(&self) -> Result<Vec<u8>, GatewayError> {
        BASE64
            .decode(self.entry.as_bytes())
            .map_err(|error| GatewayError::BadRequest(format!("the receipt's entry is not base64: {error}")))
    }
}

/// What checking a receipt found: the entry is at `index` of the checkpoint of
/// `checkpoint_size` entries, and that checkpoint is a prefix of the log's current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptCheck {
    pub index: u64,
    pub checkpoint_size: u64,
    pub current_size: u64,
    /// The entry as text (cordon's entries are JSON).
    pub entry: String,
}

impl Gateway {
    /// Issues a customer's own token, for customer `customer` as the store holds it.
    pub fn issue_customer_token(&self, customer: &str) -> Result<String, GatewayError> {
        cordon_directory::check_id("customer", customer)
            .map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        if self.directory.customer(&self.store, customer)?.is_none() {
            return Err(GatewayError::NotFound { what: "customer", id: customer.to_string(), ledger_index: None });
        }
        crate::token::issue(
            &self.tokens,
            &format!("{CUSTOMER_SUBJECT_PREFIX}{customer}"),
            TokenRole::Customer,
            self.clock.now_seconds(),
            self.customer_view.token_lifetime_seconds,
        )
    }

    /// Issues a customer's own token to the service role (the exchange's customer-facing app,
    /// which has already signed the customer in); the grant is a ledger entry naming the
    /// token. Returns the entry's index and the token.
    pub async fn grant_customer_token(
        &self,
        who: &Claims,
        customer: &str,
        request: &str,
    ) -> Result<(u64, String), GatewayError> {
        self.require_role(who, &[TokenRole::Service], "service")?;
        let token = self.issue_customer_token(customer)?;
        let claims = self.authenticate(&token)?;
        let index = self
            .change_entry(
                &who.sub,
                "token.customer",
                customer,
                Some(format!("token {} until {}", claims.jti, claims.exp)),
                request,
            )
            .await?;
        Ok((index, token))
    }

    /// The customer a customer's own token names; any other token is refused.
    pub fn customer_of(&self, who: &Claims) -> Result<String, GatewayError> {
        match who.sub.strip_prefix(CUSTOMER_SUBJECT_PREFIX) {
            Some(customer) if who.role == TokenRole::Customer && !customer.is_empty() => Ok(customer.to_string()),
            _ => Err(GatewayError::WrongRole { needed: "customer (a customer's own token)", ledger_index: None }),
        }
    }

    /// The accesses to the caller's own data recorded below ledger index `before` (all, when
    /// none), newest first, a page at a time: every card, reveal and verify, allowed or
    /// refused, and every search whose results showed them.
    pub fn customer_accesses(&self, who: &Claims, before: Option<u64>) -> Result<CustomerAccesses, GatewayError> {
        let customer = self.customer_of(who)?;
        self.indexer.catch_up()?;
        let before = before.unwrap_or(u64::MAX);
        let page = CUSTOMER_ACCESSES_PAGE;
        let history = self.store.access_history_before(&customer, before, page + 1)?;
        let hits = self.store.search_hits_before(&customer, before, page + 1)?;
        let mut agents: HashMap<String, Option<Agent>> = HashMap::new();
        let mut agent = |id: &str| -> Result<Option<Agent>, GatewayError> {
            if let Some(found) = agents.get(id) {
                return Ok(found.clone());
            }
            let found = self.agent(id)?;
            agents.insert(id.to_string(), found.clone());
            Ok(found)
        };
        let mut accesses = Vec::with_capacity(history.len() + hits.len());
        for event in history {
            let reason = match &event.ticket_id {
                None => AccessReason::NoTicket,
                Some(ticket) => match self.directory.ticket(&self.store, ticket)? {
                    Some(ticket) => AccessReason::Ticket {
                        category: ticket.category,
                        // A helpdesk ticket an agent opened for the customer was not raised by them.
                        raised_by_customer: ticket.requester == customer
                            && self.store.helpdesk_ticket(&ticket.id)?.is_none_or(|helpdesk| !helpdesk.opened_by_agent),
                    },
                    None => AccessReason::UnknownTicket,
                },
            };
            let by = self.accessed_by(&event.agent_id, &customer, &mut agent)?;
            accesses.push(CustomerAccess {
                ledger_index: event.ledger_index,
                time_ms: event.time,
                action: event.action,
                fields: event.fields,
                allowed: event.allowed,
                reason,
                shown_with: 1,
                receipt_withheld: None,
                by,
            });
        }
        for hit in hits {
            let receipt_withheld = (hit.customers_shown > 1).then(|| {
                format!(
                    "this search showed {} other customers too, and its receipt would name them",
                    hit.customers_shown - 1
                )
            });
            let by = self.accessed_by(&hit.agent_id, &customer, &mut agent)?;
            accesses.push(CustomerAccess {
                ledger_index: hit.ledger_index,
                time_ms: hit.time_ms,
                action: AccessAction::Search.name().to_string(),
                fields: Vec::new(),
                allowed: true,
                reason: AccessReason::NoTicket,
                shown_with: hit.customers_shown,
                receipt_withheld,
                by,
            });
        }
        accesses.sort_by_key(|access| std::cmp::Reverse(access.ledger_index));
        let older = (accesses.len() > page).then(|| accesses.get(page - 1).map(|last| last.ledger_index)).flatten();
        accesses.truncate(page);
        Ok(CustomerAccesses { customer, accesses, older })
    }

    /// Who `actor` (an entry's agent) is, as the customer may know it.
    fn accessed_by(
        &self,
        actor: &str,
        customer: &str,
        agent: &mut impl FnMut(&str) -> Result<Option<Agent>, GatewayError>,
    ) -> Result<AccessedBy, GatewayError> {
        if let Some(other) = actor.strip_prefix(CUSTOMER_SUBJECT_PREFIX) {
            return Ok(AccessedBy::Customer { this_customer: other == customer });
        }
        if let Some(role) = actor.strip_prefix(cordon_directory::ROLE_ID_PREFIX) {
            return Ok(AccessedBy::Role(role.to_string()));
        }
        Ok(match agent(actor)? {
            Some(agent) => AccessedBy::Staff {
                vendor: (agent.employer != "staff").then(|| agent.employer.clone()),
                name: self.customer_view.show_agent_names.then(|| agent.name.clone()),
                team: agent.team,
                site: agent.site,
            },
            None => AccessedBy::FormerStaff,
        })
    }

    /// The receipt for ledger entry `index`, if that entry is an access to the caller's own
    /// data and names no other customer.
    pub fn customer_receipt(&self, who: &Claims, index: u64) -> Result<CustomerReceipt, GatewayError> {
        let customer = self.customer_of(who)?;
        let not_yours = || GatewayError::NotFound {
            what: "access to your data at ledger index",
            id: index.to_string(),
            ledger_index: None,
        };
        if index >= self.audit.size() {
            return Err(not_yours());
        }
        let mut bytes = Vec::new();
        self.audit
            .for_each_entry_from(index, index + 1, &mut |_, found| {
                bytes = found.to_vec();
                Ok(())
            })
            .map_err(GatewayError::AuditUnavailable)?;
        let Ok(Entry::Access(entry)) = cordon_entry::decode(&bytes) else { return Err(not_yours()) };
        // An entry made by another customer's token (older builds recorded those refusals)
        // would name that customer: no receipt.
        if entry.agent.starts_with(CUSTOMER_SUBJECT_PREFIX) && entry.agent != who.sub {
            return Err(not_yours());
        }
        let names_only_this_customer = match entry.action {
            AccessAction::View | AccessAction::Reveal | AccessAction::Verify => {
                entry.customer.as_deref() == Some(customer.as_str())
            }
            AccessAction::Search => {
                let matches = entry.matches.as_deref().unwrap_or_default();
                if !matches.contains(&customer) {
                    return Err(not_yours());
                }
                if matches.len() > 1 {
                    return Err(GatewayError::Conflict(format!(
                        "the search at ledger index {index} showed {} other customers too; its receipt would name \
                         them, so it is not given",
                        matches.len() - 1
                    )));
                }
                true
            }
            _ => false,
        };
        if !names_only_this_customer {
            return Err(not_yours());
        }
        let proof = self.audit.receipt(index).map_err(GatewayError::AuditUnavailable)?;
        Ok(CustomerReceipt {
            format: CUSTOMER_RECEIPT_FORMAT.to_string(),
            index,
            entry: BASE64.encode(&bytes),
            proof,
            verifier_key: self.audit.verifier_key(),
        })
    }

    /// Checks a receipt file against this log, as a browser without Ed25519 cannot: the
    /// checkpoint's signature by this log's key (never the key the file carries), the entry's
    /// inclusion proof, and that the checkpoint is a prefix of the log's current one.
    pub fn check_receipt(&self, text: &str) -> Result<ReceiptCheck, GatewayError> {
        let receipt = CustomerReceipt::parse(text)?;
        let entry = receipt.entry_bytes()?;
        let verifier = Verifier::parse(&self.audit.verifier_key())
            .map_err(|error| GatewayError::Internal(format!("the log's verifier key: {error}")))?;
        let refused = |why: String| GatewayError::BadRequest(format!("the receipt does not verify: {why}"));
        let (index, checkpoint) =
            verify_receipt(&receipt.proof, &entry, &verifier).map_err(|error| refused(error.to_string()))?;
        if index != receipt.index {
            return Err(refused(format!("its proof is for index {index}, the file says {}", receipt.index)));
        }
        let note = self.audit.checkpoint().map_err(GatewayError::AuditUnavailable)?;
        let current = Checkpoint::open(&note, &verifier)
            .map_err(|error| GatewayError::Internal(format!("the log's own checkpoint: {error}")))?;
        if checkpoint.size > current.size {
            return Err(refused(format!(
                "its checkpoint of {} entries is ahead of this log's {}: it is not this log's",
                checkpoint.size, current.size
            )));
        }
        let proof = if checkpoint.size == current.size {
            Vec::new()
        } else {
            self.audit.consistency_proof(checkpoint.size, current.size).map_err(GatewayError::AuditUnavailable)?
        };
        verify_consistency(checkpoint.size, current.size, &proof, checkpoint.root.as_bytes(), current.root.as_bytes())
            .map_err(|error| {
                refused(format!(
                    "its checkpoint is not a prefix of this log's current one ({error}): the log was rewritten"
                ))
            })?;
        Ok(ReceiptCheck {
            index,
            checkpoint_size: checkpoint.size,
            current_size: current.size,
            entry: String::from_utf8_lossy(&entry).into_owned(),
        })
    }

    /// The consistency proof from the log of `old` entries to that of `new` (both within the
    /// published checkpoint), base64 hashes: what a browser needs to tie an older receipt's
    /// checkpoint to the public one.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<String>, GatewayError> {
        let published = self.audit.published_size();
        if old == 0 || old > new || new > published {
            return Err(GatewayError::BadRequest(format!(
                "no consistency proof from {old} to {new} entries: both must be within the published checkpoint's \
                 {published}, the first at least 1 and not past the second"
            )));
        }
        let proof = self.audit.consistency_proof(old, new).map_err(GatewayError::AuditUnavailable)?;
        Ok(proof.iter().map(cordon_ledger::Hash::to_base64).collect())
    }
}
