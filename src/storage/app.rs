//! The Pegasus storage application of one partition (upstream's `pegasus_server_impl` and
//! write service): turns RRDB requests into reads of, and write batches on, the partition's
//! RocksDB, with upstream's semantics, limits and rocksdb status codes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

/// Reads slower than this are logged when the table sets no `replica.slow_query_threshold`
/// (upstream's `rocksdb_slow_query_threshold_ns` default).
const DEFAULT_SLOW_QUERY_THRESHOLD_NS: u64 = 100_000_000;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::base::{key_schema, value_schema};
use crate::idl::dsn::Blob;
use crate::idl::rrdb::{
    BatchGetRequest, BatchGetResponse, CasCheckType, CheckAndMutateRequest, CheckAndMutateResponse,
    CheckAndSetRequest, CheckAndSetResponse, CountResponse, FilterType, FullData,
    GetScannerRequest, IncrRequest, IncrResponse, KeyValue, MultiGetRequest, MultiGetResponse,
    MultiPutRequest, MultiRemoveRequest, MultiRemoveResponse, MutateOperation, ReadResponse,
    ScanRequest, ScanResponse, TtlResponse, UpdateRequest, UpdateResponse,
};
use crate::rpc::error::rocksdb_status as rs;

use super::engine::{PegasusDb, Result, WriteOp};

/// Server-side caps on range reads (upstream `[pegasus.server]` defaults).
#[derive(Debug, Clone)]
pub struct RangeReadLimits {
    pub max_iteration_count: u32,
    pub multi_get_max_iteration_count: u32,
    pub multi_get_max_iteration_size: i64,
    pub iteration_time: Duration,
    pub scan_context_ttl: Duration,
}

impl Default for RangeReadLimits {
    fn default() -> Self {
        RangeReadLimits {
            max_iteration_count: 1000,
            multi_get_max_iteration_count: 3000,
            multi_get_max_iteration_size: 30 << 20,
            iteration_time: Duration::from_millis(30_000),
            scan_context_ttl: Duration::from_secs(300),
        }
    }
}

/// The context ids the clients reserve: completed and "not exist".
pub const SCAN_CONTEXT_ID_COMPLETED: i64 = -1;

/// A paused scan: where to resume and with which parameters.
struct ScanContext {
    next_key: Vec<u8>,
    stop: Vec<u8>,
    stop_inclusive: bool,
    hash_key_filter_type: i32,
    hash_key_filter_pattern: Vec<u8>,
    sort_key_filter_type: i32,
    sort_key_filter_pattern: Vec<u8>,
    batch_size: i32,
    no_value: bool,
    validate_partition_hash: bool,
    return_expire_ts: bool,
    only_return_count: bool,
    /// With a prefix seek (hash-key scans) iteration ends where the start hash key ends.
    prefix: Option<Vec<u8>>,
    last_used: Instant,
}

/// A write request of the RRDB service, decoded.
#[derive(Debug, Clone)]
pub enum WriteRequest {
    Put(UpdateRequest),
    MultiPut(MultiPutRequest),
    Remove(Blob),
    MultiRemove(MultiRemoveRequest),
    Incr(IncrRequest),
    CheckAndSet(CheckAndSetRequest),
    CheckAndMutate(CheckAndMutateRequest),
    /// Writes shipped by a duplication from another cluster.
    Duplicate(crate::idl::duplication_internal::DuplicateRequest),
}

/// The response to a write request.
#[derive(Debug, Clone)]
pub enum WriteResponse {
    Update(UpdateResponse),
    MultiRemove(MultiRemoveResponse),
    Incr(IncrResponse),
    CheckAndSet(CheckAndSetResponse),
    CheckAndMutate(CheckAndMutateResponse),
    Duplicate(crate::idl::duplication_internal::DuplicateResponse),
}

impl WriteResponse {
    /// The RocksDB status code of the response.
    pub fn error(&self) -> i32 {
        match self {
            WriteResponse::Update(u) => u.error,
            WriteResponse::MultiRemove(u) => u.error,
            WriteResponse::Incr(u) => u.error,
            WriteResponse::CheckAndSet(u) => u.error,
            WriteResponse::CheckAndMutate(u) => u.error,
            WriteResponse::Duplicate(u) => u.error,
        }
        .unwrap_or(0)
    }

    /// Whether the storage itself failed (upstream's apply errors that fail the replica:
    /// corruption and I/O errors such as a full disk), as opposed to a refused request.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self.error(), rs::CORRUPTION | rs::IO_ERROR)
    }
}

/// Why a write request's keys cannot be stored, if they cannot (upstream's server aborts on
/// these; ours refuses them before they are logged): a raw key too short for its 2-byte
/// hash-key length or shorter than that length says; a raw key whose hash differs from the
/// partition hash the client sent (a hash key over 65535 bytes whose length wrapped); a hash
/// key longer than the key schema holds.
pub fn write_key_error(req: &WriteRequest, partition_hash: u64) -> Option<&'static str> {
    let raw = |k: &[u8]| -> Option<&'static str> {
        match key_schema::hash_full_key(k) {
            None => Some("malformed key"),
            Some(h) if partition_hash != 0 && h != partition_hash => {
                Some("key does not hash to the partition hash sent with it")
            }
            Some(_) => None,
        }
    };
    let hash_key = |k: &Option<Blob>| -> Option<&'static str> {
        (bytes(k).len() > key_schema::MAX_HASH_KEY_LEN)
            .then_some("hash key longer than 65534 bytes")
    };
    match req {
        WriteRequest::Put(u) => raw(bytes(&u.key)),
        WriteRequest::Remove(k) => raw(&k.0),
        WriteRequest::Incr(r) => raw(bytes(&r.key)),
        WriteRequest::MultiPut(r) => hash_key(&r.hash_key),
        WriteRequest::MultiRemove(r) => hash_key(&r.hash_key),
        WriteRequest::CheckAndSet(r) => hash_key(&r.hash_key),
        WriteRequest::CheckAndMutate(r) => hash_key(&r.hash_key),
        WriteRequest::Duplicate(_) => None,
    }
}

fn bytes(b: &Option<Blob>) -> &[u8] {
    b.as_ref().map(|b| b.0.as_slice()).unwrap_or(&[])
}

fn blob(v: impl Into<Vec<u8>>) -> Option<Blob> {
    Some(Blob(v.into()))
}

fn full_key(hash_key: &[u8], sort_key: &[u8]) -> Vec<u8> {
    // Hash keys longer than the u16 prefix are refused by clients; keep the key well-formed
    // by truncating defensively rather than aborting.
    let hk = &hash_key[..hash_key.len().min(key_schema::MAX_HASH_KEY_LEN)];
    key_schema::encode(hk, sort_key).unwrap_or_default()
}

