//! Who is asking: tokens checked, and every principal resolved through the directory on
//! every request (a directory agent as the directory says now, or a role identity), with
//! policy deciding the actions that name no customer. A refused attempt is recorded.

use cordon_directory::{Agent, AgentStatus, CUSTOMER_SUBJECT_PREFIX, ROLE_ID_PREFIX};
use cordon_policy::{Action, AgentFacts};

use crate::detection::AccessFacts;
use crate::error::GatewayError;
use crate::service::*;
use crate::token::{Claims, TokenRole};

impl Gateway {
    /// Verifies a bearer token.
    pub fn authenticate(&self, token: &str) -> Result<Claims, GatewayError> {
        let claims = if self.is_provider_token(token) {
            self.authenticate_provider_token(token)?
        } else {
            self.tokens
                .verify(token, self.clock.now_seconds())
                .map_err(|error| GatewayError::Unauthenticated(error.to_string()))?
        };
        // Gateways sharing a store take in each other's entries before the revocation check
        // (a revocation there holds here), and only for a token that checks out: a forged one
        // costs no round trip to the database.
        self.keep_up()?;
        if self.revoked.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&claims.jti) {
            return Err(GatewayError::Unauthenticated(crate::token::TokenError::Revoked.to_string()));
        }
        Ok(claims)
    }

    /// Issues a token for a role that is not a directory agent (`admin`, `analyst`, `service`);
    /// a service's lives `[tokens] service_lifetime_seconds`, the others `lifetime_seconds`.
    pub fn issue_role_token(&self, role: TokenRole) -> Result<String, GatewayError> {
        let lifetime =
            if role == TokenRole::Service { self.service_token_lifetime_seconds } else { self.token_lifetime_seconds };
        crate::token::issue(&self.tokens, &role.identity(), role, self.clock.now_seconds(), lifetime)
    }

    /// Issues a token for a directory agent; its role comes from the directory. Inactive
    /// agents get none.
    pub fn issue_agent_token(&self, agent_id: &str) -> Result<String, GatewayError> {
        let agent = self.active_agent(agent_id)?;
        crate::token::issue(
            &self.tokens,
            agent_id,
            TokenRole::from(agent.role),
            self.clock.now_seconds(),
            self.token_lifetime_seconds,
        )
    }

    /// The directory agent `id`, or a not-found error naming it.
    pub(crate) fn existing_agent(&self, id: &str) -> Result<Agent, GatewayError> {
        self.agent(id)?.ok_or_else(|| GatewayError::NotFound { what: "agent", id: id.to_string(), ledger_index: None })
    }

    /// The directory agent `id` if it is active: an inactive agent gets no token.
    pub(crate) fn active_agent(&self, id: &str) -> Result<Agent, GatewayError> {
        let agent = self.existing_agent(id)?;
        if agent.status != AgentStatus::Active {
            return Err(GatewayError::Conflict(format!("agent `{id}` is {}; it gets no token", agent.status)));
        }
        Ok(agent)
    }

    /// The directory agent a token names, as the directory says now.
    fn directory_agent(&self, who: &Claims) -> Result<Agent, GatewayError> {
        self.agent(&who.sub)?
            .ok_or_else(|| GatewayError::Unauthenticated(format!("agent `{}` is not in the directory", who.sub)))
    }

    /// The caller if its role, as the directory says now, is one of `roles`.
    pub(crate) fn require_role(
        &self,
        who: &Claims,
        roles: &[TokenRole],
        needed: &'static str,
    ) -> Result<AgentFacts, GatewayError> {
        let principal = self.principal(who)?;
        if !roles.iter().any(|role| role.name() == principal.role) {
            return Err(GatewayError::WrongRole { needed, ledger_index: None });
        }
        Ok(principal)
    }

    /// The caller, if policy lets it investigate (alerts, the risk board, incidents): an
    /// active analyst or administrator as the directory says now. A refusal is recorded.
    /// Whether `who` may read the ledger's entries themselves (its entry bundles: who was
    /// shown which customer, alerts, containment): what an investigator may, as policy decides;
    /// a refusal is recorded.
    pub async fn may_read_entries(&self, who: &Claims, request: &str) -> Result<(), GatewayError> {
        self.analyst(who, request).await.map(drop)
    }

    pub(crate) async fn analyst(&self, who: &Claims, request: &str) -> Result<String, GatewayError> {
        Ok(self.authorize_system(who, Action::Investigate, request).await?.id)
    }

    /// The principal behind `who`, if policy lets it take `action`, one that names no
    /// customer (investigate, export, administer). A refusal is a ledger entry.
    pub(crate) async fn authorize_system(
        &self,
        who: &Claims,
        action: Action,
        request: &str,
    ) -> Result<AgentFacts, GatewayError> {
        let principal = self.principal(who)?;
        let decision = self.policy.decide(&self.request(&principal, action, None, None, None, "", None, None));
        if !decision.allowed {
            let recorded = self.recorded(request, who, &principal.id, action, &decision);
            let index = self.record(recorded).await?.index();
            return Err(denied(decision, index));
        }
        Ok(principal)
    }

    /// The directory agent behind a token for a request that reaches customer data. A token
    /// that is not a directory agent's (a role identity, or an agent no longer in the
    /// directory) is refused, and the refused attempt recorded.
    pub(crate) async fn data_agent(
        &self,
        who: &Claims,
        action: Action,
        customer: Option<&str>,
        ticket: Option<&str>,
        request: &str,
    ) -> Result<(AgentFacts, AccessFacts), GatewayError> {
        // A customer's own token is refused without an entry: recorded, it would name the
        // customer it asked about and land in that customer's history (one customer writing
        // into another's page, and growing the ledger at will). The server's log keeps it.
        refuse_customer(who)?;
        let error = match self.acting_agent(who) {
            Ok(found) => return Ok(found),
            Err(error @ (GatewayError::WrongRole { .. } | GatewayError::Unauthenticated(_))) => error,
            Err(other) => return Err(other),
        };
        let mut unobserved = Recorded::refusal(self.clock.now_ms(), request, who, &who.sub, action);
        unobserved.observed = false;
        unobserved.entry.customer = customer.map(str::to_string);
        unobserved.entry.ticket = ticket.map(str::to_string);
        unobserved.entry.policies = vec![format!("refused:{}", error.code())];
        let index = self.record(unobserved).await?.index();
        Err(match error {
            GatewayError::WrongRole { needed, .. } => GatewayError::WrongRole { needed, ledger_index: Some(index) },
            other => other,
        })
    }

    /// The directory agent behind a token, as policy sees it and as detection sees it (its
    /// peers, and whether it is on shift now), from one directory read.
    pub(crate) fn acting_agent(&self, who: &Claims) -> Result<(AgentFacts, AccessFacts), GatewayError> {
        refuse_customer(who)?;
        if who.sub.starts_with(ROLE_ID_PREFIX) {
            return Err(GatewayError::WrongRole {
                needed: "agent (a token issued for a directory agent)",
                ledger_index: None,
            });
        }
        let agent = self.directory_agent(who)?;
        let hour = (self.clock.now_seconds().rem_euclid(86_400) / 3600) as u8;
        let seen = AccessFacts {
            peer_group: format!("{}@{}", agent.team, agent.site),
            site: agent.site.clone(),
            off_shift: !agent.shift.contains(hour),
            ..AccessFacts::default()
        };
        Ok((agent_facts(&agent), seen))
    }

    /// Whoever holds the token, resolved on every request: a directory agent with its role,
    /// status, team, site and employer as the directory says now (never as the token says,
    /// so a suspension or a demotion holds from the next request), or one of the role
    /// identities (`role:admin`, `role:analyst`, `role:service`), whose token must name
    /// exactly that role.
    pub(crate) fn principal(&self, who: &Claims) -> Result<AgentFacts, GatewayError> {
        refuse_customer(who)?;
        if let Some(role) = who.sub.strip_prefix(ROLE_ID_PREFIX) {
            if who.role == TokenRole::Agent || role != who.role.name() {
                return Err(GatewayError::Unauthenticated(format!(
                    "token subject `{}` does not match its role `{}`",
                    who.sub,
                    who.role.name()
                )));
            }
            return Ok(AgentFacts {
                id: who.sub.clone(),
                team: String::new(),
                site: String::new(),
                employer: "staff".into(),
                role: role.to_string(),
                status: "active".into(),
            });
        }
        Ok(agent_facts(&self.directory_agent(who)?))
    }

    /// Whether the caller may read the metrics: the service identity or an administrator,
    /// as the directory says now.
    pub fn may_read_metrics(&self, who: &Claims) -> Result<(), GatewayError> {
        self.require_role(who, &[TokenRole::Service, TokenRole::Admin], "service or admin").map(drop)
    }
}

/// A customer's own token opens no staff door: it is refused before any directory lookup,
/// whatever its subject says (the directory refuses agent ids that look like a customer's
/// subject, and this holds even if one were there).
fn refuse_customer(who: &Claims) -> Result<(), GatewayError> {
    if who.role == TokenRole::Customer || who.sub.starts_with(CUSTOMER_SUBJECT_PREFIX) {
        return Err(GatewayError::WrongRole {
            needed: "staff (an agent, analyst, admin or service)",
            ledger_index: None,
        });
    }
    Ok(())
}

pub(crate) fn agent_facts(agent: &Agent) -> AgentFacts {
    AgentFacts {
        id: agent.id.clone(),
        team: agent.team.clone(),
        site: agent.site.clone(),
        employer: agent.employer.clone(),
        role: agent.role.name().to_string(),
        status: agent.status.name().to_string(),
    }
}
