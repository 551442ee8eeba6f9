//! A FIFO of change events between the reader and the applier with bounded memory: the
//! head lives in RAM, and once the RAM budget is used the rest goes to append-only
//! segment files, read back in order and deleted once consumed. The reader therefore
//! never waits for the applier (the disk absorbs a copy that outlasts the oplog
//! window), and memory stays flat however far behind the applier is.
//!
//! Nothing here survives a restart: after one, the stream is re-read from the last
//! applied checkpoint, so stale segment files are deleted on start.
//!
//! File I/O is synchronous under the lock: segments are small (a few MiB), writes go
//! through a buffer, and the only reader of a segment is the applier, so blocking the
//! executor for a moment is cheaper than the complexity of async file handling.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};

use bson::Document;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::event::Event;
use crate::error::{EngineError, Result};

const FILE_PREFIX: &str = "c2c-spill-";
const FILE_SUFFIX: &str = ".bson";

#[derive(Debug, Clone)]
pub struct SpillConfig {
    /// Where segment files go; created if missing, emptied of old segments on start.
    pub dir: PathBuf,
    /// Bytes of events held in RAM before new events go to disk.
    pub memory_bytes: usize,
    /// A segment file is closed (and becomes readable) at this size.
    pub segment_bytes: usize,
}

impl SpillConfig {
    /// 64 MiB in RAM, 4 MiB segments.
    pub fn new(dir: impl Into<PathBuf>) -> SpillConfig {
        SpillConfig {
            dir: dir.into(),
            memory_bytes: 64 << 20,
            segment_bytes: 4 << 20,
        }
    }
}

struct Segment {
    path: PathBuf,
    count: usize,
}

struct Writer {
    segment: Segment,
    out: BufWriter<File>,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    /// The oldest events; only appended to while nothing is on disk.
    memory: VecDeque<Event>,
    memory_bytes: usize,
    /// Closed segments, oldest first; all newer than `memory`.
    sealed: VecDeque<Segment>,
    /// The segment being appended to; newer than every sealed one.
    writing: Option<Writer>,
    next_file: u64,
    len: usize,
    spilled_total: u64,
}

