//! Backups and restores of a data directory, taken while it serves.
//!
//! A backup is one ustar archive: the store's database as one transaction saw it (SQLite's
//! online backup), the ledger's checkpoint and every tile of its tree at that checkpoint, the
//! configuration, the directory's own keys sealed under a fresh key that the key-encryption
//! key wraps, and last a manifest naming every file with its SHA-256. It never holds a
//! plaintext customer value (records are sealed in the database), nor any key in the clear:
//! the KEK is not in it at all (a key file, or a key in an HSM, kept apart), so a stolen
//! backup opens nothing without it.
//!
//! **Consistent with one another.** A change is a ledger entry first and a store write
//! after; a copy of the store taken between the two would hold a store that lacks a change
//! the ledger records. So every change holds `Gateway::changes` (shared) from before its
//! entry until its store write is done, and the backup holds it alone while it copies the
//! store and until a checkpoint covers every entry durable at that moment. Every change the
//! copied ledger records is then in the copied store, and every change in the copied store
//! is in the copied ledger. What access decisions leave in the store (alerts, agent statuses
//! detection set) is not held up: a start mends both from the ledger, as after a crash. The
//! access index is not copied at all: it is a function of the ledger, rebuilt at open.
//! Changes wait (they are not refused) for as long as the copy takes; reads and accesses go on.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use cordon_ledger::{TAR_BLOCK, tar_header};
use cordon_vault::DataKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::datadir::{
    CONFIG_FILE, DATABASE_FILE, DataDir, KEYS_DIR, LEDGER_DIR, create_private_dir, read_key, write_private_file,
};
use crate::error::GatewayError;
use crate::kek::{self, KekHome};
use crate::service::Gateway;
use crate::token::Claims;

/// What a backup archive says it is, in its manifest.
pub const BACKUP_FORMAT: &str = "cordon-backup/1";
const MANIFEST: &str = "manifest.json";
const SEALED_KEYS: &str = "keys.sealed";
/// Where the store's copy waits while the archive is written (in the data directory, 0700).
const STAGING_DIR: &str = "backup-staging";
/// The associated data the KEK wraps a backup's key under, and the prefix its files are
/// sealed under: no customer's id can take this form.
const BACKUP_CONTEXT: &str = "cordon backup";
/// The ledger's signing key, as the archive names it (with the other keys, sealed).
const SIGNING_KEY: &str = "ledger/private/signing-key";
const VERIFIER_KEY: &str = "ledger/private/verifier-key";
/// Files larger than a ustar size field holds (8 GiB) cannot be archived.
const TAR_SIZE_MAX: u64 = 0o77777777777;
/// What the restore accepts as a manifest or a sealed key set, at most.
const SMALL_FILE_MAX: u64 = 1 << 20;

/// The manifest, the archive's last file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// When the backup was taken (Unix milliseconds).
    pub taken_at_ms: i64,
    /// The `backup.take` entry that recorded it.
    pub entry: u64,
    /// The ledger's size when the store was copied: every change up to it is in the copy.
    pub store_at_ledger_size: u64,
    /// The copied ledger's checkpoint (it covers `store_at_ledger_size` at least).
    pub checkpoint: String,
    pub ledger_size: u64,
    /// The key-encryption key that wraps the customers' data keys and this backup's key.
    pub kek: String,
    /// This backup's key, wrapped by the KEK (base64).
    pub wrapped_backup_key: String,
    /// Every other file of the archive, in order, with its size and SHA-256 (hex).
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// A consistent backup, ready to be written out; the store's copy it holds is removed when
/// it is dropped.
#[derive(Debug)]
pub struct Backup {
    staging: PathBuf,
    root: PathBuf,
    ledger: cordon_ledger::LogReader,
    manifest: Manifest,
    sealed_keys: Vec<u8>,
}

impl Drop for Backup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.staging);
        // The staging folder itself goes too, once no other backup is using it.
        if let Some(parent) = self.staging.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// What a written backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub bytes: u64,
    pub files: usize,
    pub ledger_size: u64,
    pub store_at_ledger_size: u64,
    pub entry: u64,
}

