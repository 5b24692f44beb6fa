//! The private mutation log (plog) of one replica in rDSN's on-disk format: files
//! `plog/log.<index>.<start_offset>` in one global offset space, each a run of blocks framed
//! by a 16-byte header (magic 0xDEADBEEF, body length, per-file chained CRC-32C, local
//! offset); block 0 holds the file header, later blocks hold whole mutations. Opening
//! replays the log; appends go to a fresh file per open; GC drops whole old files.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::base::crc::crc32c;

use super::mutation::{Mutation, MutationError};

/// Block header magic (on disk `EF BE AD DE`); also the file header's magic.
pub const LOG_MAGIC: u32 = 0xDEAD_BEEF;
/// Size of a block header.
pub const BLOCK_HEADER_LEN: usize = 16;
/// A new block is started when the current one (header included) exceeds this size.
pub const MAX_BLOCK_BYTES: usize = 1 << 20;
/// File header body size for a plog (one gpid entry).
pub const FILE_HEADER_LEN: usize = 44;
/// Default `[replication] log_private_file_size_mb` (32 MiB).
pub const DEFAULT_FILE_SIZE_LIMIT: u64 = 32 << 20;
/// Default `[replication] log_private_reserve_max_size_mb` (1000 MiB).
pub const DEFAULT_RESERVE_MAX_SIZE: u64 = 1000 << 20;
/// Default `[replication] log_private_reserve_max_time_seconds` (10 hours).
pub const DEFAULT_RESERVE_MAX_SECS: u64 = 36000;

/// Fixed part of the file header: magic, version, start_global_offset, count.
const FILE_HEADER_FIXED: usize = 20;
/// One file header entry: gpid (8) + max_decree (8) + valid_start_offset (8).
const FILE_HEADER_ENTRY: usize = 24;

/// Errors of the private log.
#[derive(Debug)]
pub enum LogError {
    Io(io::Error),
    /// Bad magic, CRC, header or offset: the replica must be moved to `.err`.
    Corrupt(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io(e) => write!(f, "plog i/o error: {e}"),
            LogError::Corrupt(s) => write!(f, "plog corrupt: {s}"),
        }
    }
}

impl std::error::Error for LogError {}

impl From<io::Error> for LogError {
    fn from(e: io::Error) -> Self {
        LogError::Io(e)
    }
}

fn corrupt(path: &Path, what: impl fmt::Display) -> LogError {
    LogError::Corrupt(format!("{}: {what}", path.display()))
}

/// What replay found.
#[derive(Debug, Default)]
pub struct ReplayResult {
    /// Mutations in log order, those below the valid start offset left out.
    pub mutations: Vec<Mutation>,
    /// Global offset where valid data ends (the next file starts here).
    pub end_offset: i64,
    /// True when a file ended in an incomplete block (ignored, as upstream does).
    pub torn_tail: bool,
    /// Highest ballot of every decoded mutation, including the ones left out for their
    /// offset (upstream adopts those ballots too); 0 when none.
    pub max_ballot: i64,
}

/// The body of block 0 of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileHeader {
    pub version: i32,
    pub start_global_offset: i64,
    /// (app_id, partition_index, max_decree, valid_start_offset), one entry in a plog.
    pub entries: Vec<(i32, i32, i64, i64)>,
}

impl LogFileHeader {
    /// A plog header: version 1, one entry.
    pub fn plog(
        start_offset: i64,
        app_id: i32,
        pidx: i32,
        max_decree: i64,
        valid_start_offset: i64,
    ) -> Self {
        LogFileHeader {
            version: 1,
            start_global_offset: start_offset,
            entries: vec![(app_id, pidx, max_decree, valid_start_offset)],
        }
    }

    /// Serialized body (44 bytes for one entry).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(FILE_HEADER_FIXED + FILE_HEADER_ENTRY * self.entries.len());
        v.extend_from_slice(&LOG_MAGIC.to_le_bytes());
        v.extend_from_slice(&self.version.to_le_bytes());
        v.extend_from_slice(&self.start_global_offset.to_le_bytes());
        v.extend_from_slice(&(self.entries.len() as i32).to_le_bytes());
        for &(app, pidx, max_decree, valid_start) in &self.entries {
            v.extend_from_slice(&app.to_le_bytes());
            v.extend_from_slice(&pidx.to_le_bytes());
            v.extend_from_slice(&max_decree.to_le_bytes());
            v.extend_from_slice(&valid_start.to_le_bytes());
        }
        v
    }

    /// Parses the header at the front of block 0's body; returns it and its size. `None`
    /// when the body is too short for the declared entries or the magic is wrong.
    pub fn decode(body: &[u8]) -> Option<(LogFileHeader, usize)> {
        let magic = u32::from_le_bytes(body.get(0..4)?.try_into().ok()?);
        if magic != LOG_MAGIC {
            return None;
        }
        let version = i32::from_le_bytes(body.get(4..8)?.try_into().ok()?);
        let start_global_offset = i64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
        let count = i32::from_le_bytes(body.get(16..20)?.try_into().ok()?);
        let count = usize::try_from(count).ok()?;
        let len = count
            .checked_mul(FILE_HEADER_ENTRY)?
            .checked_add(FILE_HEADER_FIXED)?;
        let raw = body.get(FILE_HEADER_FIXED..len)?;
        let entries = raw
            .chunks_exact(FILE_HEADER_ENTRY)
            .map(|e| {
                let i32_at = |o: usize| i32::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]);
                let mut d = [0u8; 8];
                d.copy_from_slice(&e[8..16]);
                let mut s = [0u8; 8];
                s.copy_from_slice(&e[16..24]);
                (
                    i32_at(0),
                    i32_at(4),
                    i64::from_le_bytes(d),
                    i64::from_le_bytes(s),
                )
            })
            .collect();
        Some((
            LogFileHeader {
                version,
                start_global_offset,
                entries,
            },
            len,
        ))
    }

    /// The max decree recorded for a gpid (0 when absent, as upstream).
    pub fn max_decree_of(&self, app_id: i32, pidx: i32) -> i64 {
        self.entries
            .iter()
            .find(|e| e.0 == app_id && e.1 == pidx)
            .map(|e| e.2)
            .unwrap_or(0)
    }
}

