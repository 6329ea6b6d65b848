//! The `file_storage` extension: where durable queues live and how hard they sync. The
//! Collector's extension of the same name has `directory`; Watchtower's `fsync` is a mode
//! rather than a boolean because group commit is what makes fsync affordable.

use crate::config::common::{ByteSize, Dur};
use serde::Deserialize;

/// When appended records are flushed to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// The receiver's answer waits for the fsync covering its record; concurrent requests
    /// share one fsync. Survives kill -9 and power loss.
    #[default]
    Group,
    /// Written before the answer, fsynced every `fsync_interval`. Survives kill -9; a power
    /// loss can lose up to one interval.
    Interval,
    /// Written before the answer, never fsynced by Watchtower. Survives kill -9 only.
    Never,
}

/// `extensions: { file_storage[/name]: {...} }`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FileStorageConfig {
    /// Each exporter using this extension gets its own subdirectory here.
    pub directory: String,
    /// When writes reach the disk (see [`FsyncMode`]); default `group`.
    pub fsync: FsyncMode,
    /// Flush period of `fsync: interval`; also how often ack files are flushed.
    pub fsync_interval: Dur,
    /// Size at which a segment file is closed and a new one started.
    pub segment_size: ByteSize,
    /// Create `directory` when it does not exist.
    pub create_directory: bool,
}

impl Default for FileStorageConfig {
    fn default() -> Self {
        FileStorageConfig {
            directory: "/var/lib/watchtower".into(),
            fsync: FsyncMode::Group,
            fsync_interval: Dur::secs(1),
            segment_size: ByteSize(32 << 20),
            create_directory: true,
        }
    }
}

impl FileStorageConfig {
    /// Checks what serde cannot: a directory is set, segments are at least 4 KiB, an `interval`
    /// mode has a positive period.
    ///
    /// # Errors
    /// A message naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.directory.trim().is_empty() {
            return Err("directory must not be empty".into());
        }
        if self.segment_size.0 < 4096 {
            return Err("segment_size must be at least 4KiB".into());
        }
        if self.fsync == FsyncMode::Interval && self.fsync_interval.0.is_zero() {
            return Err("fsync_interval must be positive with fsync: interval".into());
        }
        Ok(())
    }
}
