//! Backups and restores of a data directory, taken while it serves.
//!
//! A backup is one ustar archive: the store's database as one transaction saw it (SQLite's
//! online backup), the ledger's checkpoint and every tile of its tree at that checkpoint, the
//! configuration and the certificates and policies it names, the directory's own keys and the
//! secrets the configuration names sealed under a fresh key that the key-encryption key
//! wraps, a manifest naming every file with its SHA-256 (the tiles as one digest), and last
//! the manifest's seal: its SHA-256 sealed under that same key. It never holds a plaintext
//! customer value (records are sealed in the database), nor any key in the clear: the KEK is
//! not in it at all (a key file, or a key in an HSM, kept apart), so a stolen backup opens
//! nothing without it, and nobody without the KEK can make one a restore accepts.
//!
//! **Consistent with one another.** A change is a ledger entry first and a store write
//! after; a copy of the store taken between the two would lack a change the ledger records.
//! So every change holds `Gateway::changes` (shared) from before its entry until its store
//! write is done, and the backup holds it alone for a moment: while it fixes the store's
//! state (a read transaction of its own) and until a checkpoint covers every entry durable at
//! that moment. Every change the copied ledger records is then in the copied store, and every
//! change in the copied store is in the copied ledger. The copy itself is made afterwards,
//! from that transaction, while changes go on. What access decisions leave in the store
//! (alerts, agent statuses detection set) is not held up: a start mends both from the ledger,
//! as after a crash. The access index is not copied at all: it is a function of the ledger.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use cordon_ledger::{TAR_BLOCK, tar_header};
use cordon_vault::DataKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::config::{Config, FileKind, HsmSettings};
use crate::datadir::{
    CONFIG_FILE, DATABASE_FILE, DataDir, KEYS_DIR, LEDGER_DIR, create_private_dir, read_key, write_private_file,
};
use crate::error::GatewayError;
use crate::kek::{self, KekHome};
use crate::service::Gateway;
use crate::token::{Claims, TokenRole};

/// What a backup archive says it is, in its manifest.
pub const BACKUP_FORMAT: &str = "cordon-backup/1";
const MANIFEST: &str = "manifest.json";
/// The manifest's SHA-256, sealed under the backup's key: the last file.
const SEAL: &str = "manifest.seal";
const SEALED_KEYS: &str = "keys.sealed";
/// Where the store's copy waits while the archive is written (in the data directory, 0700);
/// anything left there by a backup cut short is removed at the next open.
pub(crate) const STAGING_DIR: &str = "backup-staging";
/// The associated data the KEK wraps a backup's key under, and the prefix its files are
/// sealed under: no customer's id can take this form.
const BACKUP_CONTEXT: &str = "cordon backup";
/// The ledger's signing key, as the archive names it (with the other keys, sealed).
const SIGNING_KEY: &str = "ledger/private/signing-key";
const VERIFIER_KEY: &str = "ledger/private/verifier-key";
const TILES: &str = "ledger/tile/";
/// Files larger than a ustar size field holds (8 GiB) cannot be archived.
const TAR_SIZE_MAX: u64 = 0o77777777777;
/// What the restore accepts as a manifest, a seal or a sealed key set, at most.
const SMALL_FILE_MAX: u64 = 1 << 20;

/// The manifest, the archive's last file but its seal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// When the backup was taken (Unix milliseconds).
    pub taken_at_ms: i64,
    /// The `backup.take` entry that recorded it.
    pub entry: u64,
    /// The ledger's size when the store's state was fixed: every change up to it is in the copy.
    pub store_at_ledger_size: u64,
    /// The copied ledger's checkpoint (it covers `store_at_ledger_size` at least).
    pub checkpoint: String,
    pub ledger_size: u64,
    /// The key-encryption key that wraps the customers' data keys and this backup's key.
    pub kek: String,
    /// This backup's key, wrapped by the KEK (base64).
    pub wrapped_backup_key: String,
    /// Every file of the archive but the tiles, the manifest and the seal, in order, with its
    /// size and SHA-256 (hex).
    pub files: Vec<ManifestFile>,
    /// The ledger's tiles, in order, as one digest.
    pub tiles: TileSummary,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// How many tile files, and the SHA-256 over each one's name, size and SHA-256, in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct TileSummary {
    pub count: u64,
    pub sha256: String,
}

