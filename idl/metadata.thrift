// Replica-level metadata shared by meta and replica servers: partition status,
// replica_configuration, replica_info, split/disk/compaction status enums.

include "dsn.thrift"
include "dsn.layer2.thrift"

namespace cpp dsn.replication
namespace go admin

enum partition_status {
    PS_INVALID             = 0,
    PS_INACTIVE            = 1,
    PS_ERROR               = 2,
    PS_PRIMARY             = 3,
    PS_SECONDARY           = 4,
    PS_POTENTIAL_SECONDARY = 5,
    PS_PARTITION_SPLIT     = 6,
}

enum split_status {
    NOT_SPLIT = 0,
    SPLITTING = 1,
    PAUSING   = 2,
    PAUSED    = 3,
    CANCELING = 4,
}

enum disk_status {
    NORMAL             = 0,
    SPACE_INSUFFICIENT = 1,
    IO_ERROR           = 2,
}

enum manual_compaction_status {
    IDLE     = 0,
    QUEUING  = 1,
    RUNNING  = 2,
    FINISHED = 3,
}

struct file_meta {
    1: string name;
    2: i64    size;
    3: string md5;
}

struct replica_configuration {
    1: dsn.gpid               pid;
    2: i64                    ballot;
    3: dsn.rpc_address        primary;
    4: partition_status       status = partition_status.PS_INVALID;
    5: i64                    learner_signature;
    6: optional bool          pop_all = false;
    7: optional bool          split_sync_to_child = false;
    8: optional dsn.host_port hp_primary;
}

struct replica_info {
    1: dsn.gpid                          pid;
    2: i64                               ballot;
    3: partition_status                  status;
    4: i64                               last_committed_decree;
    5: i64                               last_prepared_decree;
    6: i64                               last_durable_decree;
    7: string                            app_type;
    8: string                            disk_tag;
    9: optional manual_compaction_status manual_compact_status;
}
