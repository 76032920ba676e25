//! What the detector sees of one access decision.

/// What the agent did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An exact-match search; `matched` says whether it found anyone.
    Search { matched: bool },
    /// The masked card.
    View,
    /// Fields in the clear.
    Reveal,
    /// A stated value checked against the stored one, and how the check went.
    Verify(Checked),
}

/// What became of a statement an agent asked to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Not checked: policy refused the verify, so nothing was compared.
    NotChecked,
    /// The statement matched the stored value.
    Matched,
    /// The statement was wrong: what a guesser produces, one try at a time.
    Wrong,
    /// Refused unchecked: the agent had stated too many wrong values about this field of
    /// this customer lately.
    Refused,
}

/// Why the agent could be looking at this customer, as the gateway found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// An open ticket from this customer, assigned to the agent.
    Ticket,
    /// An approval (break-glass or second approver) in force.
    Approval,
    /// No ticket in hand, but the agent handled a ticket from this customer recently.
    Callback,
    /// An analyst reviewing a customer whose ticket closed recently (QA).
    Review,
    /// A ticket assigned to the agent whose requester is another customer.
    OtherRequester,
    /// A ticket that is not the agent's, or not open.
    NotAssigned,
    /// No ticket and no approval.
    Unexplained,
}

impl Why {
    pub fn name(self) -> &'static str {
        match self {
            Why::Ticket => "ticket",
            Why::Approval => "approval",
            Why::Callback => "callback",
            Why::Review => "review",
            Why::OtherRequester => "other-requester",
            Why::NotAssigned => "not-assigned",
            Why::Unexplained => "unexplained",
        }
    }

    pub fn parse(text: &str) -> Option<Why> {
        [
            Why::Ticket,
            Why::Approval,
            Why::Callback,
            Why::Review,
            Why::OtherRequester,
            Why::NotAssigned,
            Why::Unexplained,
        ]
        .into_iter()
        .find(|why| why.name() == text)
    }

    /// Whether the access has a reason the system can check.
    pub fn explained(self) -> bool {
        matches!(self, Why::Ticket | Why::Approval | Why::Callback | Why::Review)
    }
}

/// One access decision, with the facts detection needs and nothing more.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation<'a> {
    /// The ledger index of the access entry, for evidence.
    pub index: u64,
    pub time_ms: i64,
    pub agent: &'a str,
    /// `team@site`: whom the agent is compared with.
    pub peer_group: &'a str,
    pub site: &'a str,
    pub action: Action,
    /// For searches, the first customer found; otherwise the customer accessed.
    pub customer: Option<&'a str>,
    pub why: Why,
    /// When `why` is the agent's own ticket: the agent who opened it for the customer
    /// (none: the customer raised it) and who put it in this agent's queue (none: routing).
    pub opened_by: Option<&'a str>,
    pub assigned_by: Option<&'a str>,
    /// Fields revealed beyond what the ticket's category needs.
    pub fields_beyond_need: u32,
    pub high_balance: bool,
    pub canary: bool,
    pub off_shift: bool,
    /// Whether policy allowed it (before detection had its say).
    pub allowed: bool,
}
