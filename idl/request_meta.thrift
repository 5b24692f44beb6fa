// Request meta struct carried in the THFT v1 request header.

namespace cpp dsn
namespace go replication

// Every field may be absent; a server treats missing ones as 0 / false.
struct thrift_request_meta_v1 {
    1: optional i32  app_id;
    2: optional i32  partition_index;
    3: optional i32  client_timeout;
    4: optional i64  client_partition_hash;
    5: optional bool is_backup_request;
}