/// Frames `body` as one block at `local_offset`, chaining the CRC from `prev_crc`; returns
/// the block bytes and the new running CRC.
pub fn frame_block(body: &[u8], local_offset: u32, prev_crc: u32) -> (Vec<u8>, u32) {
    let crc = crc32c(prev_crc, body);
    let mut v = Vec::with_capacity(BLOCK_HEADER_LEN + body.len());
    v.extend_from_slice(&LOG_MAGIC.to_le_bytes());
    v.extend_from_slice(&(body.len() as i32).to_le_bytes());
    v.extend_from_slice(&crc.to_le_bytes());
    v.extend_from_slice(&local_offset.to_le_bytes());
    v.extend_from_slice(body);
    (v, crc)
}

/// Result of reading one block from the front of a byte slice.
enum Block<'a> {
    /// Nothing left: a clean end of file.
    Eof,
    /// A short header or body (a torn write).
    Incomplete,
    /// Bad magic, negative length or CRC mismatch.
    Invalid(String),
    Ok {
        body: &'a [u8],
        crc: u32,
    },
}

fn next_block(data: &[u8], prev_crc: u32) -> Block<'_> {
    if data.is_empty() {
        return Block::Eof;
    }
    if data.len() < BLOCK_HEADER_LEN {
        return Block::Incomplete;
    }
    let word = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
    if word(0) != LOG_MAGIC {
        return Block::Invalid(format!("bad block magic {:#x}", word(0)));
    }
    let length = word(4) as i32;
    let Ok(length) = usize::try_from(length) else {
        return Block::Invalid(format!("negative block length {length}"));
    };
    let Some(body) = data.get(BLOCK_HEADER_LEN..BLOCK_HEADER_LEN + length) else {
        return Block::Incomplete;
    };
    let crc = crc32c(prev_crc, body);
    if crc != word(8) {
        return Block::Invalid(format!(
            "block crc mismatch: stored {:#x}, computed {crc:#x}",
            word(8)
        ));
    }
    Block::Ok { body, crc }
}

/// Parses `log.<index>.<start_offset>`; anything else (e.g. a `.removed` suffix) is `None`.
pub fn parse_file_name(name: &str) -> Option<(i32, i64)> {
    let rest = name.strip_prefix("log.")?;
    let (index, offset) = rest.split_once('.')?;
    let digits = |s: &str| {
        let s = s.strip_prefix('-').unwrap_or(s);
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(index) || !digits(offset) {
        return None;
    }
    Some((index.parse().ok()?, offset.parse().ok()?))
}

/// One known log file.
#[derive(Debug, Clone)]
pub struct LogFileInfo {
    pub index: i32,
    pub path: PathBuf,
    pub start_offset: i64,
    /// start_offset + file size (what was written, torn bytes included).
    pub end_offset: i64,
    pub header: LogFileHeader,
}

/// Renames a file whose header cannot be used to `<name>.removed`.
fn rename_removed(path: &Path) {
    let mut to = path.as_os_str().to_owned();
    to.push(".removed");
    if let Err(e) = fs::rename(path, &to) {
        log::error!("cannot rename {} to .removed: {e}", path.display());
    } else {
        log::error!(
            "bad plog file header, renamed {} to .removed",
            path.display()
        );
    }
}

/// Reads up to `n` bytes from the current position (fewer only at end of file).
fn read_up_to(f: &mut File, n: usize) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    f.take(n as u64).read_to_end(&mut v)?;
    Ok(v)
}

/// Opens an existing log file for reading its header, as upstream's `open_read`: a short
/// block 0 renames the file `.removed` and skips it (`Ok(None)`); a bad magic, CRC or header
/// renames it and fails.
fn open_read(path: &Path, index: i32, start_offset: i64) -> Result<Option<LogFileInfo>, LogError> {
    let mut f = File::open(path)?;
    let first = (|| -> io::Result<(u64, Vec<u8>)> {
        let size = f.metadata()?.len();
        let mut buf = read_up_to(&mut f, BLOCK_HEADER_LEN)?;
        if buf.len() == BLOCK_HEADER_LEN {
            let len = i32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
            if len > 0 && buf[0..4] == LOG_MAGIC.to_le_bytes() {
                buf.extend(read_up_to(&mut f, len as usize)?);
            }
        }
        Ok((size, buf))
    })();
    let (size, buf) = match first {
        Ok(x) => x,
        Err(e) => {
            rename_removed(path);
            return Err(LogError::Io(e));
        }
    };
    let body = match next_block(&buf, 0) {
        Block::Eof | Block::Incomplete => {
            rename_removed(path);
            log::warn!("skip plog file {} with incomplete header", path.display());
            return Ok(None);
        }
        Block::Invalid(why) => {
            rename_removed(path);
            return Err(corrupt(path, why));
        }
        Block::Ok { body, .. } => body,
    };
    match LogFileHeader::decode(body) {
        Some((h, _)) if h.start_global_offset == start_offset => Ok(Some(LogFileInfo {
            index,
            path: path.to_path_buf(),
            start_offset,
            end_offset: start_offset.saturating_add(size as i64),
            header: h,
        })),
        _ => {
            rename_removed(path);
            Err(corrupt(path, "invalid log file header"))
        }
    }
}

/// Lists and opens the log files of a directory, keyed by index.
fn load_files(dir: &Path) -> Result<BTreeMap<i32, LogFileInfo>, LogError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    let mut files = BTreeMap::new();
    for name in names {
        let Some((index, start)) = parse_file_name(&name) else {
            log::warn!("skip plog file {name}: not log.<index>.<offset>");
            continue;
        };
        if let Some(info) = open_read(&dir.join(&name), index, start)? {
            if files.insert(index, info).is_some() {
                return Err(corrupt(dir, format!("two log files with index {index}")));
            }
        }
    }
    Ok(files)
}

