// Bulk load RPCs (meta <-> replica and admin).

include "dsn.thrift"
include "dsn.layer2.thrift"
include "metadata.thrift"

namespace cpp dsn.replication
namespace go admin

enum bulk_load_status {
    BLS_INVALID     = 0,
    BLS_DOWNLOADING = 1,
    BLS_DOWNLOADED  = 2,
    BLS_INGESTING   = 3,
    BLS_SUCCEED     = 4,
    BLS_FAILED      = 5,
    BLS_PAUSING     = 6,
    BLS_PAUSED      = 7,
    BLS_CANCELED    = 8,
}

enum ingestion_status {
    IS_INVALID = 0,
    IS_RUNNING = 1,
    IS_SUCCEED = 2,
    IS_FAILED  = 3,
}

struct bulk_load_metadata {
    1: list<metadata.file_meta> files;
    2: i64                      file_total_size;
}

struct start_bulk_load_request {
    1: string app_name;
    2: string cluster_name;
    3: string file_provider_type;
    4: string remote_root_path;
    5: bool   ingest_behind = false;
}

struct start_bulk_load_response {
    1: dsn.error_code err;
    2: string         hint_msg;
}

struct partition_bulk_load_state {
    1: optional i32              download_progress = 0;
    2: optional dsn.error_code   download_status;
    3: optional ingestion_status ingest_status = ingestion_status.IS_INVALID;
    4: optional bool             is_cleaned_up = false;
    5: optional bool             is_paused = false;
}

struct bulk_load_request {
    1:  dsn.gpid               pid;
    2:  string                 app_name;
    3:  dsn.rpc_address        primary;
    4:  string                 remote_provider_name;
    5:  string                 cluster_name;
    6:  i64                    ballot;
    7:  bulk_load_status       meta_bulk_load_status;
    8:  bool                   query_bulk_load_metadata;
    9:  string                 remote_root_path;
    10: optional dsn.host_port hp_primary;
}

struct bulk_load_response {
    1:  dsn.error_code                                         err;
    2:  dsn.gpid                                               pid;
    3:  string                                                 app_name;
    4:  bulk_load_status                                       primary_bulk_load_status;
    5:  map<dsn.rpc_address, partition_bulk_load_state>        group_bulk_load_state;
    6:  optional bulk_load_metadata                            metadata;
    7:  optional i32                                           total_download_progress;
    8:  optional bool                                          is_group_ingestion_finished;
    9:  optional bool                                          is_group_bulk_load_context_cleaned_up;
    10: optional bool                                          is_group_bulk_load_paused;
    11: optional map<dsn.host_port, partition_bulk_load_state> hp_group_bulk_load_state;
}

struct group_bulk_load_request {
    1: string                         app_name;
    2: dsn.rpc_address                target;
    3: metadata.replica_configuration config;
    4: string                         provider_name;
    5: string                         cluster_name;
    6: bulk_load_status               meta_bulk_load_status;
    7: string                         remote_root_path;
    8: optional dsn.host_port         hp_target;
}

struct group_bulk_load_response {
    1: dsn.error_code            err;
    2: bulk_load_status          status;
    3: partition_bulk_load_state bulk_load_state;
}

struct ingestion_request {
    1: string             app_name;
    2: bulk_load_metadata metadata;
    3: bool               ingest_behind;
    4: i64                ballot;
    5: bool               verify_before_ingest;
}

struct ingestion_response {
    1: dsn.error_code err;
    2: i32            rocksdb_error;
}

enum bulk_load_control_type {
    BLC_PAUSE        = 0,
    BLC_RESTART      = 1,
    BLC_CANCEL       = 2,
    BLC_FORCE_CANCEL = 3,
}

struct control_bulk_load_request {
    1: string                 app_name;
    2: bulk_load_control_type type;
}

struct control_bulk_load_response {
    1: dsn.error_code  err;
    2: optional string hint_msg;
}

struct query_bulk_load_request {
    1: string app_name;
}

struct query_bulk_load_response {
    1: dsn.error_code                                               err;
    2: string                                                       app_name;
    3: bulk_load_status                                             app_status;
    4: list<bulk_load_status>                                       partitions_status;
    5: i32                                                          max_replica_count;
    6: list<map<dsn.rpc_address, partition_bulk_load_state>>        bulk_load_states;
    7: optional string                                              hint_msg;
    8: optional bool                                                is_bulk_loading;
    9: optional list<map<dsn.host_port, partition_bulk_load_state>> hp_bulk_load_states;
}

struct clear_bulk_load_state_request {
    1: string app_name;
}

struct clear_bulk_load_state_response {
    1: dsn.error_code err;
    2: string         hint_msg;
}
