//! `cordon export …`: the audit record for other tools.

use std::time::Instant;

use anyhow::{Context as _, bail};
use cordon_gateway::futures_block_on;
use cordon_incident::iso_time;

use crate::cli::ExportCommand;

use crate::commands::{analyst, open_data, option_time as time};

pub fn run(command: ExportCommand) -> anyhow::Result<()> {
    let who = analyst();
    match command {
        ExportCommand::Parquet { data, out, since, until } => {
            let since_ms = time("since", since.as_deref())?.unwrap_or(i64::MIN);
            let until_ms = time("until", until.as_deref())?.unwrap_or(i64::MAX);
            if since_ms > until_ms {
                bail!("--since is after --until");
            }
            let gateway = open_data(&data)?;
            let window = format!(
                "parquet {} .. {}",
                if since_ms == i64::MIN { "start".into() } else { iso_time(since_ms) },
                if until_ms == i64::MAX { "now".into() } else { iso_time(until_ms) }
            );
            futures_block_on(gateway.record_export(&who, "export.parquet", window, "cli"))?;
            let file = std::fs::File::create(&out).with_context(|| format!("cannot create `{}`", out.display()))?;
            let started = Instant::now();
            let mut export = cordon_export::ParquetExport::new(std::io::BufWriter::new(file))?;
            let mut failed = None;
            gateway
                .audit()
                .for_each_entry(&mut |index, bytes| {
                    if let Some(event) = cordon_export::access_event(index, bytes)
                        && (since_ms..=until_ms).contains(&event.time_ms)
                        && let Err(error) = export.push(event)
                    {
                        failed = Some(error.to_string());
                        return Err("the export stopped".into());
                    }
                    Ok(())
                })
                .map_err(|error| anyhow::anyhow!(failed.take().unwrap_or(error.0)))?;
            let rows = export.finish()?;
            println!("{}", out.display());
            eprintln!("{rows} access events written to {} in {:.1} s", out.display(), started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