/// Reads the mutations of partition (app_id, pidx) with decrees in `from..=to` from the log
/// files in `dir`, as a duplicator loads them while the log is being appended to: only the
/// newest files that can hold those decrees are read (a file's header names the last decree
/// of the files before it), a torn tail is left out, and of a decree logged more than once
/// (a new primary's re-proposal) the last copy is kept. Mutations come back in decree order.
pub fn read_decrees(
    dir: &Path,
    app_id: i32,
    pidx: i32,
    from: i64,
    to: i64,
) -> Result<Vec<Mutation>, LogError> {
    let files = load_files(dir)?;
    let mut picked: Vec<&LogFileInfo> = Vec::new();
    for f in files.values().rev() {
        picked.push(f);
        if f.header.max_decree_of(app_id, pidx) < from {
            break;
        }
    }
    picked.reverse();
    let mut by_decree: BTreeMap<i64, Mutation> = BTreeMap::new();
    replay_run(picked, |m| {
        if m.app_id == app_id && m.partition_index == pidx && m.decree >= from && m.decree <= to {
            by_decree.insert(m.decree, m);
        }
        true
    })?;
    Ok(by_decree.into_values().collect())
}

/// Replays files (consecutive indices, continuous offsets) in order; `keep` is called with
/// every decoded mutation and returns whether it counts.
fn replay_run<'a>(
    files: impl IntoIterator<Item = &'a LogFileInfo>,
    mut keep: impl FnMut(Mutation) -> bool,
) -> Result<(i64, bool), LogError> {
    let files: Vec<&LogFileInfo> = files.into_iter().collect();
    let Some(first) = files.first() else {
        return Ok((0, false));
    };
    for w in files.windows(2) {
        if w[1].index != w[0].index + 1 {
            return Err(LogError::Corrupt(format!(
                "log file missing with index {} (have {} and {})",
                w[0].index + 1,
                w[0].path.display(),
                w[1].path.display()
            )));
        }
    }
    let mut end = first.start_offset;
    let mut torn = false;
    for f in files {
        if f.start_offset != end {
            return Err(corrupt(
                &f.path,
                format!(
                    "file starts at {} but the log ends at {end}",
                    f.start_offset
                ),
            ));
        }
        let data = fs::read(&f.path)?;
        let mut pos = 0usize;
        let mut crc = 0u32;
        loop {
            end = f.start_offset + pos as i64;
            let body = match next_block(&data[pos..], crc) {
                Block::Eof => break,
                Block::Incomplete => {
                    log::warn!(
                        "plog {}: incomplete block at local offset {pos}, tail ignored",
                        f.path.display()
                    );
                    torn = true;
                    break;
                }
                Block::Invalid(why) => {
                    return Err(corrupt(&f.path, format!("{why} at local offset {pos}")))
                }
                Block::Ok { body, crc: c } => {
                    crc = c;
                    body
                }
            };
            end += BLOCK_HEADER_LEN as i64;
            let mut rest = body;
            if pos == 0 {
                match LogFileHeader::decode(body) {
                    Some((h, len)) if h.start_global_offset == f.start_offset => {
                        end += len as i64;
                        rest = &body[len..];
                    }
                    _ => return Err(corrupt(&f.path, "invalid log file header")),
                }
            }
            while !rest.is_empty() {
                let (m, used) = Mutation::decode(rest)
                    .and_then(|(m, used)| m.check_codes().map(|()| (m, used)))
                    .map_err(|e: MutationError| corrupt(&f.path, format!("at {end}: {e}")))?;
                if m.log_offset != end {
                    return Err(corrupt(
                        &f.path,
                        format!(
                            "mutation log_offset {} but it lies at offset {end}",
                            m.log_offset
                        ),
                    ));
                }
                keep(m);
                end += used as i64;
                rest = &rest[used..];
            }
            pos += BLOCK_HEADER_LEN + body.len();
        }
    }
    Ok((end, torn))
}

/// The file being appended to.
struct CurrentFile {
    file: File,
    index: i32,
    start_offset: i64,
    crc: u32,
}

/// The private log of one replica.
pub struct MutationLog {
    dir: PathBuf,
    app_id: i32,
    pidx: i32,
    files: BTreeMap<i32, LogFileInfo>,
    current: Option<CurrentFile>,
    last_index: i32,
    global_start: i64,
    global_end: i64,
    max_decree: i64,
    max_commit_on_disk: i64,
    valid_start_offset: i64,
    file_size_limit: u64,
    switch_hint: bool,
    switch_demand: bool,
    dir_dirty: bool,
    reserve_max_size: u64,
    reserve_max_secs: u64,
}

impl MutationLog {
    /// Opens `<replica_dir>/plog` (creating it), replays every valid file (mutations whose
    /// log_offset < valid_start_offset are dropped; leading files whose header max_decree
    /// <= skip_to_decree are skipped, except the last of that run), and positions for
    /// appending: the first append opens a new file `log.<last_index+1>.<end_offset>`
    /// (a brand-new log starts with `log.1.0`).
    pub fn open(
        dir: &Path,
        app_id: i32,
        pidx: i32,
        valid_start_offset: i64,
        skip_to_decree: i64,
    ) -> Result<(MutationLog, ReplayResult), LogError> {
        let dir = dir.join("plog");
        fs::create_dir_all(&dir)?;
        let files = load_files(&dir)?;

        let mut begin = files.keys().next().copied();
        for (idx, f) in &files {
            if f.header.max_decree_of(app_id, pidx) <= skip_to_decree {
                begin = Some(*idx);
            } else {
                break;
            }
        }
        let mut result = ReplayResult::default();
        let (mut max_decree, mut max_commit) = (0i64, 0i64);
        let (end, torn) = match begin {
            Some(b) => replay_run(files.range(b..).map(|(_, f)| f), |m| {
                result.max_ballot = result.max_ballot.max(m.ballot);
                if m.log_offset < valid_start_offset {
                    return false;
                }
                max_decree = max_decree.max(m.decree);
                max_commit = max_commit.max(m.last_committed_decree);
                result.mutations.push(m);
                true
            })?,
            // No file at all: continue the offset space at the valid start, never below it.
            None => (valid_start_offset.max(0), false),
        };
        result.end_offset = end;
        result.torn_tail = torn;

        let log = MutationLog {
            app_id,
            pidx,
            current: None,
            last_index: files.keys().next_back().copied().unwrap_or(0),
            global_start: files.values().next().map(|f| f.start_offset).unwrap_or(0),
            global_end: end,
            max_decree,
            max_commit_on_disk: max_commit,
            valid_start_offset,
            file_size_limit: DEFAULT_FILE_SIZE_LIMIT,
            switch_hint: false,
            switch_demand: false,
            dir_dirty: false,
            reserve_max_size: DEFAULT_RESERVE_MAX_SIZE,
            reserve_max_secs: DEFAULT_RESERVE_MAX_SECS,
            files,
            dir,
        };
        Ok((log, result))
    }

