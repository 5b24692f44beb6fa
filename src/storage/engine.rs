//! The RocksDB database of one partition, laid out as upstream: the `default` column family
//! for records and `pegasus_meta_cf` for the meta keys, the `pegasus.HashkeyTransform` prefix
//! extractor, and the `KeyWithTTLCompactionFilter` that drops expired records.

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

fn base_cf_options() -> Options {
    let mut o = Options::default();
    let mut t = BlockBasedOptions::default();
    t.set_bloom_filter(10.0, false);
    t.set_format_version(2);
    o.set_block_based_table_factory(&t);
    o.set_num_levels(6);
    o.set_write_buffer_size(64 << 20);
    o.set_target_file_size_base(64 << 20);
    o.set_max_bytes_for_level_base(640 << 20);
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
        // The private mutation log is not written yet, so RocksDB's own WAL keeps acknowledged
        // writes durable until it is; upstream runs with the WAL off and replays its plog.
        WriteOptions::default()
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

    /// Runs a full manual compaction of the data column family.
    pub fn compact_all(&self) -> Result<()> {
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok(())
    }
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
}
