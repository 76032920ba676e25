//! cordon's directory: the agents who ask for access, the tickets that justify it, and the
//! approvals that stand in for a ticket (break-glass) or add a second pair of eyes.
//!
//! Plain values with their invariants; no IO. The store persists them, the gateway turns
//! them into policy facts.

use std::fmt;
use std::str::FromStr;

/// The longest identifier cordon accepts, in bytes.
pub const ID_BYTES_MAX: usize = 128;

/// Identifiers of the gateway's role identities (`role:admin`, `role:analyst`,
/// `role:service`) start with this; no agent's may.
pub const ROLE_ID_PREFIX: &str = "role:";

/// The subjects of customers' own tokens (`customer:<id>`, for "who viewed my data") start
/// with this; no agent's id may, so no customer's token can pass for an agent's.
pub const CUSTOMER_SUBJECT_PREFIX: &str = "customer:";

/// An identifier given by the exchange: non-empty, at most `ID_BYTES_MAX` bytes, printable
/// ASCII without spaces, so it is safe in paths, logs and Cedar entity ids.
pub fn check_id(kind: &'static str, id: &str) -> Result<(), DirectoryError> {
    let valid =
        !id.is_empty() && id.len() <= ID_BYTES_MAX && id.bytes().all(|byte| byte.is_ascii_graphic() && byte != b'"');
    // The refusal repeats the id cut short and escaped: it may hold control characters, and
    // it goes into answers and logs.
    let shown = || id.chars().take(64).collect::<String>().escape_debug().to_string();
    if valid { Ok(()) } else { Err(DirectoryError::BadId { kind, id: shown() }) }
}

/// Checks an agent's id: an id (above) that does not start with `role:`, which names the
/// gateway's role identities (`role:admin`, `role:analyst`, `role:service`), or with
/// `customer:`, which names customers' own tokens. An agent so named could pass for one.
pub fn check_agent_id(id: &str) -> Result<(), DirectoryError> {
    check_id("agent", id)?;
    if id.starts_with(ROLE_ID_PREFIX) || id.starts_with(CUSTOMER_SUBJECT_PREFIX) {
        return Err(DirectoryError::BadValue {
            what: "agent id",
            value: id.chars().take(64).collect(),
            expected: "an id that starts with neither `role:` nor `customer:` (reserved for role identities and \
                       customers' own tokens)",
        });
    }
    Ok(())
}

/// Checks an agent's employer: `staff` exactly, or a vendor's name. Anything but `staff` is
/// a vendor, so a misspelling fails closed; an empty employer is refused.
pub fn check_employer(employer: &str) -> Result<(), DirectoryError> {
    if employer.trim().is_empty() || employer.len() > ID_BYTES_MAX || employer.chars().any(char::is_control) {
        return Err(DirectoryError::BadValue {
            what: "employer",
            value: employer.chars().take(64).collect(),
            expected: "`staff`, or the name of the vendor that employs the agent (1 to 128 bytes, no control characters)",
        });
    }
    Ok(())
}

/// Checks a person's name: 1 to `NAME_BYTES_MAX` bytes without control characters. Names
/// are shown to analysts and responders, never to policy, so they may hold any other text.
pub fn check_name(name: &str) -> Result<(), DirectoryError> {
    if name.trim().is_empty() || name.len() > NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(DirectoryError::BadValue {
            what: "name",
            value: name.chars().filter(|character| !character.is_control()).take(64).collect(),
            expected: "1 to 200 bytes without control characters",
        });
    }
    Ok(())
}

/// The longest name, in bytes.
pub const NAME_BYTES_MAX: usize = 200;

impl Agent {
    /// Checks every field an administrator or an import supplies: the id (not a role
    /// identity's), the name, the team and site (ids: they name peer groups to detection
    /// and entities to policy), and the employer.
    pub fn check(&self) -> Result<(), DirectoryError> {
        check_agent_id(&self.id)?;
        check_name(&self.name)?;
        check_id("team", &self.team)?;
        check_id("site", &self.site)?;
        check_employer(&self.employer)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("{kind} id `{id}` is not valid: use 1 to 128 printable characters without spaces or quotes")]
    BadId { kind: &'static str, id: String },
    #[error("`{value}` is not a valid {what}; expected one of: {expected}")]
    BadValue { what: &'static str, value: String, expected: &'static str },
    #[error("shift hours must be 0 to 23, got {0}")]
    BadShift(u8),
}

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = DirectoryError;

            fn from_str(text: &str) -> Result<$name, DirectoryError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(DirectoryError::BadValue {
                        what: $what,
                        value: text.chars().take(64).collect(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }
    };
}

named_enum!(
    /// What an agent may do at all; policies refine it.
    Role, "role", { Agent => "agent", Analyst => "analyst", Admin => "admin" }
);
named_enum!(AgentStatus, "agent status", { Active => "active", Suspended => "suspended", Offboarded => "offboarded" });
named_enum!(TicketStatus, "ticket status", { Open => "open", Pending => "pending", Closed => "closed" });
named_enum!(ApprovalKind, "approval kind", { BreakGlass => "break_glass", SecondApprover => "second_approver" });
named_enum!(ApprovalStatus, "approval status", { Requested => "requested", Approved => "approved", Rejected => "rejected" });

/// A support agent (or analyst, or administrator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub team: String,
    pub site: String,
    /// `staff`, or the vendor that employs the agent.
    pub employer: String,
    /// Working hours in UTC, `[start, end)`; a shift may wrap midnight.
    pub shift: Shift,
    pub role: Role,
    pub status: AgentStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    pub start_hour: u8,
    pub end_hour: u8,
}

impl Shift {
    pub fn new(start_hour: u8, end_hour: u8) -> Result<Shift, DirectoryError> {
        for hour in [start_hour, end_hour] {
            if hour > 23 {
                return Err(DirectoryError::BadShift(hour));
            }
        }
        Ok(Shift { start_hour, end_hour })
    }

    /// Whether `hour` is within the shift; equal start and end hours mean all day.
    pub fn contains(self, hour: u8) -> bool {
        if self.start_hour == self.end_hour {
            true
        } else if self.start_hour < self.end_hour {
            (self.start_hour..self.end_hour).contains(&hour)
        } else {
            hour >= self.start_hour || hour < self.end_hour
        }
    }
}

/// A support ticket: the reason the system can check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: String,
    /// The customer who raised it.
    pub requester: String,
    pub category: String,
    pub status: TicketStatus,
    pub assignee: Option<String>,
    /// The agent who opened it for the customer; none when the customer raised it (by
    /// email, chat, web form or a call the helpdesk recorded). An agent-opened ticket with
    /// no contact behind it explains nothing but the agent's own wish to look.
    pub opened_by: Option<String>,
    /// Who put it in the assignee's queue: none for the helpdesk's routing, the assignee
    /// itself when it took the ticket, another agent when that agent handed it over.
    pub assigned_by: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A request for break-glass access or a second approver, and its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub kind: ApprovalKind,
    pub requester: String,
    pub customer: String,
    pub status: ApprovalStatus,
    pub approver: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// The longest an approval may last.
pub const APPROVAL_SECONDS_MAX: i64 = 3600;
