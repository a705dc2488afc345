//! The embedded request log: one JSON object per line, appended to a file, with an in-memory
//! index so no question reads the whole file; erasure, retention and compaction rewrite the
//! file atomically.
//!
//! An entry is appended with one `write(2)` of its whole line to the page cache, made on the
//! calling task's thread rather than through tokio's blocking pool: a line is a few hundred bytes,
//! the write takes microseconds, and the pool's round trips (a thread wake-up and a context
//! switch each way, several per entry, serialized by the log's lock) were what capped the link
//! requests per second. Like before, an entry is in the file (not yet on disk: no `fsync`) when
//! `record` returns.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{
    DEFAULT_MAX_ENTRIES, Entry, Event, LogError, NOTES_PER_LINK, PER_PERSON_PER_HOUR, RequestLog,
    requester_in, unavailable,
};
use crate::pseudonym::Pseudonyms;

/// One live line of a [`JsonLinesLog`], as its index keeps it: where it is in the file and what
/// the log's questions and bounds need to know of it, so none of them reads the file whole.
#[derive(Debug)]
struct Line {
    /// Where the line starts in the file.
    offset: u64,
    /// Its length, without the line end.
    len: u64,
    /// When it was written (`None`: its `at` is not RFC 3339; retention keeps it).
    at: Option<OffsetDateTime>,
    /// The person it belongs to: named by its address, or joined through its link.
    owner: Option<Arc<str>>,
    /// The link it names.
    jti: Option<Arc<str>>,
    /// A link request that made its link (`requester` reads it).
    request: bool,
    /// An [`Entry::is_note`] entry, counted against its link's [`NOTES_PER_LINK`].
    note: bool,
}

/// The in-memory index of a [`JsonLinesLog`], built by one streaming pass over the file at
/// startup (and after every rewrite) and kept up to date by appends and evictions.
///
/// Lines are numbered in file order; the live ones are `lines`, numbered from `first`. Evicted
/// lines are always the oldest, so they form the start of the file, before `lines[0]`.
#[derive(Debug)]
struct Index {
    /// Names the person of an entry.
    ids: Arc<Pseudonyms>,
    lines: VecDeque<Line>,
    /// The number of `lines[0]`.
    first: u64,
    /// Evicted lines still in the file; a compaction drops them once they outnumber the live.
    dead: usize,
    /// The file's length.
    end: u64,
    /// A link → the number of its link request line.
    requests: HashMap<Arc<str>, u64>,
    /// A link → the person it was made for.
    owners: HashMap<Arc<str>, Arc<str>>,
    /// A person → the numbers of their lines, oldest first.
    people: HashMap<Arc<str>, VecDeque<u64>>,
    /// A link → how many of its notes are stored.
    notes: HashMap<Arc<str>, usize>,
}