fn filter_supported(t: i32) -> bool {
    (0..=3).contains(&t)
}

/// Upstream's filter match: empty pattern matches; otherwise anywhere / prefix / postfix.
fn filter_match(t: i32, pattern: &[u8], value: &[u8]) -> bool {
    if t == FilterType::FT_NO_FILTER.0 || pattern.is_empty() {
        return true;
    }
    if value.len() < pattern.len() {
        return false;
    }
    match t {
        1 => value.windows(pattern.len()).any(|w| w == pattern),
        2 => value.starts_with(pattern),
        3 => value.ends_with(pattern),
        _ => false,
    }
}

/// Parses a decimal i64 as upstream's buf2int64 does (optional sign, digits only).
fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.trim() != s {
        return None;
    }
    s.parse::<i64>().ok()
}

/// Evaluates a check of check_and_set / check_and_mutate: (passed, invalid_argument).
fn validate_check(check_type: i32, operand: &[u8], exist: bool, value: &[u8]) -> (bool, bool) {
    match check_type {
        0 => (true, false),
        1 => (!exist, false),
        2 => (!exist || value.is_empty(), false),
        3 => (exist, false),
        4 => (exist && !value.is_empty(), false),
        5..=7 => {
            if !exist {
                return (false, false);
            }
            let t = check_type - 4; // 1 anywhere, 2 prefix, 3 postfix
            (filter_match(t, operand, value), false)
        }
        8..=12 => {
            if !exist {
                return (false, false);
            }
            let passed = match value.cmp(operand) {
                std::cmp::Ordering::Less => check_type <= 9,
                std::cmp::Ordering::Greater => check_type >= 11,
                std::cmp::Ordering::Equal => (9..=11).contains(&check_type),
            };
            (passed, false)
        }
        13..=17 => {
            if !exist {
                return (false, false);
            }
            let (Some(v), Some(o)) = (parse_i64(value), parse_i64(operand)) else {
                return (false, true);
            };
            let passed = match v.cmp(&o) {
                std::cmp::Ordering::Less => check_type <= 14,
                std::cmp::Ordering::Greater => check_type >= 16,
                std::cmp::Ordering::Equal => (14..=16).contains(&check_type),
            };
            (passed, false)
        }
        _ => (false, true),
    }
}

/// check_and_mutate answers with the same fields as check_and_set.
fn mutate_response(r: CheckAndSetResponse) -> CheckAndMutateResponse {
    CheckAndMutateResponse {
        error: r.error,
        check_value_returned: r.check_value_returned,
        check_value_exist: r.check_value_exist,
        check_value: r.check_value,
        app_id: r.app_id,
        partition_index: r.partition_index,
        decree: r.decree,
        server: r.server,
    }
}

fn check_type_supported(t: i32) -> bool {
    (CasCheckType::CT_NO_CHECK.0..=CasCheckType::CT_VALUE_INT_GREATER.0).contains(&t)
}

/// Outcome of examining one record during a range read.
enum RecordState {
    Normal,
    Expired,
    Filtered,
    HashInvalid,
}

/// The storage application of one partition.
pub struct PartitionApp {
    pub db: PegasusDb,
    /// Manual compaction driven by the table envs.
    pub compact: super::manual_compact::ManualCompactState,
    app_id: i32,
    partition_index: i32,
    server: String,
    limits: RangeReadLimits,
    scanners: Mutex<HashMap<i64, ScanContext>>,
    next_context_id: AtomicI64,
    cluster_id: u8,
}

impl PartitionApp {
    pub fn new(db: PegasusDb, app_id: i32, partition_index: i32, server: String) -> Self {
        let compact =
            super::manual_compact::ManualCompactState::new(db.last_manual_compact_finish_ms());
        PartitionApp {
            db,
            compact,
            app_id,
            partition_index,
            server,
            limits: RangeReadLimits::default(),
            scanners: Mutex::new(HashMap::new()),
            next_context_id: AtomicI64::new(rand::random::<u32>() as i64 & 0x7FFF_FFFF),
            cluster_id: crate::base::dup_common::get().current_id_or_default(),
        }
    }

    pub fn app_id(&self) -> i32 {
        self.app_id
    }

    pub fn partition_index(&self) -> i32 {
        self.partition_index
    }

    fn put_op(&self, key: Vec<u8>, user_value: &[u8], expire_ts: i32, timetag: u64) -> WriteOp {
        let mut expire = expire_ts.max(0) as u32;
        let default_ttl = self.db.settings.default_ttl.load(Ordering::Relaxed);
        if expire == 0 && default_ttl != 0 {
            expire = value_schema::epoch_now().saturating_add(default_ttl);
        }
        WriteOp::Put {
            key,
            value: self.db.encode_value(expire, timetag, user_value),
        }
    }

    /// Reads the live user value of a key for a read-modify-write: (exists, expire_ts, value).
    fn get_for_update(&self, key: &[u8]) -> Result<Option<(u32, Vec<u8>)>> {
        self.db.get_live(key, value_schema::epoch_now())
    }

    fn update_response(&self, decree: i64, error: i32) -> UpdateResponse {
        UpdateResponse {
            error: Some(error),
            app_id: Some(self.app_id),
            partition_index: Some(self.partition_index),
            decree: Some(decree),
            server: Some(self.server.clone()),
        }
    }

    /// Applies one write at `decree`: computes its batch (reading current values for atomic
    /// operations), writes it together with the decree, and builds the response. Requests
    /// that change nothing still write the empty record so the decree advances.
    pub fn apply_write(&self, decree: i64, req: &WriteRequest, timestamp_us: u64) -> WriteResponse {
        let timetag = value_schema::timetag(timestamp_us, self.cluster_id, false);
        let result = self.write_inner(decree, req, timetag);
        match result {
            Ok(r) => r,
            Err(e) => {
                log::error!(
                    "{}.{}: write at decree {decree} failed: {e}",
                    self.app_id,
                    self.partition_index
                );
                self.error_write_response(decree, req, e.code)
            }
        }
    }

