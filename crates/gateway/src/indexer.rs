//! Writes the per-customer access index off the request path. The ledger entry, durable
//! before any response, is the record; this index only answers "who looked at this
//! customer" quickly. Batching its rows into one transaction each keeps SQLite's writes
//! (and the page-cache invalidations they cause for readers) off the hot path.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use cordon_store::{AccessEvent, Store};

const QUEUE_EVENTS_MAX: usize = 65_536;
const BATCH_EVENTS_MAX: usize = 4096;

enum Message {
    Event(AccessEvent),
    /// Answered once everything sent before it is written.
    Flush(SyncSender<()>),
}

pub(crate) struct Indexer {
    sender: Option<SyncSender<Message>>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    /// Starts the indexing thread; failing to start it is an error, not an access history
    /// that silently stays empty.
    pub(crate) fn start(store: Arc<Store>) -> Result<Indexer, crate::error::GatewayError> {
        let (sender, receiver) = mpsc::sync_channel(QUEUE_EVENTS_MAX);
        let thread =
            std::thread::Builder::new().name("access-indexer".into()).spawn(move || run(&store, &receiver)).map_err(
                |error| crate::error::GatewayError::Internal(format!("cannot start the access indexer: {error}")),
            )?;
        Ok(Indexer { sender: Some(sender), thread: Some(thread) })
    }

    /// Queues an event; blocks only if the queue is full.
    pub(crate) fn add(&self, event: AccessEvent) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(Message::Event(event));
        }
    }

    /// Waits until every event queued so far is written.
    pub(crate) fn flush(&self) {
        let (reply, done) = mpsc::sync_channel(1);
        if let Some(sender) = &self.sender
            && sender.send(Message::Flush(reply)).is_ok()
        {
            let _ = done.recv();
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(store: &Store, receiver: &Receiver<Message>) {
    let mut pending: Vec<AccessEvent> = Vec::new();
    while let Ok(first) = receiver.recv() {
        let mut flushes = Vec::new();
        let mut take = |message: Message, pending: &mut Vec<AccessEvent>| match message {
            Message::Event(event) => pending.push(event),
            Message::Flush(reply) => flushes.push(reply),
        };
        take(first, &mut pending);
        while pending.len() < BATCH_EVENTS_MAX {
            match receiver.try_recv() {
                Ok(message) => take(message, &mut pending),
                Err(_) => break,
            }
        }
        // A failed write keeps its events for the next round rather than dropping them.
        if store.add_access_events(&pending).is_ok() {
            pending.clear();
        } else if pending.len() > QUEUE_EVENTS_MAX {
            pending.drain(..pending.len() - QUEUE_EVENTS_MAX);
        }
        for reply in flushes {
            let _ = reply.send(());
        }
    }
    if let Err(error) = store.add_access_events(&pending) {
        tracing::error!(%error, events = pending.len(), "the access index could not write its last events");
    }
}