impl Gateway {
    /// Takes a backup of this data directory (an administrator's call, recorded as
    /// `backup.take` before anything is copied): the store's copy and the ledger's
    /// checkpoint consistent with one another (see the module's note), and the directory's
    /// keys sealed under a fresh key the KEK wraps. Runs on a blocking thread: it copies
    /// the database.
    pub async fn backup(&self, who: &Claims, request: &str) -> Result<Backup, GatewayError> {
        let root = self.root.clone().ok_or_else(|| {
            GatewayError::Conflict(
                "this gateway was not opened from a data directory, so it has nothing to back up".into(),
            )
        })?;
        let id = crate::service::random_id()?;
        let entry = self.administer(who, "backup.take", &id, None, request).await?;
        let staging_root = root.join(STAGING_DIR);
        create_private_dir(&staging_root)?;
        let staging = staging_root.join(&id);
        create_private_dir(&staging)?;
        let taken_at_ms = self.clock.now_ms();
        let copy = staging.join(DATABASE_FILE);
        let waited = std::time::Instant::now();
        let (store_at_ledger_size, checkpoint) = {
            // No change is between its entry and its store write while this is held.
            let _alone = self.changes.write().await;
            let held = std::time::Instant::now();
            let _logged = HeldFor(held, waited);
            let copied = self.store.snapshot_to(&copy);
            copied.inspect_err(|_| {
                let _ = fs::remove_dir_all(&staging);
            })?;
            let durable = self.audit.size();
            (durable, self.audit.checkpoint_covering(durable)?)
        };
        let signed = cordon_ledger::SignedCheckpoint::parse_unverified(&checkpoint)
            .map_err(|error| GatewayError::Internal(format!("the ledger's checkpoint: {error}")))?;
        let backup_key = DataKey::generate()?;
        let kek = self.vault.kek();
        let wrapped = kek.wrap(BACKUP_CONTEXT, &backup_key)?;
        let sealed_keys = seal_keys(&root, &backup_key)?;
        Ok(Backup {
            staging,
            ledger: cordon_ledger::LogReader::new(&root.join(LEDGER_DIR)),
            root,
            manifest: Manifest {
                format: BACKUP_FORMAT.into(),
                taken_at_ms,
                entry,
                store_at_ledger_size,
                ledger_size: signed.checkpoint.size,
                checkpoint,
                kek: kek.id().to_string(),
                wrapped_backup_key: base64::engine::general_purpose::STANDARD.encode(wrapped),
                files: Vec::new(),
            },
            sealed_keys,
        })
    }
}

impl Gateway {
    /// Held by a change from before its ledger entry until its store write is done: a
    /// backup waits for it, and it waits for a backup's copy of the store.
    pub(crate) async fn changing(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.changes.read().await
    }