    /// Applies the writes of one decree. Single puts and removes (what a primary batches
    /// into one mutation) go into one RocksDB batch with the decree, as upstream's batched
    /// write path does; any other mix is applied one write at a time at the same decree.
    pub fn apply_writes(
        &self,
        decree: i64,
        reqs: &[&WriteRequest],
        timestamp_us: u64,
    ) -> Vec<WriteResponse> {
        let one_by_one = || {
            reqs.iter()
                .map(|r| self.apply_write(decree, r, timestamp_us))
                .collect()
        };
        if reqs.len() <= 1 {
            return one_by_one();
        }
        let timetag = value_schema::timetag(timestamp_us, self.cluster_id, false);
        let mut ops = Vec::with_capacity(reqs.len());
        for r in reqs {
            ops.push(match r {
                WriteRequest::Put(u) => self.put_op(
                    bytes(&u.key).to_vec(),
                    bytes(&u.value),
                    u.expire_ts_seconds.unwrap_or(0),
                    timetag,
                ),
                WriteRequest::Remove(key) => WriteOp::Delete { key: key.0.clone() },
                _ => return one_by_one(),
            });
        }
        let code = match self.db.apply(decree, &ops, timetag) {
            Ok(()) => rs::OK,
            Err(e) => {
                log::error!(
                    "{}.{}: batched write at decree {decree} failed: {e}",
                    self.app_id,
                    self.partition_index
                );
                e.code
            }
        };
        reqs.iter()
            .map(|_| WriteResponse::Update(self.update_response(decree, code)))
            .collect()
    }

    fn error_write_response(&self, decree: i64, req: &WriteRequest, code: i32) -> WriteResponse {
        match req {
            WriteRequest::Duplicate(_) => {
                WriteResponse::Duplicate(crate::idl::duplication_internal::DuplicateResponse {
                    error: Some(code),
                    error_hint: None,
                })
            }
            WriteRequest::Put(_) | WriteRequest::MultiPut(_) | WriteRequest::Remove(_) => {
                WriteResponse::Update(self.update_response(decree, code))
            }
            WriteRequest::MultiRemove(_) => WriteResponse::MultiRemove(MultiRemoveResponse {
                error: Some(code),
                count: Some(0),
                app_id: Some(self.app_id),
                partition_index: Some(self.partition_index),
                decree: Some(decree),
                server: Some(self.server.clone()),
            }),
            WriteRequest::Incr(_) => WriteResponse::Incr(IncrResponse {
                error: Some(code),
                new_value: Some(0),
                app_id: Some(self.app_id),
                partition_index: Some(self.partition_index),
                decree: Some(decree),
                server: Some(self.server.clone()),
            }),
            WriteRequest::CheckAndSet(_) => {
                WriteResponse::CheckAndSet(self.cas_response(decree, code))
            }
            WriteRequest::CheckAndMutate(_) => {
                WriteResponse::CheckAndMutate(mutate_response(self.cas_response(decree, code)))
            }
        }
    }

    fn cas_response(&self, decree: i64, code: i32) -> CheckAndSetResponse {
        CheckAndSetResponse {
            error: Some(code),
            check_value_returned: Some(false),
            check_value_exist: Some(false),
            check_value: blob(Vec::new()),
            app_id: Some(self.app_id),
            partition_index: Some(self.partition_index),
            decree: Some(decree),
            server: Some(self.server.clone()),
        }
    }

    fn write_inner(&self, decree: i64, req: &WriteRequest, timetag: u64) -> Result<WriteResponse> {
        match req {
            WriteRequest::Put(u) => {
                let op = self.put_op(
                    bytes(&u.key).to_vec(),
                    bytes(&u.value),
                    u.expire_ts_seconds.unwrap_or(0),
                    timetag,
                );
                self.db.apply(decree, &[op], timetag)?;
                Ok(WriteResponse::Update(self.update_response(decree, rs::OK)))
            }
            WriteRequest::Remove(key) => {
                self.db
                    .apply(decree, &[WriteOp::Delete { key: key.0.clone() }], timetag)?;
                Ok(WriteResponse::Update(self.update_response(decree, rs::OK)))
            }
            WriteRequest::MultiPut(m) => {
                let kvs = m.kvs.as_deref().unwrap_or(&[]);
                if kvs.is_empty() {
                    self.db.apply(decree, &[], timetag)?;
                    return Ok(WriteResponse::Update(
                        self.update_response(decree, rs::INVALID_ARGUMENT),
                    ));
                }
                let hk = bytes(&m.hash_key);
                let expire = m.expire_ts_seconds.unwrap_or(0);
                let ops: Vec<WriteOp> = kvs
                    .iter()
                    .map(|kv| {
                        self.put_op(
                            full_key(hk, bytes(&kv.key)),
                            bytes(&kv.value),
                            expire,
                            timetag,
                        )
                    })
                    .collect();
                self.db.apply(decree, &ops, timetag)?;
                Ok(WriteResponse::Update(self.update_response(decree, rs::OK)))
            }
            WriteRequest::MultiRemove(m) => {
                let sks = m.sort_keys.as_deref().unwrap_or(&[]);
                let mut resp = MultiRemoveResponse {
                    error: Some(rs::OK),
                    count: Some(0),
                    app_id: Some(self.app_id),
                    partition_index: Some(self.partition_index),
                    decree: Some(decree),
                    server: Some(self.server.clone()),
                };
                if sks.is_empty() {
                    self.db.apply(decree, &[], timetag)?;
                    resp.error = Some(rs::INVALID_ARGUMENT);
                    return Ok(WriteResponse::MultiRemove(resp));
                }
                let hk = bytes(&m.hash_key);
                let ops: Vec<WriteOp> = sks
                    .iter()
                    .map(|sk| WriteOp::Delete {
                        key: full_key(hk, &sk.0),
                    })
                    .collect();
                self.db.apply(decree, &ops, timetag)?;
                resp.count = Some(sks.len() as i64);
                Ok(WriteResponse::MultiRemove(resp))
            }
            WriteRequest::Duplicate(d) => self.duplicate(decree, d).map(WriteResponse::Duplicate),
            WriteRequest::Incr(r) => self.incr(decree, r, timetag).map(WriteResponse::Incr),
            WriteRequest::CheckAndSet(r) => self
                .check_and_set(decree, r, timetag)
                .map(WriteResponse::CheckAndSet),
            WriteRequest::CheckAndMutate(r) => self
                .check_and_mutate(decree, r, timetag)
                .map(WriteResponse::CheckAndMutate),
        }
    }

