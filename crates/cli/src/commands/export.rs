//! `cordon export …`: the audit record for other tools.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use cordon_incident::iso_time;

use crate::cli::ExportCommand;
use crate::commands::remote::Target;
use crate::commands::{analyst, option_end, option_time as time, wait};

#[derive(Clone, Copy)]
enum Format {
    Parquet,
    Ocsf,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Ocsf => "ocsf",
        }
    }

    /// The ledger entry's `change`.
    fn change(self) -> &'static str {
        match self {
            Format::Parquet => "export.parquet",
            Format::Ocsf => "export.ocsf",
        }
    }
}

/// The access decisions between two times (inclusive), as the command line named them.
struct Window {
    since_ms: i64,
    until_ms: i64,
}

impl Window {
    fn parse(since: Option<&str>, until: Option<&str>) -> anyhow::Result<Window> {
        let since_ms = time("since", since)?.unwrap_or(i64::MIN);
        let until_ms = option_end("until", until)?.unwrap_or(i64::MAX);
        if since_ms > until_ms {
            bail!("--since is after --until");
        }
        Ok(Window { since_ms, until_ms })
    }

    fn describe(&self, format: &str) -> String {
        format!(
            "{format} {} .. {}",
            if self.since_ms == i64::MIN { "start".into() } else { iso_time(self.since_ms) },
            if self.until_ms == i64::MAX { "now".into() } else { iso_time(self.until_ms) }
        )
    }
}

fn create(out: &Path) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    let file = std::fs::File::create(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    Ok(std::io::BufWriter::new(file))
}