pub struct Spill {
    config: SpillConfig,
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Spill {
    pub fn new(config: SpillConfig) -> Result<Spill> {
        fs::create_dir_all(&config.dir)?;
        for entry in fs::read_dir(&config.dir)? {
            let path = entry?.path();
            if is_segment(&path) {
                fs::remove_file(&path)?;
            }
        }
        Ok(Spill {
            config,
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
        })
    }

    /// Events buffered (RAM and disk).
    pub fn len(&self) -> usize {
        self.inner.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events that went through a file since start (for tests and diagnostics).
    pub fn spilled_total(&self) -> u64 {
        self.inner.lock().spilled_total
    }

    /// Appends an event. Never waits for the consumer: when RAM is full it goes to disk.
    pub async fn push(&self, event: Event) -> Result<()> {
        {
            let mut inner = self.inner.lock();
            let on_disk = !inner.sealed.is_empty() || inner.writing.is_some();
            // An event larger than the whole budget still goes to RAM when RAM is empty,
            // so order is kept and one event (≤ 16 MiB) is the worst overshoot.
            let fits = inner.memory.is_empty()
                || inner.memory_bytes + event.size <= self.config.memory_bytes;
            if !on_disk && fits {
                inner.memory_bytes += event.size;
                inner.memory.push_back(event);
            } else {
                self.write(&mut inner, &event)?;
            }
            inner.len += 1;
        }
        self.notify.notify_one();
        Ok(())
    }

    fn write(&self, inner: &mut Inner, event: &Event) -> Result<()> {
        if inner.writing.is_none() {
            let path = self
                .config
                .dir
                .join(format!("{FILE_PREFIX}{:010}{FILE_SUFFIX}", inner.next_file));
            inner.next_file += 1;
            let out = BufWriter::with_capacity(256 << 10, File::create(&path)?);
            inner.writing = Some(Writer {
                segment: Segment { path, count: 0 },
                out,
                bytes: 0,
            });
        }
        let Some(writer) = inner.writing.as_mut() else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(event.size);
        event
            .encode()
            .to_writer(&mut bytes)
            .map_err(|e| EngineError::Spill(std::io::Error::other(e)))?;
        writer.out.write_all(&bytes)?;
        writer.bytes += bytes.len();
        writer.segment.count += 1;
        inner.spilled_total += 1;
        if writer.bytes >= self.config.segment_bytes {
            seal(inner)?;
        }
        Ok(())
    }

    /// Takes up to `max` events, oldest first; empty when nothing is buffered.
    pub async fn pop_batch(&self, max: usize) -> Result<Vec<Event>> {
        let mut inner = self.inner.lock();
        let mut out = Vec::with_capacity(max.min(inner.len));
        while out.len() < max {
            if let Some(event) = inner.memory.pop_front() {
                inner.memory_bytes -= event.size;
                inner.len -= 1;
                out.push(event);
            } else if let Some(segment) = inner.sealed.pop_front() {
                load(&mut inner, &segment)?;
            } else if inner.writing.is_some() {
                seal(&mut inner)?;
            } else {
                break;
            }
        }
        Ok(out)
    }

    /// Returns once at least one event is buffered.
    pub async fn wait_for_events(&self) {
        loop {
            let notified = self.notify.notified();
            if !self.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        let writing = inner.writing.take().map(|w| w.segment);
        for segment in inner.sealed.drain(..).chain(writing) {
            let _ = fs::remove_file(&segment.path);
        }
        // Each run spills into a directory of its own: an empty one would otherwise be
        // left behind by every pause, resume and restart. Not emptied here if something
        // else was put there.
        let _ = fs::remove_dir(&self.config.dir);
    }
}

fn is_segment(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(FILE_PREFIX) && name.ends_with(FILE_SUFFIX))
}

/// Closes the segment being written so it can be read back.
fn seal(inner: &mut Inner) -> Result<()> {
    if let Some(mut writer) = inner.writing.take() {
        writer.out.flush()?;
        inner.sealed.push_back(writer.segment);
    }
    Ok(())
}

/// Moves a sealed segment's events into RAM (RAM is empty when this is called) and
/// deletes its file.
fn load(inner: &mut Inner, segment: &Segment) -> Result<()> {
    let bytes = fs::read(&segment.path)?;
    let mut cursor = Cursor::new(bytes.as_slice());
    let mut loaded = 0;
    while (cursor.position() as usize) < bytes.len() {
        let start = cursor.position() as usize;
        let document = Document::from_reader(&mut cursor)
            .map_err(|e| EngineError::Spill(std::io::Error::other(e)))?;
        let size = cursor.position() as usize - start;
        let event = Event::decode(&document, size)
            .map_err(|e| EngineError::Spill(std::io::Error::other(e)))?;
        inner.memory_bytes += size;
        inner.memory.push_back(event);
        loaded += 1;
    }
    if loaded != segment.count {
        return Err(EngineError::Spill(std::io::Error::other(format!(
            "{} held {loaded} events, {} were written",
            segment.path.display(),
            segment.count
        ))));
    }
    fs::remove_file(&segment.path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use bson::{doc, Timestamp};

    use super::*;
    use crate::cea::event::EventKind;
    use crate::namespace::Namespace;

    fn event(i: i32) -> Event {
        Event {
            token: doc! {"_data": format!("{i:08}")},
            cluster_time: Timestamp {
                time: 1,
                increment: i as u32,
            },
            kind: EventKind::Insert {
                ns: Namespace::new("a", "b"),
                id: i.into(),
                document: doc! {"_id": i, "pad": "x".repeat(100)},
            },
            size: 200,
        }
    }

    #[tokio::test]
    async fn keeps_fifo_order_through_disk() {
        let dir = std::env::temp_dir().join(format!("c2c-spill-test-{}", std::process::id()));
        let spill = Spill::new(SpillConfig {
            dir: dir.clone(),
            memory_bytes: 1000,
            segment_bytes: 1500,
        })
        .unwrap();
        let mut expected = 0;
        let mut next = 0;
        for round in 0..20 {
            for _ in 0..(round % 7 + 3) {
                spill.push(event(next)).await.unwrap();
                next += 1;
            }
            for popped in spill.pop_batch(round % 5 + 1).await.unwrap() {
                assert_eq!(
                    popped.kind.document_id(),
                    Some(&bson::Bson::Int32(expected))
                );
                expected += 1;
            }
        }
        while !spill.is_empty() {
            for popped in spill.pop_batch(4).await.unwrap() {
                assert_eq!(
                    popped.kind.document_id(),
                    Some(&bson::Bson::Int32(expected))
                );
                expected += 1;
            }
        }
        assert_eq!(expected, next);
        assert!(spill.spilled_total() > 0);
        let left = fs::read_dir(&dir)
            .unwrap()
            .filter(|e| is_segment(&e.as_ref().unwrap().path()))
            .count();
        assert_eq!(left, 0, "consumed segments are deleted");
        drop(spill);
        let _ = fs::remove_dir_all(&dir);
    }
}
