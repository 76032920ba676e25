//! cordon's HTTP API: JSON requests and responses under `/v1`, RFC 9457 problem+json
//! errors with stable type codes, bearer-token authentication, Prometheus metrics and the
//! OpenAPI document; and the console, server-rendered pages under `/console/` for the people
//! who use cordon. Only this crate speaks HTTP, JSON and HTML; it owns its request and
//! response types and pages and converts them to and from the gateway's.

mod analyst;
pub mod client;
mod console;
mod incident;
mod metrics;
mod problem;
mod routes;
mod sso;
pub mod tls;
mod webhook;

pub use metrics::Metrics;
pub use routes::{AppState, DemoIdentity, DemoSignIn, app, serve, serve_tls};
pub use webhook::{Delivery, Outbound, backoff_ms, deliver_due};
