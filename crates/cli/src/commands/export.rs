//! `cordon export …`: the audit record for other tools.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use cordon_export::AccessEvent;
use cordon_gateway::Gateway;
use cordon_incident::iso_time;

use crate::cli::ExportCommand;
use crate::commands::remote::Target;
use crate::commands::{analyst, open_for_analysis, option_end, option_time as time, wait};

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

/// Records the export in the ledger (before anything is written, like every other access),
/// then hands each access event in the window to `write`.
fn export(
    gateway: &Gateway,
    format: Format,
    window: &Window,
    write: &mut dyn FnMut(AccessEvent) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    wait(gateway.record_export(&analyst(), format.change(), window.describe(format.name()), "cli"))?;
    let mut failed = None;
    gateway
        .audit()
        .for_each_entry(&mut |index, bytes| {
            if let Some(event) = cordon_export::access_event(index, bytes)
                && (window.since_ms..=window.until_ms).contains(&event.time_ms)
                && let Err(error) = write(event)
            {
                failed = Some(format!("{error:#}"));
                return Err("the export stopped".into());
            }
            Ok(())
        })
        .map_err(|error| anyhow::anyhow!(failed.take().unwrap_or(error.0)))
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
            // Opened before the output is created, so a bad data directory truncates nothing.
            let gateway = open_for_analysis(&data)?;
            let mut parquet = cordon_export::ParquetExport::new(create(&out)?)?;
            export(&gateway, Format::Parquet, &window, &mut |event| Ok(parquet.push(event)?))?;
            let rows = parquet.finish()?;
            println!("{}", out.display());
            (rows, out.display().to_string())
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
    // A cursor past the log's end would export nothing, silently, for ever.
    let published = cordon_ledger::LogReader::new(&data.join(cordon_gateway::LEDGER_DIR))
        .checkpoint()
        .map_err(|error| anyhow::anyhow!("the ledger of `{}`: {error}", data.display()))?
        .checkpoint
        .size;
    if position > published {
        bail!(
            "cursor `{}` is at entry {position}, past the ledger's {published} entries: it belongs to another ledger",
            cursor.map_or_else(String::new, |path| path.display().to_string())
        );
    }
    record(data, Format::Ocsf, window, position, follow)?;
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
    let ledger = data.join("ledger");
    let key_path = ledger.join(cordon_ledger::VERIFIER_KEY_FILE);
    let key = std::fs::read_to_string(&key_path).with_context(|| format!("cannot read `{}`", key_path.display()))?;
    let verifier = cordon_ledger::Verifier::parse(key.trim())
        .map_err(|error| anyhow::anyhow!("`{}`: {error}", key_path.display()))?;
    let reader = cordon_ledger::LogReader::new(&ledger);
    let mut rows = 0u64;
    loop {
        // Only what a checkpoint signed by the ledger's key covers is exported.
        let note_path = ledger.join(cordon_ledger::CHECKPOINT_FILE);
        let note =
            std::fs::read_to_string(&note_path).with_context(|| format!("cannot read `{}`", note_path.display()))?;
        let size = cordon_ledger::Checkpoint::open(&note, &verifier)
            .map_err(|error| anyhow::anyhow!("the ledger's checkpoint does not verify: {error}"))?
            .size;
        if size > position {
            let mut failed = None;
            reader
                .for_each_entry(position, size, |index, bytes| {
                    let Some(event) = cordon_export::ocsf_record(index, bytes) else { return Ok(()) };
                    let time = event.get("time").and_then(serde_json::Value::as_i64).unwrap_or(0);
                    if (window.since_ms..=window.until_ms).contains(&time) {
                        let written = serde_json::to_writer(&mut writer, &event)
                            .map_err(std::io::Error::from)
                            .and_then(|()| writer.write_all(b"\n"));
                        if let Err(error) = written {
                            failed = Some(format!("cannot write to {to}: {error}"));
                            return Err(cordon_ledger::LedgerError::OutOfRange { index, size });
                        }
                        rows += 1;
                    }
                    Ok(())
                })
                .map_err(|error| anyhow::anyhow!(failed.take().unwrap_or_else(|| error.to_string())))?;
            writer.flush().with_context(|| format!("cannot write to {to}"))?;
            position = size;
            if let Some(path) = cursor {
                save_cursor(path, position)?;
            }
        }
        if !follow {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    eprintln!(
        "{rows} events written to {to} in {:.1} s (through ledger entry {position})",
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
/// that has it open.
fn record(data: &Path, format: Format, window: &Window, from: u64, follow: bool) -> anyhow::Result<()> {
    match Target::of(data, |dir| dir.open_for_analysis(std::sync::Arc::new(cordon_gateway::SystemClock)))? {
        Target::Local(gateway) => {
            let detail = format!(
                "{} from entry {from}{}",
                window.describe(format.name()),
                if follow { ", following" } else { "" }
            );
            wait(gateway.record_export(&analyst(), format.change(), detail, "cli"))?;
            gateway.close().map_err(|error| anyhow::anyhow!("closing the ledger: {error}"))?;
            Ok(())
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
            remote.json(hyper::Method::POST, "/v1/exports", Some(&body))?;
            Ok(())
        }
    }
}
