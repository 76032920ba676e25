//! Administration: agents, tickets, customers and tokens. Each change is decided by policy
//! and recorded in the ledger before it is applied.

use std::collections::BTreeMap;

use cordon_directory::{Agent, AgentStatus, Ticket};
use cordon_policy::Action;
use cordon_store::CustomerRow;
use cordon_vault::Field;
use serde_json::Value;

use crate::error::GatewayError;
use crate::service::*;
use crate::token::Claims;

impl Gateway {
    /// Revokes a token, named by the token itself or by its id (`jti`): an administrator's
    /// call, recorded in the ledger. From the next request on it authenticates nobody, on
    /// every route. Role identities' tokens (admin, analyst, service) need this; an agent's
    /// token also ends with the agent's suspension.
    pub async fn revoke_token(
        &self,
        who: &Claims,
        token: Option<&str>,
        jti: Option<&str>,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let now = self.clock.now_seconds();
        let (jti, expires_at) = match (token, jti) {
            (Some(token), None) => {
                let claims = self.tokens.verify(token, now).map_err(|error| {
                    GatewayError::BadRequest(format!("the token to revoke is not one of this deployment's: {error}"))
                })?;
                (claims.jti, claims.exp)
            }
            // A bare id is kept as long as any token may live.
            (None, Some(jti)) => (jti.to_string(), now + crate::token::ANY_TOKEN_LIFETIME_SECONDS_MAX),
            _ => return Err(GatewayError::BadRequest("give either `token` or `jti`".into())),
        };
        cordon_directory::check_id("token", &jti).map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        let _changing = self.changing().await;
        let index = self.administer(who, "token.revoke", &jti, None, request).await?;
        // In force from the next request, whether or not the store takes it now: a restart
        // rebuilds revocations from the ledger too.
        self.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(jti.clone());
        if let Err(error) = self.store.revoke_token(&jti, expires_at, now) {
            tracing::error!(%error, "the store did not take a recorded revocation; it holds in memory until a restart repairs it");
        }
        Ok(index)
    }

    /// Issues a session token for a directory agent on behalf of an administrator (an
    /// identity-provider bridge, or the simulator driving a server): policy decides, the
    /// issue is a ledger entry, and the role comes from the directory, never the caller.
    /// Inactive agents get none.
    pub async fn grant_agent_token(
        &self,
        who: &Claims,
        agent_id: &str,
        request: &str,
    ) -> Result<(u64, String), GatewayError> {
        // Authorized before any lookup: whether an agent exists or is suspended is not for
        // every token to learn.
        self.authorize_system(who, Action::Administer, request).await?;
        let agent = self.active_agent(agent_id)?;
        let index = self.administer(who, "token.issue", agent_id, Some(agent.role.to_string()), request).await?;
        Ok((index, self.issue_agent_token(agent_id)?))
    }

    /// Creates or updates an agent. An existing agent keeps its status: suspension,
    /// offboarding and reinstatement are changes of their own, each recorded, so the
    /// ledger alone says what an agent's status is. The entry names the status it has.
    pub async fn put_agent(&self, who: &Claims, mut agent: Agent, request: &str) -> Result<u64, GatewayError> {
        agent.check().map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        // A new agent's status is recorded; an existing one's is `kept` (read now, it could
        // be stale by the time the entry lands, and a status change has its own entry).
        let status = match self.directory.agent(&self.store, &agent.id)? {
            Some(existing) => {
                agent.status = existing.status;
                "kept".to_string()
            }
            None => agent.status.to_string(),
        };
        let detail = format!("{} {} {} {status}", agent.team, agent.site, agent.role);
        let _changing = self.changing().await;
        let index = self.administer(who, "agent.put", &agent.id, Some(detail), request).await?;
        let stored = self.directory.put_agents(&self.store, &[agent]);
        self.applied(index, stored, request).await?;
        Ok(index)
    }

    /// Puts an agent status the ledger now records in force, from the agent's next request.
    /// A store that cannot take it now does not undo it: it holds in memory, the gateway's
    /// healing retries the write, and a restart repairs the store from the ledger.
    pub(crate) fn hold_agent_status(&self, agent: &str, status: AgentStatus, index: u64) {
        if let Err(error) = self.directory.set_agent_status(&self.store, agent, status, index) {
            tracing::error!(%error, agent, %status, "the store did not take a recorded agent status; it holds in memory until it does");
        }
    }