pub fn run(command: ExportCommand) -> anyhow::Result<()> {
    let started = Instant::now();
    let (rows, to) = match command {
        ExportCommand::Parquet { data, out, since, until } => {
            let window = Window::parse(since.as_deref(), until.as_deref())?;
            // Checked before the output is created, so a bad data directory truncates nothing.
            let published = Published::of(&data)?;
            let recorded = record(&data, Format::Parquet, &window, 0, false)?;
            let through = published.covering(recorded.saturating_add(1))?;
            refuse_uncovered(through, recorded)?;
            let mut parquet = cordon_export::ParquetExport::new(create(&out)?)?;
            published.for_each(0, through, &mut |index, bytes| match cordon_export::access_event(index, bytes) {
                Some(event) if (window.since_ms..=window.until_ms).contains(&event.time_ms) => {
                    parquet.push(event)?;
                    Ok(true)
                }
                _ => Ok(false),
            })?;
            let rows = parquet.finish()?;
            println!("{}", out.display());
            (rows, format!("{} (of the ledger's first {through} entries)", out.display()))
        }
        ExportCommand::Ocsf { data, out, since, until, cursor, follow } => {
            let window = Window::parse(since.as_deref(), until.as_deref())?;
            return ocsf(&data, out.as_deref(), &window, cursor.as_deref(), follow, started);
        }
    };
    eprintln!("{rows} access events written to {to} in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `cordon export ocsf`: every ledger entry in the window as its OCSF event (access
/// decisions, alerts, changes, protective actions), read from the published log, so it runs
/// beside a server too. The export is recorded first: in the directory, or through the server
/// that has it open.
fn ocsf(
    data: &Path,
    out: Option<&Path>,
    window: &Window,
    cursor: Option<&Path>,
    follow: bool,
    started: Instant,
) -> anyhow::Result<()> {
    if let (Some(out), Some(cursor)) = (out, cursor)
        && (out == cursor || out == scratch_of(cursor))
    {
        bail!("--out `{}` is the cursor's own file; give the feed and the cursor different files", out.display());
    }
    let mut position = match cursor {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            let shown: String = text.trim().chars().take(40).collect();
            text.trim()
                .parse::<u64>()
                .map_err(|_| anyhow::anyhow!("cursor `{}` holds {shown:?}, not a ledger index", path.display()))?
        }
        _ => 0,
    };
    let published = Published::of(data)?;
    // A cursor past the log's end would export nothing, silently, for ever.
    let size = published.size()?;
    if position > size {
        bail!(
            "cursor `{}` is at entry {position}, past the ledger's {size} entries: it belongs to another ledger",
            cursor.map_or_else(String::new, |path| path.display().to_string())
        );
    }
    let recorded = record(data, Format::Ocsf, window, position, follow)?;
    let mut writer: Box<dyn std::io::Write> = match out {
        // With a cursor the file is continued, not replaced: the cursor says where it stands.
        Some(out) if cursor.is_some() => Box::new(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(out)
                .with_context(|| format!("cannot open `{}`", out.display()))?,
        )),
        Some(out) => Box::new(create(out)?),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let to = out.map_or("standard output".to_string(), |out| out.display().to_string());
    let mut rows = 0u64;
    // The first pass reaches the export's own record; following, each pass what is new.
    let mut wanted = recorded.saturating_add(1);
    loop {
        let size = published.covering(wanted)?;
        if !follow {
            refuse_uncovered(size, recorded)?;
        }
        if size > position {
            published
                .for_each(position, size, &mut |index, bytes| {
                    let Some(event) = cordon_export::ocsf_record(index, bytes) else { return Ok(false) };
                    let time = event.get("time").and_then(serde_json::Value::as_i64).unwrap_or(0);
                    if !(window.since_ms..=window.until_ms).contains(&time) {
                        return Ok(false);
                    }
                    serde_json::to_writer(&mut writer, &event)
                        .map_err(std::io::Error::from)
                        .and_then(|()| writer.write_all(b"\n"))
                        .with_context(|| format!("cannot write to {to}"))?;
                    Ok(true)
                })
                .map(|written| rows += written)?;
            writer.flush().with_context(|| format!("cannot write to {to}"))?;
            position = size;
            if let Some(path) = cursor {
                save_cursor(path, position)?;
            }
        }
        if !follow {
            break;
        }
        wanted = position + 1;
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    eprintln!(
        "{rows} events written to {to} in {:.1} s (of the ledger's first {position} entries)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Where a cursor is written before it is renamed into place: beside it, never the feed.
fn scratch_of(cursor: &Path) -> std::path::PathBuf {
    let mut name = cursor.as_os_str().to_owned();
    name.push(".saving");
    std::path::PathBuf::from(name)
}

/// The cursor, written whole or not at all.
fn save_cursor(path: &Path, position: u64) -> anyhow::Result<()> {
    let scratch = scratch_of(path);
    std::fs::write(&scratch, format!("{position}\n"))
        .with_context(|| format!("cannot write `{}`", scratch.display()))?;
    std::fs::rename(&scratch, path).with_context(|| format!("cannot write `{}`", path.display()))
}

/// Records an export in the ledger: in the directory if it is free, else through the server
/// that has it open. Returns the record's ledger index.
fn record(data: &Path, format: Format, window: &Window, from: u64, follow: bool) -> anyhow::Result<u64> {
    match Target::of(data, |dir| dir.open_for_analysis(std::sync::Arc::new(cordon_gateway::SystemClock)))? {
        Target::Local(gateway) => {
            let detail = format!(
                "{} from entry {from}{}",
                window.describe(format.name()),
                if follow { ", following" } else { "" }
            );
            let index = wait(gateway.record_export(&analyst(), format.change(), detail, "cli"))?;
            // Closing publishes a checkpoint that covers the record.
            gateway.close().map_err(|error| anyhow::anyhow!("closing the ledger: {error}"))?;
            Ok(index)
        }
        Target::Remote(remote) => {
            let time = |ms: i64, open: i64| (ms != open).then(|| ms.to_string());
            let body = serde_json::json!({
                "format": format.name(),
                "since": time(window.since_ms, i64::MIN),
                "until": time(window.until_ms, i64::MAX),
                "from_entry": from,
                "follow": follow,
            });
            let answer = remote.json(hyper::Method::POST, "/v1/exports", Some(&body))?;
            answer
                .get("ledger_index")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| anyhow::anyhow!("the server recorded the export but did not say where: {answer}"))
        }
    }
}

/// An export that ends before its own record would leave out what happened up to it, and say
/// nothing: it is refused instead, before anything is written.
fn refuse_uncovered(published: u64, recorded: u64) -> anyhow::Result<()> {
    if published > recorded {
        return Ok(());
    }
    bail!(
        "the ledger's published checkpoint covers {published} entries, not this export's own record (entry \
         {recorded}), after waiting {} s: the server has not published a checkpoint since (its ledger may have \
         failed: see /readyz; or its checkpoint interval is long); nothing was written",
        CHECKPOINT_WAIT.as_secs()
    )
}

/// How long an export waits for a checkpoint that covers its own record (a server publishes
/// one within a second or so of an append).
const CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The directory's ledger as published: the entries a checkpoint signed by the ledger's own
/// key covers, read without opening the directory, so an export runs beside a server as well
/// as alone. Nothing a checkpoint does not cover is exported.
struct Published {
    verifier: cordon_ledger::Verifier,
    source: Source,
}

/// Where the published ledger is read: the log's files in the directory, or the PostgreSQL
/// database a deployment of several gateways sequences it through (`[store] url`).
enum Source {
    Files { ledger: std::path::PathBuf, reader: cordon_ledger::LogReader },
    Shared { ledger: Box<cordon_store::SharedLedger>, database: String },
}

impl Published {
    fn of(data: &Path) -> anyhow::Result<Published> {
        let dir = cordon_gateway::DataDir::new(data);
        let config = dir.config()?;
        let published = match dir.store_url(&config)? {
            None => {
                let ledger = data.join(cordon_gateway::LEDGER_DIR);
                let key_path = ledger.join(cordon_ledger::VERIFIER_KEY_FILE);
                let key = std::fs::read_to_string(&key_path)
                    .with_context(|| format!("cannot read `{}`", key_path.display()))?;
                let verifier = cordon_ledger::Verifier::parse(key.trim())
                    .map_err(|error| anyhow::anyhow!("`{}`: {error}", key_path.display()))?;
                Published { verifier, source: Source::Files { reader: cordon_ledger::LogReader::new(&ledger), ledger } }
            }
            Some(url) => {
                // The verifier key the gateways sign under, which a gateway only opens with if
                // the signing key stored beside it (wrapped by the KEK) is its own.
                let database = cordon_store::without_password(&url);
                let key = cordon_store::SharedLedger::key(&url)?
                    .ok_or_else(|| anyhow::anyhow!("{database} holds no ledger: is it this deployment's store?"))?;
                let verifier = cordon_ledger::Verifier::parse(&key.verifier)
                    .map_err(|error| anyhow::anyhow!("the ledger key stored in {database}: {error}"))?;
                let ledger = cordon_store::SharedLedger::open_reader(&url)?;
                Published { verifier, source: Source::Shared { ledger: Box::new(ledger), database } }
            }
        };
        published.size()?;
        Ok(published)
    }

    /// The size of the published tree, its checkpoint checked against the key.
    fn size(&self) -> anyhow::Result<u64> {
        let (note, from) = match &self.source {
            Source::Files { ledger, .. } => {
                let note_path = ledger.join(cordon_ledger::CHECKPOINT_FILE);
                let note = std::fs::read_to_string(&note_path)
                    .with_context(|| format!("cannot read `{}`", note_path.display()))?;
                (note, format!("`{}`", note_path.display()))
            }
            Source::Shared { ledger, database } => (ledger.checkpoint()?.note, format!("in {database}")),
        };
        Ok(cordon_ledger::Checkpoint::open(&note, &self.verifier)
            .map_err(|error| anyhow::anyhow!("the ledger's checkpoint {from} does not verify: {error}"))?
            .size)
    }

    /// The published size once it reaches `wanted`, or, after `CHECKPOINT_WAIT`, whatever it is.
    fn covering(&self, wanted: u64) -> anyhow::Result<u64> {
        let started = std::time::Instant::now();
        loop {
            let size = self.size()?;
            if size >= wanted || started.elapsed() >= CHECKPOINT_WAIT {
                return Ok(size);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Hands each entry from `from` to `to` to `each`, which says whether it wrote it; the
    /// number written. The first error stops the export and is the answer.
    fn for_each(
        &self,
        from: u64,
        to: u64,
        each: &mut dyn FnMut(u64, &[u8]) -> anyhow::Result<bool>,
    ) -> anyhow::Result<u64> {
        let mut written = 0u64;
        let mut failed = None;
        let mut visit = |index: u64, bytes: &[u8]| match each(index, bytes) {
            Ok(wrote) => {
                written += u64::from(wrote);
                true
            }
            Err(error) => {
                failed = Some(error);
                false
            }
        };
        let read = match &self.source {
            Source::Files { reader, .. } => reader
                .for_each_entry(from, to, |index, bytes| {
                    if visit(index, bytes) {
                        Ok(())
                    } else {
                        Err(cordon_ledger::LedgerError::OutOfRange { index, size: to })
                    }
                })
                .map_err(|error| error.to_string()),
            Source::Shared { ledger, .. } => ledger
                .for_each_entry(from, to, &mut |index, bytes| {
                    if visit(index, bytes) {
                        Ok(())
                    } else {
                        // The export's own error (in `failed`) is the answer, not this one.
                        Err(cordon_store::StoreError::Sql {
                            database: String::new(),
                            action: "export",
                            message: "stopped".into(),
                        })
                    }
                })
                .map_err(|error| error.to_string()),
        };
        if let Some(error) = failed {
            return Err(error);
        }
        read.map_err(|error| anyhow::anyhow!("reading the ledger: {error}"))?;
        Ok(written)
    }
}
