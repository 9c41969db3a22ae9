//! The `porthole-smol` binary, started as a user would: the shared daemon
//! cases of the conformance crate (README quickstart, configuration from the
//! environment, clean exit on SIGTERM and Ctrl-C, usage errors).

porthole_conformance::daemon_suite!(env!("CARGO_BIN_EXE_porthole-smol"));