/// The running digest of the tiles.
struct TileDigest {
    count: u64,
    hasher: Sha256,
}

impl TileDigest {
    fn new() -> TileDigest {
        TileDigest { count: 0, hasher: Sha256::new() }
    }

    fn add_header(&mut self, name: &str, size: u64) {
        self.count += 1;
        self.hasher.update(name.as_bytes());
        self.hasher.update([0]);
        self.hasher.update(size.to_be_bytes());
    }

    fn add(&mut self, name: &str, bytes: &[u8]) {
        self.add_header(name, bytes.len() as u64);
        self.hasher.update(Sha256::digest(bytes));
    }

    fn summary(self) -> TileSummary {
        TileSummary { count: self.count, sha256: hex(&self.hasher.finalize()) }
    }
}

/// A consistent backup, ready to be written out. The store's copy it holds is removed when
/// it is dropped, and only then may another backup start.
pub struct Backup {
    staging: Staging,
    root: PathBuf,
    ledger: cordon_ledger::LogReader,
    manifest: Manifest,
    backup_key: DataKey,
    sealed_keys: Vec<u8>,
    _one_at_a_time: OneAtATime,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Backup(entry {})", self.manifest.entry)
    }
}

/// A folder removed, with everything in it, when this is dropped (unless kept).
struct Staging {
    path: PathBuf,
    keep: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
            // The staging folder of backups goes too, once it is empty.
            if let Some(parent) = self.path.parent().filter(|parent| parent.ends_with(STAGING_DIR)) {
                let _ = fs::remove_dir(parent);
            }
        }
    }
}

/// Marks a backup in progress on a gateway until dropped.
struct OneAtATime(Arc<AtomicBool>);

impl Drop for OneAtATime {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
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
    /// Takes a backup of this data directory: only the administrator's role identity may
    /// (`role:admin`, not an agent whose directory role is admin), one at a time, and it is
    /// recorded as `backup.take` before anything is copied. The store's state and the
    /// ledger's checkpoint are fixed consistent with one another (see the module's note),
    /// then the store is copied into the data directory's staging folder. Runs on a blocking
    /// thread: it copies the database.
    pub async fn backup(&self, who: &Claims, request: &str) -> Result<Backup, GatewayError> {
        let root = self.root.clone().ok_or_else(|| {
            GatewayError::Conflict(
                "this gateway was not opened from a data directory, so it has nothing to back up".into(),
            )
        })?;
        if who.sub != TokenRole::Admin.identity() || who.role != TokenRole::Admin {
            return Err(GatewayError::WrongRole {
                needed: "admin (the role identity `role:admin`)",
                ledger_index: None,
            });
        }
        if self.store.path().is_none() {
            return Err(GatewayError::Conflict(
                "this deployment's store and ledger are in PostgreSQL: back it up with pg_dump or base backups, and \
                 keep `cordon log export` copies of the ledger beside them (docs/DEPLOY.md §11)"
                    .into(),
            ));
        }
        if self.backing_up.swap(true, Ordering::AcqRel) {
            return Err(GatewayError::Conflict("a backup is being taken already; one at a time".into()));
        }
        let one_at_a_time = OneAtATime(Arc::clone(&self.backing_up));
        let id = crate::service::random_id()?;
        let entry = self.administer(who, "backup.take", &id, None, request).await?;
        let staging_root = root.join(STAGING_DIR);
        create_private_dir(&staging_root)?;
        let staging = Staging { path: staging_root.join(&id), keep: false };
        create_private_dir(&staging.path)?;
        let taken_at_ms = self.clock.now_ms();
        let waited = std::time::Instant::now();
        let (snapshot, store_at_ledger_size, checkpoint) = {
            // No change is between its entry and its store write while this is held.
            let _alone = self.changes.write().await;
            let _logged = HeldFor(std::time::Instant::now(), waited);
            let snapshot = self.store.begin_snapshot()?;
            let durable = self.audit.size();
            (snapshot, durable, self.audit.checkpoint_covering(durable)?)
        };
        let copied = std::time::Instant::now();
        snapshot.copy_to(&staging.path.join(DATABASE_FILE))?;
        tracing::info!(copy_ms = copied.elapsed().as_millis() as u64, "backup: the store is copied");
        let signed = cordon_ledger::SignedCheckpoint::parse_unverified(&checkpoint)
            .map_err(|error| GatewayError::Internal(format!("the ledger's checkpoint: {error}")))?;
        let backup_key = DataKey::generate()?;
        let kek = self.vault.kek();
        let wrapped = kek.wrap(BACKUP_CONTEXT, &backup_key)?;
        let config = Config::load(&root.join(CONFIG_FILE)).map_err(GatewayError::BadRequest)?;
        let sealed_keys = seal_keys(&root, &config, &backup_key)?;
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
                tiles: TileSummary::default(),
            },
            backup_key,
            sealed_keys,
            _one_at_a_time: one_at_a_time,
        })
    }

    /// Held by a change from before its ledger entry until its store write is done: a
    /// backup waits for it, and it waits for a backup to fix the store's state.
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