impl Index {
    /// Reads the file at `path` in one streaming pass, as long as it is now (a device that never
    /// ends, `/dev/full`, reads as empty). Unreadable lines (torn by a crash) are skipped; a
    /// rewrite drops them.
    async fn scan(path: &Path, ids: Arc<Pseudonyms>) -> std::io::Result<Self> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        let mut reader = tokio::io::BufReader::new(file.take(len));
        let mut index = Self {
            ids,
            lines: VecDeque::new(),
            first: 0,
            dead: 0,
            end: 0,
            requests: HashMap::new(),
            owners: HashMap::new(),
            people: HashMap::new(),
            notes: HashMap::new(),
        };
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = reader.read_until(b'\n', &mut buf).await?;
            if read == 0 {
                break;
            }
            let offset = index.end;
            index.end += read as u64;
            let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if let Ok(entry) = serde_json::from_slice::<Entry>(text) {
                index.push(&entry, offset, text.len() as u64);
            }
        }
        Ok(index)
    }

    /// The line numbered `n`, if live.
    fn line(&self, n: u64) -> Option<&Line> {
        self.lines
            .get(usize::try_from(n.checked_sub(self.first)?).ok()?)
    }

    /// The person `entry` belongs to: the one its address names, or for an entry without one,
    /// the one its link was made for.
    fn owner_of(&self, entry: &Entry) -> Option<Arc<str>> {
        match (entry.owner(&self.ids), entry.jti.as_deref()) {
            (Some(owner), _) => Some(owner.into()),
            (None, Some(jti)) => self.owners.get(jti).cloned(),
            (None, None) => None,
        }
    }

    /// Whether `entry` may be stored under `bounds`: a note only while its link has fewer than
    /// [`NOTES_PER_LINK`] and its person fewer than [`PER_PERSON_PER_HOUR`] entries in the hour
    /// before it.
    fn admits(&self, entry: &Entry, now: OffsetDateTime) -> bool {
        if !entry.is_note() {
            return true;
        }
        if let Some(jti) = entry.jti.as_deref()
            && self.notes.get(jti).copied().unwrap_or(0) >= NOTES_PER_LINK
        {
            return false;
        }
        let Some(owner) = self.owner_of(entry) else {
            return true;
        };
        let since = entry.time().unwrap_or(now) - time::Duration::HOUR;
        let recent = self.people.get(&owner).map_or(0, |lines| {
            lines
                .iter()
                .rev()
                .map_while(|n| self.line(*n))
                .take_while(|line| line.at.is_none_or(|at| at > since))
                .take(PER_PERSON_PER_HOUR)
                .count()
        });
        recent < PER_PERSON_PER_HOUR
    }

    /// Adds the line of `entry`, `len` bytes at `offset`.
    fn push(&mut self, entry: &Entry, offset: u64, len: u64) {
        let n = self.first + self.lines.len() as u64;
        let owner = self.owner_of(entry);
        let jti: Option<Arc<str>> = entry.jti.as_deref().map(Arc::from);
        let request = entry.event == Event::LinkRequested && jti.is_some();
        let note = entry.is_note();
        if let Some(owner) = &owner {
            self.people.entry(owner.clone()).or_default().push_back(n);
        }
        if let Some(jti) = &jti {
            if request {
                self.requests.insert(jti.clone(), n);
            }
            if let (Some(owner), true) = (&owner, entry.email.is_some()) {
                self.owners.insert(jti.clone(), owner.clone());
            }
            if note {
                *self.notes.entry(jti.clone()).or_default() += 1;
            }
        }
        self.lines.push_back(Line {
            offset,
            len,
            at: entry.time(),
            owner,
            jti,
            request,
            note,
        });
    }

    /// Evicts the oldest lines until at most `max` are live. Their link requests go with them:
    /// later uses of those links are recorded, but not joined to anyone.
    fn evict_to(&mut self, max: usize) {
        while self.lines.len() > max {
            let Some(line) = self.lines.pop_front() else {
                return;
            };
            let n = self.first;
            self.first += 1;
            self.dead += 1;
            if let Some(owner) = &line.owner
                && let Some(lines) = self.people.get_mut(owner)
            {
                if lines.front() == Some(&n) {
                    lines.pop_front();
                }
                if lines.is_empty() {
                    self.people.remove(owner);
                }
            }
            let Some(jti) = &line.jti else { continue };
            if line.request && self.requests.get(jti) == Some(&n) {
                self.requests.remove(jti);
                self.owners.remove(jti);
            }
            if line.note
                && let Some(count) = self.notes.get_mut(jti)
            {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.notes.remove(jti);
                }
            }
        }
    }
}

/// A [`JsonLinesLog`]'s open file and its index, under one lock.
struct State {
    /// Opened for appending; written synchronously (see the module's doc).
    file: std::fs::File,
    index: Index,
    /// A failed append left part of a line that could not be taken back: the next append starts
    /// with a line end, so its entry is a line of its own.
    torn: bool,
}

/// A JSON-lines file, opened for appending, with an in-memory index of its lines.
///
/// Questions (`recent`, `person`, `requester`) read only the lines they answer with, by offset.
/// At most `max_entries` lines are live: each append past it evicts the oldest, and once the
/// evicted lines outnumber the live ones the file is compacted, so it stays within about twice
/// the cap.
///
/// Erasure, retention and compaction rewrite it: the lines kept are streamed to a temporary file
/// beside it, which then replaces it (`rename`), under the same lock as appends, so no entry is
/// lost and a reader sees the old file or the new one. Lines that cannot be read (torn by a
/// crash) are dropped by a rewrite. Only this process may write the file: a second writer's
/// appends during a rewrite would be lost.
pub struct JsonLinesLog {
    path: PathBuf,
    /// `DOCGATE_REQUEST_LOG_MAX_ENTRIES`.
    max_entries: usize,
    state: Mutex<State>,
    /// Names the person of an entry, to find one person's entries.
    ids: Arc<Pseudonyms>,
}

