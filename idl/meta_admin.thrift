// Meta server admin RPCs: table DDL, node listing, cluster info, config sync and
// configuration update between replicas and meta, balancing, diagnostics.

include "backup.thrift"
include "bulk_load.thrift"
include "dsn.thrift"
include "dsn.layer2.thrift"
include "duplication.thrift"
include "metadata.thrift"
include "partition_split.thrift"
include "utils.thrift"

namespace cpp dsn.replication
namespace go admin

enum config_type {
    CT_INVALID                     = 0,
    CT_ASSIGN_PRIMARY              = 1,
    CT_UPGRADE_TO_PRIMARY          = 2,
    CT_ADD_SECONDARY               = 3,
    CT_UPGRADE_TO_SECONDARY        = 4,
    CT_DOWNGRADE_TO_SECONDARY      = 5,
    CT_DOWNGRADE_TO_INACTIVE       = 6,
    CT_REMOVE                      = 7,
    CT_ADD_SECONDARY_FOR_LB        = 8,
    CT_PRIMARY_FORCE_UPDATE_BALLOT = 9,
    CT_DROP_PARTITION              = 10,
    CT_REGISTER_CHILD              = 11,
}

enum node_status {
    NS_INVALID = 0,
    NS_ALIVE   = 1,
    NS_UNALIVE = 2,
}

struct configuration_update_request {
    1: dsn.layer2.app_info                info;
    2: dsn.layer2.partition_configuration config;
    3: config_type                        type = config_type.CT_INVALID;
    4: dsn.rpc_address                    node;
    5: dsn.rpc_address                    host_node;
    6: optional metadata.split_status     meta_split_status;
    7: optional dsn.host_port             hp_node;
}

struct configuration_update_response {
    1: dsn.error_code                     err;
    2: dsn.layer2.partition_configuration config;
}

struct replica_server_info {
    1: map<string, string> geo_tags;
    2: i64                 total_capacity_mb;
}

struct configuration_query_by_node_request {
    1: dsn.rpc_address                      node;
    2: optional list<metadata.replica_info> stored_replicas;
    3: optional replica_server_info         info;
    4: optional dsn.host_port               hp_node;
}

struct configuration_query_by_node_response {
    1: dsn.error_code                       err;
    2: list<configuration_update_request>   partitions;
    3: optional list<metadata.replica_info> gc_replicas;
}

struct configuration_recovery_request {
    1: list<dsn.rpc_address>        recovery_nodes;
    2: bool                         skip_bad_nodes;
    3: bool                         skip_lost_partitions;
    4: optional list<dsn.host_port> hp_recovery_nodes;
}

struct configuration_recovery_response {
    1: dsn.error_code err;
    2: string         hint_message;
}

struct create_app_options {
    1: i32                 partition_count;
    2: i32                 replica_count;
    3: bool                success_if_exist;
    4: string              app_type;
    5: bool                is_stateful;
    6: map<string, string> envs;
    7: optional bool       atomic_idempotent = false;
}

struct configuration_create_app_request {
    1: string             app_name;
    2: create_app_options options;
}

struct configuration_create_app_response {
    1: dsn.error_code err;
    2: i32            appid;
}

struct drop_app_options {
    1: bool         success_if_not_exist;
    2: optional i64 reserve_seconds;
}

struct configuration_drop_app_request {
    1: string           app_name;
    2: drop_app_options options;
}

struct configuration_drop_app_response {
    1: dsn.error_code err;
}

struct configuration_rename_app_request {
    1: string old_app_name;
    2: string new_app_name;
}

struct configuration_rename_app_response {
    1: dsn.error_code err;
    2: string         hint_message;
}

struct configuration_recall_app_request {
    1: i32    app_id;
    2: string new_app_name;
}

struct configuration_recall_app_response {
    1: dsn.error_code      err;
    2: dsn.layer2.app_info info;
}

struct configuration_list_apps_request {
    1: dsn.layer2.app_status             status = app_status.AS_INVALID;
    2: optional string                   app_name_pattern;
    3: optional utils.pattern_match_type match_type;
}

struct configuration_list_apps_response {
    1: dsn.error_code            err;
    2: list<dsn.layer2.app_info> infos;
    3: optional string           hint_message;
}

struct query_app_info_request {
    1: dsn.rpc_address        meta_server;
    2: optional dsn.host_port hp_meta_server;
}

struct query_app_info_response {
    1: dsn.error_code            err;
    2: list<dsn.layer2.app_info> apps;
}

enum app_env_operation {
    APP_ENV_OP_INVALID = 0,
    APP_ENV_OP_SET     = 1,
    APP_ENV_OP_DEL     = 2,
    APP_ENV_OP_CLEAR   = 3,
}

struct configuration_update_app_env_request {
    1: string                app_name;
    2: app_env_operation     op = app_env_operation.APP_ENV_OP_INVALID;
    3: optional list<string> keys;
    4: optional list<string> values;
    5: optional string       clear_prefix;
}

struct configuration_update_app_env_response {
    1: dsn.error_code err;
    2: string         hint_message;
}

struct start_app_manual_compact_request {
    1: string        app_name;
    2: optional i64  trigger_time;
    3: optional i32  target_level;
    4: optional bool bottommost;
    5: optional i32  max_running_count;
}

struct start_app_manual_compact_response {
    1: dsn.error_code err;
    2: string         hint_msg;
}

struct query_app_manual_compact_request {
    1: string app_name;
}

struct query_app_manual_compact_response {
    1: dsn.error_code err;
    2: string         hint_msg;
    3: optional i32   progress;
}

