//! Runs a wave of gateway requests concurrently while keeping the ledger's order fixed.
//!
//! Every gateway request appends its audit entry during its first poll, before it first
//! waits; polling each new request once, in the order given, therefore puts entries in the
//! ledger in that order, whatever the group commit does afterwards. That is what makes a
//! seeded simulation give the same ledger root on every machine while a wave of requests
//! shares one fdatasync.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use cordon_gateway::Clock;

/// The simulation's clock: it reads whatever time the simulation last set.
#[derive(Debug, Default)]
pub struct SimClock {
    now_ms: AtomicI64,
}

impl SimClock {
    pub fn set(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

pub type Request<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

struct WaveWaker {
    thread: std::thread::Thread,
    woken: AtomicBool,
}

impl Wake for WaveWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Starts each request at its time, in order, then waits for all; results in the same order.
pub fn run_wave<'a, T>(clock: &SimClock, requests: Vec<(i64, Request<'a, T>)>) -> Vec<T> {
    let signal = Arc::new(WaveWaker { thread: std::thread::current(), woken: AtomicBool::new(false) });
    let waker = Waker::from(Arc::clone(&signal));
    let mut context = Context::from_waker(&waker);
    let mut pending: Vec<Option<Request<'a, T>>> = Vec::with_capacity(requests.len());
    let mut results: Vec<Option<T>> = Vec::with_capacity(requests.len());
    for (time_ms, mut request) in requests {
        clock.set(time_ms);
        match request.as_mut().poll(&mut context) {
            Poll::Ready(result) => {
                pending.push(None);
                results.push(Some(result));
            }
            Poll::Pending => {
                pending.push(Some(request));
                results.push(None);
            }
        }
    }
    let mut remaining = pending.iter().filter(|request| request.is_some()).count();
    while remaining > 0 {
        if !signal.woken.swap(false, Ordering::SeqCst) {
            std::thread::park();
            continue;
        }
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            let Some(request) = slot else { continue };
            if let Poll::Ready(output) = request.as_mut().poll(&mut context) {
                *result = Some(output);
                *slot = None;
                remaining -= 1;
            }
        }
    }
    results.into_iter().flatten().collect()
}
