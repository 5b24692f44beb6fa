// Hand-written rDSN placeholder types (idl/dsn.thrift declares them as empty
// structs). Generated code writes a STRUCT field header for them and then calls
// these `TSerializable` impls, which emit the raw, non-struct payloads used by
// upstream Pegasus (no field headers, no STOP byte).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use thrift::protocol::{TInputProtocol, TOutputProtocol, TSerializable};

/// Opaque byte string. Payload: thrift binary (i32 BE length + bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Blob(pub Vec<u8>);

impl Blob {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Blob(bytes.into())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Blob(v)
    }
}

impl From<&[u8]> for Blob {
    fn from(v: &[u8]) -> Self {
        Blob(v.to_vec())
    }
}

impl From<&str> for Blob {
    fn from(v: &str) -> Self {
        Blob(v.as_bytes().to_vec())
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl TSerializable for Blob {
    fn read_from_in_protocol(i_prot: &mut dyn TInputProtocol) -> thrift::Result<Self> {
        Ok(Blob(i_prot.read_bytes()?))
    }
    fn write_to_out_protocol(&self, o_prot: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        o_prot.write_bytes(&self.0)
    }
}

/// rDSN error code. Only the name travels on the wire (thrift string).
/// Unknown names decode as `ERR_UNKNOWN`. The default is `ERR_OK`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(&'static str);

impl ErrorCode {
    pub const ALL: [ErrorCode; 88] = [
        ErrorCode::OK,
        ErrorCode::UNKNOWN,
        ErrorCode::SERVICE_NOT_FOUND,
        ErrorCode::SERVICE_ALREADY_RUNNING,
        ErrorCode::IO_PENDING,
        ErrorCode::TIMEOUT,
        ErrorCode::SERVICE_NOT_ACTIVE,
        ErrorCode::BUSY,
        ErrorCode::NETWORK_INIT_FAILED,
        ErrorCode::FORWARD_TO_OTHERS,
        ErrorCode::OBJECT_NOT_FOUND,
        ErrorCode::HANDLER_NOT_FOUND,
        ErrorCode::LEARN_FILE_FAILED,
        ErrorCode::GET_LEARN_STATE_FAILED,
        ErrorCode::INVALID_VERSION,
        ErrorCode::INVALID_PARAMETERS,
        ErrorCode::CAPACITY_EXCEEDED,
        ErrorCode::INVALID_STATE,
        ErrorCode::INACTIVE_STATE,
        ErrorCode::NOT_ENOUGH_MEMBER,
        ErrorCode::FILE_OPERATION_FAILED,
        ErrorCode::HANDLE_EOF,
        ErrorCode::WRONG_CHECKSUM,
        ErrorCode::INVALID_DATA,
        ErrorCode::INVALID_HANDLE,
        ErrorCode::INCOMPLETE_DATA,
        ErrorCode::VERSION_OUTDATED,
        ErrorCode::PATH_NOT_FOUND,
        ErrorCode::PATH_ALREADY_EXIST,
        ErrorCode::ADDRESS_ALREADY_USED,
        ErrorCode::STATE_FREEZED,
        ErrorCode::LOCAL_APP_FAILURE,
        ErrorCode::BIND_IOCP_FAILED,
        ErrorCode::NETWORK_START_FAILED,
        ErrorCode::NOT_IMPLEMENTED,
        ErrorCode::CHECKPOINT_FAILED,
        ErrorCode::WRONG_TIMING,
        ErrorCode::NO_NEED_OPERATE,
        ErrorCode::CORRUPTION,
        ErrorCode::TRY_AGAIN,
        ErrorCode::CLUSTER_NOT_FOUND,
        ErrorCode::CLUSTER_ALREADY_EXIST,
        ErrorCode::SERVICE_ALREADY_EXIST,
        ErrorCode::INJECTED,
        ErrorCode::REPLICATION_FAILURE,
        ErrorCode::APP_EXIST,
        ErrorCode::APP_NOT_EXIST,
        ErrorCode::BUSY_CREATING,
        ErrorCode::BUSY_DROPPING,
        ErrorCode::NETWORK_FAILURE,
        ErrorCode::UNDER_RECOVERY,
        ErrorCode::LEARNER_NOT_FOUND,
        ErrorCode::OPERATION_DISABLED,
        ErrorCode::EXPIRED,
        ErrorCode::LOCK_ALREADY_EXIST,
        ErrorCode::HOLD_BY_OTHERS,
        ErrorCode::RECURSIVE_LOCK,
        ErrorCode::NO_OWNER,
        ErrorCode::NODE_ALREADY_EXIST,
        ErrorCode::INCONSISTENT_STATE,
        ErrorCode::ARRAY_INDEX_OUT_OF_RANGE,
        ErrorCode::DIR_NOT_EMPTY,
        ErrorCode::FS_INTERNAL,
        ErrorCode::IGNORE_BAD_DATA,
        ErrorCode::APP_DROPPED,
        ErrorCode::MOCK_INTERNAL,
        ErrorCode::ZOOKEEPER_OPERATION,
        ErrorCode::CHILD_REGISTERED,
        ErrorCode::INGESTION_FAILED,
        ErrorCode::UNAUTHENTICATED,
        ErrorCode::KRB5_INTERNAL,
        ErrorCode::SASL_INTERNAL,
        ErrorCode::SASL_INCOMPLETE,
        ErrorCode::ACL_DENY,
        ErrorCode::SPLITTING,
        ErrorCode::PARENT_PARTITION_MISUSED,
        ErrorCode::CHILD_NOT_READY,
        ErrorCode::DISK_INSUFFICIENT,
        ErrorCode::RETRY_EXHAUSTED,
        ErrorCode::SYNC_RANGER_POLICIES_FAILED,
        ErrorCode::RANGER_PARSE_ACL,
        ErrorCode::RANGER_POLICIES_NO_NEED_UPDATE,
        ErrorCode::RDB_CORRUPTION,
        ErrorCode::DISK_IO_ERROR,
        ErrorCode::CURL_FAILED,
        ErrorCode::DUP_EXIST,
        ErrorCode::HTTP_ERROR,
        ErrorCode::NOT_MATCHED,
    ];
    pub const OK: ErrorCode = ErrorCode("ERR_OK");
    pub const UNKNOWN: ErrorCode = ErrorCode("ERR_UNKNOWN");
    pub const SERVICE_NOT_FOUND: ErrorCode = ErrorCode("ERR_SERVICE_NOT_FOUND");
    pub const SERVICE_ALREADY_RUNNING: ErrorCode = ErrorCode("ERR_SERVICE_ALREADY_RUNNING");
    pub const IO_PENDING: ErrorCode = ErrorCode("ERR_IO_PENDING");
    pub const TIMEOUT: ErrorCode = ErrorCode("ERR_TIMEOUT");
    pub const SERVICE_NOT_ACTIVE: ErrorCode = ErrorCode("ERR_SERVICE_NOT_ACTIVE");
    pub const BUSY: ErrorCode = ErrorCode("ERR_BUSY");
    pub const NETWORK_INIT_FAILED: ErrorCode = ErrorCode("ERR_NETWORK_INIT_FAILED");
    pub const FORWARD_TO_OTHERS: ErrorCode = ErrorCode("ERR_FORWARD_TO_OTHERS");
    pub const OBJECT_NOT_FOUND: ErrorCode = ErrorCode("ERR_OBJECT_NOT_FOUND");
    pub const HANDLER_NOT_FOUND: ErrorCode = ErrorCode("ERR_HANDLER_NOT_FOUND");
    pub const LEARN_FILE_FAILED: ErrorCode = ErrorCode("ERR_LEARN_FILE_FAILED");
    pub const GET_LEARN_STATE_FAILED: ErrorCode = ErrorCode("ERR_GET_LEARN_STATE_FAILED");
    pub const INVALID_VERSION: ErrorCode = ErrorCode("ERR_INVALID_VERSION");
    pub const INVALID_PARAMETERS: ErrorCode = ErrorCode("ERR_INVALID_PARAMETERS");
    pub const CAPACITY_EXCEEDED: ErrorCode = ErrorCode("ERR_CAPACITY_EXCEEDED");
    pub const INVALID_STATE: ErrorCode = ErrorCode("ERR_INVALID_STATE");
    pub const INACTIVE_STATE: ErrorCode = ErrorCode("ERR_INACTIVE_STATE");
    pub const NOT_ENOUGH_MEMBER: ErrorCode = ErrorCode("ERR_NOT_ENOUGH_MEMBER");
    pub const FILE_OPERATION_FAILED: ErrorCode = ErrorCode("ERR_FILE_OPERATION_FAILED");
    pub const HANDLE_EOF: ErrorCode = ErrorCode("ERR_HANDLE_EOF");
    pub const WRONG_CHECKSUM: ErrorCode = ErrorCode("ERR_WRONG_CHECKSUM");
    pub const INVALID_DATA: ErrorCode = ErrorCode("ERR_INVALID_DATA");
    pub const INVALID_HANDLE: ErrorCode = ErrorCode("ERR_INVALID_HANDLE");
    pub const INCOMPLETE_DATA: ErrorCode = ErrorCode("ERR_INCOMPLETE_DATA");
    pub const VERSION_OUTDATED: ErrorCode = ErrorCode("ERR_VERSION_OUTDATED");
    pub const PATH_NOT_FOUND: ErrorCode = ErrorCode("ERR_PATH_NOT_FOUND");
    pub const PATH_ALREADY_EXIST: ErrorCode = ErrorCode("ERR_PATH_ALREADY_EXIST");
    pub const ADDRESS_ALREADY_USED: ErrorCode = ErrorCode("ERR_ADDRESS_ALREADY_USED");
    pub const STATE_FREEZED: ErrorCode = ErrorCode("ERR_STATE_FREEZED");
    pub const LOCAL_APP_FAILURE: ErrorCode = ErrorCode("ERR_LOCAL_APP_FAILURE");
    pub const BIND_IOCP_FAILED: ErrorCode = ErrorCode("ERR_BIND_IOCP_FAILED");
    pub const NETWORK_START_FAILED: ErrorCode = ErrorCode("ERR_NETWORK_START_FAILED");
    pub const NOT_IMPLEMENTED: ErrorCode = ErrorCode("ERR_NOT_IMPLEMENTED");
    pub const CHECKPOINT_FAILED: ErrorCode = ErrorCode("ERR_CHECKPOINT_FAILED");
    pub const WRONG_TIMING: ErrorCode = ErrorCode("ERR_WRONG_TIMING");
    pub const NO_NEED_OPERATE: ErrorCode = ErrorCode("ERR_NO_NEED_OPERATE");
    pub const CORRUPTION: ErrorCode = ErrorCode("ERR_CORRUPTION");
    pub const TRY_AGAIN: ErrorCode = ErrorCode("ERR_TRY_AGAIN");
    pub const CLUSTER_NOT_FOUND: ErrorCode = ErrorCode("ERR_CLUSTER_NOT_FOUND");
    pub const CLUSTER_ALREADY_EXIST: ErrorCode = ErrorCode("ERR_CLUSTER_ALREADY_EXIST");
    pub const SERVICE_ALREADY_EXIST: ErrorCode = ErrorCode("ERR_SERVICE_ALREADY_EXIST");
    pub const INJECTED: ErrorCode = ErrorCode("ERR_INJECTED");
    pub const REPLICATION_FAILURE: ErrorCode = ErrorCode("ERR_REPLICATION_FAILURE");
    pub const APP_EXIST: ErrorCode = ErrorCode("ERR_APP_EXIST");
    pub const APP_NOT_EXIST: ErrorCode = ErrorCode("ERR_APP_NOT_EXIST");
    pub const BUSY_CREATING: ErrorCode = ErrorCode("ERR_BUSY_CREATING");
    pub const BUSY_DROPPING: ErrorCode = ErrorCode("ERR_BUSY_DROPPING");
    pub const NETWORK_FAILURE: ErrorCode = ErrorCode("ERR_NETWORK_FAILURE");
    pub const UNDER_RECOVERY: ErrorCode = ErrorCode("ERR_UNDER_RECOVERY");
    pub const LEARNER_NOT_FOUND: ErrorCode = ErrorCode("ERR_LEARNER_NOT_FOUND");
    pub const OPERATION_DISABLED: ErrorCode = ErrorCode("ERR_OPERATION_DISABLED");
    pub const EXPIRED: ErrorCode = ErrorCode("ERR_EXPIRED");
    pub const LOCK_ALREADY_EXIST: ErrorCode = ErrorCode("ERR_LOCK_ALREADY_EXIST");
    pub const HOLD_BY_OTHERS: ErrorCode = ErrorCode("ERR_HOLD_BY_OTHERS");
    pub const RECURSIVE_LOCK: ErrorCode = ErrorCode("ERR_RECURSIVE_LOCK");
    pub const NO_OWNER: ErrorCode = ErrorCode("ERR_NO_OWNER");
    pub const NODE_ALREADY_EXIST: ErrorCode = ErrorCode("ERR_NODE_ALREADY_EXIST");
    pub const INCONSISTENT_STATE: ErrorCode = ErrorCode("ERR_INCONSISTENT_STATE");
    pub const ARRAY_INDEX_OUT_OF_RANGE: ErrorCode = ErrorCode("ERR_ARRAY_INDEX_OUT_OF_RANGE");
    pub const DIR_NOT_EMPTY: ErrorCode = ErrorCode("ERR_DIR_NOT_EMPTY");
    pub const FS_INTERNAL: ErrorCode = ErrorCode("ERR_FS_INTERNAL");
    pub const IGNORE_BAD_DATA: ErrorCode = ErrorCode("ERR_IGNORE_BAD_DATA");
    pub const APP_DROPPED: ErrorCode = ErrorCode("ERR_APP_DROPPED");
    pub const MOCK_INTERNAL: ErrorCode = ErrorCode("ERR_MOCK_INTERNAL");
    pub const ZOOKEEPER_OPERATION: ErrorCode = ErrorCode("ERR_ZOOKEEPER_OPERATION");
    pub const CHILD_REGISTERED: ErrorCode = ErrorCode("ERR_CHILD_REGISTERED");
    pub const INGESTION_FAILED: ErrorCode = ErrorCode("ERR_INGESTION_FAILED");
    pub const UNAUTHENTICATED: ErrorCode = ErrorCode("ERR_UNAUTHENTICATED");
    pub const KRB5_INTERNAL: ErrorCode = ErrorCode("ERR_KRB5_INTERNAL");
    pub const SASL_INTERNAL: ErrorCode = ErrorCode("ERR_SASL_INTERNAL");
    pub const SASL_INCOMPLETE: ErrorCode = ErrorCode("ERR_SASL_INCOMPLETE");
    pub const ACL_DENY: ErrorCode = ErrorCode("ERR_ACL_DENY");
    pub const SPLITTING: ErrorCode = ErrorCode("ERR_SPLITTING");
    pub const PARENT_PARTITION_MISUSED: ErrorCode = ErrorCode("ERR_PARENT_PARTITION_MISUSED");
    pub const CHILD_NOT_READY: ErrorCode = ErrorCode("ERR_CHILD_NOT_READY");
    pub const DISK_INSUFFICIENT: ErrorCode = ErrorCode("ERR_DISK_INSUFFICIENT");
    pub const RETRY_EXHAUSTED: ErrorCode = ErrorCode("ERR_RETRY_EXHAUSTED");
    pub const SYNC_RANGER_POLICIES_FAILED: ErrorCode = ErrorCode("ERR_SYNC_RANGER_POLICIES_FAILED");
    pub const RANGER_PARSE_ACL: ErrorCode = ErrorCode("ERR_RANGER_PARSE_ACL");
    pub const RANGER_POLICIES_NO_NEED_UPDATE: ErrorCode =
        ErrorCode("ERR_RANGER_POLICIES_NO_NEED_UPDATE");
    pub const RDB_CORRUPTION: ErrorCode = ErrorCode("ERR_RDB_CORRUPTION");
    pub const DISK_IO_ERROR: ErrorCode = ErrorCode("ERR_DISK_IO_ERROR");
    pub const CURL_FAILED: ErrorCode = ErrorCode("ERR_CURL_FAILED");
    pub const DUP_EXIST: ErrorCode = ErrorCode("ERR_DUP_EXIST");
    pub const HTTP_ERROR: ErrorCode = ErrorCode("ERR_HTTP_ERROR");
    pub const NOT_MATCHED: ErrorCode = ErrorCode("ERR_NOT_MATCHED");

    /// The wire name, e.g. "ERR_OK".
    pub fn name(&self) -> &'static str {
        self.0
    }

    /// Decodes a name; unknown names map to `ERR_UNKNOWN`.
    pub fn from_name(name: &str) -> ErrorCode {
        Self::try_from_name(name).unwrap_or(ErrorCode::UNKNOWN)
    }

    /// Decodes a name; `None` for names not in the table.
    pub fn try_from_name(name: &str) -> Option<ErrorCode> {
        Self::ALL.iter().copied().find(|e| e.0 == name)
    }

    /// Upstream's process-local ordinal (registration order; ERR_OK = 0).
    pub fn code(&self) -> i32 {
        Self::ALL
            .iter()
            .position(|e| e.0 == self.0)
            .map_or(1, |p| p as i32)
    }

    /// Inverse of `code()`; out-of-range ordinals map to `ERR_UNKNOWN`.
    pub fn from_code(code: i32) -> ErrorCode {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(ErrorCode::UNKNOWN)
    }

    pub fn is_ok(&self) -> bool {
        self.0 == "ERR_OK"
    }
}

impl Default for ErrorCode {
    fn default() -> Self {
        ErrorCode::OK
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl TSerializable for ErrorCode {
    fn read_from_in_protocol(i_prot: &mut dyn TInputProtocol) -> thrift::Result<Self> {
        let name = i_prot.read_string()?;
        Ok(ErrorCode::from_name(&name))
    }
    fn write_to_out_protocol(&self, o_prot: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        o_prot.write_string(self.0)
    }
}

/// Task (RPC) code name, e.g. "RPC_RRDB_RRDB_PUT". Payload: thrift string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskCode(pub String);

impl TaskCode {
    pub fn new(name: impl Into<String>) -> Self {
        TaskCode(name.into())
    }
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TSerializable for TaskCode {
    fn read_from_in_protocol(i_prot: &mut dyn TInputProtocol) -> thrift::Result<Self> {
        Ok(TaskCode(i_prot.read_string()?))
    }
    fn write_to_out_protocol(&self, o_prot: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        o_prot.write_string(&self.0)
    }
}

/// Partition id. Payload: one i64 = (partition_index << 32) | (app_id as u32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gpid {
    pub app_id: i32,
    pub partition_index: i32,
}

impl Gpid {
    pub fn new(app_id: i32, partition_index: i32) -> Self {
        Gpid {
            app_id,
            partition_index,
        }
    }
    pub fn to_i64(self) -> i64 {
        (i64::from(self.partition_index) << 32) | i64::from(self.app_id as u32)
    }
    pub fn from_i64(v: i64) -> Self {
        Gpid {
            app_id: v as i32,
            partition_index: (v >> 32) as i32,
        }
    }
}

impl fmt::Display for Gpid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.app_id, self.partition_index)
    }
}

