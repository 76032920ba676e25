//! Incident response as pure functions of what the ledger recorded: who was shown which
//! customers (`Shown`), which customers a leaked sample can be (`MatchedRow`), and the
//! customers' own facts. `scope` answers "whose data, which fields, when, by whom";
//! `attribute` ranks agents by how much of a leaked sample their accesses explain as shown,
//! with the chance of that coverage under a null model of the whole base (`NullModel`); `sample` reads whatever the extortionists sent.
//!
//! No IO, no clock, no keys: the gateway reads the exposure index and the vault and hands
//! the facts in, so every answer here can be checked against a table of cases.

mod attribute;
mod chance;
mod notice;
mod null;
mod render;
mod report;
mod sample;
mod scope;
mod time;
mod words;

pub use attribute::{
    AgentAttribution, Attribution, BLAME_FAMILY_ERROR_MAX, Explained, MatchedRow, Needed, Verdict, attribute,
};
pub use chance::{at_least, hit_probability};
pub use cordon_vault::{Field, FieldClass};
pub use notice::{
    NOTICE_HTML_TEMPLATE, NOTICE_TEXT_TEMPLATE, Notice, NoticeContext, NoticeFacts, fields_named, notice,
};
pub use null::{BAND_UNKNOWN, BandCensus, NullModel, NullModelBuilder, Seen};
pub use render::{affected_csv, attribution_json, csv_cell, scope_csv, scope_json};
pub use report::{Deliveries, NOTIFICATION_HOURS, ReportFacts, report_html, report_markdown};
pub use sample::{Column, Sample, SampleCell, SampleError, SampleRow, read_sample};
pub use scope::{
    AgentScope, CustomerFacts, CustomerScope, DayCount, ExposureLevel, FieldCount, Scope, Shown, ShownAs, scope,
};
pub use time::{day_of, iso_time, parse_optional_end, parse_optional_time, parse_time};
pub use words::{escape_html, field_words};