struct node_info {
    1: node_status            status = node_status.NS_INVALID;
    2: dsn.rpc_address        node;
    3: optional dsn.host_port hp_node;
}

struct configuration_list_nodes_request {
    1: node_status status = node_status.NS_INVALID;
}

struct configuration_list_nodes_response {
    1: dsn.error_code  err;
    2: list<node_info> infos;
}

struct configuration_cluster_info_request {
}

struct configuration_cluster_info_response {
    1: dsn.error_code err;
    2: list<string>   keys;
    3: list<string>   values;
}

enum meta_function_level {
    fl_stopped = 100,
    fl_blind   = 200,
    fl_freezed = 300,
    fl_steady  = 400,
    fl_lively  = 500,
    fl_invalid = 10000,
}

struct configuration_meta_control_request {
    1: meta_function_level level;
}

struct configuration_meta_control_response {
    1: dsn.error_code      err;
    2: meta_function_level old_level;
}

enum balancer_request_type {
    move_primary   = 0,
    copy_primary   = 1,
    copy_secondary = 2,
}

struct configuration_proposal_action {
    1: dsn.rpc_address        target;
    2: dsn.rpc_address        node;
    3: config_type            type;
    5: optional dsn.host_port hp_target;
    6: optional dsn.host_port hp_node;
}

struct configuration_balancer_request {
    1: dsn.gpid                            gpid;
    2: list<configuration_proposal_action> action_list;
    3: optional bool                       force = false;
    4: optional balancer_request_type      balance_type;
}

struct configuration_balancer_response {
    1: dsn.error_code err;
}

struct ddd_diagnose_request {
    1: dsn.gpid pid;
}

struct ddd_node_info {
    1: dsn.rpc_address        node;
    2: i64                    drop_time_ms;
    3: bool                   is_alive;
    4: bool                   is_collected;
    5: i64                    ballot;
    6: i64                    last_committed_decree;
    7: i64                    last_prepared_decree;
    8: optional dsn.host_port hp_node;
}

struct ddd_partition_info {
    1: dsn.layer2.partition_configuration config;
    2: list<ddd_node_info>                dropped;
    3: string                             reason;
}

struct ddd_diagnose_response {
    1: dsn.error_code           err;
    2: list<ddd_partition_info> partitions;
}

struct configuration_get_max_replica_count_request {
    1: string app_name;
}

struct configuration_get_max_replica_count_response {
    1: dsn.error_code err;
    2: i32            max_replica_count;
    3: string         hint_message;
}

struct configuration_set_max_replica_count_request {
    1: string app_name;
    2: i32    max_replica_count;
}

struct configuration_set_max_replica_count_response {
    1: dsn.error_code err;
    2: i32            old_max_replica_count;
    3: string         hint_message;
}

struct configuration_get_atomic_idempotent_request {
    1: string app_name;
}

struct configuration_get_atomic_idempotent_response {
    1: dsn.error_code err;
    2: bool           atomic_idempotent;
    3: string         hint_message;
}

struct configuration_set_atomic_idempotent_request {
    1: string app_name;
    2: bool   atomic_idempotent;
}

struct configuration_set_atomic_idempotent_response {
    1: dsn.error_code err;
    2: bool           old_atomic_idempotent;
    3: string         hint_message;
}

service admin_client {
    configuration_create_app_response create_app(1: configuration_create_app_request req);
    configuration_drop_app_response drop_app(1: configuration_drop_app_request req);
    configuration_recall_app_response recall_app(1: configuration_recall_app_request req);
    configuration_list_apps_response list_apps(1: configuration_list_apps_request req);
    duplication.duplication_add_response add_duplication(1: duplication.duplication_add_request req);
    duplication.duplication_query_response query_duplication(1: duplication.duplication_query_request req);
    duplication.duplication_modify_response modify_duplication(1: duplication.duplication_modify_request req);
    duplication.duplication_list_response list_duplication(1: duplication.duplication_list_request req);
    query_app_info_response query_app_info(1: query_app_info_request req);
    configuration_update_app_env_response update_app_env(1: configuration_update_app_env_request req);
    configuration_list_nodes_response list_nodes(1: configuration_list_nodes_request req);
    configuration_cluster_info_response query_cluster_info(1: configuration_cluster_info_request req);
    configuration_meta_control_response meta_control(1: configuration_meta_control_request req);
    backup.configuration_query_backup_policy_response query_backup_policy(1: backup.configuration_query_backup_policy_request req);
    configuration_balancer_response balance(1: configuration_balancer_request req);
    backup.start_backup_app_response start_backup_app(1: backup.start_backup_app_request req);
    backup.query_backup_status_response query_backup_status(1: backup.query_backup_status_request req);
    configuration_create_app_response restore_app(1: backup.configuration_restore_request req);
    partition_split.start_partition_split_response start_partition_split(1: partition_split.start_partition_split_request req);
    partition_split.query_split_response query_split_status(1: partition_split.query_split_request req);
    partition_split.control_split_response control_partition_split(1: partition_split.control_split_request req);
    bulk_load.start_bulk_load_response start_bulk_load(1: bulk_load.start_bulk_load_request req);
    bulk_load.query_bulk_load_response query_bulk_load_status(1: bulk_load.query_bulk_load_request req);
    bulk_load.control_bulk_load_response control_bulk_load(1: bulk_load.control_bulk_load_request req);
    bulk_load.clear_bulk_load_state_response clear_bulk_load(1: bulk_load.clear_bulk_load_state_request req);
    start_app_manual_compact_response start_manual_compact(1: start_app_manual_compact_request req);
    query_app_manual_compact_response query_manual_compact(1: query_app_manual_compact_request req);
}
