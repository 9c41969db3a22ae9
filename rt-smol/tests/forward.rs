//! `porthole-smol forward` end to end: dnsmasq behind it answering several `dig`
//! peers, a socat echo reached through it, refusals, SIGTERM unbinding.

porthole_conformance::forward_suite!(env!("CARGO_BIN_EXE_porthole-smol"));