impl JsonLinesLog {
    /// Opens (creating) the file at `path`, and its directory, keeping at most
    /// [`DEFAULT_MAX_ENTRIES`]. A file whose last line was torn by a crash gets a line end
    /// first, so the next entry starts a line of its own.
    pub async fn open(path: &Path, ids: Arc<Pseudonyms>) -> std::io::Result<Self> {
        Self::open_with(path, ids, DEFAULT_MAX_ENTRIES).await
    }

    /// [`open`](Self::open), keeping at most `max_entries` (at least 1).
    pub async fn open_with(
        path: &Path,
        ids: Arc<Pseudonyms>,
        max_entries: usize,
    ) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = Self::append_to(path).await?;
        if Self::last_byte(path).await?.is_some_and(|b| b != b'\n') {
            std::io::Write::write_all(&mut file, b"\n")?;
        }
        let max_entries = max_entries.max(1);
        let mut index = Index::scan(path, ids.clone()).await?;
        index.evict_to(max_entries);
        Ok(Self {
            path: path.to_owned(),
            max_entries,
            state: Mutex::new(State {
                file,
                index,
                torn: false,
            }),
            ids,
        })
    }

    /// The file's last byte, `None` when it is empty.
    async fn last_byte(path: &Path) -> std::io::Result<Option<u8>> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut file = tokio::fs::File::open(path).await?;
        if file.metadata().await?.len() == 0 {
            return Ok(None);
        }
        file.seek(std::io::SeekFrom::End(-1)).await?;
        Ok(Some(file.read_u8().await?))
    }

    async fn append_to(path: &Path) -> std::io::Result<std::fs::File> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        Ok(file.into_std().await)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries of the lines numbered `numbers`, in that order (lines no longer readable are
    /// skipped), reading only those lines.
    async fn read(
        &self,
        index: &Index,
        numbers: impl Iterator<Item = u64>,
    ) -> Result<Vec<Entry>, LogError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut file = tokio::fs::File::open(&self.path)
            .await
            .map_err(unavailable)?;
        let mut entries = Vec::new();
        let mut buf = Vec::new();
        for line in numbers.filter_map(|n| index.line(n)) {
            let len = usize::try_from(line.len).map_err(unavailable)?;
            buf.resize(len, 0);
            file.seek(std::io::SeekFrom::Start(line.offset))
                .await
                .map_err(unavailable)?;
            file.read_exact(&mut buf).await.map_err(unavailable)?;
            if let Ok(entry) = serde_json::from_slice(&buf) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Rewrites the file with only the live lines `keep` accepts (no evicted or unreadable ones),
    /// streaming them, then indexes the new file. Returns how many live lines were left out.
    async fn rewrite(
        &self,
        state: &mut State,
        keep: impl Fn(&Line) -> bool,
    ) -> Result<u64, LogError> {
        use tokio::io::{AsyncBufReadExt, AsyncSeekExt};
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".rewrite");
        let temporary = PathBuf::from(temporary);
        let index = &state.index;
        let copied = async {
            let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(&temporary).await?);
            let mut removed = 0u64;
            let mut source = tokio::fs::File::open(&self.path).await?;
            let start = index.lines.front().map_or(index.end, |line| line.offset);
            source.seek(std::io::SeekFrom::Start(start)).await?;
            let mut reader = tokio::io::BufReader::new(source);
            let (mut at, mut next) = (start, 0usize);
            let mut buf = Vec::new();
            while next < index.lines.len() {
                buf.clear();
                let read = reader.read_until(b'\n', &mut buf).await?;
                if read == 0 {
                    break;
                }
                let offset = at;
                at += read as u64;
                // Index lines starting before this file line are not in the file as lines of
                // their own (a torn write swallowed them): passed over, so one of them cannot
                // stall the walk and drop every live line after it.
                while index.lines.get(next).is_some_and(|l| l.offset < offset) {
                    next += 1;
                }
                let Some(line) = index.lines.get(next) else {
                    break;
                };
                if line.offset != offset {
                    // Not a live line: torn, unreadable.
                    continue;
                }
                next += 1;
                if keep(line) {
                    out.write_all(&buf).await?;
                    if !buf.ends_with(b"\n") {
                        out.write_all(b"\n").await?;
                    }
                } else {
                    removed += 1;
                }
            }
            out.flush().await?;
            out.get_ref().sync_all().await?;
            Ok::<_, std::io::Error>(removed)
        }
        .await;
        let removed = match copied {
            Ok(removed) => removed,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temporary).await;
                return Err(unavailable(e));
            }
        };
        let replaced = async {
            tokio::fs::rename(&temporary, &self.path).await?;
            let file = Self::append_to(&self.path).await?;
            let index = Index::scan(&self.path, self.ids.clone()).await?;
            Ok::<_, std::io::Error>((file, index))
        }
        .await;
        match replaced {
            Ok((file, index)) => {
                state.file = file;
                state.index = index;
                Ok(removed)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&temporary).await;
                Err(unavailable(e))
            }
        }
    }
}

