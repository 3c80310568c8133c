//! Container logs in the CRI format the kubelet reads (and `kubectl logs`
//! shows): one line per record,
//! `<RFC 3339 time with nanoseconds> <stdout|stderr> <F|P> <text>`, where `P`
//! marks a partial line continued by the next record of the same stream.
//!
//! The writer rotates by size like the kubelet's container log manager: the
//! full file is renamed `<log>.<UTC timestamp>` and only the newest
//! `max_files - 1` rotated files are kept.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Which stream a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// Records longer than this are split into partial (`P`) records, as the
/// kubelet's 16 KiB buffer does.
const MAX_RECORD: usize = 16 * 1024;

/// Size and count limits of a container's log files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate when the file grows past this many bytes (kubelet: `containerLogMaxSize`, 10Mi).
    pub max_size: u64,
    /// Files kept, the live one included (kubelet: `containerLogMaxFiles`, 5).
    pub max_files: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_size: 10 << 20,
            max_files: 5,
        }
    }
}

/// Appends a container's output to its CRI log file.
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
    // Bytes of a line not yet ended, per stream.
    pending: [Vec<u8>; 2],
}

impl Writer {
    /// Opens (creating or appending to) the log at `path`.
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Records `data` read from `stream`: complete lines become `F` records,
    /// an unfinished line waits for more (or becomes `P` records when long).
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let slot = stream as usize;
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.pending[slot]);
            line.extend_from_slice(&rest[..end]);
            self.record(stream, &line, true)?;
            rest = &rest[end + 1..];
        }
        self.pending[slot].extend_from_slice(rest);
        while self.pending[slot].len() >= MAX_RECORD {
            let chunk: Vec<u8> = self.pending[slot].drain(..MAX_RECORD).collect();
            self.record(stream, &chunk, false)?;
        }
        Ok(())
    }

    /// Writes out unfinished lines (the process ended without a final newline).
    pub fn flush_partial(&mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let line = std::mem::take(&mut self.pending[stream as usize]);
            if !line.is_empty() {
                self.record(stream, &line, true)?;
            }
        }
        Ok(())
    }

    fn record(&mut self, stream: Stream, text: &[u8], full: bool) -> io::Result<()> {
        let mut line = Vec::with_capacity(text.len() + 48);
        line.extend_from_slice(timestamp(SystemTime::now()).as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.tag().as_bytes());
        line.extend_from_slice(if full { b" F " } else { b" P " });
        line.extend_from_slice(text);
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.rotation.max_size {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let stamp = rotated_suffix(SystemTime::now());
        let mut target = PathBuf::from(format!("{}.{stamp}", self.path.display()));
        // Two rotations in one second: keep both.
        let mut n = 1;
        while target.exists() {
            target = PathBuf::from(format!("{}.{stamp}.{n}", self.path.display()));
            n += 1;
        }
        fs::rename(&self.path, &target)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        let mut old = rotated_files(&self.path);
        let keep = self.rotation.max_files.saturating_sub(1);
        while old.len() > keep {
            let oldest = old.remove(0);
            let _ = fs::remove_file(oldest);
        }
        Ok(())
    }
}

/// The rotated files of the log at `path`, oldest first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut files: Vec<(SystemTime, PathBuf)> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// RFC 3339 in UTC with nanoseconds, as CRI log lines and Kubernetes
/// timestamps with `timestamps=true` spell it.
pub fn timestamp(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let (y, mo, d, h, mi, s) = civil(since.as_secs());
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:09}Z",
        since.subsec_nanos()
    )
}

/// `20240101-120000`, the suffix of a rotated file.
fn rotated_suffix(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// Seconds since the epoch as a UTC calendar date and time of day.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect()
    }

    #[test]
    fn timestamps_are_rfc3339_with_nanoseconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(
            timestamp(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000000Z"
        );
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert!(timestamp(leap).starts_with("2000-02-29T00:00:00"));
    }

    #[test]
    fn lines_are_split_per_stream_and_partials_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = Writer::open(&path, Rotation::default()).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"lo\nworld\nta").unwrap();
        w.flush_partial().unwrap();
        assert_eq!(
            lines(&path),
            [
                "stderr F oops",
                "stdout F hello",
                "stdout F world",
                "stdout F ta"
            ]
        );
    }

    #[test]
    fn long_lines_become_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = Writer::open(&path, Rotation::default()).unwrap();
        let long = vec![b'x'; MAX_RECORD + 10];
        w.write(Stream::Stdout, &long).unwrap();
        w.write(Stream::Stdout, b"\n").unwrap();
        let got = lines(&path);
        assert_eq!(got.len(), 2);
        assert!(got[0].starts_with("stdout P xxx"));
        assert_eq!(got[1], format!("stdout F {}", "x".repeat(10)));
    }

    #[test]
    fn full_files_rotate_and_old_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = Rotation {
            max_size: 200,
            max_files: 3,
        };
        let mut w = Writer::open(&path, rotation).unwrap();
        for i in 0..40 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let rotated = rotated_files(&path);
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        assert!(fs::metadata(&path).unwrap().len() <= 200);
        assert!(lines(&path).last().unwrap().ends_with("line 39"));
    }
}