    /// The result of applying the change recorded at `index` to the store. If the store
    /// failed, the ledger says so too: a `change.failed` entry names the change that did not
    /// take effect (best effort: if the ledger cannot take it either, the node is not ready
    /// and the error is logged).
    pub(crate) async fn applied<T>(
        &self,
        index: u64,
        result: Result<T, cordon_store::StoreError>,
        request: &str,
    ) -> Result<T, GatewayError> {
        let error = match result {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        tracing::error!(%error, index, "a recorded change could not be applied to the store");
        let detail = Some("the store could not apply it".to_string());
        if let Err(also) = self.change_entry("cordon", "change.failed", &index.to_string(), detail, request).await {
            tracing::error!(error = %also, index, "the change's failure could not be recorded either");
        }
        Err(error.into())
    }

    /// Suspends, offboards or reinstates an agent; the change holds from the agent's next
    /// request. Offboarding is final.
    pub async fn set_agent_status(
        &self,
        who: &Claims,
        agent: &str,
        status: AgentStatus,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let change = match status {
            // One way back in: an analyst's reinstatement, which also clears detection's risk.
            AgentStatus::Active => return self.reinstate_agent(who, agent, request).await,
            AgentStatus::Suspended => "agent.suspend",
            AgentStatus::Offboarded => "agent.offboard",
        };
        self.authorize_system(who, Action::Administer, request).await?;
        if self.existing_agent(agent)?.status == AgentStatus::Offboarded {
            return Err(GatewayError::Conflict(format!("agent `{agent}` is offboarded, which is final")));
        }
        let _changing = self.changing().await;
        let index = self.administer(who, change, agent, None, request).await?;
        self.hold_agent_status(agent, status, index);
        Ok(index)
    }

    /// Creates or replaces a ticket; a replaced ticket keeps its creation time.
    pub async fn put_ticket(&self, who: &Claims, mut ticket: Ticket, request: &str) -> Result<u64, GatewayError> {
        // Authorized before the checks that name customers and agents: which exist is not for
        // every token to learn.
        self.authorize_system(who, Action::Administer, request).await?;
        cordon_directory::check_id("ticket", &ticket.id)
            .map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        refuse_helpdesk_id(&ticket.id)?;
        if let Some(existing) = self.directory.ticket(&self.store, &ticket.id)? {
            ticket.created_at = existing.created_at;
        }
        if !self.categories.knows(&ticket.category) {
            return Err(GatewayError::BadRequest(format!("unknown ticket category `{}`", ticket.category)));
        }
        self.check_ticket_people(&ticket)?;
        let detail = format!("{} {} {}", ticket.status, ticket.category, ticket.assignee.as_deref().unwrap_or("-"));
        let _changing = self.changing().await;
        let index = self.administer(who, "ticket.put", &ticket.id, Some(detail), request).await?;
        let stored = self.directory.put_tickets(&self.store, &[ticket]);
        self.applied(index, stored, request).await?;
        Ok(index)
    }

    /// A ticket names people who exist: its requester a customer; its assignee, who opened
    /// it and who assigned it, agents. A name that cannot be an id (empty, too long, control
    /// characters) is refused as such, by the field, before it is looked up or repeated.
    pub(crate) fn check_ticket_people(&self, ticket: &Ticket) -> Result<(), GatewayError> {
        let shaped = |field: &str, kind: &'static str, id: &str| {
            cordon_directory::check_id(kind, id)
                .map_err(|error| GatewayError::BadRequest(format!("ticket `{}`: {field}: {error}", ticket.id)))
        };
        shaped("requester", "customer", &ticket.requester)?;
        if self.directory.customer(&self.store, &ticket.requester)?.is_none() {
            return Err(GatewayError::BadRequest(format!(
                "ticket `{}`: requester `{}` is not a customer",
                ticket.id, ticket.requester
            )));
        }
        let agents =
            [("assignee", &ticket.assignee), ("opened_by", &ticket.opened_by), ("assigned_by", &ticket.assigned_by)];
        for (role, agent) in agents {
            let Some(agent) = agent else { continue };
            shaped(role, "agent", agent)?;
            if self.directory.agent(&self.store, agent)?.is_none() {
                return Err(GatewayError::BadRequest(format!(
                    "ticket `{}`: {role} `{agent}` is not an agent",
                    ticket.id
                )));
            }
        }
        if ticket.assigned_by.is_some() && ticket.assignee.is_none() {
            return Err(GatewayError::BadRequest(format!(
                "ticket `{}`: `assigned_by` names who assigned it, but it has no assignee",
                ticket.id
            )));
        }
        Ok(())
    }

    pub async fn put_customer(
        &self,
        who: &Claims,
        id: &str,
        fields: &BTreeMap<Field, Value>,
        canary: bool,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let row = self.seal_customer(id, fields, canary)?;
        let _changing = self.changing().await;
        let index = self.administer(who, "customer.put", id, None, request).await?;
        let stored = self.directory.put_customers(&self.store, &[row], self.clock.now_seconds());
        self.applied(index, stored, request).await?;
        Ok(index)
    }

    /// Deletes a customer by destroying its data key; the audit trail keeps its id.
    pub async fn delete_customer(&self, who: &Claims, id: &str, request: &str) -> Result<u64, GatewayError> {
        let _changing = self.changing().await;
        let index = self.administer(who, "customer.delete", id, None, request).await?;
        let deleted = self.directory.delete_customer(&self.store, id, self.clock.now_seconds());
        let deleted = self.applied(index, deleted, request).await?;
        if !deleted {
            return Err(GatewayError::NotFound { what: "customer", id: id.to_string(), ledger_index: Some(index) });
        }
        Ok(index)
    }

    /// Seals a customer for storage (used by the API and by bulk import).
    pub fn seal_customer(
        &self,
        id: &str,
        fields: &BTreeMap<Field, Value>,
        canary: bool,
    ) -> Result<CustomerRow, GatewayError> {
        cordon_directory::check_id("customer", id).map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        let sealed = self.vault.seal(id, fields)?;
        let index = self.vault.index_entries(id, fields);
        Ok(CustomerRow { id: id.to_string(), sealed, index, canary })
    }

    pub(crate) async fn administer(
        &self,
        who: &Claims,
        change: &'static str,
        target: &str,
        detail: Option<String>,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let actor = self.authorize_system(who, Action::Administer, request).await?;
        self.change_entry(&actor.id, change, target, detail, request).await
    }
}

/// Ticket ids starting `zd-` are the helpdesk receiver's: put by hand, they could be
/// overwritten by the helpdesk, or stand for a helpdesk ticket they are not.
pub(crate) fn refuse_helpdesk_id(id: &str) -> Result<(), GatewayError> {
    if id.starts_with(crate::helpdesk::TICKET_PREFIX) {
        return Err(GatewayError::BadRequest(format!(
            "ticket `{id}`: ids starting `{}` are the helpdesk receiver's (POST /v1/helpdesk/zendesk)",
            crate::helpdesk::TICKET_PREFIX
        )));
    }
    Ok(())
}
