// Placeholder types of the rDSN runtime. They are declared as empty structs so
// that generated code treats them as STRUCT-typed fields, but each one has a
// hand-written, non-struct payload (see src/idl/dsn.rs):
//   rpc_address = i64, host_port = string + i16 + i8, blob = binary,
//   error_code = string (error name), task_code = string, gpid = i64.
// This file is NOT fed to the Rust generator; src/idl/dsn.rs replaces it.

namespace cpp dsn
namespace go base

struct rpc_address {
}

struct host_port {
}

struct blob {
}

struct error_code {
}

struct task_code {
}

struct gpid {
}
