//! What cordon keeps of the helpdesk's webhooks: the event ids it applied (for redeliveries),
//! who the helpdesk's users are to cordon, each ticket's newest applied state, and the staff
//! email addresses the helpdesk's agents are matched by.

use cordon_directory::Ticket;

use crate::db::{Sql as _, values};
use crate::store::{Store, StoreError, write_ticket};

/// A helpdesk user as cordon resolved it when the user's event came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelpdeskUser {
    pub customer: Option<String>,
    pub agent: Option<String>,
}

/// A helpdesk ticket's newest applied state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpdeskTicket {
    /// The helpdesk's `updated_at` of the state applied, Unix seconds.
    pub updated_at: i64,
    /// Opened by an agent rather than by the customer it names.
    pub opened_by_agent: bool,
    /// The helpdesk user who was the requester when the ticket was first applied.
    pub requester_user: String,
}

/// What one applied helpdesk event changes, written in one transaction: the event id (so a
/// redelivery changes nothing), and the ticket with its helpdesk state, or the user's mapping.
#[derive(Debug, Clone, Copy)]
pub struct HelpdeskChange<'a> {
    pub event_id: &'a str,
    /// Unix seconds now; ids older than `keep_seconds` are forgotten.
    pub now: i64,
    pub keep_seconds: i64,
    pub ticket: Option<(&'a Ticket, &'a HelpdeskTicket)>,
    pub user: Option<(&'a str, &'a HelpdeskUser)>,
}

impl Store {
    /// Applies `change` in one transaction: a crash leaves all of it or none (a redelivery
    /// then applies it again).
    pub fn apply_helpdesk(&self, change: &HelpdeskChange<'_>) -> Result<(), StoreError> {
        let mut connection = self.write()?;
        let mut transaction = connection.transaction().map_err(self.error("begin"))?;
        if let Some((ticket, state)) = change.ticket {
            write_ticket(&mut transaction, ticket).map_err(self.error("write a helpdesk ticket"))?;
            transaction
                .execute(
                    "INSERT INTO helpdesk_tickets (ticket_id, updated_at, opened_by_agent, requester_user) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (ticket_id) DO UPDATE SET updated_at = excluded.updated_at, \
                     opened_by_agent = excluded.opened_by_agent, requester_user = excluded.requester_user",
                    values![ticket.id, state.updated_at, i64::from(state.opened_by_agent), state.requester_user],
                )
                .map_err(self.error("store a helpdesk ticket's state"))?;
        }
        if let Some((user_id, user)) = change.user {
            transaction
                .execute(
                    "INSERT INTO helpdesk_users (user_id, customer, agent) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (user_id) DO UPDATE SET customer = excluded.customer, agent = excluded.agent",
                    values![user_id, user.customer, user.agent],
                )
                .map_err(self.error("store a helpdesk user"))?;
        }
        note_event(&mut transaction, change.event_id, change.now, change.keep_seconds)
            .map_err(self.error("note a helpdesk event"))?;
        transaction.commit().map_err(self.error("commit a helpdesk event"))
    }

    /// Whether the helpdesk event `id` was applied already.
    pub fn helpdesk_event_seen(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .query_one("SELECT 1 FROM helpdesk_events WHERE id = ?1", values![id], "read a helpdesk event", |_| Ok(()))?
            .is_some())
    }

    /// Notes the helpdesk event `id` as applied at `now` (seconds), forgetting ids older than
    /// `keep_seconds` (their timestamps fall outside the replay window, so they are refused
    /// before their ids are looked up).
    pub fn note_helpdesk_event(&self, id: &str, now: i64, keep_seconds: i64) -> Result<(), StoreError> {
        note_event(&mut *self.write()?, id, now, keep_seconds).map_err(self.error("note a helpdesk event"))
    }

    pub fn helpdesk_user(&self, user_id: &str) -> Result<Option<HelpdeskUser>, StoreError> {
        self.query_one(
            "SELECT customer, agent FROM helpdesk_users WHERE user_id = ?1",
            values![user_id],
            "read a helpdesk user",
            |row| Ok(HelpdeskUser { customer: row.get(0)?, agent: row.get(1)? }),
        )
    }

    pub fn helpdesk_ticket(&self, ticket_id: &str) -> Result<Option<HelpdeskTicket>, StoreError> {
        self.query_one(
            "SELECT updated_at, opened_by_agent, requester_user FROM helpdesk_tickets WHERE ticket_id = ?1",
            values![ticket_id],
            "read a helpdesk ticket",
            |row| {
                Ok(HelpdeskTicket {
                    updated_at: row.get(0)?,
                    opened_by_agent: row.get::<i64>(1)? != 0,
                    requester_user: row.get(2)?,
                })
            },
        )
    }

    /// The agent whose directory email is `email` (compared in lower case).
    pub fn agent_by_email(&self, email: &str) -> Result<Option<String>, StoreError> {
        let email = email.trim().to_lowercase();
        self.query_one(
            "SELECT agent_id FROM agent_emails WHERE email = ?1",
            values![email],
            "read an agent's email",
            |row| row.get(0),
        )
    }

    /// Sets each agent's email (lower case), replacing any earlier address of that agent.
    pub fn put_agent_emails(&self, emails: &[(String, String)]) -> Result<(), StoreError> {
        let mut connection = self.write()?;
        let mut transaction = connection.transaction().map_err(self.error("begin"))?;
        for (agent, email) in emails {
            transaction
                .execute("DELETE FROM agent_emails WHERE agent_id = ?1", values![agent])
                .map_err(self.error("replace an agent's email"))?;
            transaction
                .execute(
                    "INSERT INTO agent_emails (email, agent_id) VALUES (?1, ?2) \
                     ON CONFLICT (email) DO UPDATE SET agent_id = excluded.agent_id",
                    values![email.trim().to_lowercase(), agent],
                )
                .map_err(self.error("store an agent's email"))?;
        }
        transaction.commit().map_err(self.error("commit agents' emails"))
    }
}

/// Notes the helpdesk event `id` as applied at `now`, and forgets ids older than `keep_seconds`.
fn note_event(db: &mut impl crate::db::Sql, id: &str, now: i64, keep_seconds: i64) -> Result<(), crate::db::DbError> {
    db.execute(
        "INSERT INTO helpdesk_events (id, received_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        values![id, now],
    )?;
    db.execute("DELETE FROM helpdesk_events WHERE received_at < ?1", values![now.saturating_sub(keep_seconds)])?;
    Ok(())
}