    /// [`Gateway::changing`] for a change made on a blocking thread.
    pub(crate) fn changing_blocking(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        loop {
            if let Ok(guard) = self.changes.try_read() {
                return guard;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// Logs, when the backup lets changes go again, how long it waited for the changes in flight
/// and how long changes then waited for it: what an operator weighs when scheduling backups.
struct HeldFor(std::time::Instant, std::time::Instant);

impl Drop for HeldFor {
    fn drop(&mut self) {
        let HeldFor(held, waited) = *self;
        tracing::info!(
            waited_for_changes_ms = held.duration_since(waited).as_millis() as u64,
            changes_paused_ms = held.elapsed().as_millis() as u64,
            "backup: the store is copied and the ledger's checkpoint covers it"
        );
    }
}

/// The data directory's keys (all of `keys/` but key-encryption keys, and the ledger's
/// signing key), each sealed under `key` bound to its name, as one JSON object.
fn seal_keys(root: &Path, key: &DataKey) -> Result<Vec<u8>, GatewayError> {
    let mut sealed = BTreeMap::new();
    let keys = root.join(KEYS_DIR);
    let mut names = Vec::new();
    for item in fs::read_dir(&keys).map_err(|error| io(&keys, "list", &error))? {
        let item = item.map_err(|error| io(&keys, "list", &error))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if KekHome::of(&name) == KekHome::Hsm || name.starts_with("kek-") || !item.path().is_file() {
            continue;
        }
        names.push((format!("{KEYS_DIR}/{name}"), item.path()));
    }
    names.push((SIGNING_KEY.to_string(), root.join(SIGNING_KEY)));
    for (name, path) in names {
        let bytes = Zeroizing::new(read(&path)?);
        let context = format!("{BACKUP_CONTEXT} {name}");
        sealed.insert(name, base64::engine::general_purpose::STANDARD.encode(key.seal_bytes(&context, &bytes)?));
    }
    serde_json::to_vec_pretty(&sealed).map_err(|error| GatewayError::Internal(error.to_string()))
}

impl Backup {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Writes the archive to `out`, the manifest last; returns what it holds. The files are
    /// read as they are written: the store's copy (staged), the configuration, the ledger's
    /// tiles of the copied tree (the log keeps them; a partial one it has since completed is
    /// cut back from the full one).
    pub fn write_to(mut self, out: &mut dyn Write) -> Result<BackupSummary, GatewayError> {
        let mut writer = TarWriter { out, bytes: 0, files: Vec::new() };
        writer.file_from(DATABASE_FILE, &self.staging.join(DATABASE_FILE))?;
        writer.file(CONFIG_FILE, &read(&self.root.join(CONFIG_FILE))?)?;
        writer
            .file(&format!("{LEDGER_DIR}/{}", cordon_ledger::CHECKPOINT_FILE), self.manifest.checkpoint.as_bytes())?;
        writer.file(VERIFIER_KEY, &read(&self.root.join(VERIFIER_KEY))?)?;
        let mut failed = None;
        let walked = self.ledger.tree_files(self.manifest.ledger_size, |path, bytes| {
            writer.file(&format!("{LEDGER_DIR}/{}", path.display()), &bytes).map_err(|error| {
                let reason = error.to_string();
                failed = Some(error);
                cordon_ledger::LedgerError::Failed { reason }
            })
        });
        if let Some(error) = failed {
            return Err(error);
        }
        walked.map_err(|error| GatewayError::Internal(format!("reading the ledger's tiles: {error}")))?;
        let sealed_keys = std::mem::take(&mut self.sealed_keys);
        writer.file(SEALED_KEYS, &sealed_keys)?;
        self.manifest.files = std::mem::take(&mut writer.files);
        let manifest =
            serde_json::to_vec_pretty(&self.manifest).map_err(|error| GatewayError::Internal(error.to_string()))?;
        let files = self.manifest.files.len() + 1;
        writer.file_unlisted(MANIFEST, &manifest)?;
        writer.end()?;
        Ok(BackupSummary {
            bytes: writer.bytes,
            files,
            ledger_size: self.manifest.ledger_size,
            store_at_ledger_size: self.manifest.store_at_ledger_size,
            entry: self.manifest.entry,
        })
    }
}

struct TarWriter<'a> {
    out: &'a mut dyn Write,
    bytes: u64,
    files: Vec<ManifestFile>,
}

impl TarWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), GatewayError> {
        self.out.write_all(bytes).map_err(|error| GatewayError::Internal(format!("writing the backup: {error}")))?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    fn header(&mut self, name: &str, size: u64) -> Result<(), GatewayError> {
        if name.len() >= 100 || size > TAR_SIZE_MAX {
            return Err(GatewayError::Internal(format!("`{name}` ({size} bytes) does not fit in a ustar archive")));
        }
        self.put(&tar_header(name, size))
    }

    fn pad(&mut self, size: u64) -> Result<(), GatewayError> {
        let padding = (TAR_BLOCK - (size % TAR_BLOCK as u64) as usize) % TAR_BLOCK;
        self.put(&vec![0u8; padding])
    }

    fn file_unlisted(&mut self, name: &str, bytes: &[u8]) -> Result<(), GatewayError> {
        self.header(name, bytes.len() as u64)?;
        self.put(bytes)?;
        self.pad(bytes.len() as u64)
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), GatewayError> {
        self.file_unlisted(name, bytes)?;
        self.files.push(ManifestFile {
            name: name.to_string(),
            size: bytes.len() as u64,
            sha256: hex(&Sha256::digest(bytes)),
        });
        Ok(())
    }

    /// A file streamed from disk; its size is taken first and must not change meanwhile.
    fn file_from(&mut self, name: &str, path: &Path) -> Result<(), GatewayError> {
        let mut file = fs::File::open(path).map_err(|error| io(path, "open", &error))?;
        let size = file.metadata().map_err(|error| io(path, "read", &error))?.len();
        self.header(name, size)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let chunk = buffer.get_mut(..want).unwrap_or_default();
            file.read_exact(chunk).map_err(|error| io(path, "read", &error))?;
            hasher.update(&*chunk);
            let chunk = buffer.get(..want).unwrap_or_default();
            self.out
                .write_all(chunk)
                .map_err(|error| GatewayError::Internal(format!("writing the backup: {error}")))?;
            self.bytes += want as u64;
            left -= want as u64;
        }
        self.pad(size)?;
        self.files.push(ManifestFile { name: name.to_string(), size, sha256: hex(&hasher.finalize()) });
        Ok(())
    }

    fn end(&mut self) -> Result<(), GatewayError> {
        self.put(&[0u8; 2 * TAR_BLOCK])?;
        self.out.flush().map_err(|error| GatewayError::Internal(format!("writing the backup: {error}")))
    }
}

/// How a restore gets the key-encryption key the backup names.
#[derive(Debug, Clone, Default)]
pub struct RestoreKeys {
    /// The KEK's key file, for a backup whose KEK is a file (`kek-…`).
    pub kek_file: Option<PathBuf>,
    /// The PIN file for the `[hsm]` token the backup's configuration names, for a KEK in an
    /// HSM (`hsm-…`); it is copied where that configuration says.
    pub hsm_pin_file: Option<PathBuf>,
}

/// What a restore put in place, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub manifest: Manifest,
    pub customers: u64,
    pub agents: u64,
    pub ledger_size: u64,
    pub ledger_root: String,
    /// Entries after the store's copy: accesses and what detection did about them, which the
    /// start mended from the ledger (alerts, agent statuses).
    pub entries_after_store: u64,
    /// The `backup.restore` entry, the restored ledger's first after the backup's.
    pub entry: u64,
}

