//! `cordon export …`: the audit record for other tools.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use cordon_export::AccessEvent;
use cordon_gateway::Gateway;
use cordon_incident::iso_time;

use crate::cli::ExportCommand;
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
        ExportCommand::Ocsf { data, out, since, until } => {
            let window = Window::parse(since.as_deref(), until.as_deref())?;
            let gateway = open_for_analysis(&data)?;
            let mut writer: Box<dyn std::io::Write> = match &out {
                Some(out) => Box::new(create(out)?),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut rows = 0u64;
            let to = out.as_ref().map_or("standard output".to_string(), |out| out.display().to_string());
            export(&gateway, Format::Ocsf, &window, &mut |event| {
                cordon_export::write_ocsf_line(&mut writer, &event).with_context(|| format!("cannot write to {to}"))?;
                rows += 1;
                Ok(())
            })?;
            writer.flush().with_context(|| format!("cannot write to {to}"))?;
            (rows, to)
        }
    };
    eprintln!("{rows} access events written to {to} in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