    /// Replays a list of log files (e.g. learned ones), skipping unparsable names and files
    /// with an incomplete header, with no valid-start filtering.
    pub fn replay_files(paths: &[PathBuf]) -> Result<ReplayResult, LogError> {
        let mut files = BTreeMap::new();
        for p in paths {
            let Some((index, start)) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_file_name)
            else {
                continue;
            };
            if let Some(info) = open_read(p, index, start)? {
                if files.insert(index, info).is_some() {
                    return Err(corrupt(p, format!("two log files with index {index}")));
                }
            }
        }
        let mut result = ReplayResult::default();
        let (end, torn) = replay_run(files.values(), |m| {
            result.max_ballot = result.max_ballot.max(m.ballot);
            result.mutations.push(m);
            true
        })?;
        result.end_offset = end;
        result.torn_tail = torn;
        Ok(result)
    }

    /// Assigns `m.log_offset` and appends it in a block of its own.
    pub fn append(&mut self, m: &mut Mutation, sync: bool) -> Result<(), LogError> {
        self.append_batch(std::slice::from_mut(m), sync)
    }

    /// Assigns log offsets and appends the mutations with one write, packing them into blocks
    /// (a new block once the current one exceeds 1 MiB). No fsync unless `sync`.
    pub fn append_batch(&mut self, ms: &mut [Mutation], sync: bool) -> Result<(), LogError> {
        if ms.is_empty() {
            return Ok(());
        }
        self.switch_file_if_needed()?;
        let Some(cur) = self.current.as_mut() else {
            return Err(LogError::Io(io::Error::other("no current log file")));
        };
        let base = self.global_end;
        let mut buf = Vec::with_capacity(
            BLOCK_HEADER_LEN + ms.iter().map(Mutation::encoded_len).sum::<usize>(),
        );
        let mut block_starts = vec![0usize];
        buf.resize(BLOCK_HEADER_LEN, 0);
        let (mut max_decree, mut max_commit) = (self.max_decree, self.max_commit_on_disk);
        for m in ms.iter_mut() {
            let start = *block_starts.last().unwrap_or(&0);
            if buf.len() - start > MAX_BLOCK_BYTES {
                block_starts.push(buf.len());
                buf.resize(buf.len() + BLOCK_HEADER_LEN, 0);
            }
            m.log_offset = base + buf.len() as i64;
            m.encode(&mut buf);
            max_decree = max_decree.max(m.decree);
            max_commit = max_commit.max(m.last_committed_decree);
        }
        let mut crc = cur.crc;
        for (i, &start) in block_starts.iter().enumerate() {
            let stop = block_starts.get(i + 1).copied().unwrap_or(buf.len());
            let body_len = stop - start - BLOCK_HEADER_LEN;
            let body_len = i32::try_from(body_len).map_err(|_| {
                LogError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "mutation block larger than 2 GiB",
                ))
            })?;
            crc = crc32c(crc, &buf[start + BLOCK_HEADER_LEN..stop]);
            let local = (base + start as i64 - cur.start_offset) as u32;
            buf[start..start + 4].copy_from_slice(&LOG_MAGIC.to_le_bytes());
            buf[start + 4..start + 8].copy_from_slice(&body_len.to_le_bytes());
            buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
            buf[start + 12..start + 16].copy_from_slice(&local.to_le_bytes());
        }
        cur.file
            .write_all_at(&buf, (base - cur.start_offset) as u64)?;
        if sync {
            cur.file.sync_data()?;
        }
        cur.crc = crc;
        let index = cur.index;
        if sync {
            self.sync_dir()?;
        }
        self.global_end += buf.len() as i64;
        if let Some(info) = self.files.get_mut(&index) {
            info.end_offset = self.global_end;
        }
        self.max_decree = max_decree;
        self.max_commit_on_disk = max_commit;
        Ok(())
    }

    /// fsyncs the current file (and the directory after a file was created).
    pub fn sync(&mut self) -> Result<(), LogError> {
        if let Some(cur) = &self.current {
            cur.file.sync_data()?;
        }
        self.sync_dir()
    }

    fn sync_dir(&mut self) -> Result<(), LogError> {
        if self.dir_dirty {
            File::open(&self.dir)?.sync_all()?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn switch_file_if_needed(&mut self) -> Result<(), LogError> {
        let create = match &self.current {
            None => true,
            Some(cur) => {
                let size = (self.global_end - cur.start_offset) as u64;
                self.switch_demand
                    || size >= self.file_size_limit
                    || (self.switch_hint && size >= self.file_size_limit / 10)
            }
        };
        if create {
            self.create_new_file()?;
            self.switch_hint = false;
            self.switch_demand = false;
        }
        Ok(())
    }

    fn create_new_file(&mut self) -> Result<(), LogError> {
        let index = self.last_index + 1;
        let start = self.global_end;
        let path = self.dir.join(format!("log.{index}.{start}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let header = LogFileHeader::plog(
            start,
            self.app_id,
            self.pidx,
            self.max_decree,
            self.valid_start_offset,
        );
        let (block, crc) = frame_block(&header.encode(), 0, 0);
        if let Err(e) = file.write_all_at(&block, 0) {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(e.into());
        }
        log::info!("created plog file {}", path.display());
        self.dir_dirty = true;
        self.last_index = index;
        self.global_end = start + block.len() as i64;
        if self.files.is_empty() {
            self.global_start = start;
        }
        self.files.insert(
            index,
            LogFileInfo {
                index,
                path,
                start_offset: start,
                end_offset: self.global_end,
                header,
            },
        );
        self.current = Some(CurrentFile {
            file,
            index,
            start_offset: start,
            crc,
        });
        Ok(())
    }

    /// Global offset where the next record would go.
    pub fn end_offset(&self) -> i64 {
        self.global_end
    }

    /// Start offset of the oldest file (0 without files).
    pub fn start_offset(&self) -> i64 {
        self.global_start
    }

    /// Highest decree logged (or set by `reset`).
    pub fn max_decree(&self) -> i64 {
        self.max_decree
    }

    /// Highest `last_committed_decree` carried by a logged mutation.
    pub fn max_commit_on_disk(&self) -> i64 {
        self.max_commit_on_disk
    }

    /// The plog valid start offset (`init_offset_in_private_log`).
    pub fn valid_start_offset(&self) -> i64 {
        self.valid_start_offset
    }

    /// Rotates to a new file when the current one is >= `bytes` (default 32 MiB).
    pub fn set_file_size_limit(&mut self, bytes: u64) {
        self.file_size_limit = bytes;
    }

    /// GC keeps the newest files that fit in both `max_bytes` and `max_secs` since their last
    /// write (defaults 1000 MiB and 36000 s; 0 disables the reserve).
    pub fn set_reserve(&mut self, max_bytes: u64, max_secs: u64) {
        self.reserve_max_size = max_bytes;
        self.reserve_max_secs = max_secs;
    }

    /// Start a new file at the next append if the current one is >= 1/10 of the limit.
    pub fn hint_switch_file(&mut self) {
        self.switch_hint = true;
    }

    /// Start a new file at the next append.
    pub fn demand_switch_file(&mut self) {
        self.switch_demand = true;
    }

    fn should_reserve(&self, f: &LogFileInfo, already_reserved: u64) -> bool {
        if self.reserve_max_size == 0 || self.reserve_max_secs == 0 {
            return false;
        }
        let size = (f.end_offset - f.start_offset).max(0) as u64;
        if already_reserved + size > self.reserve_max_size {
            return false;
        }
        let Ok(mtime) = fs::metadata(&f.path).and_then(|m| m.modified()) else {
            return true;
        };
        mtime + Duration::from_secs(self.reserve_max_secs) >= SystemTime::now()
    }

    /// Deletes, oldest first, the whole files that are outside the reserve window and are
    /// either wholly below the valid start offset or hold only decrees <= `cleanable_decree`.
    /// The current file is never deleted. Returns the number of files removed.
    pub fn gc(&mut self, cleanable_decree: i64) -> Result<usize, LogError> {
        if self.files.len() <= 1 {
            return Ok(0);
        }
        let current = self.current.as_ref().map(|c| c.index);
        // The max decree of a file is the header max_decree of the file after it.
        let mut max_decree = self.max_decree;
        let mut reserved = 0u64;
        let mut largest_to_delete = None;
        for f in self.files.values().rev() {
            if Some(f.index) == current || self.should_reserve(f, reserved) {
                // kept
            } else if self.valid_start_offset >= f.end_offset || cleanable_decree >= max_decree {
                largest_to_delete = Some(f.index);
                break;
            }
            max_decree = f.header.max_decree_of(self.app_id, self.pidx);
            reserved += (f.end_offset - f.start_offset).max(0) as u64;
        }
        let Some(largest) = largest_to_delete else {
            return Ok(0);
        };
        let doomed: Vec<i32> = self.files.range(..=largest).map(|(i, _)| *i).collect();
        let mut deleted = 0;
        for index in doomed {
            let Some(f) = self.files.get(&index) else {
                continue;
            };
            if let Err(e) = fs::remove_file(&f.path) {
                log::error!("gc: cannot remove {}: {e}", f.path.display());
                break;
            }
            log::info!("gc: removed plog file {}", f.path.display());
            self.files.remove(&index);
            deleted += 1;
        }
        self.global_start = self
            .files
            .values()
            .next()
            .map(|f| f.start_offset)
            .unwrap_or(0);
        Ok(deleted)
    }

    /// Partition reset for learning: the valid start offset moves to the current end, the
    /// max decree becomes `max_decree`, and the next append starts a new file. Returns the new
    /// valid start offset (to store as `init_offset_in_private_log`).
    pub fn reset(&mut self, max_decree: i64) -> Result<i64, LogError> {
        log::warn!(
            "{}: plog reset: max_decree {} -> {max_decree}, valid_start_offset {} -> {}",
            self.dir.display(),
            self.max_decree,
            self.valid_start_offset,
            self.global_end
        );
        self.max_decree = max_decree;
        self.valid_start_offset = self.global_end;
        self.switch_demand = true;
        Ok(self.global_end)
    }

    /// The files a learner needs to get every decree >= `start_decree`, oldest first, and
    /// whether they suffice (upstream's `get_learn_state` for the on-disk part).
    pub fn learn_files(&self, start_decree: i64) -> (Vec<PathBuf>, bool) {
        if start_decree > self.max_decree {
            return (Vec::new(), false);
        }
        let mut picked = Vec::new();
        let mut last_max_decree = 0;
        let mut first_start = 0;
        for f in self.files.values().rev() {
            if f.end_offset <= self.valid_start_offset {
                break;
            }
            if f.end_offset > f.start_offset {
                picked.push(f.path.clone());
                first_start = f.start_offset;
            }
            last_max_decree = f.header.max_decree_of(self.app_id, self.pidx);
            if last_max_decree < start_decree {
                break;
            }
        }
        picked.reverse();
        let ok = first_start >= self.valid_start_offset
            && last_max_decree > 0
            && last_max_decree < start_decree;
        (picked, ok)
    }

    /// The plog directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Paths of every known log file, by index.
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.files.values().map(|f| f.path.clone()).collect()
    }

    /// Every known log file, by index.
    pub fn files(&self) -> impl Iterator<Item = &LogFileInfo> {
        self.files.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::mutation::MutationUpdate;

    fn put(decree: i64, data_len: usize) -> Mutation {
        Mutation {
            app_id: 1,
            partition_index: 3,
            ballot: 2,
            decree,
            log_offset: 0,
            last_committed_decree: decree - 1,
            timestamp: 1_000_000 + decree,
            updates: vec![MutationUpdate {
                code: "RPC_RRDB_RRDB_PUT".into(),
                serialization_type: 1,
                data: (0..data_len).map(|i| (i as u8) ^ (decree as u8)).collect(),
            }],
        }
    }

    fn open(dir: &Path, vso: i64, skip: i64) -> (MutationLog, ReplayResult) {
        MutationLog::open(dir, 1, 3, vso, skip).expect("open")
    }

    fn names(log: &MutationLog) -> Vec<String> {
        log.file_paths()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    fn write_n(log: &mut MutationLog, from: i64, n: i64) -> Vec<Mutation> {
        (from..from + n)
            .map(|d| {
                let mut m = put(d, 20);
                log.append(&mut m, false).expect("append");
                m
            })
            .collect()
    }

    /// Splits a file into (local_offset, header words, body) blocks.
    fn blocks(data: &[u8]) -> Vec<(usize, [u32; 4], Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let w = |o: usize| u32::from_le_bytes(data[pos + o..pos + o + 4].try_into().unwrap());
            let hdr = [w(0), w(4), w(8), w(12)];
            let len = hdr[1] as usize;
            out.push((pos, hdr, data[pos + 16..pos + 16 + len].to_vec()));
            pos += 16 + len;
        }
        out
    }

    #[test]
    fn file_header_block_bytes() {
        let (block, crc) = frame_block(&LogFileHeader::plog(0, 1, 3, 0, 0).encode(), 0, 0);
        assert_eq!(block.len(), 60);
        let mut want = Vec::new();
        want.extend_from_slice(&[0xEF, 0xBE, 0xAD, 0xDE]);
        want.extend_from_slice(&44i32.to_le_bytes());
        want.extend_from_slice(&crc.to_le_bytes());
        want.extend_from_slice(&0u32.to_le_bytes());
        want.extend_from_slice(&[0xEF, 0xBE, 0xAD, 0xDE]); // file header magic
        want.extend_from_slice(&1i32.to_le_bytes()); // version
        want.extend_from_slice(&0i64.to_le_bytes()); // start_global_offset
        want.extend_from_slice(&1i32.to_le_bytes()); // count
        want.extend_from_slice(&[1, 0, 0, 0, 3, 0, 0, 0]); // gpid 1.3
        want.extend_from_slice(&0i64.to_le_bytes()); // max_decree
        want.extend_from_slice(&0i64.to_le_bytes()); // valid_start_offset
        assert_eq!(block, want);
        assert_eq!(crc, crc32c(0, &want[16..]));

        let dir = tempfile::tempdir().unwrap();
        let (mut log, r) = open(dir.path(), 0, 0);
        assert!(r.mutations.is_empty());
        assert_eq!(r.end_offset, 0);
        assert!(log.file_paths().is_empty());
        let mut m = put(1, 5);
        log.append(&mut m, true).unwrap();
        assert_eq!(names(&log), vec!["log.1.0"]);
        assert_eq!(m.log_offset, 76);
        let data = fs::read(dir.path().join("plog/log.1.0")).unwrap();
        assert_eq!(&data[..60], &want[..]);
    }

    #[test]
    fn chained_crc_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        write_n(&mut log, 1, 2);
        let data = fs::read(dir.path().join("plog/log.1.0")).unwrap();
        let b = blocks(&data);
        assert_eq!(b.len(), 3);
        let c0 = crc32c(0, &b[0].2);
        let c1 = crc32c(c0, &b[1].2);
        let c2 = crc32c(c1, &b[2].2);
        assert_eq!(b[0].1[2], c0);
        assert_eq!(b[1].1[2], c1);
        assert_eq!(b[2].1[2], c2);
        assert_ne!(c1, crc32c(0, &b[1].2));
        // Local offsets are the block positions.
        for (pos, hdr, _) in &b {
            assert_eq!(hdr[0], LOG_MAGIC);
            assert_eq!(hdr[3] as usize, *pos);
        }
        assert_eq!(
            data.len() as i64,
            log.end_offset(),
            "file ends at the log end"
        );
    }

    #[test]
    fn reopen_replays_and_starts_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        let first = write_n(&mut log, 1, 5);
        let end = log.end_offset();
        assert_eq!(log.max_decree(), 5);
        drop(log);

        let (mut log, r) = open(dir.path(), 0, 0);
        assert_eq!(r.mutations, first);
        assert_eq!(r.end_offset, end);
        assert!(!r.torn_tail);
        assert_eq!(r.max_ballot, 2);
        assert_eq!(log.end_offset(), end);
        assert_eq!(log.max_decree(), 5);
        assert_eq!(log.max_commit_on_disk(), 4);
        let second = write_n(&mut log, 6, 3);
        assert_eq!(
            names(&log),
            vec!["log.1.0".to_string(), format!("log.2.{end}")]
        );
        assert_eq!(second[0].log_offset, end + 60 + 16);
        drop(log);

        let (log, r) = open(dir.path(), 0, 0);
        let all: Vec<Mutation> = first.into_iter().chain(second).collect();
        assert_eq!(r.mutations, all);
        assert_eq!(r.end_offset, log.end_offset());
        // The second file's header records the max decree issued before it.
        let h = &log.files().nth(1).unwrap().header;
        assert_eq!(h.max_decree_of(1, 3), 5);
        assert_eq!(h.start_global_offset, end);
    }

    #[test]
    fn rotation_by_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        log.set_file_size_limit(300);
        let written = write_n(&mut log, 1, 10);
        let files: Vec<LogFileInfo> = log.files().cloned().collect();
        assert!(files.len() >= 3, "got {} files", files.len());
        for w in files.windows(2) {
            assert_eq!(w[1].index, w[0].index + 1);
            assert_eq!(w[1].start_offset, w[0].end_offset);
            assert!(w[0].end_offset - w[0].start_offset >= 300);
        }
        drop(log);
        let (_, r) = open(dir.path(), 0, 0);
        assert_eq!(r.mutations, written);
    }

    #[test]
    fn torn_tail_is_tolerated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        let written = write_n(&mut log, 1, 4);
        let last_block_start = written[3].log_offset - 16;
        drop(log);
        let path = dir.path().join("plog/log.1.0");
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len((last_block_start + 30) as u64).unwrap();
        drop(f);

        let (mut log, r) = open(dir.path(), 0, 0);
        assert!(r.torn_tail);
        assert_eq!(r.mutations, written[..3].to_vec());
        assert_eq!(r.end_offset, last_block_start);
        // The next file continues from the end of the valid data, and replay goes on past
        // the torn file.
        let more = write_n(&mut log, 4, 2);
        assert_eq!(
            names(&log),
            vec!["log.1.0".to_string(), format!("log.2.{last_block_start}")]
        );
        drop(log);
        let (_, r) = open(dir.path(), 0, 0);
        assert!(r.torn_tail);
        let want: Vec<Mutation> = written[..3].iter().cloned().chain(more).collect();
        assert_eq!(r.mutations, want);

        // A torn header of the last block is tolerated too.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        let written = write_n(&mut log, 1, 2);
        drop(log);
        let path = dir.path().join("plog/log.1.0");
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all_at(&[0xEF, 0xBE, 0xAD], len).unwrap();
        drop(f);
        let (_, r) = open(dir.path(), 0, 0);
        assert!(r.torn_tail);
        assert_eq!(r.mutations, written);
    }

    #[test]
    fn flipped_body_byte_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        let written = write_n(&mut log, 1, 3);
        drop(log);
        let path = dir.path().join("plog/log.1.0");
        let mut data = fs::read(&path).unwrap();
        let pos = (written[1].log_offset + 40) as usize;
        data[pos] ^= 0x01;
        fs::write(&path, &data).unwrap();
        match MutationLog::open(dir.path(), 1, 3, 0, 0) {
            Err(LogError::Corrupt(msg)) => assert!(msg.contains("crc"), "{msg}"),
            other => panic!("expected corruption, got {:?}", other.map(|_| ())),
        }
        // Bad magic of a later block is corruption too.
        data[pos] ^= 0x01;
        let blk = (written[2].log_offset - 16) as usize;
        data[blk] = 0;
        fs::write(&path, &data).unwrap();
        assert!(matches!(
            MutationLog::open(dir.path(), 1, 3, 0, 0),
            Err(LogError::Corrupt(_))
        ));
        // The data file itself is left in place (only a bad block 0 renames it).
        assert!(path.exists());
    }

    #[test]
    fn offset_mismatch_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        write_n(&mut log, 1, 1);
        drop(log);
        // Rewrite the file with a mutation whose log_offset is wrong but a valid CRC.
        let path = dir.path().join("plog/log.1.0");
        let (hdr, c) = frame_block(&LogFileHeader::plog(0, 1, 3, 0, 0).encode(), 0, 0);
        let mut m = put(1, 3);
        m.log_offset = 99;
        let (blk, _) = frame_block(&m.to_bytes(), 60, c);
        fs::write(&path, [hdr, blk].concat()).unwrap();
        assert!(matches!(
            MutationLog::open(dir.path(), 1, 3, 0, 0),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn bad_file_header_is_renamed_removed() {
        // Bad CRC in block 0: renamed, and the open fails.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        write_n(&mut log, 1, 2);
        drop(log);
        let plog = dir.path().join("plog");
        let path = plog.join("log.1.0");
        let mut data = fs::read(&path).unwrap();
        data[30] ^= 0xFF;
        fs::write(&path, &data).unwrap();
        assert!(matches!(
            MutationLog::open(dir.path(), 1, 3, 0, 0),
            Err(LogError::Corrupt(_))
        ));
        assert!(!path.exists());
        assert!(plog.join("log.1.0.removed").exists());
        // Once renamed, the file is ignored: the log opens empty.
        let (log, r) = open(dir.path(), 0, 0);
        assert!(r.mutations.is_empty());
        assert!(log.file_paths().is_empty());

        // Name and header disagree on the start offset: renamed, open fails.
        let dir = tempfile::tempdir().unwrap();
        let plog = dir.path().join("plog");
        fs::create_dir_all(&plog).unwrap();
        let (blk, _) = frame_block(&LogFileHeader::plog(0, 1, 3, 0, 0).encode(), 0, 0);
        fs::write(plog.join("log.1.100"), &blk).unwrap();
        assert!(matches!(
            MutationLog::open(dir.path(), 1, 3, 0, 0),
            Err(LogError::Corrupt(_))
        ));
        assert!(plog.join("log.1.100.removed").exists());

        // An incomplete block 0 (crash right after creation): renamed and skipped.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        let written = write_n(&mut log, 1, 2);
        let end = log.end_offset();
        drop(log);
        let plog = dir.path().join("plog");
        fs::write(plog.join(format!("log.2.{end}")), &blk[..10]).unwrap();
        fs::write(plog.join("notalog"), b"x").unwrap();
        let (mut log, r) = open(dir.path(), 0, 0);
        assert_eq!(r.mutations, written);
        assert!(plog.join(format!("log.2.{end}.removed")).exists());
        write_n(&mut log, 3, 1);
        assert_eq!(
            names(&log),
            vec!["log.1.0".to_string(), format!("log.2.{end}")]
        );
    }

    #[test]
    fn missing_index_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        log.set_file_size_limit(1);
        write_n(&mut log, 1, 3);
        let paths = log.file_paths();
        assert_eq!(paths.len(), 3);
        drop(log);
        fs::remove_file(&paths[1]).unwrap();
        assert!(matches!(
            MutationLog::open(dir.path(), 1, 3, 0, 0),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn valid_start_offset_filters_and_reset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        write_n(&mut log, 1, 3);
        let vso = log.reset(10).unwrap();
        assert_eq!(vso, log.end_offset());
        assert_eq!(log.max_decree(), 10);
        let after = write_n(&mut log, 11, 2);
        assert_eq!(log.file_paths().len(), 2, "reset starts a new file");
        let h = log.files().nth(1).unwrap().header.clone();
        assert_eq!(h.entries, vec![(1, 3, 10, vso)]);
        drop(log);

        let (log, r) = open(dir.path(), vso, 0);
        assert_eq!(r.mutations, after);
        assert_eq!(log.max_decree(), 12);
        assert_eq!(log.valid_start_offset(), vso);
        // The reset point is the start of the second file, so skipping to decree 10 replays
        // only it and gives the same result.
        drop(log);
        let (_, r) = open(dir.path(), vso, 10);
        assert_eq!(r.mutations, after);
        // Without filtering, everything is there.
        let (_, r) = open(dir.path(), 0, 0);
        assert_eq!(r.mutations.len(), 5);
    }

    #[test]
    fn skip_leading_files_by_decree() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        log.set_file_size_limit(1);
        let written = write_n(&mut log, 1, 4); // one mutation per file
        drop(log);
        // Headers hold max decrees 0,1,2,3: skip_to 2 begins at file 3 (decrees 3, 4).
        let (log, r) = open(dir.path(), 0, 2);
        assert_eq!(r.mutations, written[2..].to_vec());
        assert_eq!(
            log.file_paths().len(),
            4,
            "skipped files are still known for gc"
        );
    }

    #[test]
    fn gc_deletes_only_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        log.set_reserve(0, 0);
        log.set_file_size_limit(1);
        write_n(&mut log, 1, 5); // files 1..5 hold decrees 1..5
        assert_eq!(log.gc(0).unwrap(), 0);
        assert_eq!(log.gc(2).unwrap(), 2);
        let n = names(&log);
        assert_eq!(n.len(), 3);
        assert!(n[0].starts_with("log.3."));
        assert!(!log.dir().join("log.1.0").exists());
        assert_eq!(log.start_offset(), log.files().next().unwrap().start_offset);
        // Never the current file.
        assert_eq!(log.gc(100).unwrap(), 2);
        assert_eq!(log.file_paths().len(), 1);
        assert_eq!(log.gc(100).unwrap(), 0);
        let cur = log.end_offset();
        drop(log);
        let (log, r) = open(dir.path(), 0, 0);
        assert_eq!(r.mutations.len(), 1);
        assert_eq!(r.mutations[0].decree, 5);
        assert_eq!(log.end_offset(), cur);

        // The reserve window keeps fresh files.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        log.set_file_size_limit(1);
        write_n(&mut log, 1, 3);
        assert_eq!(log.gc(100).unwrap(), 0);
    }

    #[test]
    fn one_mib_block_rule() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        let mut ms: Vec<Mutation> = (1..=5).map(|d| put(d, 400_000)).collect();
        log.append_batch(&mut ms, false).unwrap();
        let data = fs::read(dir.path().join("plog/log.1.0")).unwrap();
        let b = blocks(&data);
        // Block 1 exceeds 1 MiB after three mutations; the fourth opens block 2.
        assert_eq!(b.len(), 3);
        let per = ms[0].encoded_len();
        assert_eq!(b[1].2.len(), 3 * per);
        assert_eq!(b[2].2.len(), 2 * per);
        assert_eq!(ms[3].log_offset, (60 + 16 + 3 * per + 16) as i64);
        drop(log);
        let (_, r) = open(dir.path(), 0, 0);
        assert_eq!(r.mutations, ms);
    }

    #[test]
    fn learn_files_and_replay_files() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), 0, 0);
        log.set_file_size_limit(1);
        let written = write_n(&mut log, 1, 4);
        let (files, ok) = log.learn_files(3);
        // Files 3 (header max 2) and 4 cover decrees >= 3.
        assert!(ok);
        assert_eq!(files.len(), 2);
        let r = MutationLog::replay_files(&files).unwrap();
        assert_eq!(r.mutations, written[2..].to_vec());
        assert_eq!(log.learn_files(9), (Vec::new(), false));
    }

    /// Checks our reader and writer against upstream's test plogs. Run with
    /// `PEGASUS_PLOG_FIXTURES=<dir holding log.1.0.*> cargo test --release --lib -- --ignored`.
    #[test]
    #[ignore]
    fn upstream_fixtures() {
        let Ok(src) = std::env::var("PEGASUS_PLOG_FIXTURES") else {
            return;
        };
        let mut checked = 0;
        for entry in fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            let original = fs::read(&path).unwrap();
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("plog")).unwrap();
            fs::write(dir.path().join("plog/log.1.0"), &original).unwrap();
            let (hdr, _) = LogFileHeader::decode(&original[16..]).unwrap();
            let (app, pidx, _, _) = hdr.entries[0];
            let (log, r) = MutationLog::open(dir.path(), app, pidx, 0, 0).unwrap();
            assert!(!r.mutations.is_empty());
            assert_eq!(r.end_offset, original.len() as i64, "{}", path.display());
            eprintln!(
                "{}: {} mutations, gpid {app}.{pidx}, end {}, torn {}",
                path.display(),
                r.mutations.len(),
                r.end_offset,
                r.torn_tail
            );
            drop(log);
            // Rewriting the same mutations, grouped into blocks as in the original (one
            // append_batch per block), reproduces the file byte for byte.
            let out = tempfile::tempdir().unwrap();
            let (mut log, _) = MutationLog::open(out.path(), app, pidx, 0, 0).unwrap();
            let mut rest = r.mutations.iter().cloned();
            for (_, _, body) in blocks(&original).iter().skip(1) {
                let n = crate::replica::mutation::decode_seq(body).unwrap().len();
                let mut group: Vec<Mutation> = rest.by_ref().take(n).collect();
                log.append_batch(&mut group, false).unwrap();
            }
            let ours = fs::read(out.path().join("plog/log.1.0")).unwrap();
            assert_eq!(ours, original, "{}", path.display());
            checked += 1;
        }
        assert!(checked > 0);
    }
}
