//! `/containerLogs/{namespace}/{pod}/{container}`: a container's CRI log
//! file(s) turned into what `kubectl logs` shows, with the kubelet's options:
//! `tailLines` (records from the end), `sinceSeconds`/`sinceTime` (records at
//! or after), `timestamps` (each record prefixed with its RFC 3339 time, as
//! Go's `RFC3339Nano` prints it), `limitBytes` (output cut at that size) and
//! `follow` (keep reading as the file grows, across rotations, until the
//! container exits).

use super::{LogSource, query::Query};
use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a followed log is polled for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The options of a log request (the kubelet's query parameters).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOptions {
    /// Keep streaming until the container exits.
    pub follow: bool,
    /// The previous instance's log.
    pub previous: bool,
    /// Only the last N records.
    pub tail_lines: Option<u64>,
    /// Only records at or after this time.
    pub since: Option<Timestamp>,
    /// Prefix each record with its time.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// Reads the options from a query; the message names the bad parameter.
    pub fn parse(query: &Query) -> Result<Self, String> {
        let number = |key: &str| -> Result<Option<i64>, String> {
            query
                .get(key)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("invalid value {v:?} for {key}"))
                })
                .transpose()
        };
        let tail_lines = number("tailLines")?;
        let limit_bytes = number("limitBytes")?;
        let since_seconds = number("sinceSeconds")?;
        if limit_bytes.is_some_and(|n| n < 1) {
            return Err("limitBytes: must be greater than 0".into());
        }
        if since_seconds.is_some_and(|n| n < 1) {
            return Err("sinceSeconds: must be greater than 0".into());
        }
        let mut since = match query.get("sinceTime").filter(|v| !v.is_empty()) {
            Some(text) => Some(
                text.parse::<Timestamp>()
                    .map_err(|_| format!("invalid value {text:?} for sinceTime"))?,
            ),
            None => None,
        };
        if let Some(seconds) = since_seconds {
            let at = Timestamp::now()
                .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
                .ok();
            since = since.max(at);
        }
        Ok(Self {
            follow: query.flag("follow"),
            previous: query.flag("previous"),
            tail_lines: tail_lines.map(|n| n.max(0).unsigned_abs()),
            since,
            timestamps: query.flag("timestamps"),
            limit_bytes: limit_bytes.map(i64::unsigned_abs),
        })
    }
}

/// One CRI log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The time as written (`2024-01-01T12:00:00.123456789Z`).
    pub time: &'a str,
    /// The text, without the newline.
    pub text: &'a [u8],
    /// A full line (`F`), not a partial one (`P`).
    pub full: bool,
}

/// Parses one CRI record line (without its newline); `None` for garbage.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or(b"");
    Some(Record {
        time,
        text,
        full: tag != b"P",
    })
}

/// A CRI time as Go's `RFC3339Nano` writes it: trailing zeros of the
/// fraction (and a bare dot) dropped, as the kubelet re-formats times.
pub fn go_rfc3339_nano(time: &str) -> String {
    let Some(body) = time.strip_suffix('Z') else {
        return time.to_string();
    };
    match body.split_once('.') {
        Some((secs, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                format!("{secs}Z")
            } else {
                format!("{secs}.{fraction}Z")
            }
        }
        None => time.to_string(),
    }
}

/// Turns records into output, applying `since`, `timestamps` and the byte limit.
struct Renderer {
    since: Option<Timestamp>,
    timestamps: bool,
    remaining: Option<u64>,
}

impl Renderer {
    fn new(options: &LogOptions) -> Self {
        Self {
            since: options.since,
            timestamps: options.timestamps,
            remaining: options.limit_bytes,
        }
    }

