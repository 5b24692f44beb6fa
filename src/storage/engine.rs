//! The RocksDB database of one partition, laid out as upstream: the `default` column family
//! for records and `pegasus_meta_cf` for the meta keys, the `pegasus.HashkeyTransform` prefix
//! extractor, and the `KeyWithTTLCompactionFilter` that drops expired records; checkpoints
//! (`checkpoint.<decree>` dirs), their GC, and installing a learned checkpoint.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

use rocksdb::compaction_filter::{CompactionFilter, Decision};
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options,
    ReadOptions, SliceTransform, WriteBatch, WriteOptions, DB,
};

use crate::base::{key_schema, value_schema};

pub const META_CF: &str = "pegasus_meta_cf";
pub const DATA_VERSION_KEY: &str = "pegasus_data_version";
pub const LAST_FLUSHED_DECREE_KEY: &str = "pegasus_last_flushed_decree";
pub const LAST_MANUAL_COMPACT_FINISH_TIME_KEY: &str = "pegasus_last_manual_compact_finish_time";
/// Highest data version this server reads and writes.
pub const DATA_VERSION_MAX: u32 = 1;

/// A storage failure, mapped once here from RocksDB statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    /// The RocksDB status code put into RRDB `error` fields.
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage error {}: {}", self.code, self.message)
    }
}

impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> Self {
        use rocksdb::ErrorKind::*;
        let code = match e.kind() {
            NotFound => 1,
            Corruption => 2,
            NotSupported => 3,
            InvalidArgument => 4,
            IOError => 5,
            MergeInProgress => 6,
            Incomplete => 7,
            ShutdownInProgress => 8,
            TimedOut => 9,
            Aborted => 10,
            Busy => 11,
            Expired => 12,
            TryAgain => 13,
            CompactionTooLarge => 14,
            ColumnFamilyDropped => 15,
            _ => 5,
        };
        StorageError {
            code,
            message: e.into_string(),
        }
    }
}

