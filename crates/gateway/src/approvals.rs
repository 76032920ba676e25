//! Break-glass and second-approver requests: an active agent asks, a different person with
//! the analyst role grants, for at most an hour.

use cordon_directory::{APPROVAL_SECONDS_MAX, Approval, ApprovalKind, ApprovalStatus};
use cordon_policy::{Action, CustomerFacts};

use crate::access::*;
use crate::error::GatewayError;
use crate::service::*;
use crate::token::Claims;

impl Gateway {
    /// An agent asks for break-glass access to a customer, or a second approver.
    pub async fn request_approval(
        &self,
        who: &Claims,
        kind: ApprovalKind,
        customer: &str,
        request: &str,
    ) -> Result<Approval, GatewayError> {
        bounded_ids(customer, None)?;
        let (agent, _) = self.data_agent(who, Action::RequestApproval, Some(customer), None, request).await?;
        if self.store.customer(customer)?.is_none() {
            return Err(GatewayError::NotFound { what: "customer", id: customer.to_string(), ledger_index: None });
        }
        // Policy decides who may ask (a suspended agent may not); a refusal is recorded.
        let facts = CustomerFacts { id: customer.to_string(), high_balance: false };
        let decision =
            self.policy.decide(&self.request(&agent, Action::RequestApproval, Some(facts), None, None, "", None, None));
        if !decision.allowed {
            let mut recorded = self.recorded(request, who, &agent.id, Action::RequestApproval, &decision);
            recorded.entry.customer = Some(customer.to_string());
            let index = self.record(recorded).await?.index();
            return Err(denied(decision, index));
        }
        let approval = Approval {
            id: format!("ap-{}", random_id()?),
            kind,
            requester: agent.id.clone(),
            customer: customer.to_string(),
            status: ApprovalStatus::Requested,
            approver: None,
            created_at: self.clock.now_seconds(),
            decided_at: None,
            expires_at: None,
        };
        let _changing = self.changing().await;
        let index = self
            .change_entry(&agent.id, "approval.request", &approval.id, Some(format!("{kind} {customer}")), request)
            .await?;
        let stored = self.directory.put_approval(&self.store, &approval);
        self.applied(index, stored, request).await?;
        Ok(approval)
    }

    /// An analyst other than the requester grants an approval for at most an hour.
    pub async fn approve(
        &self,
        who: &Claims,
        approval_id: &str,
        seconds: i64,
        request: &str,
    ) -> Result<Approval, GatewayError> {
        if !(1..=APPROVAL_SECONDS_MAX).contains(&seconds) {
            return Err(GatewayError::BadRequest(format!(
                "an approval lasts 1 to {APPROVAL_SECONDS_MAX} seconds, not {seconds}"
            )));
        }
        let mut approval = self.store.approval(approval_id)?.ok_or_else(|| GatewayError::NotFound {
            what: "approval",
            id: approval_id.to_string(),
            ledger_index: None,
        })?;
        if approval.status != ApprovalStatus::Requested {
            return Err(GatewayError::Conflict(format!("approval `{approval_id}` is already {}", approval.status)));
        }
        // A person approves: a directory analyst, never a shared role identity.
        let approver = self.data_agent(who, Action::Approve, Some(&approval.customer), None, request).await?.0;
        // A break-glass approval opens customer data to another person: it asks of the
        // approver's sign-in what a reveal asks.
        let decision = self.require_sign_in(
            who,
            self.policy.decide(&self.request(
                &approver,
                Action::Approve,
                None,
                None,
                None,
                "",
                None,
                Some(approval.requester.clone()),
            )),
        );
        let mut recorded = self.recorded(request, who, &approver.id, Action::Approve, &decision);
        recorded.entry.customer = Some(approval.customer.clone());
        recorded.entry.approval = Some(approval.id.clone());
        // An approval is an access decision whose outcome the store keeps.
        let _changing = self.changing().await;
        let index = self.record(recorded).await?.allowed_or(|index| denied(decision, index))?;
        let now = self.clock.now_seconds();
        approval.status = ApprovalStatus::Approved;
        approval.approver = Some(approver.id);
        approval.decided_at = Some(now);
        approval.expires_at = Some(now + seconds);
        let stored = self.directory.put_approval(&self.store, &approval);
        self.applied(index, stored, request).await?;
        Ok(approval)
    }
}

/// Approvals an analyst's queue shows at most.
pub const APPROVALS_LISTED_MAX: usize = 200;

impl Gateway {
    /// Approvals waiting for a decision, oldest first (an analyst's queue).
    pub async fn requested_approvals(&self, who: &Claims, request: &str) -> Result<Vec<Approval>, GatewayError> {
        self.analyst(who, request).await?;
        Ok(self.store.requested_approvals(APPROVALS_LISTED_MAX)?)
    }
}