impl TSerializable for Gpid {
    fn read_from_in_protocol(i_prot: &mut dyn TInputProtocol) -> thrift::Result<Self> {
        Ok(Gpid::from_i64(i_prot.read_i64()?))
    }
    fn write_to_out_protocol(&self, o_prot: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        o_prot.write_i64(self.to_i64())
    }
}

/// rDSN network address. Payload: one i64 whose bits are
/// (ipv4 << 32) | (port << 16) | type, type 1 = IPv4, 2 = group, 0 = invalid.
/// The value 0 is the invalid address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RpcAddress(pub u64);

impl RpcAddress {
    pub const INVALID: RpcAddress = RpcAddress(0);

    pub fn from_ipv4(ip: Ipv4Addr, port: u16) -> Self {
        RpcAddress((u64::from(u32::from(ip)) << 32) | (u64::from(port) << 16) | 1)
    }
    pub fn from_socket_addr(addr: SocketAddrV4) -> Self {
        Self::from_ipv4(*addr.ip(), addr.port())
    }
    /// Host type bits: 0 invalid, 1 IPv4, 2 group.
    pub fn addr_type(&self) -> u8 {
        (self.0 & 0x3) as u8
    }
    pub fn is_invalid(&self) -> bool {
        self.addr_type() == 0
    }
    pub fn ip(&self) -> Ipv4Addr {
        Ipv4Addr::from((self.0 >> 32) as u32)
    }
    pub fn port(&self) -> u16 {
        ((self.0 >> 16) & 0xffff) as u16
    }
    /// `Some` only for IPv4 addresses.
    pub fn to_socket_addr(self) -> Option<SocketAddrV4> {
        if self.addr_type() == 1 {
            Some(SocketAddrV4::new(self.ip(), self.port()))
        } else {
            None
        }
    }
}