    /// Applies the entries of a duplicate request in order, as upstream's follower does: each
    /// a put, multi-put, remove or multi-remove stamped with the master's timetag (time and
    /// cluster id); an entry from an unconfigured cluster, from this cluster itself or of
    /// another kind stops the request with error 4 (invalid argument) and its hint, entries
    /// before it staying applied.
    fn duplicate(
        &self,
        decree: i64,
        d: &crate::idl::duplication_internal::DuplicateRequest,
    ) -> Result<crate::idl::duplication_internal::DuplicateResponse> {
        use crate::idl::duplication_internal::DuplicateResponse;
        let cfg = crate::base::dup_common::get();
        let refuse = |hint: String| {
            self.db.apply(decree, &[], 0)?;
            Ok(DuplicateResponse {
                error: Some(rs::INVALID_ARGUMENT),
                error_hint: Some(hint),
            })
        };
        let entries = d.entries.as_deref().unwrap_or(&[]);
        if entries.is_empty() {
            self.db.apply(decree, &[], 0)?;
        }
        for e in entries {
            let id = e.cluster_id.unwrap_or(0) as u8;
            if !cfg.is_cluster_id_configured(id) {
                return refuse("request cluster id is unconfigured".into());
            }
            if id == cfg.current_id_or_default() {
                return refuse("self-duplicating".into());
            }
            let code = e.task_code.clone().map(|c| c.0).unwrap_or_default();
            let body = e
                .raw_message
                .as_ref()
                .map(|b| b.0.as_slice())
                .unwrap_or(&[]);
            let delete = matches!(
                code.as_str(),
                "RPC_RRDB_RRDB_REMOVE" | "RPC_RRDB_RRDB_MULTI_REMOVE"
            );
            let tt = value_schema::timetag(e.timestamp.unwrap_or(0).max(0) as u64, id, delete);
            let inner = match code.as_str() {
                "RPC_RRDB_RRDB_PUT"
                | "RPC_RRDB_RRDB_MULTI_PUT"
                | "RPC_RRDB_RRDB_REMOVE"
                | "RPC_RRDB_RRDB_MULTI_REMOVE" => {
                    crate::replica::partition::decode_write(&code, body)
                }
                _ => None,
            };
            let Some(inner) = inner else {
                return refuse(format!("unrecognized task code {code}"));
            };
            let r = self.write_inner(decree, &inner, tt)?;
            if r.error() != rs::OK {
                return Ok(DuplicateResponse {
                    error: Some(r.error()),
                    error_hint: None,
                });
            }
        }
        Ok(DuplicateResponse {
            error: Some(rs::OK),
            error_hint: None,
        })
    }

    fn incr(&self, decree: i64, r: &IncrRequest, timetag: u64) -> Result<IncrResponse> {
        let key = bytes(&r.key).to_vec();
        let increment = r.increment.unwrap_or(0);
        let req_expire = r.expire_ts_seconds.unwrap_or(0);
        let mut resp = IncrResponse {
            error: Some(rs::OK),
            new_value: Some(0),
            app_id: Some(self.app_id),
            partition_index: Some(self.partition_index),
            decree: Some(decree),
            server: Some(self.server.clone()),
        };
        let (new_value, new_expire) = match self.get_for_update(&key)? {
            None => (increment, req_expire.max(0) as u32),
            Some((old_expire, old)) => {
                let base = if old.is_empty() {
                    0
                } else {
                    match parse_i64(&old) {
                        Some(v) => v,
                        None => {
                            self.db.apply(decree, &[], timetag)?;
                            resp.error = Some(rs::INVALID_ARGUMENT);
                            return Ok(resp);
                        }
                    }
                };
                let Some(n) = base.checked_add(increment) else {
                    self.db.apply(decree, &[], timetag)?;
                    resp.error = Some(rs::INVALID_ARGUMENT);
                    resp.new_value = Some(base);
                    return Ok(resp);
                };
                let expire = match req_expire {
                    0 => old_expire,
                    e if e < 0 => 0,
                    e => e as u32,
                };
                (n, expire)
            }
        };
        let op = WriteOp::Put {
            key,
            value: self
                .db
                .encode_value(new_expire, timetag, new_value.to_string().as_bytes()),
        };
        self.db.apply(decree, &[op], timetag)?;
        resp.new_value = Some(new_value);
        Ok(resp)
    }

    /// The shared part of check_and_set and check_and_mutate: read the check value, fill the
    /// check fields of `resp`, then write `ops` (given the check key) if the check passes, or
    /// the empty record with kTryAgain / kInvalidArgument if it does not.
    #[allow(clippy::too_many_arguments)]
    fn checked_write(
        &self,
        decree: i64,
        timetag: u64,
        hash_key: &[u8],
        check_sort_key: &[u8],
        check_type: i32,
        operand: &[u8],
        return_check_value: bool,
        ops: impl FnOnce(Vec<u8>) -> Vec<WriteOp>,
        resp: &mut CheckAndSetResponse,
    ) -> Result<()> {
        let check_key = full_key(hash_key, check_sort_key);
        let current = self.get_for_update(&check_key)?;
        let (exist, value) = match &current {
            Some((_, v)) => (true, v.as_slice()),
            None => (false, &[][..]),
        };
        if return_check_value {
            resp.check_value_returned = Some(true);
            if exist {
                resp.check_value_exist = Some(true);
                resp.check_value = blob(value.to_vec());
            }
        }
        let (passed, invalid) = validate_check(check_type, operand, exist, value);
        if passed {
            self.db.apply(decree, &ops(check_key), timetag)?;
        } else {
            self.db.apply(decree, &[], timetag)?;
            resp.error = Some(if invalid {
                rs::INVALID_ARGUMENT
            } else {
                rs::TRY_AGAIN
            });
        }
        Ok(())
    }

    fn check_and_set(
        &self,
        decree: i64,
        r: &CheckAndSetRequest,
        timetag: u64,
    ) -> Result<CheckAndSetResponse> {
        let mut resp = self.cas_response(decree, rs::OK);
        let check_type = r.check_type.map(|t| t.0).unwrap_or(0);
        if !check_type_supported(check_type) {
            self.db.apply(decree, &[], timetag)?;
            resp.error = Some(rs::INVALID_ARGUMENT);
            return Ok(resp);
        }
        let hk = bytes(&r.hash_key);
        let ops = |check_key: Vec<u8>| {
            let set_key = if r.set_diff_sort_key.unwrap_or(false) {
                full_key(hk, bytes(&r.set_sort_key))
            } else {
                check_key
            };
            vec![self.put_op(
                set_key,
                bytes(&r.set_value),
                r.set_expire_ts_seconds.unwrap_or(0),
                timetag,
            )]
        };
        self.checked_write(
            decree,
            timetag,
            hk,
            bytes(&r.check_sort_key),
            check_type,
            bytes(&r.check_operand),
            r.return_check_value.unwrap_or(false),
            ops,
            &mut resp,
        )?;
        Ok(resp)
    }