/// Restores the backup `archive` into `target`, a folder that must not exist or be empty.
/// Everything is checked before the folder is made: every file against the manifest, the
/// sealed keys opened with the KEK, the ledger verified against the manifest's checkpoint.
/// Then the directory is opened (detection replayed, alerts and statuses mended from the
/// ledger, the access index rebuilt), the restore recorded as `backup.restore`, and closed.
pub fn restore(
    archive: &Path,
    target: &Path,
    keys: &RestoreKeys,
    clock: Arc<dyn Clock>,
) -> Result<Restored, GatewayError> {
    if target.exists() && fs::read_dir(target).map_err(|error| io(target, "list", &error))?.next().is_some() {
        return Err(GatewayError::Conflict(format!(
            "`{}` exists and is not empty; a restore makes a new data directory",
            target.display()
        )));
    }
    let parent = target.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = parent.join(format!(".{name}.restoring-{}", crate::service::random_id()?));
    let staged = stage(archive, &staging, keys);
    let manifest = match staged {
        Ok(manifest) => manifest,
        Err(error) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    if target.exists() {
        fs::remove_dir(target).map_err(|error| io(target, "replace", &error))?;
    }
    fs::rename(&staging, target).map_err(|error| io(target, "create", &error))?;
    let data = DataDir::new(target);
    let gateway = data.open(clock)?;
    let detail = format!(
        "from the backup recorded at {} (ledger {} entries, store at {})",
        manifest.entry, manifest.ledger_size, manifest.store_at_ledger_size
    );
    let entry = crate::datadir::futures_block_on(gateway.change_entry(
        "cordon",
        "backup.restore",
        &manifest.entry.to_string(),
        Some(detail),
        "restore",
    ))?;
    let customers = gateway.store.customer_count()?;
    let agents = gateway.store.agent_count()?;
    gateway.close()?;
    let verifier = cordon_ledger::Verifier::parse(read_text(&target.join(VERIFIER_KEY))?.trim())
        .map_err(|error| GatewayError::Internal(format!("the ledger's verifier key: {error}")))?;
    let summary = cordon_ledger::verify_log(&target.join(LEDGER_DIR), &verifier, Some(&manifest.checkpoint))
        .map_err(|error| GatewayError::Internal(format!("the restored ledger does not verify: {error}")))?;
    Ok(Restored {
        customers,
        agents,
        ledger_size: summary.size,
        ledger_root: hex(&summary.root.0),
        entries_after_store: manifest.ledger_size - manifest.store_at_ledger_size,
        entry,
        manifest,
    })
}

/// Reads the archive `archive` from start to end, exactly as `Backup::write_to` writes it:
/// every header rebuilt and compared, padding zeros, the manifest last, every other file
/// listed in it in order with its size and SHA-256, and nothing after the end. `each` gets
/// every file but the manifest and must read all of it (small ones, the sealed keys, it gets
/// whole). Returns the manifest and the sealed keys.
fn walk(
    archive: &Path,
    mut each: impl FnMut(&str, u64, &mut dyn Read) -> Result<(), GatewayError>,
) -> Result<(Manifest, Vec<u8>), GatewayError> {
    let bad = |why: String| GatewayError::BadRequest(format!("`{}` is not a cordon backup: {why}", archive.display()));
    let mut input = std::io::BufReader::with_capacity(
        1 << 20,
        fs::File::open(archive).map_err(|error| io(archive, "open", &error))?,
    );
    let mut seen: Vec<ManifestFile> = Vec::new();
    let mut sealed_keys = None;
    let mut manifest_bytes = None;
    loop {
        let mut header = [0u8; TAR_BLOCK];
        input.read_exact(&mut header).map_err(|_| bad("it ends inside a header".into()))?;
        if header.iter().all(|byte| *byte == 0) {
            input.read_exact(&mut header).map_err(|_| bad("it does not end with two zero blocks".into()))?;
            let mut rest = [0u8; 1];
            let after = input.read(&mut rest).map_err(|error| io(archive, "read", &error))?;
            if header.iter().any(|byte| *byte != 0) || after != 0 {
                return Err(bad("there is something after its end".into()));
            }
            break;
        }
        if manifest_bytes.is_some() {
            return Err(bad(format!("a file follows `{MANIFEST}`, which must be last")));
        }
        let (name, size) = parse_header(&header).map_err(bad)?;
        if tar_header(&name, size) != header {
            return Err(bad(format!("the header of `{name}` is not one cordon writes")));
        }
        let padding = (TAR_BLOCK - (size % TAR_BLOCK as u64) as usize) % TAR_BLOCK;
        if name == MANIFEST || name == SEALED_KEYS {
            if size > SMALL_FILE_MAX {
                return Err(bad(format!("`{name}` is {size} bytes")));
            }
            let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)];
            input.read_exact(&mut bytes).map_err(|_| bad(format!("`{name}` is cut short")))?;
            if name == MANIFEST {
                manifest_bytes = Some(bytes);
            } else {
                seen.push(ManifestFile { name: name.clone(), size, sha256: hex(&Sha256::digest(&bytes)) });
                sealed_keys = Some(bytes);
            }
        } else {
            let mut hashing = Hashing { inner: (&mut input).take(size), hasher: Sha256::new() };
            each(&name, size, &mut hashing)?;
            if hashing.inner.limit() != 0 {
                return Err(bad(format!("`{name}` is cut short")));
            }
            seen.push(ManifestFile { name, size, sha256: hex(&hashing.hasher.finalize()) });
        }
        let mut zeros = vec![0u8; padding];
        input.read_exact(&mut zeros).map_err(|_| bad("it is cut short".into()))?;
        if zeros.iter().any(|byte| *byte != 0) {
            return Err(bad("a file's padding is not zeros".into()));
        }
    }
    let manifest_bytes = manifest_bytes.ok_or_else(|| bad(format!("it has no `{MANIFEST}`")))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|error| bad(format!("its manifest: {error}")))?;
    if manifest.format != BACKUP_FORMAT {
        return Err(bad(format!("its format is `{}`, and this cordon reads `{BACKUP_FORMAT}`", manifest.format)));
    }
    if manifest.files != seen {
        let differs = manifest
            .files
            .iter()
            .zip(seen.iter())
            .find(|(listed, found)| listed != found)
            .map(|(listed, _)| listed.name.clone())
            .unwrap_or_else(|| "the list of files".into());
        return Err(bad(format!("`{differs}` is not what its manifest lists (altered, cut or added to)")));
    }
    for required in [DATABASE_FILE, CONFIG_FILE, VERIFIER_KEY] {
        if !seen.iter().any(|file| file.name == required) {
            return Err(bad(format!("it has no `{required}`")));
        }
    }
    let sealed_keys = sealed_keys.ok_or_else(|| bad(format!("it has no `{SEALED_KEYS}`")))?;
    Ok((manifest, sealed_keys))
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(buffer.get(..read).unwrap_or_default());
        Ok(read)
    }
}