/// Removes what a backup cut short left in the data directory `root` (its staging folder);
/// called at open, when no backup can be running.
pub(crate) fn sweep_staging(root: &Path) {
    let staging = root.join(STAGING_DIR);
    if staging.exists() {
        match fs::remove_dir_all(&staging) {
            Ok(()) => tracing::info!("removed a backup's staged copy left by a run cut short"),
            Err(error) => tracing::error!(%error, "a backup's staged copy could not be removed"),
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
            "backup: the store's state is fixed and the ledger's checkpoint covers it"
        );
    }
}

/// Whether `name` is a plain relative path within the data directory: no `..`, no absolute
/// path, no hidden parts, only ordinary characters.
fn plain_relative(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name.split('/').all(|part| !part.is_empty() && !part.starts_with('.'))
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"/._-".contains(&byte))
        && name.len() < 100
}

/// The data directory's secrets, each sealed under `key` bound to its name, as one JSON
/// object: every file of `keys/` but key-encryption keys, the ledger's signing key, and the
/// secrets `cordon.toml` names inside the directory (the TLS key, the helpdesk's secret; not
/// the HSM's PIN, which a restore is given).
fn seal_keys(root: &Path, config: &Config, key: &DataKey) -> Result<Vec<u8>, GatewayError> {
    let mut sealed = BTreeMap::new();
    let keys = root.join(KEYS_DIR);
    let mut names = Vec::new();
    for item in fs::read_dir(&keys).map_err(|error| io(&keys, "list", &error))? {
        let item = item.map_err(|error| io(&keys, "list", &error))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if KekHome::of(&name) == KekHome::Hsm || name.starts_with("kek-") || !item.path().is_file() {
            continue;
        }
        names.push(format!("{KEYS_DIR}/{name}"));
    }
    names.push(SIGNING_KEY.to_string());
    for named in config.named_files() {
        if named.kind == FileKind::Secret && named.setting != "[hsm] pin_file" && plain_relative(named.name) {
            names.push(named.name.to_string());
        }
    }
    for name in names {
        let bytes = Zeroizing::new(read(&root.join(&name))?);
        let context = format!("{BACKUP_CONTEXT} {name}");
        sealed.insert(name, base64::engine::general_purpose::STANDARD.encode(key.seal_bytes(&context, &bytes)?));
    }
    serde_json::to_vec_pretty(&sealed).map_err(|error| GatewayError::Internal(error.to_string()))
}

