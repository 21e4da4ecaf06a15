use std::process::ExitCode;

fn main() -> ExitCode {
    alertstream::main()
}