    fn check_and_mutate(
        &self,
        decree: i64,
        r: &CheckAndMutateRequest,
        timetag: u64,
    ) -> Result<CheckAndMutateResponse> {
        let mut resp = self.cas_response(decree, rs::OK);
        let mutates = r.mutate_list.as_deref().unwrap_or(&[]);
        let check_type = r.check_type.map(|t| t.0).unwrap_or(0);
        let bad_op = mutates.iter().any(|m| {
            let op = m.operation.map(|o| o.0).unwrap_or(0);
            op != MutateOperation::MO_PUT.0 && op != MutateOperation::MO_DELETE.0
        });
        if mutates.is_empty() || bad_op || !check_type_supported(check_type) {
            self.db.apply(decree, &[], timetag)?;
            resp.error = Some(rs::INVALID_ARGUMENT);
            return Ok(mutate_response(resp));
        }
        let hk = bytes(&r.hash_key);
        let ops = |_check_key: Vec<u8>| {
            mutates
                .iter()
                .map(|m| {
                    let key = full_key(hk, bytes(&m.sort_key));
                    if m.operation.map(|o| o.0).unwrap_or(0) == MutateOperation::MO_PUT.0 {
                        self.put_op(
                            key,
                            bytes(&m.value),
                            m.set_expire_ts_seconds.unwrap_or(0),
                            timetag,
                        )
                    } else {
                        WriteOp::Delete { key }
                    }
                })
                .collect()
        };
        self.checked_write(
            decree,
            timetag,
            hk,
            bytes(&r.check_sort_key),
            check_type,
            bytes(&r.check_operand),
            r.return_check_value.unwrap_or(false),
            ops,
            &mut resp,
        )?;
        Ok(mutate_response(resp))
    }

    // ---- reads -------------------------------------------------------------------------

    /// Logs a read slower than the table's `replica.slow_query_threshold` (100 ms when not
    /// set), as upstream logs its abnormal reads.
    fn note_slow(&self, op: &str, started: std::time::Instant, detail: impl FnOnce() -> String) {
        let elapsed = started.elapsed().as_nanos() as u64;
        let threshold = match self
            .db
            .settings
            .slow_query_threshold_ns
            .load(Ordering::Relaxed)
        {
            0 => DEFAULT_SLOW_QUERY_THRESHOLD_NS,
            t => t,
        };
        if elapsed >= threshold {
            log::warn!(
                "{}.{}: slow {op} ({} ns, threshold {threshold} ns): {}",
                self.app_id,
                self.partition_index,
                elapsed,
                detail()
            );
        }
    }

    pub fn on_get(&self, key: &Blob) -> ReadResponse {
        let started = std::time::Instant::now();
        let resp = self.get_inner(key);
        self.note_slow("get", started, || {
            let (hk, sk) = key_schema::decode(&key.0).unwrap_or_default();
            format!(
                "hash_key={}, sort_key={}, error={:?}",
                String::from_utf8_lossy(hk),
                String::from_utf8_lossy(sk),
                resp.error
            )
        });
        resp
    }

    fn get_inner(&self, key: &Blob) -> ReadResponse {
        let mut resp = ReadResponse {
            error: Some(rs::OK),
            value: blob(Vec::new()),
            app_id: Some(self.app_id),
            partition_index: Some(self.partition_index),
            server: Some(self.server.clone()),
        };
        match self.db.get_live(&key.0, value_schema::epoch_now()) {
            Ok(Some((_, v))) => resp.value = blob(v),
            Ok(None) => resp.error = Some(rs::NOT_FOUND),
            Err(e) => resp.error = Some(e.code),
        }
        resp
    }

    pub fn on_ttl(&self, key: &Blob) -> TtlResponse {
        let mut resp = TtlResponse {
            error: Some(rs::OK),
            ttl_seconds: Some(0),
            app_id: Some(self.app_id),
            partition_index: Some(self.partition_index),
            server: Some(self.server.clone()),
        };
        let now = value_schema::epoch_now();
        match self.db.get_live(&key.0, now) {
            Ok(Some((expire, _))) => {
                resp.ttl_seconds = Some(value_schema::ttl_seconds(expire, now).unwrap_or(0))
            }
            Ok(None) => resp.error = Some(rs::NOT_FOUND),
            Err(e) => resp.error = Some(e.code),
        }
        resp
    }

    pub fn on_sortkey_count(&self, hash_key: &Blob) -> CountResponse {
        let mut resp = CountResponse {
            error: Some(rs::OK),
            count: Some(0),
            app_id: Some(self.app_id),
            partition_index: Some(self.partition_index),
            server: Some(self.server.clone()),
        };
        let start = full_key(&hash_key.0, b"");
        let stop = key_schema::prefix_next(&start);
        let now = value_schema::epoch_now();
        let deadline = Instant::now() + self.limits.iteration_time;
        let mut count = 0i64;
        let mut iterations = 0u64;
        for item in self.db.iter_from(&start, stop.as_deref(), false) {
            match item {
                Ok((_, v)) => {
                    if !value_schema::expire_ts(&v)
                        .map(|e| value_schema::is_expired(e, now))
                        .unwrap_or(false)
                    {
                        count += 1;
                    }
                }
                Err(e) => {
                    resp.error = Some(super::engine::StorageError::from(e).code);
                    resp.count = Some(0);
                    return resp;
                }
            }
            iterations += 1;
            if iterations.is_multiple_of(1000) && Instant::now() > deadline {
                resp.count = Some(-1);
                return resp;
            }
        }
        resp.count = Some(count);
        resp
    }

    pub fn on_batch_get(&self, req: &BatchGetRequest) -> BatchGetResponse {
        let started = std::time::Instant::now();
        let resp = self.batch_get_inner(req);
        self.note_slow("batch_get", started, || {
            format!(
                "{} keys, {} returned, error={:?}",
                req.keys.as_ref().map(|k| k.len()).unwrap_or(0),
                resp.data.as_ref().map(|d| d.len()).unwrap_or(0),
                resp.error
            )
        });
        resp
    }

    fn batch_get_inner(&self, req: &BatchGetRequest) -> BatchGetResponse {
        let mut resp = BatchGetResponse {
            error: Some(rs::OK),
            data: Some(Vec::new()),
            app_id: Some(self.app_id),
            partition_index: Some(self.partition_index),
            server: Some(self.server.clone()),
        };
        let keys = req.keys.as_deref().unwrap_or(&[]);
        if keys.is_empty() {
            resp.error = Some(rs::INVALID_ARGUMENT);
            return resp;
        }
        let now = value_schema::epoch_now();
        let mut data = Vec::new();
        for k in keys {
            let key = full_key(bytes(&k.hash_key), bytes(&k.sort_key));
            match self.db.get_live(&key, now) {
                Ok(Some((_, v))) => data.push(FullData {
                    hash_key: k.hash_key.clone().or_else(|| blob(Vec::new())),
                    sort_key: k.sort_key.clone().or_else(|| blob(Vec::new())),
                    value: blob(v),
                }),
                Ok(None) => {}
                Err(e) => {
                    resp.error = Some(e.code);
                    return resp;
                }
            }
        }
        resp.data = Some(data);
        resp
    }

