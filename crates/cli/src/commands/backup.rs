//! `cordon backup` and `cordon restore` (the gateway's `backup.rs` does the work).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use hyper::Method;

use cordon_gateway::{Claims, DataDir, RestoreKeys, SystemClock, TokenRole};

use crate::commands::remote::Remote;
use crate::commands::wait;

/// Writes a backup of `data` to the new file `out`: through the running server if one has
/// the directory, otherwise by opening it. The archive is written beside `out` under a
/// temporary name, checked whole, and only then named `out`.
pub(crate) fn backup(data: &Path, out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        bail!("`{}` exists; a backup is written to a new file", out.display());
    }
    let name = out.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = out.with_file_name(format!(".{name}.partial"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create `{}`", partial.display()))?;
    let written = write_backup(data, file);
    let checked = written.and_then(|()| cordon_gateway::check_backup(&partial).map_err(anyhow::Error::from));
    let manifest = match checked {
        Ok(manifest) => manifest,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    std::fs::rename(&partial, out).with_context(|| format!("cannot name the backup `{}`", out.display()))?;
    let bytes = std::fs::metadata(out).map(|metadata| metadata.len()).unwrap_or(0);
    println!("backup written to {} ({bytes} bytes, {} files)", out.display(), manifest.files.len() + 1);
    println!(
        "recorded at ledger entry {}; the store as it was at {} entries, the ledger up to its checkpoint of {} entries",
        manifest.entry, manifest.store_at_ledger_size, manifest.ledger_size
    );
    println!(
        "its data keys and the directory's keys need the key-encryption key `{}` to be read: it is not in the backup",
        manifest.kek
    );
    Ok(())
}

fn write_backup(data: &Path, file: std::fs::File) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let dir = DataDir::new(data);
    match dir.open_for_analysis(Arc::new(SystemClock)) {
        Ok(gateway) => {
            let who = Claims::in_process(TokenRole::Admin.identity(), TokenRole::Admin, "cli");
            let taken = wait(gateway.backup(&who, "cli"));
            let written = taken.and_then(|backup| backup.write_to(&mut out).map_err(anyhow::Error::from));
            gateway.close()?;
            written?;
        }
        Err(error) => match Remote::for_busy_as(data, &error, TokenRole::Admin)? {
            Some(remote) => remote.call_into(Method::POST, "/v1/backup", &mut out)?,
            None => return Err(error.into()),
        },
    }
    out.flush().context("cannot write the backup")?;
    out.into_inner().map_err(|error| error.into_error())?.sync_all().context("cannot sync the backup")?;
    Ok(())
}

/// Restores the backup `from` into the new data directory `data`.
pub(crate) fn restore(from: &Path, data: &Path, keys: RestoreKeys) -> anyhow::Result<()> {
    let restored = cordon_gateway::restore(from, data, &keys, Arc::new(SystemClock))?;
    println!("restored {} into {}", from.display(), data.display());
    println!("customers {}, agents {}", restored.customers, restored.agents);
    println!(
        "ledger {} entries, root {} (verified; the backup's checkpoint was at {} entries)",
        restored.ledger_size, restored.ledger_root, restored.manifest.ledger_size
    );
    println!(
        "the store was copied at {} entries; the {} after it (access decisions and what detection did about them) \
         were mended from the ledger at open",
        restored.manifest.store_at_ledger_size, restored.entries_after_store
    );
    println!("the restore is recorded at ledger entry {}", restored.entry);
    Ok(())
}
