use std::process::ExitCode;

/// mimalloc: alerts are many small allocations (apache-avro values, one
/// string per field name); glibc malloc spent a third of Parquet archiving.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    alertstream::main()
}
