// Duplication payload shipped from a source cluster's replica to the target cluster.

include "dsn.thrift"

namespace cpp dsn.apps

struct duplicate_entry {
    1: optional i64           timestamp;
    2: optional dsn.task_code task_code;
    3: optional dsn.blob      raw_message;
    4: optional i8            cluster_id;
    5: optional bool          verify_timetag;
}

struct duplicate_request {
    1: list<duplicate_entry> entries;
}

struct duplicate_response {
    1: optional i32    error;
    2: optional string error_hint;
}