impl Backup {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Writes the archive to `out`: the files, the manifest, then its seal; returns what it
    /// holds. The files are read as they are written: the store's copy (staged), the
    /// configuration and the certificates and policies it names inside the directory, the
    /// ledger's tiles of the copied tree (a partial one the log has since completed is cut
    /// back from the full one).
    pub fn write_to(mut self, out: &mut dyn Write) -> Result<BackupSummary, GatewayError> {
        let mut writer = TarWriter { out, bytes: 0, files: Vec::new(), tiles: TileDigest::new() };
        writer.file_from(DATABASE_FILE, &self.staging.path.join(DATABASE_FILE))?;
        let config_bytes = read(&self.root.join(CONFIG_FILE))?;
        writer.file(CONFIG_FILE, &config_bytes)?;
        let config = Config::load(&self.root.join(CONFIG_FILE)).map_err(GatewayError::BadRequest)?;
        for named in config.named_files() {
            if named.kind == FileKind::Public && plain_relative(named.name) && reserved(named.name).is_none() {
                writer.file(named.name, &read(&self.root.join(named.name))?)?;
            }
        }
        writer
            .file(&format!("{LEDGER_DIR}/{}", cordon_ledger::CHECKPOINT_FILE), self.manifest.checkpoint.as_bytes())?;
        writer.file(VERIFIER_KEY, &read(&self.root.join(VERIFIER_KEY))?)?;
        let mut failed = None;
        let walked = self.ledger.tree_files(self.manifest.ledger_size, |path, bytes| {
            writer.tile(&format!("{LEDGER_DIR}/{}", path.display()), &bytes).map_err(|error| {
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
        self.manifest.tiles = std::mem::replace(&mut writer.tiles, TileDigest::new()).summary();
        let manifest =
            serde_json::to_vec_pretty(&self.manifest).map_err(|error| GatewayError::Internal(error.to_string()))?;
        let seal = self.backup_key.seal_bytes(&seal_context(), &Sha256::digest(&manifest))?;
        let files = self.manifest.files.len() + self.manifest.tiles.count as usize + 2;
        writer.file_unlisted(MANIFEST, &manifest)?;
        writer.file_unlisted(SEAL, &seal)?;
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

fn seal_context() -> String {
    format!("{BACKUP_CONTEXT} {MANIFEST}")
}

/// Why a name is not for an archive's plain files: the directory's keys and the ledger's
/// private files come only sealed (or, for the verifier key, as itself).
fn reserved(name: &str) -> Option<&'static str> {
    if name.starts_with(&format!("{KEYS_DIR}/")) {
        Some("keys come only sealed")
    } else if name.starts_with(&format!("{LEDGER_DIR}/private/")) && name != VERIFIER_KEY {
        Some("the ledger's private files come only sealed")
    } else if name == SEALED_KEYS || name == MANIFEST || name == SEAL {
        Some("it is the archive's own")
    } else {
        None
    }
}

struct TarWriter<'a> {
    out: &'a mut dyn Write,
    bytes: u64,
    files: Vec<ManifestFile>,
    tiles: TileDigest,
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

    /// A ledger tile: written, and counted into the one digest of all tiles.
    fn tile(&mut self, name: &str, bytes: &[u8]) -> Result<(), GatewayError> {
        self.file_unlisted(name, bytes)?;
        self.tiles.add(name, bytes);
        Ok(())
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), GatewayError> {
        self.file_unlisted(name, bytes)?;
        self.files.push(ManifestFile {
            name: name.to_string(),
            size: bytes.len() as u64,
            sha256: cordon_ledger::hex_sha256(bytes),
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

/// How a restore gets the key-encryption key the backup names: never from the backup.
#[derive(Debug, Clone, Default)]
pub struct RestoreKeys {
    /// The KEK's key file, for a backup whose KEK is a file (`kek-…`).
    pub kek_file: Option<PathBuf>,
    /// For a KEK in an HSM (`hsm-…`): the token as the operator names it (the backup's own
    /// `[hsm]` settings are not used to open it: a library a backup names is never loaded).
    pub hsm_module: Option<String>,
    pub hsm_token_label: Option<String>,
    /// The token's PIN file; copied where the backup's configuration names it.
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
/// Everything happens in a hidden folder beside it, removed on any failure: every file is
/// unpacked and checked against the manifest, the manifest's seal is opened with the KEK
/// (so the archive is one cordon made under that key, unaltered), the sealed keys are
/// opened, the ledger is verified against the manifest's checkpoint, the configuration's
/// files are checked, and the directory is opened (detection replayed, alerts and statuses
/// mended from the ledger, the access index rebuilt), the restore recorded as
/// `backup.restore`, and closed. Only then does the folder take the target's name.
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
    // A restore cut short (killed) left its folder, holding keys: it goes now.
    let prefix = format!(".{name}.restoring-");
    if let Ok(items) = fs::read_dir(parent) {
        for item in items.flatten() {
            if item.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_dir_all(item.path());
            }
        }
    }
    let mut staging = Staging { path: parent.join(format!("{prefix}{}", crate::service::random_id()?)), keep: false };
    let manifest = stage(archive, &staging.path, keys)?;
    let data = DataDir::new(&staging.path);
    let config = data.config()?;
    config.check_files(&staging.path).map_err(|problem| {
        GatewayError::BadRequest(format!(
            "the restored directory's cordon.toml names a file it does not have (a file outside the data \
             directory is not in a backup: put it back first): {problem}"
        ))
    })?;
    let gateway = data.open(clock)?;
    let detail = format!(
        "from the backup recorded at {} (ledger {} entries, store at {})",
        manifest.entry, manifest.ledger_size, manifest.store_at_ledger_size
    );
    let recorded = crate::datadir::futures_block_on(gateway.change_entry(
        "cordon",
        "backup.restore",
        &manifest.entry.to_string(),
        Some(detail),
        "restore",
    ));
    let counted = recorded.and_then(|entry| Ok((entry, gateway.store.customer_count()?, gateway.store.agent_count()?)));
    let closed = gateway.close();
    // Closed before the folder takes the target's name: its store syncs files by their paths.
    drop(gateway);
    let (entry, customers, agents) = counted?;
    closed?;
    if target.exists() {
        fs::remove_dir(target).map_err(|error| io(target, "replace", &error))?;
    }
    fs::rename(&staging.path, target).map_err(|error| io(target, "create", &error))?;
    staging.keep = true;
    // The ledger was verified against the backup's checkpoint before it was opened; what it
    // holds now is that and the restore's own entry, as its closing checkpoint says.
    let summary = cordon_ledger::LogReader::new(&target.join(LEDGER_DIR))
        .checkpoint()
        .map_err(|error| GatewayError::Internal(format!("the restored ledger's checkpoint: {error}")))?
        .checkpoint;
    Ok(Restored {
        customers,
        agents,
        ledger_size: summary.size,
        ledger_root: summary.root.to_hex(),
        entries_after_store: manifest.ledger_size.saturating_sub(manifest.store_at_ledger_size),
        entry,
        manifest,
    })
}

/// What `walk` read besides the files it handed on.
struct Walked {
    manifest: Vec<u8>,
    seal: Vec<u8>,
    sealed_keys: Vec<u8>,
    files: Vec<ManifestFile>,
    tiles: TileSummary,
}

/// Reads the archive `archive` from start to end, exactly as `Backup::write_to` writes it:
/// every header rebuilt and compared, padding zeros, the manifest then its seal last, and
/// nothing after the end. `each` gets every file but the manifest, the seal and the sealed
/// keys, and must read all of it. Nothing read is trusted yet: the caller checks the seal.
fn walk(
    archive: &Path,
    mut each: impl FnMut(&str, u64, &mut dyn Read) -> Result<(), GatewayError>,
) -> Result<Walked, GatewayError> {
    let bad = |why: String| not_a_backup(archive, why);
    let mut input = std::io::BufReader::with_capacity(
        1 << 20,
        fs::File::open(archive).map_err(|error| io(archive, "open", &error))?,
    );
    let mut files: Vec<ManifestFile> = Vec::new();
    let mut tiles = TileDigest::new();
    let mut small: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
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
        if small.contains_key(SEAL) {
            return Err(bad(format!("a file follows `{SEAL}`, which must be last")));
        }
        let (name, size) = parse_header(&header).map_err(bad)?;
        if tar_header(&name, size) != header {
            return Err(bad(format!("the header of `{name}` is not one cordon writes")));
        }
        let padding = (TAR_BLOCK - (size % TAR_BLOCK as u64) as usize) % TAR_BLOCK;
        let own = [MANIFEST, SEAL, SEALED_KEYS].into_iter().find(|own| *own == name);
        if let Some(own) = own {
            if size > SMALL_FILE_MAX || small.contains_key(own) {
                return Err(bad(format!("`{name}` is {size} bytes, or there twice")));
            }
            if (own == SEAL) != small.contains_key(MANIFEST) {
                return Err(bad(format!("`{MANIFEST}` and `{SEAL}` must be its last two files")));
            }
            let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)];
            input.read_exact(&mut bytes).map_err(|_| bad(format!("`{name}` is cut short")))?;
            if own == SEALED_KEYS {
                files.push(ManifestFile { name: name.clone(), size, sha256: cordon_ledger::hex_sha256(&bytes) });
            }
            small.insert(own, bytes);
        } else {
            if small.contains_key(MANIFEST) {
                return Err(bad(format!("`{name}` follows `{MANIFEST}`")));
            }
            let mut hashing = Hashing { inner: (&mut input).take(size), hasher: Sha256::new() };
            each(&name, size, &mut hashing)?;
            if hashing.inner.limit() != 0 {
                return Err(bad(format!("`{name}` is cut short")));
            }
            let sha256 = hashing.hasher.finalize();
            if name.starts_with(TILES) {
                tiles.add_header(&name, size);
                tiles.hasher.update(sha256);
            } else {
                files.push(ManifestFile { name, size, sha256: hex(&sha256) });
            }
        }
        let mut zeros = vec![0u8; padding];
        input.read_exact(&mut zeros).map_err(|_| bad("it is cut short".into()))?;
        if zeros.iter().any(|byte| *byte != 0) {
            return Err(bad("a file's padding is not zeros".into()));
        }
    }
    let mut take = |own: &'static str| small.remove(own).ok_or_else(|| bad(format!("it has no `{own}`")));
    Ok(Walked {
        manifest: take(MANIFEST)?,
        seal: take(SEAL)?,
        sealed_keys: take(SEALED_KEYS)?,
        files,
        tiles: tiles.summary(),
    })
}

fn not_a_backup(archive: &Path, why: String) -> GatewayError {
    GatewayError::BadRequest(format!("`{}` is not a cordon backup: {why}", archive.display()))
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

/// The manifest `walked` carries, once its files are those it lists.
fn listed(archive: &Path, walked: &Walked) -> Result<Manifest, GatewayError> {
    let bad = |why: String| not_a_backup(archive, why);
    let manifest: Manifest =
        serde_json::from_slice(&walked.manifest).map_err(|error| bad(format!("its manifest: {error}")))?;
    if manifest.format != BACKUP_FORMAT {
        return Err(bad(format!("its format is `{}`, and this cordon reads `{BACKUP_FORMAT}`", manifest.format)));
    }
    if manifest.files != walked.files {
        let differs = manifest
            .files
            .iter()
            .zip(walked.files.iter())
            .find(|(listed, found)| listed != found)
            .map(|(listed, _)| listed.name.clone())
            .unwrap_or_else(|| "the list of files".into());
        return Err(bad(format!("`{differs}` is not what its manifest lists (altered, cut or added to)")));
    }
    if manifest.tiles != walked.tiles {
        return Err(bad("its ledger tiles are not those its manifest lists (altered, cut or added to)".into()));
    }
    for required in [DATABASE_FILE, CONFIG_FILE, VERIFIER_KEY] {
        if !walked.files.iter().any(|file| file.name == required) {
            return Err(bad(format!("it has no `{required}`")));
        }
    }
    let plain_id = |prefix: &str| {
        manifest.kek.strip_prefix(prefix).is_some_and(|rest| {
            !rest.is_empty() && rest.len() <= 32 && rest.bytes().all(|byte| byte.is_ascii_alphanumeric())
        })
    };
    if !plain_id("kek-") && !plain_id(cordon_vault::HSM_KEK_PREFIX) {
        return Err(bad(format!("its key-encryption key is named `{}`, not as cordon names one", manifest.kek)));
    }
    Ok(manifest)
}

/// Checks the archive `archive` whole, as a restore would read it, without a key: its
/// structure, every file against the manifest. (Whether cordon made it under the KEK only a
/// restore can tell: the seal needs the KEK.) Returns the manifest.
pub fn check_backup(archive: &Path) -> Result<Manifest, GatewayError> {
    let walked = walk(archive, |name, _, file| {
        file_path(name).map_err(|why| not_a_backup(archive, why))?;
        std::io::copy(file, &mut std::io::sink()).map_err(|error| io(archive, "read", &error))?;
        Ok(())
    })?;
    listed(archive, &walked)
}

/// Where an archived plain file goes in the data directory, if an archive may hold it.
fn file_path(name: &str) -> Result<PathBuf, String> {
    if !plain_relative(name) {
        return Err(format!("it holds `{name}`, which a backup never does"));
    }
    if let Some(why) = reserved(name) {
        return Err(format!("it holds `{name}` in the clear ({why})"));
    }
    Ok(PathBuf::from(name))
}

/// Unpacks and checks the archive into `staging`; returns its manifest.
fn stage(archive: &Path, staging: &Path, keys: &RestoreKeys) -> Result<Manifest, GatewayError> {
    let bad = |why: String| not_a_backup(archive, why);
    create_private_dir(staging)?;
    let walked = walk(archive, |name, _, file| {
        let path = staging.join(file_path(name).map_err(bad)?);
        if let Some(folder) = path.parent() {
            create_private_dir(folder)?;
        }
        copy_out(file, &path).map_err(|why| bad(format!("`{name}`: {why}")))
    })?;
    let manifest = listed(archive, &walked)?;
    // The KEK, as the operator gives it: never from the archive.
    let kek = match KekHome::of(&manifest.kek) {
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
            kek::load(staging, &HsmSettings::default(), &manifest.kek)?
        }
        KekHome::Hsm => {
            let (Some(module), Some(token_label), Some(pin_file)) =
                (keys.hsm_module.as_deref(), keys.hsm_token_label.as_deref(), keys.hsm_pin_file.as_deref())
            else {
                return Err(GatewayError::BadRequest(format!(
                    "the backup's data keys are wrapped by `{}` in an HSM: give the token with --hsm-module, \
                     --hsm-token-label and --hsm-pin-file",
                    manifest.kek
                )));
            };
            let pin = fs::canonicalize(pin_file).map_err(|error| io(pin_file, "find", &error))?;
            let settings = HsmSettings {
                module: module.to_string(),
                token_label: token_label.to_string(),
                pin_file: pin.to_string_lossy().into_owned(),
            };
            kek::load(staging, &settings, &manifest.kek)?
        }
    };
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
    let sealed_digest = backup_key
        .open_bytes(&seal_context(), &walked.seal)
        .map_err(|_| bad("its manifest's seal does not open: it was not made under this key, or was altered".into()))?;
    if sealed_digest.as_slice() != Sha256::digest(&walked.manifest).as_slice() {
        return Err(bad("its manifest is not the one its seal covers".into()));
    }
    // From here on the archive is one cordon made under this KEK, every byte as it was.
    let config = Config::load(&staging.join(CONFIG_FILE)).map_err(GatewayError::BadRequest)?;
    if KekHome::of(&manifest.kek) == KekHome::Hsm
        && let Some(pin_file) = keys.hsm_pin_file.as_deref()
    {
        let name = config.hsm.pin_file.as_str();
        if config.hsm.module != keys.hsm_module.as_deref().unwrap_or_default()
            || config.hsm.token_label != keys.hsm_token_label.as_deref().unwrap_or_default()
        {
            return Err(GatewayError::BadRequest(format!(
                "the backup's [hsm] names module `{}` and token `{}`, not those given",
                config.hsm.module, config.hsm.token_label
            )));
        }
        if plain_relative(name) {
            let pin = Zeroizing::new(fs::read(pin_file).map_err(|error| io(pin_file, "read", &error))?);
            let to = staging.join(name);
            if let Some(folder) = to.parent() {
                create_private_dir(folder)?;
            }
            write_private_file(&to, &pin)?;
        }
    }
    let sealed: BTreeMap<String, String> =
        serde_json::from_slice(&walked.sealed_keys).map_err(|error| bad(format!("its sealed keys: {error}")))?;
    if !sealed.contains_key(SIGNING_KEY) {
        return Err(bad("its sealed keys lack the ledger's signing key".into()));
    }
    for (name, value) in &sealed {
        if !plain_relative(name) || name.starts_with(&format!("{KEYS_DIR}/kek-")) {
            return Err(bad(format!("its sealed keys name `{name}`")));
        }
        let value = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|error| bad(format!("the sealed key `{name}`: {error}")))?;
        let key = backup_key
            .open_bytes(&format!("{BACKUP_CONTEXT} {name}"), &value)
            .map_err(|_| bad(format!("the sealed key `{name}` does not open (altered, or moved from another name)")))?;
        let path = staging.join(name);
        if let Some(folder) = path.parent() {
            create_private_dir(folder)?;
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
