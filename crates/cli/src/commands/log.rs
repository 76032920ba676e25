//! `cordon log …`: the audit ledger from the command line.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use cordon_ledger::{ENTRY_SIZE_MAX, Ledger, LedgerConfig, LogReader, Verifier, verify_log};

use crate::cli::LogCommand;

/// Entries submitted to the ledger in one request; several are in flight at once.
const APPEND_CHUNK_ENTRIES: usize = 4096;

pub fn run(command: LogCommand) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match command {
        LogCommand::Init { dir, origin } => {
            let verifier = Ledger::create(&dir, &origin)?;
            writeln!(stdout, "{verifier}")?;
        }
        LogCommand::Append { dir, file } => {
            let size = append_lines(&dir, file.as_deref())?;
            writeln!(stdout, "{size}")?;
        }
        LogCommand::Checkpoint { dir } => {
            write!(stdout, "{}", LogReader::new(&dir).checkpoint()?.note)?;
        }
        LogCommand::Entries { dir, from, kind } => {
            let reader = LogReader::new(&dir);
            let size = reader.checkpoint()?.checkpoint.size;
            let wanted = kind.map(|kind| format!("\"kind\":\"{kind}\""));
            reader.for_each_entry(from.min(size), size, |_, bytes| {
                if wanted
                    .as_ref()
                    .is_none_or(|wanted| bytes.windows(wanted.len()).any(|window| window == wanted.as_bytes()))
                {
                    let _ = stdout.write_all(bytes);
                    let _ = stdout.write_all(b"\n");
                }
                Ok(())
            })?;
        }
        LogCommand::Prove { dir, index } => {
            write!(stdout, "{}", LogReader::new(&dir).receipt(index)?)?;
        }
        LogCommand::Consistency { dir, old } => {
            let reader = LogReader::new(&dir);
            let size = reader.checkpoint()?.checkpoint.size;
            if old == 0 || old > size {
                bail!("`--old {old}` must be between 1 and the current tree size {size}");
            }
            for hash in reader.consistency_proof(old, size)? {
                writeln!(stdout, "{hash}")?;
            }
        }
        LogCommand::Export { store, out } => {
            if out.exists() && fs::read_dir(&out)?.next().is_some() {
                bail!("`{}` exists and is not empty; the export needs a new folder", out.display());
            }
            let ledger = cordon_store::SharedLedger::open_reader(&store)?;
            let size = ledger.export(&out)?;
            writeln!(
                stdout,
                "exported log `{}` at size {size} from {} to `{}`",
                ledger.origin(),
                cordon_store::without_password(&store),
                out.display()
            )?;
        }
        LogCommand::VerifyBundle { file, vkey } => {
            let bytes = fs::read(&file).with_context(|| format!("cannot read bundle `{}`", file.display()))?;
            let trusted = vkey.as_deref().map(read_verifier).transpose()?;
            let summary = cordon_ledger::verify_bundle(&bytes, trusted.as_ref())
                .with_context(|| format!("bundle `{}` does not verify", file.display()))?;
            writeln!(
                stdout,
                "ok: bundle `{}`: {} entries proven in log `{}` at size {}, root {}, signed by key {:08x}{}",
                file.display(),
                summary.entries,
                summary.checkpoint.origin,
                summary.checkpoint.size,
                summary.checkpoint.root,
                summary.key_id,
                if trusted.is_some() { " (the trusted key)" } else { " (the bundle's own key: compare it)" }
            )?;
        }
        LogCommand::Verify { dir, vkey, trusted } => {
            let verifier = read_verifier(&vkey)?;
            let trusted = trusted
                .map(|path| {
                    fs::read_to_string(&path)
                        .with_context(|| format!("cannot read trusted checkpoint `{}`", path.display()))
                })
                .transpose()?;
            let summary = verify_log(&dir, &verifier, trusted.as_deref())?;
            let consistency = match summary.consistent_with {
                Some(size) => format!(", consistent with the trusted checkpoint at size {size}"),
                None => String::new(),
            };
            writeln!(
                stdout,
                "ok: log `{}` verified: {} entries, {} tiles, root {}, signed by {}{consistency}",
                summary.origin,
                summary.size,
                summary.tiles_checked,
                summary.root,
                verifier.name()
            )?;
        }
    }
    Ok(())
}

/// Reads all input first and checks every line, so a bad line appends nothing.
fn append_lines(dir: &Path, file: Option<&Path>) -> anyhow::Result<u64> {
    let (input, source) = match file {
        Some(path) => {
            (fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?, path.display().to_string())
        }
        None => {
            let mut input = Vec::new();
            std::io::stdin().read_to_end(&mut input).context("cannot read standard input")?;
            (input, "standard input".to_string())
        }
    };
    let body = input.strip_suffix(b"\n").unwrap_or(&input);
    let lines: Vec<&[u8]> = if input.is_empty() { Vec::new() } else { body.split(|&byte| byte == b'\n').collect() };
    if let Some((number, line)) = lines.iter().enumerate().find(|(_, line)| line.len() > ENTRY_SIZE_MAX) {
        bail!(
            "line {} of {source} is {} bytes; an entry may be at most {ENTRY_SIZE_MAX} bytes (nothing was appended)",
            number + 1,
            line.len()
        );
    }
    let ledger = Ledger::open(dir, LedgerConfig::default())?;
    let pending: Vec<_> = lines
        .chunks(APPEND_CHUNK_ENTRIES)
        .map(|chunk| ledger.append_batch(chunk.iter().map(|line| line.to_vec()).collect()))
        .collect();
    for appending in pending {
        appending.wait()?;
    }
    let published = ledger.publish()?;
    ledger.close()?;
    Ok(published.checkpoint.size)
}

/// A verifier key given inline, or the path of a file that holds one.
fn read_verifier(argument: &str) -> anyhow::Result<Verifier> {
    match Verifier::parse(argument) {
        Ok(verifier) => Ok(verifier),
        Err(parse_error) => {
            let path = Path::new(argument);
            if path.is_file() {
                let text =
                    fs::read_to_string(path).with_context(|| format!("cannot read verifier key file `{argument}`"))?;
                Verifier::parse(text.trim()).with_context(|| format!("verifier key file `{argument}`"))
            } else {
                Err(parse_error).with_context(|| format!("`--vkey {argument}` is neither a verifier key nor a file"))
            }
        }
    }
}