    /// Appends the output of `line` to `out`; `false` once the limit is reached.
    fn render(&mut self, line: &[u8], out: &mut Vec<u8>) -> bool {
        if self.remaining == Some(0) {
            return false;
        }
        let Some(record) = parse_record(line) else {
            return true;
        };
        if let Some(since) = self.since {
            match record.time.parse::<Timestamp>() {
                Ok(at) if at < since => return true,
                _ => {}
            }
        }
        let start = out.len();
        if self.timestamps {
            out.extend_from_slice(go_rfc3339_nano(record.time).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(record.text);
        if record.full {
            out.push(b'\n');
        }
        if let Some(remaining) = &mut self.remaining {
            let written = (out.len() - start) as u64;
            if written >= *remaining {
                out.truncate(start + usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining = 0;
                return false;
            }
            *remaining -= written;
        }
        true
    }
}

/// The complete lines in `data`, without newlines; the unfinished tail stays out.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let end = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    data[..end]
        .split(|b| *b == b'\n')
        .take(data[..end].iter().filter(|b| **b == b'\n').count())
}

/// What was already written: everything the files hold now, filtered.
/// Returns the output and, for following, the live file's offset after the
/// last complete line.
fn snapshot(
    rotated: &[PathBuf],
    path: &Path,
    tail_lines: Option<u64>,
    renderer: &mut Renderer,
) -> io::Result<(Vec<u8>, u64)> {
    let mut contents = Vec::new();
    for file in rotated {
        // A rotated file may vanish under us (pruned); skip it then.
        if let Ok(data) = std::fs::read(file) {
            contents.push(data);
        }
    }
    let live = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let live_complete = live.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) as u64;
    contents.push(live);
    let all: Vec<&[u8]> = contents.iter().flat_map(|c| lines(c)).collect();
    let skip = match tail_lines {
        Some(n) => all
            .len()
            .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
        None => 0,
    };
    let mut out = Vec::new();
    for line in &all[skip..] {
        if !renderer.render(line, &mut out) {
            break;
        }
    }
    Ok((out, live_complete))
}

/// Streams the log of `source` into `tx` as `options` ask; ends when the
/// receiver goes, the limit is reached, or (with `follow`) the container exits.
pub async fn stream(source: LogSource, options: LogOptions, tx: mpsc::Sender<io::Result<Bytes>>) {
    let LogSource {
        path,
        rotated,
        mut running,
    } = source;
    let mut renderer = Renderer::new(&options);
    let (first, offset, mut renderer) = {
        let (path, tail) = (path.clone(), options.tail_lines);
        let snap = tokio::task::spawn_blocking(move || {
            snapshot(&rotated, &path, tail, &mut renderer).map(|(o, off)| (o, off, renderer))
        });
        match snap.await {
            Ok(Ok(done)) => done,
            Ok(Err(error)) => {
                let _ = tx.send(Err(error)).await;
                return;
            }
            Err(error) => {
                let _ = tx.send(Err(io::Error::other(error))).await;
                return;
            }
        }
    };
    if !first.is_empty() && tx.send(Ok(Bytes::from(first))).await.is_err() {
        return;
    }
    if !options.follow || renderer.remaining == Some(0) {
        return;
    }
    let mut follower = Follower::new(path, offset);
    loop {
        let exited = !*running.borrow_and_update();
        let (out, more) = match follower.read_new(&mut renderer) {
            Ok(read) => read,
            Err(error) => {
                let _ = tx.send(Err(error)).await;
                return;
            }
        };
        if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
            return;
        }
        if !more || exited {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_POLL) => {}
            changed = running.changed() => {
                if changed.is_err() {
                    // The sender went: the container is gone; read what is left.
                    let (out, _) = follower.read_new(&mut renderer).unwrap_or_default();
                    if !out.is_empty() {
                        let _ = tx.send(Ok(Bytes::from(out))).await;
                    }
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
}

/// Reads a growing log file from an offset, reopening it after rotation.
struct Follower {
    path: PathBuf,
    file: Option<std::fs::File>,
    inode: u64,
    offset: u64,
    pending: Vec<u8>,
}

impl Follower {
    fn new(path: PathBuf, offset: u64) -> Self {
        let file = std::fs::File::open(&path).ok();
        let inode = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.ino());
        Self {
            path,
            file,
            inode,
            offset,
            pending: Vec::new(),
        }
    }

    /// New complete records rendered; `false` once the limit is reached.
    fn read_new(&mut self, renderer: &mut Renderer) -> io::Result<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut open = true;
        loop {
            let mut data = std::mem::take(&mut self.pending);
            if let Some(file) = &mut self.file {
                file.seek(SeekFrom::Start(self.offset))?;
                let read = file.read_to_end(&mut data)?;
                self.offset += read as u64;
            }
            let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            for line in lines(&data[..complete]) {
                if !renderer.render(line, &mut out) {
                    open = false;
                    break;
                }
            }
            self.pending = data[complete..].to_vec();
            if !open {
                return Ok((out, false));
            }
            // Rotated: the path names a new file; finish the old one (done
            // above), then continue with the new one from its start.
            let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
            match current {
                Some(inode) if inode != self.inode => {
                    self.file = std::fs::File::open(&self.path).ok();
                    self.inode = inode;
                    self.offset = 0;
                    self.pending.clear();
                }
                _ => return Ok((out, true)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> LogOptions {
        LogOptions::default()
    }

    fn write_log(dir: &Path, lines: &[&str]) -> PathBuf {
        let path = dir.join("0.log");
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        path
    }

    const LOG: &[&str] = &[
        "2024-01-01T12:00:00.100000000Z stdout F one",
        "2024-01-01T12:00:01.000000000Z stderr F two",
        "2024-01-01T12:00:02.123456789Z stdout P thr",
        "2024-01-01T12:00:02.200000000Z stdout F ee",
    ];

    fn check(options: &LogOptions, expected: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), LOG);
        let (out, _) =
            snapshot(&[], &path, options.tail_lines, &mut Renderer::new(options)).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn records_become_lines_and_partials_join() {
        check(&options(), "one\ntwo\nthree\n");
    }

    #[test]
    fn tail_counts_records_from_the_end() {
        let o = LogOptions {
            tail_lines: Some(2),
            ..options()
        };
        check(&o, "three\n");
        let o = LogOptions {
            tail_lines: Some(0),
            ..options()
        };
        check(&o, "");
    }

    #[test]
    fn timestamps_are_printed_as_go_rfc3339_nano() {
        let o = LogOptions {
            timestamps: true,
            tail_lines: Some(3),
            ..options()
        };
        check(
            &o,
            "2024-01-01T12:00:01Z two\n2024-01-01T12:00:02.123456789Z thr2024-01-01T12:00:02.2Z ee\n",
        );
    }

    #[test]
    fn since_time_skips_older_records() {
        let o = LogOptions {
            since: Some("2024-01-01T12:00:01Z".parse().unwrap()),
            ..options()
        };
        check(&o, "two\nthree\n");
    }

    #[test]
    fn limit_bytes_cuts_the_output() {
        let o = LogOptions {
            limit_bytes: Some(6),
            ..options()
        };
        check(&o, "one\ntw");
    }

    #[test]
    fn rotated_files_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("0.log.20240101-120000");
        std::fs::write(&old, "2024-01-01T11:00:00.000000000Z stdout F old\n").unwrap();
        let path = write_log(dir.path(), &LOG[..1]);
        let mut renderer = Renderer::new(&options());
        let (out, offset) = snapshot(&[old], &path, None, &mut renderer).unwrap();
        assert_eq!(out, b"old\none\n");
        assert_eq!(offset, std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn options_come_from_the_query() {
        let q = Query::parse(
            "follow=true&tailLines=5&timestamps=1&limitBytes=10&sinceTime=2024-01-01T00%3A00%3A00Z",
        );
        let o = LogOptions::parse(&q).unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.limit_bytes, Some(10));
        assert_eq!(o.since, Some("2024-01-01T00:00:00Z".parse().unwrap()));
        assert!(LogOptions::parse(&Query::parse("tailLines=x")).is_err());
    }

    #[tokio::test]
    async fn follow_streams_new_records_until_the_container_exits() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), &LOG[..1]);
        let (running_tx, running) = tokio::sync::watch::channel(true);
        let (tx, mut rx) = mpsc::channel(8);
        let source = LogSource {
            path: path.clone(),
            rotated: Vec::new(),
            running,
        };
        let o = LogOptions {
            follow: true,
            ..options()
        };
        let task = tokio::spawn(stream(source, o, tx));
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert_eq!(&first.unwrap().unwrap()[..], b"one\n");
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            writeln!(f, "{}", LOG[1]).unwrap();
        }
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert_eq!(&next.unwrap().unwrap()[..], b"two\n");
        running_tx.send(false).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