#[async_trait]
impl RequestLog for JsonLinesLog {
    async fn record(&self, entry: &Entry) -> Result<(), LogError> {
        let mut line = serde_json::to_vec(entry).map_err(unavailable)?;
        line.push(b'\n');
        let mut guard = self.state.lock().await;
        let state = &mut *guard;
        if !state.index.admits(entry, OffsetDateTime::now_utc()) {
            return Ok(());
        }
        let lead: &[u8] = if state.torn { b"\n" } else { b"" };
        let offset = state.index.end;
        // One write of the whole line, with the line end a torn append left owed.
        let written = if lead.is_empty() {
            std::io::Write::write_all(&mut state.file, &line)
        } else {
            std::io::Write::write_all(&mut state.file, &[lead, &line].concat())
        };
        if let Err(e) = written {
            // Whatever part went out is taken back, so the next entry starts a line of its own;
            // if it cannot be (the file is not ours to truncate), the next append ends it first.
            if state.file.set_len(offset).is_ok() {
                state.index.end = offset;
            } else {
                if let Ok(meta) = tokio::fs::metadata(&self.path).await {
                    state.index.end = meta.len();
                }
                state.torn = true;
            }
            return Err(unavailable(e));
        }
        state.torn = false;
        // Appends go to the file's end, wherever that is now.
        let len = line.len() as u64;
        let end = match state.file.metadata() {
            Ok(meta) if meta.len() >= len => meta.len(),
            _ => offset + len,
        };
        state.index.end = end;
        state.index.push(entry, end - len, len - 1);
        state.index.evict_to(self.max_entries);
        if state.index.dead > state.index.lines.len() {
            // Compaction: the entry is recorded; a failed compaction is tried again next time.
            if let Err(e) = self.rewrite(state, |_| true).await {
                tracing::warn!(cause = %e, "request log compaction failed; will retry");
            }
        }
        Ok(())
    }

    async fn recent(&self, limit: usize, offset: usize) -> Result<Vec<Entry>, LogError> {
        let state = self.state.lock().await;
        let index = &state.index;
        let newest = (index.first..index.first + index.lines.len() as u64).rev();
        self.read(index, newest.skip(offset).take(limit)).await
    }

    async fn requester(&self, jti: &str) -> Result<Option<String>, LogError> {
        let state = self.state.lock().await;
        let Some(&n) = state.index.requests.get(jti) else {
            return Ok(None);
        };
        let entries = self.read(&state.index, std::iter::once(n)).await?;
        Ok(requester_in(&entries, jti))
    }

    async fn person(&self, owner: &str) -> Result<Vec<Entry>, LogError> {
        let state = self.state.lock().await;
        let Some(lines) = state.index.people.get(owner) else {
            return Ok(Vec::new());
        };
        self.read(&state.index, lines.iter().rev().copied()).await
    }

    async fn erase(&self, owner: &str) -> Result<u64, LogError> {
        let mut state = self.state.lock().await;
        if !state.index.people.contains_key(owner) {
            return Ok(0);
        }
        self.rewrite(&mut state, |line| line.owner.as_deref() != Some(owner))
            .await
    }

    async fn purge_older_than(&self, cutoff: OffsetDateTime) -> Result<u64, LogError> {
        let mut state = self.state.lock().await;
        // An entry whose time cannot be read is kept: nothing says it is old.
        let old = |line: &Line| line.at.is_some_and(|t| t < cutoff);
        if !state.index.lines.iter().any(old) {
            return Ok(0);
        }
        self.rewrite(&mut state, |line| !old(line)).await
    }
}

#[cfg(test)]
mod tests;
