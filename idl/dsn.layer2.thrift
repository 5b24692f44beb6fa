// Core shared structs: partition configuration, query_cfg (client routing) and app_info.

include "dsn.thrift"

namespace cpp dsn
namespace go replication

struct partition_configuration {
    1:  dsn.gpid                     pid;
    2:  i64                          ballot;
    3:  i32                          max_replica_count;
    4:  dsn.rpc_address              primary;
    5:  list<dsn.rpc_address>        secondaries;
    6:  list<dsn.rpc_address>        last_drops;
    7:  i64                          last_committed_decree;
    8:  i32                          partition_flags;
    // hp_* fields: newer peers only; old clients cannot skip them safely.
    9:  optional dsn.host_port       hp_primary;
    10: optional list<dsn.host_port> hp_secondaries;
    11: optional list<dsn.host_port> hp_last_drops;
}

struct query_cfg_request {
    1: string    app_name;
    2: list<i32> partition_indices;
}

struct query_cfg_response {
    1: dsn.error_code                err;
    2: i32                           app_id;
    3: i32                           partition_count;
    4: bool                          is_stateful;
    5: list<partition_configuration> partitions;
}

// Java client name for the THFT v1 header meta (same ids as thrift_request_meta_v1).
struct request_meta {
    1: i32  app_id;
    2: i32  partition_index;
    3: i32  client_timeout;
    4: i64  partition_hash;
    5: bool is_backup_request;
}

enum app_status {
    AS_INVALID       = 0,
    AS_AVAILABLE     = 1,
    AS_CREATING      = 2,
    AS_CREATE_FAILED = 3,
    AS_DROPPING      = 4,
    AS_DROP_FAILED   = 5,
    AS_DROPPED       = 6,
    AS_RECALLING     = 7,
}

struct app_info {
    1:  app_status          status = app_status.AS_INVALID;
    2:  string              app_type;
    3:  string              app_name;
    4:  i32                 app_id;
    5:  i32                 partition_count;
    6:  map<string, string> envs;
    7:  bool                is_stateful;
    8:  i32                 max_replica_count;
    9:  i64                 expire_second;
    10: i64                 create_second;
    11: i64                 drop_second;
    12: optional bool       duplicating = false;
    13: i32                 init_partition_count = -1;
    14: optional bool       is_bulk_loading = false;
    15: optional bool       atomic_idempotent = false;
}
