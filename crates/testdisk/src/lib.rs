//! A small real disk for fault tests. Writes to it fail the way they fail in production,
//! from the kernel, not from a mock: `ENOSPC` once it is full ([`SmallDisk`], a tmpfs), and
//! `EIO` on every read and write once its device fails ([`FailingDevice`], ext4 on a loop
//! device, shut down the way filesystem test suites simulate a dead disk). Mounting needs
//! root (the test command runs as root; elsewhere the constructors say why they cannot).
//! Dropping one unmounts it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file that takes up the space.
const FILLER: &str = ".filler";

#[derive(Debug)]
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

/// An ext4 filesystem on a loop device (its image a sparse file on a tmpfs of its own),
/// whose device can be made to fail: after [`FailingDevice::fail`], every write, sync and
/// read on it answers `EIO`, as on a disk that died; [`FailingDevice::replace`] mounts the
/// device afresh, as an operator's remount after a repair does, and what was synced before
/// the failure is there.
#[derive(Debug)]
pub struct FailingDevice {
    /// The tmpfs holding the image; kept only to be unmounted last.
    _backing: SmallDisk,
    device: String,
    mounted: tempfile::TempDir,
}

impl FailingDevice {
    pub fn new(bytes: u64) -> io::Result<FailingDevice> {
        let backing = SmallDisk::new(bytes + (1 << 20))?;
        let image = backing.path().join("device.img");
        File::create(&image)?.set_len(bytes)?;
        run("mkfs.ext4", &["-q", "-F", &image.to_string_lossy()])?;
        let device = run("losetup", &["--find", "--show", &image.to_string_lossy()])?;
        let mounted = tempfile::tempdir()?;
        let failing = FailingDevice { _backing: backing, device, mounted };
        mount(&[&failing.device], failing.path())?;
        Ok(failing)
    }

    pub fn path(&self) -> &Path {
        self.mounted.path()
    }

    /// The device fails: `EXT4_IOC_SHUTDOWN` without flushing the journal (what was
    /// synced is on the device; nothing else will be), through Python's `fcntl`, since
    /// cordon's code has no `unsafe` to make an ioctl with.
    pub fn fail(&self) -> io::Result<()> {
        let script = "import fcntl, os, struct, sys\n\
                      fd = os.open(sys.argv[1], os.O_RDONLY)\n\
                      fcntl.ioctl(fd, 0x8004587D, struct.pack('I', 2))";
        run("python3", &["-c", script, &self.path().to_string_lossy()]).map(drop)
    }

    /// Mounts the device afresh at the same folder (the journal is replayed).
    pub fn replace(&self) -> io::Result<()> {
        run("umount", &["-l", &self.path().to_string_lossy()])?;
        mount(&[&self.device], self.path())
    }
}

impl Drop for FailingDevice {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.mounted.path()).status();
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

fn mount(options: &[&str], target: &Path) -> io::Result<()> {
    let mut arguments: Vec<String> = options.iter().map(|option| option.to_string()).collect();
    arguments.push(target.to_string_lossy().into_owned());
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    run("mount", &arguments).map(drop)
}

/// Runs a system command; its trimmed standard output, or an error naming it and what it
/// said.
fn run(program: &str, arguments: &[&str]) -> io::Result<String> {
    let output = Command::new(program).args(arguments).output().map_err(|error| {
        io::Error::other(format!("cannot run `{program}` (fault tests need it, and root): {error}"))
    })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_string());
    }
    Err(io::Error::other(format!(
        "`{program} {}` failed (fault tests mount small disks and need root): {}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}