impl fmt::Display for RpcAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr_type() {
            0 => f.write_str("invalid address"),
            _ => write!(f, "{}:{}", self.ip(), self.port()),
        }
    }
}

impl From<SocketAddrV4> for RpcAddress {
    fn from(a: SocketAddrV4) -> Self {
        Self::from_socket_addr(a)
    }
}

impl TSerializable for RpcAddress {
    fn read_from_in_protocol(i_prot: &mut dyn TInputProtocol) -> thrift::Result<Self> {
        Ok(RpcAddress(i_prot.read_i64()? as u64))
    }
    fn write_to_out_protocol(&self, o_prot: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        o_prot.write_i64(self.0 as i64)
    }
}

/// Host name + port. Payload: thrift string host, i16 port (u16 bits), i8 type
/// (0 invalid, 1 IPv4, 2 group). The invalid value is ("", 0, 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
    pub hp_type: i8,
}

impl HostPort {
    pub const TYPE_INVALID: i8 = 0;
    pub const TYPE_IPV4: i8 = 1;
    pub const TYPE_GROUP: i8 = 2;

    /// An IPv4-type host_port (the only kind servers normally send).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostPort {
            host: host.into(),
            port,
            hp_type: Self::TYPE_IPV4,
        }
    }
    pub fn invalid() -> Self {
        HostPort::default()
    }
    pub fn is_invalid(&self) -> bool {
        self.hp_type == Self::TYPE_INVALID
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_invalid() {
            f.write_str("invalid host_port")
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl TSerializable for HostPort {
    fn read_from_in_protocol(i_prot: &mut dyn TInputProtocol) -> thrift::Result<Self> {
        let host = i_prot.read_string()?;
        let port = i_prot.read_i16()? as u16;
        let hp_type = i_prot.read_i8()?;
        Ok(HostPort {
            host,
            port,
            hp_type,
        })
    }
    fn write_to_out_protocol(&self, o_prot: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        o_prot.write_string(&self.host)?;
        o_prot.write_i16(self.port as i16)?;
        o_prot.write_i8(self.hp_type)
    }
}
