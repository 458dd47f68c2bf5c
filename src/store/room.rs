//! The room the outbox may take on the state directory's filesystem.
//!
//! The cap in force is the setting, or less when the filesystem has less: the file plus what
//! is free, less a margin. Read every few seconds, it makes the oldest results go before the
//! disk is full. When the disk fills at once anyway (another program, a big log), a commit
//! fails: the reserve, a file of [`RESERVE`] bytes kept beside the database, is released so
//! that SQLite can checkpoint its WAL and drop old results, and the box keeps committing
//! state changes. The reserve is written again once the filesystem has room for it and more.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(super) const RESERVE: u64 = 4 << 20;
/// Kept free for the WAL and the rest of the box.
const MARGIN: u64 = 1 << 20;
/// Below this much free space the WAL is checkpointed more often, to stay short.
const TIGHT: u64 = 4 * MARGIN;
const EVERY: Duration = Duration::from_secs(5);

pub(super) struct Room {
    dir: PathBuf,
    reserve: PathBuf,
    max_bytes: u64,
    read_at: Option<Instant>,
    /// The cap in force.
    pub cap: u64,
    /// Free bytes on the filesystem at the last reading.
    pub free: u64,
    /// The reserve was released and not written again yet.
    released: bool,
}

impl Room {
    pub fn new(dir: &Path, max_bytes: u64) -> Room {
        Room {
            dir: dir.to_path_buf(),
            reserve: dir.join("snbox.reserve"),
            max_bytes,
            read_at: None,
            cap: max_bytes,
            free: u64::MAX,
            released: false,
        }
    }

    /// Reads the free space (at most every [`EVERY`] unless `now`) and sets the cap for the
    /// database file, whose size `file_bytes` gives; writes the reserve back when there is
    /// room for it. Returns false when it was not time to read.
    pub fn read(&mut self, file_bytes: impl FnOnce() -> u64, now: bool) -> bool {
        if !now && self.read_at.is_some_and(|at| at.elapsed() < EVERY) {
            return false;
        }
        self.read_at = Some(Instant::now());
        let file_bytes = file_bytes();
        let Ok(fs) = rustix::fs::statvfs(&self.dir) else {
            return true;
        };
        self.free = fs.f_bavail.saturating_mul(fs.f_frsize);
        if self.free >= 3 * RESERVE && !self.reserve.exists() {
            match write_reserve(&self.reserve) {
                Ok(()) => {
                    self.free -= RESERVE;
                    if self.released {
                        tracing::info!("the disk has room again: the reserve is written back");
                    }
                    self.released = false;
                }
                Err(e) => tracing::warn!(path = %self.reserve.display(), error = %e, "cannot write the reserve"),
            }
        }
        self.cap = self.max_bytes.min(file_bytes + self.free.saturating_sub(MARGIN));
        if self.released {
            // The room the reserve left is for the WAL and the rest of the box: the outbox
            // stops growing and recycles its own pages until the reserve is back.
            self.cap = self.cap.min(file_bytes);
        }
        true
    }

    /// Deletes the reserve, if there is one: the room a commit needs when the disk is full.
    pub fn release(&mut self) {
        if std::fs::remove_file(&self.reserve).is_ok() {
            self.released = true;
            tracing::warn!(
                bytes = RESERVE,
                "the disk is full: the reserve is released so that commits go on; the oldest results are dropped"
            );
        }
    }

    /// What the outbox is kept under: the cap, with a tenth of it left free inside the file
    /// when the filesystem is what limits it, so that new records reuse the pages of old ones.
    pub fn limit(&self) -> u64 {
        if self.cap < self.max_bytes {
            self.cap - self.cap / 10
        } else {
            self.cap
        }
    }

    pub fn tight(&self) -> bool {
        self.free < TIGHT
    }

    /// The filesystem, not the setting, limits the outbox, and it is at that limit.
    pub fn disk_full(&self) -> bool {
        self.released || (self.cap < self.max_bytes && self.tight())
    }
}

fn write_reserve(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    // Real blocks, not a sparse file: on release they must come back as free space.
    let mut file = std::fs::File::create(path)?;
    let block = vec![0u8; 1 << 20];
    for _ in 0..RESERVE / block.len() as u64 {
        file.write_all(&block)?;
    }
    file.sync_all()
}