/// Checks the archive `archive` whole, as a restore would read it, without a key: its
/// structure, every file against the manifest. Returns the manifest.
pub fn check_backup(archive: &Path) -> Result<Manifest, GatewayError> {
    let (manifest, _) = walk(archive, |name, _, file| {
        allowed_path(name).ok_or_else(|| {
            GatewayError::BadRequest(format!(
                "`{}` is not a cordon backup: it holds `{name}`, which a backup never does",
                archive.display()
            ))
        })?;
        std::io::copy(file, &mut std::io::sink()).map_err(|error| io(archive, "read", &error))?;
        Ok(())
    })?;
    Ok(manifest)
}

/// Unpacks and checks the archive into `staging`; returns its manifest.
fn stage(archive: &Path, staging: &Path, keys: &RestoreKeys) -> Result<Manifest, GatewayError> {
    let bad = |why: String| GatewayError::BadRequest(format!("`{}` is not a cordon backup: {why}", archive.display()));
    create_private_dir(staging)?;
    let (manifest, sealed_keys) = walk(archive, |name, _, file| {
        let relative =
            allowed_path(name).ok_or_else(|| bad(format!("it holds `{name}`, which a backup never does")))?;
        let path = staging.join(relative);
        if let Some(folder) = path.parent() {
            create_private_dir_all(folder)?;
        }
        copy_out(file, &path).map_err(|why| bad(format!("`{name}`: {why}")))
    })?;
    let checkpoint_path = staging.join(LEDGER_DIR).join(cordon_ledger::CHECKPOINT_FILE);
    if read_text(&checkpoint_path)? != manifest.checkpoint {
        return Err(bad("its ledger checkpoint is not the manifest's".into()));
    }
    // The key-encryption key, where the backup's configuration says it is.
    let config = crate::config::Config::load(&staging.join(CONFIG_FILE)).map_err(GatewayError::BadRequest)?;
    match KekHome::of(&manifest.kek) {
        KekHome::File => {
            let from = keys.kek_file.as_deref().ok_or_else(|| {
                GatewayError::BadRequest(format!(
                    "the backup's data keys are wrapped by the key-encryption key `{}`, a key file kept apart from \
                     backups: give it with --kek-file",
                    manifest.kek
                ))
            })?;
            // Checked to be a key file, then copied as it is.
            read_key(from)?;
            let key = Zeroizing::new(read(from)?);
            create_private_dir(&staging.join(KEYS_DIR))?;
            write_private_file(&staging.join(KEYS_DIR).join(&manifest.kek), &key)?;
        }
        KekHome::Hsm => {
            // A PIN file named by an absolute path stays where it is; one inside the data
            // directory comes with the restore.
            if !config.hsm.pin_file.is_empty() && Path::new(&config.hsm.pin_file).is_relative() {
                let from = keys.hsm_pin_file.as_deref().ok_or_else(|| {
                    GatewayError::BadRequest(format!(
                        "the backup's data keys are wrapped by `{}` in the HSM token `{}`: give the token's PIN file \
                         with --hsm-pin-file",
                        manifest.kek, config.hsm.token_label
                    ))
                })?;
                let pin = fs::read(from).map_err(|error| io(from, "read", &error))?;
                let to = staging.join(&config.hsm.pin_file);
                if let Some(folder) = to.parent() {
                    create_private_dir_all(folder)?;
                }
                write_private_file(&to, &pin)?;
            }
        }
    }
    let kek = kek::load(staging, &config.hsm, &manifest.kek)?;
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(&manifest.wrapped_backup_key)
        .map_err(|error| bad(format!("its wrapped key: {error}")))?;
    let backup_key = kek.unwrap(BACKUP_CONTEXT, &wrapped).map_err(|_| {
        GatewayError::BadRequest(format!(
            "the key-encryption key given does not open `{}`'s key (the backup was taken under `{}`)",
            archive.display(),
            manifest.kek
        ))
    })?;
    let sealed: BTreeMap<String, String> =
        serde_json::from_slice(&sealed_keys).map_err(|error| bad(format!("its sealed keys: {error}")))?;
    if !sealed.contains_key(SIGNING_KEY) {
        return Err(bad("its sealed keys lack the ledger's signing key".into()));
    }
    for (name, value) in &sealed {
        let relative = allowed_key_path(name).ok_or_else(|| bad(format!("its sealed keys name `{name}`")))?;
        let value = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|error| bad(format!("the sealed key `{name}`: {error}")))?;
        let key = backup_key
            .open_bytes(&format!("{BACKUP_CONTEXT} {name}"), &value)
            .map_err(|_| bad(format!("the sealed key `{name}` does not open (altered, or moved from another name)")))?;
        let path = staging.join(relative);
        if let Some(folder) = path.parent() {
            create_private_dir_all(folder)?;
        }
        write_private_file(&path, &key)?;
    }
    // The ledger: its private folders, and its signing key must be the verifier key's.
    let ledger_dir = staging.join(LEDGER_DIR);
    cordon_ledger::Layout::new(&ledger_dir).create_private_dirs().map_err(|error| io(&ledger_dir, "create", &error))?;
    let signer = cordon_ledger::Signer::parse(read_text(&staging.join(SIGNING_KEY))?.trim())
        .map_err(|error| bad(format!("its ledger signing key: {error}")))?;
    let verifier = cordon_ledger::Verifier::parse(read_text(&staging.join(VERIFIER_KEY))?.trim())
        .map_err(|error| bad(format!("its ledger verifier key: {error}")))?;
    if signer.verifier().to_string() != verifier.to_string() {
        return Err(bad("its ledger's signing key is not its verifier key's".into()));
    }
    cordon_ledger::verify_log(&ledger_dir, &verifier, Some(&manifest.checkpoint))
        .map_err(|error| bad(format!("its ledger does not verify: {error}")))?;
    Ok(manifest)
}