    pub fn on_multi_get(&self, req: &MultiGetRequest) -> MultiGetResponse {
        let started = std::time::Instant::now();
        let resp = self.multi_get_inner(req);
        self.note_slow("multi_get", started, || {
            format!(
                "hash_key={}, {} kvs returned, error={:?}",
                String::from_utf8_lossy(req.hash_key.as_ref().map(|b| &b.0[..]).unwrap_or(b"")),
                resp.kvs.as_ref().map(|k| k.len()).unwrap_or(0),
                resp.error
            )
        });
        resp
    }

    fn multi_get_inner(&self, req: &MultiGetRequest) -> MultiGetResponse {
        let mut resp = MultiGetResponse {
            error: Some(rs::OK),
            kvs: Some(Vec::new()),
            app_id: Some(self.app_id),
            partition_index: Some(self.partition_index),
            server: Some(self.server.clone()),
        };
        let filter_type = req.sort_key_filter_type.map(|t| t.0).unwrap_or(0);
        if !filter_supported(filter_type) {
            resp.error = Some(rs::INVALID_ARGUMENT);
            return resp;
        }
        let hk = bytes(&req.hash_key);
        let pattern = bytes(&req.sort_key_filter_pattern);
        let no_value = req.no_value.unwrap_or(false);
        let mut max_kv_count = self.limits.multi_get_max_iteration_count;
        let req_count = req.max_kv_count.unwrap_or(0);
        if req_count > 0 && (req_count as u32) < max_kv_count {
            max_kv_count = req_count as u32;
        }
        let req_size = req.max_kv_size.unwrap_or(0);
        let max_kv_size: i64 = if req_size > 0 {
            req_size as i64
        } else {
            i32::MAX as i64
        };
        let max_iteration_size = max_kv_size.min(self.limits.multi_get_max_iteration_size);
        let now = value_schema::epoch_now();
        let mut kvs = Vec::new();
        let mut count: u32 = 0;
        let mut size: i64 = 0;

        let sort_keys = req.sort_keys.as_deref().unwrap_or(&[]);
        if !sort_keys.is_empty() {
            let mut exceed = false;
            for sk in sort_keys {
                let key = full_key(hk, &sk.0);
                let found = match self.db.get_live(&key, now) {
                    Ok(f) => f,
                    Err(e) => {
                        resp.error = Some(e.code);
                        return resp;
                    }
                };
                let Some((_, v)) = found else { continue };
                if count >= max_kv_count || size >= max_kv_size {
                    exceed = true;
                    break;
                }
                let value = if no_value { Vec::new() } else { v };
                count += 1;
                size += (sk.0.len() + value.len()) as i64;
                kvs.push(KeyValue {
                    key: blob(sk.0.clone()),
                    value: blob(value),
                    expire_ts_seconds: None,
                });
            }
            resp.kvs = Some(kvs);
            if exceed {
                resp.error = Some(rs::INCOMPLETE);
            }
            return resp;
        }

        // Range mode.
        let mut start = full_key(hk, bytes(&req.start_sortkey));
        let mut start_inclusive = req.start_inclusive.unwrap_or(false);
        let stop_sk = bytes(&req.stop_sortkey);
        let (mut stop, mut stop_inclusive) = if stop_sk.is_empty() {
            (key_schema::hash_key_next(hk).unwrap_or_default(), false)
        } else {
            (full_key(hk, stop_sk), req.stop_inclusive.unwrap_or(false))
        };
        if filter_type == FilterType::FT_MATCH_PREFIX.0 && !pattern.is_empty() {
            let prefix_start = full_key(hk, pattern);
            let prefix_stop = key_schema::prefix_next(&prefix_start).unwrap_or_default();
            if prefix_start > start {
                start = prefix_start;
                start_inclusive = true;
            }
            if prefix_stop <= stop {
                stop = prefix_stop;
                stop_inclusive = false;
            }
        }
        match start.cmp(&stop) {
            std::cmp::Ordering::Greater => return resp,
            std::cmp::Ordering::Equal if !(start_inclusive && stop_inclusive) => return resp,
            _ => {}
        }
        let reverse = req.reverse.unwrap_or(false);
        let deadline = Instant::now() + self.limits.iteration_time;
        let mut iterations: u32 = 0;
        let mut iter_size: i64 = 0;
        let mut complete = false;
        let mut more = false;
        let (seek, bound_key, bound_inclusive, first_key, first_inclusive) = if reverse {
            (&stop, &start, start_inclusive, &stop, stop_inclusive)
        } else {
            (&start, &stop, stop_inclusive, &start, start_inclusive)
        };
        // Forward reads seek by hash-key prefix, so they end where the hash key ends; reverse
        // reads seek in total order and see the keys before it.
        let prefix = full_key(hk, b"");
        let in_scope = |k: &[u8]| reverse || k.starts_with(&prefix);
        let mut it = self.db.iter_from(seek, None, reverse).peekable();
        let mut first_exclusive = !first_inclusive;
        let mut out = Vec::new();
        loop {
            let limiter_valid = iterations < self.limits.multi_get_max_iteration_count
                && iter_size < max_iteration_size
                && Instant::now() <= deadline;
            if !(count < max_kv_count && limiter_valid) {
                more = matches!(it.peek(), Some(Ok((k, _))) if in_scope(k));
                break;
            }
            let Some(item) = it.next() else { break };
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    resp.error = Some(super::engine::StorageError::from(e).code);
                    resp.kvs = Some(Vec::new());
                    return resp;
                }
            };
            if !in_scope(&k) {
                break;
            }
            let c = if reverse {
                bound_key.as_slice().cmp(&k)
            } else {
                k.as_ref().cmp(bound_key.as_slice())
            };
            if c == std::cmp::Ordering::Greater || (c.is_eq() && !bound_inclusive) {
                complete = true;
                break;
            }
            if first_exclusive {
                first_exclusive = false;
                if k.as_ref() == first_key.as_slice() {
                    continue;
                }
            }
            iterations += 1;
            if let Some(kv) = self.record_for_multi_get(&k, &v, filter_type, pattern, now, no_value)
            {
                count += 1;
                let s = (bytes(&kv.key).len() + bytes(&kv.value).len()) as i64;
                size += s;
                iter_size += s;
                out.push(kv);
            }
            if c.is_eq() {
                complete = true;
                break;
            }
        }
        let _ = size;
        if reverse {
            out.reverse();
        }
        resp.kvs = Some(out);
        if more && !complete {
            resp.error = Some(rs::INCOMPLETE);
        }
        resp
    }

    fn record_for_multi_get(
        &self,
        key: &[u8],
        value: &[u8],
        filter_type: i32,
        pattern: &[u8],
        now: u32,
        no_value: bool,
    ) -> Option<KeyValue> {
        let v = value_schema::decode(self.db.data_version(), value)?;
        if value_schema::is_expired(v.expire_ts, now) {
            return None;
        }
        let (_, sk) = key_schema::decode(key)?;
        if !filter_match(filter_type, pattern, sk) {
            return None;
        }
        Some(KeyValue {
            key: blob(sk.to_vec()),
            value: blob(if no_value {
                Vec::new()
            } else {
                v.user_data.to_vec()
            }),
            expire_ts_seconds: None,
        })
    }

    fn scan_record_state(
        &self,
        key: &[u8],
        value: &[u8],
        ctx: &ScanContext,
        now: u32,
    ) -> RecordState {
        let expire = value_schema::expire_ts(value).unwrap_or(0);
        if value_schema::is_expired(expire, now) {
            return RecordState::Expired;
        }
        let s = &self.db.settings;
        if ctx.validate_partition_hash && s.validate_partition_hash.load(Ordering::Relaxed) {
            let pv = s.partition_version.load(Ordering::Relaxed) as i32;
            let ok = pv >= 0
                && self.partition_index <= pv
                && key_schema::hash_full_key(key)
                    .map(|h| key_schema::check_partition_hash(h, pv, self.partition_index))
                    .unwrap_or(false);
            if !ok {
                return RecordState::HashInvalid;
            }
        }
        if ctx.hash_key_filter_type != 0 || ctx.sort_key_filter_type != 0 {
            let Some((hk, sk)) = key_schema::decode(key) else {
                return RecordState::Filtered;
            };
            if !filter_match(ctx.hash_key_filter_type, &ctx.hash_key_filter_pattern, hk)
                || !filter_match(ctx.sort_key_filter_type, &ctx.sort_key_filter_pattern, sk)
            {
                return RecordState::Filtered;
            }
        }
        RecordState::Normal
    }

    pub fn on_get_scanner(&self, req: &GetScannerRequest) -> ScanResponse {
        let mut resp = self.scan_response();
        let hft = req.hash_key_filter_type.map(|t| t.0).unwrap_or(0);
        let sft = req.sort_key_filter_type.map(|t| t.0).unwrap_or(0);
        if !filter_supported(hft) || !filter_supported(sft) {
            resp.error = Some(rs::INVALID_ARGUMENT);
            return resp;
        }
        let mut start = bytes(&req.start_key).to_vec();
        let stop = bytes(&req.stop_key).to_vec();
        let mut start_inclusive = req.start_inclusive.unwrap_or(false);
        let stop_inclusive = req.stop_inclusive.unwrap_or(false);
        let hpat = bytes(&req.hash_key_filter_pattern).to_vec();
        if hft == FilterType::FT_MATCH_PREFIX.0 && !hpat.is_empty() {
            let prefix_start = full_key(&hpat, b"");
            if prefix_start > start {
                start = prefix_start;
                start_inclusive = true;
            }
        }
        match start.cmp(&stop) {
            std::cmp::Ordering::Greater => {
                resp.context_id = Some(SCAN_CONTEXT_ID_COMPLETED);
                return resp;
            }
            std::cmp::Ordering::Equal if !(start_inclusive && stop_inclusive) => {
                resp.context_id = Some(SCAN_CONTEXT_ID_COMPLETED);
                return resp;
            }
            _ => {}
        }
        let ctx = ScanContext {
            next_key: start.clone(),
            stop,
            stop_inclusive,
            hash_key_filter_type: hft,
            hash_key_filter_pattern: hpat,
            sort_key_filter_type: sft,
            sort_key_filter_pattern: bytes(&req.sort_key_filter_pattern).to_vec(),
            batch_size: req.batch_size.unwrap_or(0),
            no_value: req.no_value.unwrap_or(false),
            validate_partition_hash: req.validate_partition_hash.unwrap_or(true),
            return_expire_ts: req.return_expire_ts.unwrap_or(false),
            only_return_count: req.only_return_count.unwrap_or(false),
            prefix: match key_schema::decode(bytes(&req.start_key)) {
                Some((hk, _)) if !hk.is_empty() && !req.full_scan.unwrap_or(false) => {
                    Some(full_key(hk, b""))
                }
                _ => None,
            },
            last_used: Instant::now(),
        };
        self.scan_batch(ctx, if start_inclusive { None } else { Some(start) }, resp)
    }

    pub fn on_scan(&self, req: &ScanRequest) -> ScanResponse {
        let mut resp = self.scan_response();
        let id = req.context_id.unwrap_or(-2);
        let ctx = self.scanners.lock().ok().and_then(|mut m| m.remove(&id));
        match ctx {
            Some(ctx) => self.scan_batch(ctx, None, resp),
            None => {
                resp.error = Some(rs::NOT_FOUND);
                resp
            }
        }
    }

    pub fn on_clear_scanner(&self, context_id: i64) {
        if let Ok(mut m) = self.scanners.lock() {
            m.remove(&context_id);
        }
    }

    fn scan_response(&self) -> ScanResponse {
        ScanResponse {
            error: Some(rs::OK),
            kvs: Some(Vec::new()),
            context_id: Some(0),
            app_id: Some(self.app_id),
            partition_index: Some(self.partition_index),
            server: Some(self.server.clone()),
            kv_count: None,
        }
    }

    /// Reads one batch from `ctx.next_key`, skipping `exclusive_start` if it is the first
    /// key seen; stores the context again when more data remains.
    fn scan_batch(
        &self,
        mut ctx: ScanContext,
        exclusive_start: Option<Vec<u8>>,
        mut resp: ScanResponse,
    ) -> ScanResponse {
        let max_iter = self.limits.max_iteration_count;
        let batch = if ctx.batch_size > 0 && (ctx.batch_size as u32) < max_iter {
            ctx.batch_size as u32
        } else {
            max_iter
        };
        let now = value_schema::epoch_now();
        let deadline = Instant::now() + self.limits.iteration_time;
        let mut it = self.db.iter_from(&ctx.next_key, None, false).peekable();
        let mut count: u32 = 0;
        let mut iterations: u32 = 0;
        let mut complete = false;
        let mut timed_out = false;
        let mut first = exclusive_start;
        let mut kvs = Vec::new();
        loop {
            if count >= batch || iterations >= max_iter {
                break;
            }
            if Instant::now() > deadline {
                timed_out = true;
                break;
            }
            let Some(item) = it.next() else {
                complete = true;
                break;
            };
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    resp.error = Some(super::engine::StorageError::from(e).code);
                    resp.kvs = Some(Vec::new());
                    return resp;
                }
            };
            if let Some(p) = &ctx.prefix {
                if !k.starts_with(p) {
                    complete = true;
                    break;
                }
            }
            let c = k.as_ref().cmp(ctx.stop.as_slice());
            if c.is_gt() || (c.is_eq() && !ctx.stop_inclusive) {
                complete = true;
                break;
            }
            if let Some(skip) = first.take() {
                if k.as_ref() == skip.as_slice() {
                    continue;
                }
            }
            iterations += 1;
            if let RecordState::Normal = self.scan_record_state(&k, &v, &ctx, now) {
                count += 1;
                if !ctx.only_return_count {
                    let dv = value_schema::decode(self.db.data_version(), &v);
                    let (expire, data) = dv
                        .map(|d| (d.expire_ts, d.user_data.to_vec()))
                        .unwrap_or((0, Vec::new()));
                    kvs.push(KeyValue {
                        key: blob(k.to_vec()),
                        value: blob(if ctx.no_value { Vec::new() } else { data }),
                        expire_ts_seconds: if ctx.return_expire_ts {
                            Some(expire as i32)
                        } else {
                            None
                        },
                    });
                }
            }
            if c.is_eq() {
                complete = true;
                break;
            }
        }
        if ctx.only_return_count {
            resp.kv_count = Some(count as i32);
        }
        resp.kvs = Some(kvs);
        if timed_out {
            resp.error = Some(rs::INCOMPLETE);
            return resp;
        }
        let next = if complete {
            None
        } else {
            match it.peek() {
                Some(Ok((k, _))) if ctx.prefix.as_ref().is_none_or(|p| k.starts_with(p)) => {
                    Some(k.to_vec())
                }
                _ => None,
            }
        };
        match next {
            Some(next_key) => {
                ctx.next_key = next_key;
                ctx.last_used = Instant::now();
                let id = self.next_context_id.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut m) = self.scanners.lock() {
                    let ttl = self.limits.scan_context_ttl;
                    m.retain(|_, c| c.last_used.elapsed() < ttl);
                    m.insert(id, ctx);
                }
                resp.context_id = Some(id);
            }
            None => resp.context_id = Some(SCAN_CONTEXT_ID_COMPLETED),
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_follow_upstream() {
        assert_eq!(validate_check(1, b"", false, b""), (true, false));
        assert_eq!(validate_check(2, b"", true, b""), (true, false));
        assert_eq!(validate_check(4, b"", true, b""), (false, false));
        assert_eq!(validate_check(6, b"ab", true, b"abc"), (true, false));
        assert_eq!(validate_check(7, b"bc", true, b"abc"), (true, false));
        assert_eq!(validate_check(5, b"", true, b"x"), (true, false));
        assert_eq!(validate_check(8, b"b", true, b"a"), (true, false));
        assert_eq!(validate_check(10, b"a", true, b"a"), (true, false));
        assert_eq!(validate_check(12, b"a", true, b"a"), (false, false));
        assert_eq!(validate_check(13, b"10", true, b"9"), (true, false));
        assert_eq!(validate_check(15, b"x", true, b"9"), (false, true));
        assert_eq!(validate_check(17, b"-5", true, b"-4"), (true, false));
        assert_eq!(validate_check(18, b"", true, b""), (false, true));
        assert!(!check_type_supported(18));
    }

    #[test]
    fn duplicated_writes_carry_the_masters_timetag_and_foreign_ones_are_refused() {
        use crate::base::dup_common::{self, DupConfig};
        use crate::idl::duplication_internal::{DuplicateEntry, DuplicateRequest};
        use crate::idl::protocol::encode_wrapped;
        let mut cfg = DupConfig {
            enabled: true,
            cluster_name: "b".into(),
            ..Default::default()
        };
        cfg.group.insert("a".into(), 1);
        cfg.group.insert("b".into(), 2);
        dup_common::set(cfg);
        let tmp = tempfile::tempdir().unwrap();
        let db = PegasusDb::open(
            tmp.path(),
            std::sync::Arc::new(super::super::engine::TtlSettings::default()),
        )
        .unwrap();
        let app = PartitionApp::new(db, 1, 0, "s".into());
        let key = key_schema::encode(b"h", b"s").unwrap();
        let put = UpdateRequest {
            key: blob(key.clone()),
            value: blob(b"v".to_vec()),
            expire_ts_seconds: Some(0),
            ..Default::default()
        };
        let entry = |code: &str, body: Vec<u8>, cluster: i8| DuplicateEntry {
            timestamp: Some(1_000_000),
            task_code: Some(crate::idl::dsn::TaskCode(code.into())),
            raw_message: Some(Blob(body)),
            cluster_id: Some(cluster),
            verify_timetag: None,
        };
        let req =
            |e: Vec<DuplicateEntry>| WriteRequest::Duplicate(DuplicateRequest { entries: Some(e) });
        let r = app.apply_write(
            5,
            &req(vec![entry("RPC_RRDB_RRDB_PUT", encode_wrapped(0, &put), 1)]),
            9,
        );
        assert_eq!(r.error(), rs::OK);
        let raw = app.db.get_raw(&key).unwrap().unwrap();
        let v = value_schema::decode(1, &raw).unwrap();
        assert_eq!(v.timetag, value_schema::timetag(1_000_000, 1, false));
        assert_eq!(v.user_data, b"v");
        // From this cluster itself, from an unknown one, or not a plain write: refused.
        for (code, cluster, hint) in [
            ("RPC_RRDB_RRDB_PUT", 2, "self-duplicating"),
            ("RPC_RRDB_RRDB_PUT", 9, "request cluster id is unconfigured"),
            (
                "RPC_RRDB_RRDB_INCR",
                1,
                "unrecognized task code RPC_RRDB_RRDB_INCR",
            ),
        ] {
            match app.apply_write(
                6,
                &req(vec![entry(code, encode_wrapped(0, &put), cluster)]),
                9,
            ) {
                WriteResponse::Duplicate(d) => {
                    assert_eq!(d.error, Some(rs::INVALID_ARGUMENT));
                    assert_eq!(d.error_hint.as_deref(), Some(hint));
                }
                other => panic!("{other:?}"),
            }
        }
        let rm = Blob(key.clone());
        let r = app.apply_write(
            7,
            &req(vec![entry(
                "RPC_RRDB_RRDB_REMOVE",
                encode_wrapped(0, &rm),
                1,
            )]),
            9,
        );
        assert_eq!(r.error(), rs::OK);
        assert!(app.db.get_raw(&key).unwrap().is_none());
    }

    #[test]
    fn filters() {
        assert!(filter_match(1, b"b", b"abc"));
        assert!(!filter_match(2, b"b", b"abc"));
        assert!(filter_match(3, b"c", b"abc"));
        assert!(filter_match(2, b"", b""));
        assert!(!filter_match(1, b"abcd", b"abc"));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"9223372036854775808"), None);
    }
}