fn corrupt(msg: impl Into<String>) -> StorageError {
    StorageError {
        code: 2,
        message: msg.into(),
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// One change inside the write batch of a decree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

/// Settings shared with the compaction filter, updated from app envs.
#[derive(Debug, Default)]
pub struct TtlSettings {
    pub default_ttl: AtomicU32,
    pub partition_version: AtomicI64,
    pub partition_index: AtomicI64,
    pub validate_partition_hash: std::sync::atomic::AtomicBool,
    /// `rocksdb.checkpoint.reserve_min_count` / `reserve_time_seconds` of the table envs
    /// (0: the server's default).
    pub checkpoint_reserve_min_count: AtomicU32,
    pub checkpoint_reserve_time_seconds: AtomicU32,
    /// Whether the usage scenario's options were applied since the database opened (it
    /// opens with the base options).
    pub scenario_applied: std::sync::atomic::AtomicBool,
    /// `replica.slow_query_threshold` in ns (0: the default).
    pub slow_query_threshold_ns: std::sync::atomic::AtomicU64,
}

fn hashkey_transform(key: &[u8]) -> &[u8] {
    if key.len() < 2 {
        return key;
    }
    let len = u16::from_be_bytes([key[0], key[1]]) as usize;
    &key[..(2 + len).min(key.len())]
}

fn hashkey_in_domain(key: &[u8]) -> bool {
    key.len() >= 2
}

struct TtlFilterFactory {
    settings: Arc<TtlSettings>,
    name: CString,
}

struct TtlFilter {
    settings: Arc<TtlSettings>,
    now: u32,
    buf: Vec<u8>,
    name: CString,
}

impl CompactionFilter for TtlFilter {
    fn filter(&mut self, _level: u32, key: &[u8], value: &[u8]) -> Decision {
        if key.len() < 2 {
            return Decision::Keep;
        }
        let Some(expire) = value_schema::expire_ts(value) else {
            return Decision::Keep;
        };
        if value_schema::is_expired(expire, self.now) {
            return Decision::Remove;
        }
        if self
            .settings
            .validate_partition_hash
            .load(Ordering::Relaxed)
        {
            let pv = self.settings.partition_version.load(Ordering::Relaxed) as i32;
            let pidx = self.settings.partition_index.load(Ordering::Relaxed) as i32;
            if let Some(h) = key_schema::hash_full_key(key) {
                if !key_schema::check_partition_hash(h, pv, pidx) {
                    return Decision::Remove;
                }
            }
        }
        let default_ttl = self.settings.default_ttl.load(Ordering::Relaxed);
        if default_ttl != 0 && expire == 0 {
            self.buf.clear();
            self.buf.extend_from_slice(value);
            let new_expire = self.now.saturating_add(default_ttl);
            self.buf[..4].copy_from_slice(&new_expire.to_be_bytes());
            // SAFETY: RocksDB copies the new value before it calls the filter again, and the
            // buffer lives as long as this filter; the 'static lifetime is never relied upon
            // past that copy.
            let v: &'static [u8] =
                unsafe { std::mem::transmute::<&[u8], &'static [u8]>(&self.buf) };
            return Decision::Change(v);
        }
        Decision::Keep
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

impl CompactionFilterFactory for TtlFilterFactory {
    type Filter = TtlFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> TtlFilter {
        TtlFilter {
            settings: self.settings.clone(),
            now: value_schema::epoch_now(),
            buf: Vec::new(),
            name: CString::new("KeyWithTTLCompactionFilter").unwrap_or_default(),
        }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

/// The open database of one partition.
pub struct PegasusDb {
    db: DB,
    path: PathBuf,
    data_version: u32,
    last_committed: AtomicI64,
    pub settings: Arc<TtlSettings>,
}

/// The meta key of the usage scenario.
const USAGE_SCENARIO_KEY: &str = "rocksdb.usage_scenario";
const BASE_WRITE_BUFFER: u64 = 64 << 20;
const BASE_TARGET_FILE_SIZE: u64 = 64 << 20;
const BASE_MAX_BYTES_FOR_LEVEL_BASE: u64 = 640 << 20;
const BASE_L0_TRIGGER: u64 = 4;

fn base_cf_options() -> Options {
    let mut o = Options::default();
    let mut t = BlockBasedOptions::default();
    t.set_bloom_filter(10.0, false);
    t.set_format_version(2);
    o.set_block_based_table_factory(&t);
    o.set_num_levels(6);
    o.set_write_buffer_size(BASE_WRITE_BUFFER as usize);
    o.set_target_file_size_base(BASE_TARGET_FILE_SIZE);
    o.set_max_bytes_for_level_base(BASE_MAX_BYTES_FOR_LEVEL_BASE);
    o
}

impl PegasusDb {
    /// Opens (creating if needed) the database at `rdb_dir`.
    pub fn open(rdb_dir: &Path, settings: Arc<TtlSettings>) -> Result<PegasusDb> {
        let exists = rdb_dir.join("CURRENT").exists();
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_atomic_flush(true);

        let mut data = base_cf_options();
        let levels = vec![
            DBCompressionType::None,
            DBCompressionType::None,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
        ];
        data.set_compression_per_level(&levels);
        data.set_level_zero_file_num_compaction_trigger(4);
        let mut meta = base_cf_options();
        meta.set_compression_type(DBCompressionType::None);
        meta.set_level_zero_file_num_compaction_trigger(10);
        data.set_prefix_extractor(SliceTransform::create(
            "pegasus.HashkeyTransform",
            hashkey_transform,
            Some(hashkey_in_domain),
        ));
        data.set_memtable_prefix_bloom_ratio(0.1);
        data.set_compaction_filter_factory(TtlFilterFactory {
            settings: settings.clone(),
            name: CString::new("KeyWithTTLCompactionFilterFactory").unwrap_or_default(),
        });

        if exists {
            let cfs = DB::list_cf(&db_opts, rdb_dir)?;
            if !cfs.iter().any(|c| c == META_CF) {
                return Err(corrupt(
                    "database has no pegasus_meta_cf (upgrade through 2.1+)",
                ));
            }
            if let Some(other) = cfs.iter().find(|c| *c != "default" && *c != META_CF) {
                return Err(corrupt(format!("unexpected column family {other}")));
            }
        }
        let db = DB::open_cf_descriptors(
            &db_opts,
            rdb_dir,
            vec![
                ColumnFamilyDescriptor::new("default", data),
                ColumnFamilyDescriptor::new(META_CF, meta),
            ],
        )?;
        let mut this = PegasusDb {
            db,
            path: rdb_dir.to_path_buf(),
            data_version: DATA_VERSION_MAX,
            last_committed: AtomicI64::new(0),
            settings,
        };
        if exists {
            let version = this.read_meta_u64(DATA_VERSION_KEY)?;
            let flushed = this.read_meta_u64(LAST_FLUSHED_DECREE_KEY)?;
            this.read_meta_u64(LAST_MANUAL_COMPACT_FINISH_TIME_KEY)?;
            if version > DATA_VERSION_MAX as u64 {
                return Err(corrupt(format!("data version {version} is not supported")));
            }
            this.data_version = version as u32;
            this.last_committed.store(flushed as i64, Ordering::SeqCst);
        } else {
            let cf = this.meta_cf()?;
            let mut wb = WriteBatch::default();
            wb.put_cf(cf, DATA_VERSION_KEY, DATA_VERSION_MAX.to_string());
            wb.put_cf(cf, LAST_FLUSHED_DECREE_KEY, "0");
            wb.put_cf(cf, LAST_MANUAL_COMPACT_FINISH_TIME_KEY, "0");
            this.db.write_opt(wb, &this.write_options())?;
            this.flush()?;
        }
        Ok(this)
    }

    fn write_options(&self) -> WriteOptions {
        // The private mutation log is the write-ahead log: after a crash the database is at
        // its last flush and the log is replayed from there, as upstream.
        let mut w = WriteOptions::default();
        w.disable_wal(true);
        w
    }

    fn meta_cf(&self) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(META_CF)
            .ok_or_else(|| corrupt("meta column family missing"))
    }

    fn read_meta_u64(&self, key: &str) -> Result<u64> {
        let cf = self.meta_cf()?;
        let v = self
            .db
            .get_cf(cf, key)?
            .ok_or_else(|| corrupt(format!("meta key {key} missing")))?;
        std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| corrupt(format!("meta key {key} is not a number")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn data_version(&self) -> u32 {
        self.data_version
    }

    /// The last decree applied to this database.
    pub fn last_committed_decree(&self) -> i64 {
        self.last_committed.load(Ordering::SeqCst)
    }

    /// The decree persisted in flushed SST files (what survives a crash without a log).
    pub fn last_flushed_decree(&self) -> Result<i64> {
        let cf = self.meta_cf()?;
        let mut ro = ReadOptions::default();
        ro.set_read_tier(rocksdb::ReadTier::Persisted);
        match self.db.get_cf_opt(cf, LAST_FLUSHED_DECREE_KEY, &ro)? {
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| corrupt("bad last flushed decree")),
            None => Ok(0),
        }
    }

    /// Applies the changes of one decree as one atomic batch, together with the decree. An
    /// empty change list writes the "empty put" record so the decree still advances.
    pub fn apply(&self, decree: i64, ops: &[WriteOp], timetag: u64) -> Result<()> {
        let mut wb = WriteBatch::default();
        if ops.is_empty() {
            let ttl = self.settings.default_ttl.load(Ordering::Relaxed);
            let expire = if ttl != 0 {
                value_schema::epoch_now().saturating_add(ttl)
            } else {
                0
            };
            wb.put(
                b"",
                value_schema::encode(self.data_version, expire, timetag, b""),
            );
        }
        for op in ops {
            match op {
                WriteOp::Put { key, value } => wb.put(key, value),
                WriteOp::Delete { key } => wb.delete(key),
            }
        }
        wb.put_cf(self.meta_cf()?, LAST_FLUSHED_DECREE_KEY, decree.to_string());
        self.db.write_opt(wb, &self.write_options())?;
        self.last_committed.store(decree, Ordering::SeqCst);
        Ok(())
    }

    /// Encodes a user value in this database's data version.
    pub fn encode_value(&self, expire_ts: u32, timetag: u64, user_data: &[u8]) -> Vec<u8> {
        value_schema::encode(self.data_version, expire_ts, timetag, user_data)
    }

    /// Reads a raw stored value.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?)
    }

    /// Reads a record; `None` when absent or expired at `now`. Returns (expire_ts, user data).
    pub fn get_live(&self, key: &[u8], now: u32) -> Result<Option<(u32, Vec<u8>)>> {
        let Some(raw) = self.get_raw(key)? else {
            return Ok(None);
        };
        let v = value_schema::decode(self.data_version, &raw)
            .ok_or_else(|| corrupt("stored value shorter than its header"))?;
        if value_schema::is_expired(v.expire_ts, now) {
            return Ok(None);
        }
        Ok(Some((v.expire_ts, v.user_data.to_vec())))
    }

    /// Iterates raw records from `start` (inclusive) forwards, or from just before `start`
    /// backwards when `reverse`; `upper` bounds forward iteration (exclusive).
    pub fn iter_from(
        &self,
        start: &[u8],
        upper: Option<&[u8]>,
        reverse: bool,
    ) -> rocksdb::DBIterator<'_> {
        let mut ro = ReadOptions::default();
        ro.set_total_order_seek(true);
        if let Some(u) = upper {
            if !reverse {
                ro.set_iterate_upper_bound(u.to_vec());
            }
        }
        let mode = if reverse {
            IteratorMode::From(start, Direction::Reverse)
        } else {
            IteratorMode::From(start, Direction::Forward)
        };
        self.db.iterator_opt(mode, ro)
    }

    /// An integer property of the data column family (e.g. `rocksdb.estimate-num-keys`).
    pub fn int_property(&self, name: &str) -> Option<u64> {
        let cf = self.db.cf_handle("default")?;
        self.db.property_int_value_cf(cf, name).ok().flatten()
    }

    /// The live SST files of the data column family: (count, total bytes).
    pub fn sst_files(&self) -> (i64, i64) {
        let Ok(files) = self.db.live_files() else {
            return (0, 0);
        };
        files
            .iter()
            .filter(|f| f.column_family_name == "default")
            .fold((0, 0), |(n, b), f| (n + 1, b + f.size as i64))
    }

    /// Flushes both column families together.
    pub fn flush(&self) -> Result<()> {
        let data = self
            .db
            .cf_handle("default")
            .ok_or_else(|| corrupt("default column family missing"))?;
        let meta = self.meta_cf()?;
        let mut fo = rocksdb::FlushOptions::default();
        fo.set_wait(true);
        self.db.flush_cfs_opt(&[data, meta], &fo)?;
        Ok(())
    }

    /// The finish time of the last manual compaction (Unix ms; 0 when never).
    pub fn last_manual_compact_finish_ms(&self) -> i64 {
        self.read_meta_u64(LAST_MANUAL_COMPACT_FINISH_TIME_KEY)
            .map(|v| v as i64)
            .unwrap_or(0)
    }

    /// A manual compaction as upstream runs it: flush, compact the whole data column family
    /// (exclusive; to `target_level` when it is a valid level, moving the result there;
    /// bottommost level rewritten only when forced), then record and flush the finish time.
    /// Returns the finish time (Unix ms).
    pub fn manual_compact(&self, target_level: i32, bottommost_force: bool) -> Result<i64> {
        self.flush()?;
        let data = self
            .db
            .cf_handle("default")
            .ok_or_else(|| corrupt("default column family missing"))?;
        let mut co = rocksdb::CompactOptions::default();
        co.set_exclusive_manual_compaction(true);
        co.set_change_level(true);
        // A level of the data column family (num_levels 6); other values fall back to -1, as
        // upstream's do.
        let level = if target_level == -1 || (1..6).contains(&target_level) {
            target_level
        } else {
            -1
        };
        co.set_target_level(level);
        co.set_bottommost_level_compaction(if bottommost_force {
            rocksdb::BottommostLevelCompaction::Force
        } else {
            rocksdb::BottommostLevelCompaction::Skip
        });
        self.db
            .compact_range_cf_opt::<&[u8], &[u8]>(data, None, None, &co);
        let finish = (crate::base::value_schema::now_us() / 1000) as i64;
        let cf = self.meta_cf()?;
        self.db.put_cf_opt(
            cf,
            LAST_MANUAL_COMPACT_FINISH_TIME_KEY,
            finish.to_string(),
            &self.write_options(),
        )?;
        self.flush()?;
        Ok(finish)
    }

    /// The usage scenario the database was last set to (`rocksdb.usage_scenario` in the meta
    /// column family); `None` when never set.
    pub fn usage_scenario(&self) -> Option<String> {
        let cf = self.meta_cf().ok()?;
        let v = self.db.get_cf(cf, USAGE_SCENARIO_KEY).ok()??;
        String::from_utf8(v).ok()
    }

    /// Switches the data column family to a usage scenario as upstream does, at run time:
    /// `normal` (write buffer near the base size), `prefer_write` (a larger write buffer and
    /// a level-0 trigger to match) or `bulk_load` (no automatic compaction, no write stalls,
    /// a write buffer about four times the base); every other option of the set goes back
    /// to its base value. The scenario is kept in the meta column family.
    pub fn set_usage_scenario(&self, scenario: &str) -> Result<()> {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let mut nearby = |x: u64| -> u64 { rng.gen_range(x * 3 / 4..=x * 5 / 4) };
        // The base values: what the data column family is opened with.
        let mut opts: BTreeMap<&str, String> = [
            (
                "level0_file_num_compaction_trigger",
                BASE_L0_TRIGGER.to_string(),
            ),
            ("level0_slowdown_writes_trigger", "20".to_string()),
            ("level0_stop_writes_trigger", "36".to_string()),
            (
                "soft_pending_compaction_bytes_limit",
                (64u64 << 30).to_string(),
            ),
            (
                "hard_pending_compaction_bytes_limit",
                (256u64 << 30).to_string(),
            ),
            ("disable_auto_compactions", "false".to_string()),
            (
                "max_compaction_bytes",
                (25 * BASE_TARGET_FILE_SIZE).to_string(),
            ),
            ("write_buffer_size", BASE_WRITE_BUFFER.to_string()),
            ("max_write_buffer_number", "2".to_string()),
        ]
        .into_iter()
        .collect();
        match scenario {
            "normal" => {
                opts.insert("write_buffer_size", nearby(BASE_WRITE_BUFFER).to_string());
            }
            "prefer_write" => {
                let wbs = rand::thread_rng().gen_range(BASE_WRITE_BUFFER..=2 * BASE_WRITE_BUFFER);
                let trigger = (nearby(BASE_MAX_BYTES_FOR_LEVEL_BASE) / wbs).max(BASE_L0_TRIGGER);
                opts.insert("write_buffer_size", wbs.to_string());
                opts.insert("level0_file_num_compaction_trigger", trigger.to_string());
            }
            "bulk_load" => {
                for k in [
                    "level0_file_num_compaction_trigger",
                    "level0_slowdown_writes_trigger",
                    "level0_stop_writes_trigger",
                ] {
                    opts.insert(k, "1000000000".to_string());
                }
                opts.insert("soft_pending_compaction_bytes_limit", "0".to_string());
                opts.insert("hard_pending_compaction_bytes_limit", "0".to_string());
                opts.insert("disable_auto_compactions", "true".to_string());
                opts.insert("max_compaction_bytes", (1u64 << 60).to_string());
                opts.insert(
                    "write_buffer_size",
                    nearby(4 * BASE_WRITE_BUFFER).to_string(),
                );
                opts.insert("max_write_buffer_number", "6".to_string());
            }
            other => return Err(corrupt(format!("invalid usage scenario: {other}"))),
        }
        let data = self
            .db
            .cf_handle("default")
            .ok_or_else(|| corrupt("default column family missing"))?;
        let pairs: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.db.set_options_cf(data, &pairs)?;
        let cf = self.meta_cf()?;
        self.db
            .put_cf_opt(cf, USAGE_SCENARIO_KEY, scenario, &self.write_options())?;
        Ok(())
    }

    /// Runs a full manual compaction of the data column family.
    pub fn compact_all(&self) -> Result<()> {
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok(())
    }

    /// Flushes both column families, then creates `<data_dir>/checkpoint.<decree>` with a
    /// RocksDB checkpoint (hard-linked SSTs, MANIFEST, CURRENT, OPTIONS, both CFs). It is built
    /// in `checkpoint.tmp.<us>` and renamed, replacing an existing dir of that name; the decree
    /// is the checkpoint's own `pegasus_last_flushed_decree`, which after the flush is the
    /// persisted last flushed decree. Returns (decree, dir).
    /// Makes a checkpoint of the database at `dir` (which must not exist); returns its
    /// decree. Cold backups take theirs this way, apart from the learners' ones.
    pub fn checkpoint_to(&self, dir: &Path) -> Result<i64> {
        self.flush()?;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| io_error(format!("create {}", parent.display()), e))?;
        }
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(StorageError::from)
            .and_then(|_| checkpoint_decree(dir))
    }

    pub fn checkpoint(&self, data_dir: &Path) -> Result<(i64, PathBuf)> {
        self.flush()?;
        std::fs::create_dir_all(data_dir)
            .map_err(|e| io_error(format!("create {}", data_dir.display()), e))?;
        let tmp = data_dir.join(format!("checkpoint.tmp.{}", now_us()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .map_err(|e| io_error(format!("remove {}", tmp.display()), e))?;
        }
        let made = rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(&tmp))
            .map_err(StorageError::from)
            .and_then(|_| checkpoint_decree(&tmp));
        let decree = match made {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let dir = data_dir.join(format!("checkpoint.{decree}"));
        if dir.is_dir() {
            // Same decree, same data: keep the one a learner may be copying right now.
            let _ = std::fs::remove_dir_all(&tmp);
            return Ok((decree, dir));
        }
        let renamed = std::fs::rename(&tmp, &dir);
        if let Err(e) = renamed {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(io_error(format!("rename to {}", dir.display()), e));
        }
        Ok((decree, dir))
    }

    /// Lists the checkpoint dirs of `data_dir` (names that round-trip as `checkpoint.<i64>`)
    /// as (decree, path), sorted by decree, and deletes every other entry whose name contains
    /// `checkpoint` (leftovers such as `checkpoint.tmp.*`). Meant for open time: it must not run
    /// concurrently with `checkpoint()`. A missing or unreadable dir lists as empty.
    pub fn list_checkpoints(data_dir: &Path) -> Vec<(i64, PathBuf)> {
        scan_checkpoints(data_dir, true)
    }

    /// The checkpoint dirs of `data_dir` as (decree, path), sorted by decree, touching
    /// nothing (safe while a checkpoint is being made).
    pub fn checkpoints(data_dir: &Path) -> Vec<(i64, PathBuf)> {
        scan_checkpoints(data_dir, false)
    }

    /// Keeps the newest `keep` checkpoints of `data_dir` (upstream `checkpoint_reserve_min_count`
    /// is 2) and any made less than `reserve` ago (upstream `checkpoint_reserve_time_seconds`,
    /// so a learner's copy of one is not cut short), and deletes the others. Leaves other
    /// entries alone.
    pub fn gc_checkpoints(
        data_dir: &Path,
        keep: usize,
        reserve: std::time::Duration,
    ) -> std::io::Result<()> {
        let all = scan_checkpoints(data_dir, false);
        let drop = all.len().saturating_sub(keep);
        let now = std::time::SystemTime::now();
        for (_, path) in &all[..drop] {
            let young = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map(|t| {
                    now.duration_since(t)
                        .map(|age| age < reserve)
                        .unwrap_or(true)
                })
                .unwrap_or(false);
            if !young {
                std::fs::remove_dir_all(path)?;
            }
        }
        Ok(())
    }

    /// Every regular file under `dir`, recursively (symlinks are not followed), as
    /// '/'-separated paths relative to `dir`, sorted.
    pub fn list_files_recursive(dir: &Path) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![(dir.to_path_buf(), String::new())];
        while let Some((abs, rel)) = stack.pop() {
            for entry in std::fs::read_dir(&abs)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let ft = entry.file_type()?;
                if ft.is_dir() {
                    stack.push((entry.path(), child));
                } else if ft.is_file() {
                    out.push(child);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn now_us() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

fn io_error(what: String, e: std::io::Error) -> StorageError {
    StorageError {
        code: 5,
        message: format!("{what}: {e}"),
    }
}

fn scan_checkpoints(data_dir: &Path, clean: bool) -> Vec<(i64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let decree = name
            .strip_prefix("checkpoint.")
            .and_then(|d| d.parse::<i64>().ok())
            .filter(|d| format!("checkpoint.{d}") == name);
        match decree {
            Some(d) if is_dir => out.push((d, path)),
            _ if clean && name.contains("checkpoint") => {
                let removed = if is_dir {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                match removed {
                    Ok(()) => log::info!("removed checkpoint leftover {}", path.display()),
                    Err(e) => log::warn!("removing {} failed: {e}", path.display()),
                }
            }
            _ => {}
        }
    }
    out.sort();
    out
}

/// Reads `pegasus_last_flushed_decree` of the database (or checkpoint) at `dir`, opened
/// read-only with both column families.
pub fn checkpoint_decree(dir: &Path) -> Result<i64> {
    let db = DB::open_cf_for_read_only(&Options::default(), dir, ["default", META_CF], false)?;
    let cf = db
        .cf_handle(META_CF)
        .ok_or_else(|| corrupt(format!("{}: meta column family missing", dir.display())))?;
    let v = db
        .get_cf(cf, LAST_FLUSHED_DECREE_KEY)?
        .ok_or_else(|| corrupt(format!("{}: last flushed decree missing", dir.display())))?;
    std::str::from_utf8(&v)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| corrupt(format!("{}: bad last flushed decree", dir.display())))
}

/// Installs a learned checkpoint (a complete database directory) as `<data_dir>/rdb`: the old
/// `rdb`, if any, is moved aside to `rdb.<us>.discarded`, `learned` is renamed to `rdb` (same
/// filesystem), then the discarded dir is deleted. On a failed rename the old `rdb` is put
/// back. The database must be closed by the caller; other checkpoints are left alone.
pub fn install_checkpoint(data_dir: &Path, learned: &Path) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    if !learned.join("CURRENT").is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} is not a database (no CURRENT)", learned.display()),
        ));
    }
    std::fs::create_dir_all(data_dir)?;
    let rdb = data_dir.join("rdb");
    let discarded = if rdb.exists() {
        let aside = data_dir.join(format!("rdb.{}.discarded", now_us()));
        std::fs::rename(&rdb, &aside)?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(learned, &rdb) {
        if let Some(aside) = &discarded {
            let _ = std::fs::rename(aside, &rdb);
        }
        return Err(Error::new(
            e.kind(),
            format!("rename {} to {}: {e}", learned.display(), rdb.display()),
        ));
    }
    if let Some(aside) = discarded {
        if let Err(e) = std::fs::remove_dir_all(&aside) {
            log::warn!("removing {} failed: {e}", aside.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> PegasusDb {
        PegasusDb::open(dir, Arc::new(TtlSettings::default())).unwrap()
    }

    #[test]
    fn create_reopen_keeps_meta_and_data() {
        let tmp = tempfile::tempdir().unwrap();
        let rdb = tmp.path().join("rdb");
        {
            let db = open(&rdb);
            assert_eq!(db.data_version(), 1);
            assert_eq!(db.last_committed_decree(), 0);
            let k = key_schema::encode(b"h", b"s").unwrap();
            let v = db.encode_value(0, 1, b"value");
            db.apply(1, &[WriteOp::Put { key: k, value: v }], 1)
                .unwrap();
            db.apply(2, &[], 0).unwrap();
            db.flush().unwrap();
            assert_eq!(db.last_flushed_decree().unwrap(), 2);
        }
        let db = open(&rdb);
        assert_eq!(db.last_committed_decree(), 2);
        let k = key_schema::encode(b"h", b"s").unwrap();
        let (exp, data) = db.get_live(&k, value_schema::epoch_now()).unwrap().unwrap();
        assert_eq!((exp, data.as_slice()), (0, &b"value"[..]));
        // The empty put record is stored under the empty key.
        assert!(db.get_raw(b"").unwrap().is_some());
    }

    #[test]
    fn usage_scenarios_change_the_live_options_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        assert_eq!(db.usage_scenario(), None);
        let latest_options = || {
            let mut files: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("OPTIONS-")
                })
                .collect();
            files.sort();
            std::fs::read_to_string(files.last().unwrap()).unwrap()
        };
        db.set_usage_scenario("bulk_load").unwrap();
        assert_eq!(db.usage_scenario().as_deref(), Some("bulk_load"));
        let o = latest_options();
        assert!(o.contains("disable_auto_compactions=true"), "{o}");
        assert!(o.contains("level0_stop_writes_trigger=1000000000"));
        db.set_usage_scenario("normal").unwrap();
        let o = latest_options();
        assert!(o.contains("disable_auto_compactions=false"));
        assert!(o.contains("level0_file_num_compaction_trigger=4"));
        db.set_usage_scenario("prefer_write").unwrap();
        assert_eq!(db.usage_scenario().as_deref(), Some("prefer_write"));
        assert!(db.set_usage_scenario("fast").is_err());
        assert_eq!(db.usage_scenario().as_deref(), Some("prefer_write"));
    }

    #[test]
    fn manual_compaction_merges_files_and_records_its_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let rdb = tmp.path().join("rdb");
        let db = open(&rdb);
        assert_eq!(db.last_manual_compact_finish_ms(), 0);
        for d in 1..=3i64 {
            let k = key_schema::encode(b"h", format!("s{d}").as_bytes()).unwrap();
            let value = db.encode_value(0, 0, b"v");
            db.apply(d, &[WriteOp::Put { key: k, value }], 0).unwrap();
            db.flush().unwrap();
        }
        let data_files = |db: &PegasusDb| {
            db.db
                .live_files()
                .unwrap()
                .into_iter()
                .filter(|f| f.column_family_name == "default")
                .count()
        };
        assert_eq!(data_files(&db), 3);
        let before = (value_schema::now_us() / 1000) as i64;
        let finish = db.manual_compact(-1, true).unwrap();
        assert!(finish >= before);
        assert_eq!(data_files(&db), 1);
        assert_eq!(db.last_manual_compact_finish_ms(), finish);
        drop(db);
        // the finish time survives a reopen, and so does the data
        let db = open(&rdb);
        assert_eq!(db.last_manual_compact_finish_ms(), finish);
        let k = key_schema::encode(b"h", b"s2").unwrap();
        assert!(db.get_raw(&k).unwrap().is_some());
    }

    #[test]
    fn compaction_drops_expired_records() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(&tmp.path().join("rdb"));
        let now = value_schema::epoch_now();
        let live = key_schema::encode(b"h", b"live").unwrap();
        let dead = key_schema::encode(b"h", b"dead").unwrap();
        db.apply(
            1,
            &[
                WriteOp::Put {
                    key: live.clone(),
                    value: db.encode_value(now + 1000, 0, b"a"),
                },
                WriteOp::Put {
                    key: dead.clone(),
                    value: db.encode_value(now - 1, 0, b"b"),
                },
            ],
            0,
        )
        .unwrap();
        assert!(db.get_live(&dead, now).unwrap().is_none());
        assert!(db.get_raw(&dead).unwrap().is_some());
        db.flush().unwrap();
        db.compact_all().unwrap();
        assert!(db.get_raw(&dead).unwrap().is_none());
        assert!(db.get_raw(&live).unwrap().is_some());
    }

    #[test]
    fn compaction_applies_default_ttl() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(&tmp.path().join("rdb"));
        let k = key_schema::encode(b"h", b"k").unwrap();
        db.apply(
            1,
            &[WriteOp::Put {
                key: k.clone(),
                value: db.encode_value(0, 0, b"x"),
            }],
            0,
        )
        .unwrap();
        db.settings.default_ttl.store(100, Ordering::Relaxed);
        db.flush().unwrap();
        db.compact_all().unwrap();
        let (exp, data) = db.get_live(&k, value_schema::epoch_now()).unwrap().unwrap();
        assert!(exp > value_schema::epoch_now());
        assert_eq!(data, b"x");
    }

    #[test]
    fn refuses_db_without_meta_cf() {
        let tmp = tempfile::tempdir().unwrap();
        let rdb = tmp.path().join("rdb");
        {
            let mut o = Options::default();
            o.create_if_missing(true);
            let db = DB::open(&o, &rdb).unwrap();
            db.put(b"x", b"y").unwrap();
        }
        let err = PegasusDb::open(&rdb, Arc::new(TtlSettings::default()))
            .err()
            .unwrap();
        assert_eq!(err.code, 2);
    }

    fn put(db: &PegasusDb, decree: i64, hash: &[u8], value: &[u8]) {
        let k = key_schema::encode(hash, b"s").unwrap();
        let v = db.encode_value(0, 1, value);
        db.apply(decree, &[WriteOp::Put { key: k, value: v }], 1)
            .unwrap();
    }

    fn read(db: &PegasusDb, hash: &[u8]) -> Option<Vec<u8>> {
        let k = key_schema::encode(hash, b"s").unwrap();
        db.get_live(&k, value_schema::epoch_now())
            .unwrap()
            .map(|(_, d)| d)
    }

    #[test]
    fn checkpoint_holds_data_and_decree() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let db = open(&data.join("rdb"));
        put(&db, 1, b"a", b"one");
        put(&db, 2, b"b", b"two");
        let (decree, dir) = db.checkpoint(&data).unwrap();
        assert_eq!(decree, 2);
        assert_eq!(dir, data.join("checkpoint.2"));
        assert!(dir.join("CURRENT").is_file());
        assert_eq!(db.last_flushed_decree().unwrap(), 2);
        // Written after the checkpoint: not in it.
        put(&db, 3, b"c", b"three");
        assert_eq!(checkpoint_decree(&dir).unwrap(), 2);
        {
            let cp = open(&dir);
            assert_eq!(cp.last_committed_decree(), 2);
            assert_eq!(cp.last_flushed_decree().unwrap(), 2);
            assert_eq!(read(&cp, b"a").as_deref(), Some(&b"one"[..]));
            assert_eq!(read(&cp, b"b").as_deref(), Some(&b"two"[..]));
            assert_eq!(read(&cp, b"c"), None);
        }
        // A newer checkpoint; no temp dir is left behind.
        let (d2, dir2) = db.checkpoint(&data).unwrap();
        assert_eq!((d2, &dir2), (3, &data.join("checkpoint.3")));
        let names: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("tmp")), "{names:?}");
        // Again at the same decree: the dir is replaced.
        let again = db.checkpoint(&data).unwrap();
        assert_eq!(again, (3, data.join("checkpoint.3")));
        let files = PegasusDb::list_files_recursive(&again.1).unwrap();
        assert!(files.iter().any(|f| f == "CURRENT"), "{files:?}");
        assert!(
            files.iter().any(|f| f.starts_with("MANIFEST-")),
            "{files:?}"
        );
        assert!(files.iter().any(|f| f.ends_with(".sst")), "{files:?}");
    }

    #[test]
    fn list_and_gc_checkpoints() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        for d in [
            "checkpoint.5",
            "checkpoint.12",
            "checkpoint.7",
            "checkpoint.tmp.123",
            "rdb",
        ] {
            std::fs::create_dir_all(data.join(d)).unwrap();
        }
        std::fs::create_dir_all(data.join("checkpoint.007")).unwrap();
        let list = PegasusDb::list_checkpoints(data);
        let decrees: Vec<i64> = list.iter().map(|(d, _)| *d).collect();
        assert_eq!(decrees, vec![5, 7, 12]);
        assert_eq!(list[2].1, data.join("checkpoint.12"));
        assert!(!data.join("checkpoint.tmp.123").exists());
        assert!(!data.join("checkpoint.007").exists());
        assert!(data.join("rdb").exists());

        // all three were just made: a reserve time keeps them
        PegasusDb::gc_checkpoints(data, 1, std::time::Duration::from_secs(600)).unwrap();
        assert_eq!(PegasusDb::list_checkpoints(data).len(), 3);
        PegasusDb::gc_checkpoints(data, 2, std::time::Duration::ZERO).unwrap();
        let decrees: Vec<i64> = PegasusDb::list_checkpoints(data)
            .iter()
            .map(|(d, _)| *d)
            .collect();
        assert_eq!(decrees, vec![7, 12]);
        PegasusDb::gc_checkpoints(data, 5, std::time::Duration::ZERO).unwrap();
        assert_eq!(PegasusDb::list_checkpoints(data).len(), 2);
        assert!(PegasusDb::list_checkpoints(&data.join("absent")).is_empty());
    }

    #[test]
    fn install_learned_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let src_data = tmp.path().join("src");
        let learned;
        {
            let db = open(&src_data.join("rdb"));
            put(&db, 1, b"k", b"learned");
            put(&db, 9, b"k2", b"v2");
            learned = db.checkpoint(&src_data).unwrap().1;
        }
        // Copy it (as the NFS learner would) into a learn dir.
        let learn = tmp.path().join("dst/learn");
        for f in PegasusDb::list_files_recursive(&learned).unwrap() {
            let to = learn.join(&f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(learned.join(&f), to).unwrap();
        }
        let data = tmp.path().join("dst/data");
        {
            let old = open(&data.join("rdb"));
            put(&old, 1, b"old", b"x");
        }
        install_checkpoint(&data, &learn).unwrap();
        assert!(!learn.exists());
        let db = open(&data.join("rdb"));
        assert_eq!(db.last_committed_decree(), 9);
        assert_eq!(read(&db, b"k").as_deref(), Some(&b"learned"[..]));
        assert_eq!(read(&db, b"old"), None);
        let leftovers: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(leftovers, vec!["rdb".to_string()]);
        // Not a database: refused, nothing moved.
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(install_checkpoint(&data, &empty).is_err());
        assert!(data.join("rdb/CURRENT").is_file());
    }
}