/// The data-directory path an archived file goes to, if a backup may hold it.
fn allowed_path(name: &str) -> Option<PathBuf> {
    let safe = !name.is_empty()
        && !name.starts_with('/')
        && name.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"/._-".contains(&byte));
    if !safe {
        return None;
    }
    let allowed = name == DATABASE_FILE
        || name == CONFIG_FILE
        || name == VERIFIER_KEY
        || name == format!("{LEDGER_DIR}/{}", cordon_ledger::CHECKPOINT_FILE)
        || name.starts_with(&format!("{LEDGER_DIR}/tile/"));
    allowed.then(|| PathBuf::from(name))
}

/// Where a sealed key goes: `keys/<name>` (never a key-encryption key) or the ledger's
/// signing key.
fn allowed_key_path(name: &str) -> Option<PathBuf> {
    if name == SIGNING_KEY {
        return Some(PathBuf::from(name));
    }
    let file = name.strip_prefix(&format!("{KEYS_DIR}/"))?;
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && !file.starts_with("kek-")
        && KekHome::of(file) == KekHome::File
        && file.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte));
    plain.then(|| PathBuf::from(name))
}

fn parse_header(header: &[u8; TAR_BLOCK]) -> Result<(String, u64), String> {
    let name_field = header.get(..100).unwrap_or_default();
    let length = name_field.iter().position(|byte| *byte == 0).unwrap_or(100);
    let name = std::str::from_utf8(name_field.get(..length).unwrap_or_default())
        .map_err(|_| "a file name is not UTF-8".to_string())?
        .to_string();
    let size_field =
        std::str::from_utf8(header.get(124..135).unwrap_or_default()).map_err(|_| "a size is not text".to_string())?;
    let size = u64::from_str_radix(size_field, 8).map_err(|_| format!("the size of `{name}` is not octal"))?;
    Ok((name, size))
}

fn copy_out(input: &mut dyn Read, path: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| format!("cannot create it: {error}"))?;
    std::io::copy(input, &mut file).map_err(|error| format!("cannot copy it: {error}"))?;
    file.sync_all().map_err(|error| format!("cannot sync it: {error}"))
}

fn create_private_dir_all(path: &Path) -> Result<(), GatewayError> {
    let mut missing = Vec::new();
    let mut at = path;
    while !at.exists() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    for folder in missing.iter().rev() {
        create_private_dir(folder)?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, GatewayError> {
    fs::read(path).map_err(|error| io(path, "read", &error))
}

fn read_text(path: &Path) -> Result<String, GatewayError> {
    fs::read_to_string(path).map_err(|error| io(path, "read", &error))
}

fn io(path: &Path, action: &str, error: &std::io::Error) -> GatewayError {
    GatewayError::Internal(format!("cannot {action} `{}`: {error}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
