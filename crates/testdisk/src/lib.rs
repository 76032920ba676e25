//! A small real disk for fault tests. Writes to it fail the way they fail in production:
//! `ENOSPC` once it is full, `EROFS` once it is remounted read-only, from the kernel, not
//! from a mock. It is a tmpfs mounted on a fresh temporary folder, so a test needs root
//! (the test command runs as root; elsewhere [`SmallDisk::new`] says why it cannot).
//! Dropping it unmounts it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file that takes up the space.
const FILLER: &str = ".filler";

pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` (rounded up to pages) on a new temporary folder.
    pub fn new(bytes: u64) -> io::Result<SmallDisk> {
        let dir = tempfile::tempdir()?;
        mount(&["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700"), "tmpfs"], dir.path())?;
        Ok(SmallDisk { dir })
    }

    /// The mounted folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk until a write fails with `ENOSPC`; how many bytes that took.
    pub fn fill(&self) -> io::Result<u64> {
        let mut file = OpenOptions::new().create(true).append(true).open(self.filler())?;
        let chunk = vec![0u8; 4096];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => return Ok(written),
                Ok(count) => written += count as u64,
                Err(error) if error.raw_os_error() == Some(28) => return Ok(written),
                Err(error) => return Err(error),
            }
        }
    }

    /// Frees `bytes` of what [`SmallDisk::fill`] took (all of it if it took less).
    pub fn free(&self, bytes: u64) -> io::Result<()> {
        let file = File::options().write(true).open(self.filler())?;
        let length = file.metadata()?.len();
        file.set_len(length.saturating_sub(bytes))
    }

    /// Frees everything [`SmallDisk::fill`] took.
    pub fn free_all(&self) -> io::Result<()> {
        match fs::remove_file(self.filler()) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Remounts the disk read-only: every write, sync of a written file and new file fails
    /// with `EROFS`.
    pub fn remount_read_only(&self) -> io::Result<()> {
        mount(&["-o", "remount,ro"], self.path())
    }

    /// Remounts it writable again.
    pub fn remount_writable(&self) -> io::Result<()> {
        mount(&["-o", "remount,rw"], self.path())
    }

    fn filler(&self) -> PathBuf {
        self.path().join(FILLER)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily, so a file a leaked thread still holds open does not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn mount(options: &[&str], target: &Path) -> io::Result<()> {
    let output = Command::new("mount").args(options).arg(target).output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "`mount {} {}` failed (fault tests mount a small tmpfs and need root): {}",
        options.join(" "),
        target.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}
