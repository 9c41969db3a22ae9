//! The end-to-end conformance suite of the Porthole HTTP API, written once and
//! run against every runtime.
//!
//! Every case starts its own server over loopback through a [`ServerFactory`],
//! talks to it with a real HTTP client ([`client`]) and real UDP sockets, and
//! shuts it down. A runtime crate runs the whole suite with one macro call in
//! an integration test:
//!
//! ```ignore
//! struct MyRuntime;
//! impl porthole_conformance::ServerFactory for MyRuntime { /* ... */ }
//! porthole_conformance::conformance_suite!(MyRuntime);
//! ```
//!
//! Each case is bounded in time (every read has a timeout) and uses loopback only.
//!
//! Every response the [`client`] receives, and every event of every stream, is
//! checked against the server's own `GET /openapi.json` ([`openapi`]): a
//! response the document does not describe fails the case.
//!
//! The daemon binaries are checked as a user runs them by [`daemon`]'s cases,
//! with `porthole_conformance::daemon_suite!(env!("CARGO_BIN_EXE_<name>"))`.

#![forbid(unsafe_code)]

pub mod cases;
pub mod client;
pub mod daemon;
pub mod forward;
pub mod openapi;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use client::Target;
pub use porthole_driver::{porthole_core, Listen, ServerConfig, Token};

/// Runs a [`ServerFactory`]'s servers on a Unix domain socket (in a temporary
/// directory of their own) instead of TCP: the whole suite runs over it too.
pub struct OverUnix<'a>(pub &'a dyn ServerFactory);

impl ServerFactory for OverUnix<'_> {
    fn start(&self, mut config: ServerConfig) -> Box<dyn TestServer> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("porthole.sock");
        config.listen = vec![Listen::Unix {
            path: path.clone(),
            mode: 0o600,
        }];
        let inner = self.0.start(config);
        Box::new(UnixServer {
            inner: Some(inner),
            path,
            _dir: dir,
        })
    }
}

/// A server of [`OverUnix`]; its directory goes once it is shut down.
struct UnixServer {
    inner: Option<Box<dyn TestServer>>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestServer for UnixServer {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 0))
    }

    fn target(&self) -> Target {
        Target::Unix(self.path.clone())
    }

    fn shutdown(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            inner.shutdown();
        }
        assert!(
            !self.path.exists(),
            "the socket file is removed at shutdown"
        );
    }
}

/// Starts a server on one runtime. The suite calls it once per case, from the
/// test's thread; the server must run on threads of its own.
pub trait ServerFactory: Sync {
    /// Starts a server with `config` (its `listen` address is loopback port 0)
    /// and returns once it accepts connections.
    fn start(&self, config: ServerConfig) -> Box<dyn TestServer>;
}

/// A running server.
pub trait TestServer: Send {
    /// The address it listens on.
    fn addr(&self) -> SocketAddr;

    /// Where clients reach it: its TCP address unless it listens elsewhere.
    fn target(&self) -> Target {
        Target::Tcp(self.addr())
    }

    /// Shuts it down (`Server::shutdown`) and returns once that completed.
    fn shutdown(self: Box<Self>);
}

/// Defines one `#[test]` per conformance case, each running against servers
/// from `$factory` (an expression of a type implementing [`ServerFactory`]).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::conformance_suite!(@cases $factory, [
            bind_answers_201_with_binding_info,
            status_lists_live_bindings_oldest_first,
            unbind_answers_unbound_and_frees_the_port,
            send_reaches_the_destination_and_answers_bytes_sent,
            recv_streams_datagrams_as_server_sent_events,
            two_bindings_talk_to_each_other,
            heartbeat_renews_the_lease_with_put_and_post,
            malformed_requests_are_400,
            token_guards_every_v1_route,
            policy_refusals_are_403,
            unknown_bindings_are_404,
            unknown_routes_are_404_and_wrong_methods_405,
            binding_a_port_in_use_is_409,
            oversized_payloads_and_bodies_are_413,
            max_bindings_is_429,
            max_subscribers_is_429,
            lease_expires_on_time_and_frees_the_port,
            last_event_id_resumes_after_that_event,
            datagrams_wait_while_nobody_subscribes,
            two_subscribers_each_get_every_datagram,
            unbind_ends_streams_with_closed_unbound,
            idle_for_closes_a_quiet_stream,
            keep_alive_comments_flow_on_quiet_streams,
            slow_subscriber_lags_while_another_keeps_up,
            disconnecting_clients_leave_the_server_healthy,
            shutdown_closes_every_socket_and_ends_every_stream,
            ipv6_loopback_bindings_work,
            preflight_from_an_allowed_origin_is_answered_before_auth,
            requests_from_a_refused_origin_are_403_and_change_nothing,
            foreign_hosts_are_403_and_ip_literals_work,
            stream_tickets_open_one_stream_and_expire,
            paths_with_extra_segments_are_404,
            address_family_mismatches_are_400,
            memory_held_stays_within_the_cap,
            healthz_answers_without_a_token_while_v1_requires_one,
            head_answers_every_get_route_without_a_body,
            readyz_is_503_while_the_server_drains,
            metrics_follow_datagrams_received_dropped_and_sent,
            ws_channel_carries_datagrams_both_ways,
            ws_channel_resumes_after_the_last_event_id,
            stalled_ws_channel_gets_lagged,
            refused_ws_sends_are_reported_as_send_error,
            malformed_ws_messages_close_with_1007,
            ws_channel_closes_on_unbind_expiry_and_shutdown,
            ws_channel_is_guarded_like_the_stream,
            quiet_ws_channel_is_pinged,
            batch_send_answers_one_result_per_datagram,
            every_documented_operation_answers_as_documented,
        ]);
        // SO_RXQ_OVFL, the kernel's drop count, is Linux's.
        #[cfg(target_os = "linux")]
        mod linux {
            use super::*;
            $crate::conformance_suite!(@cases $factory, [
                kernel_drops_are_counted_and_reported_as_lag,
            ]);
        }
    };
    (@cases $factory:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                $crate::cases::$case(&$factory);
            }
        )*

        /// The same cases, with the server on a Unix domain socket.
        mod over_unix {
            use super::*;
            $(
                #[test]
                fn $case() {
                    $crate::cases::$case(&$crate::OverUnix(&$factory));
                }
            )*
        }
    };
}

/// Defines one `#[test]` per [`daemon`] case, each running the binary at
/// `$exe` (an expression of a type that is `AsRef<Path>`, typically
/// `env!("CARGO_BIN_EXE_<name>")`).
#[macro_export]
macro_rules! daemon_suite {
    ($exe:expr) => {
        $crate::daemon_suite!(@cases $exe, [
            quickstart_works_against_the_binary_and_sigterm_exits_cleanly,
            binary_reads_its_flags_from_the_environment_and_exits_cleanly_on_ctrl_c,
            binary_refuses_bad_flags_with_usage_errors,
            binary_refuses_an_unusable_configuration_with_status_2,
            binary_listens_on_a_unix_socket_and_removes_it_on_exit,
            binary_serves_a_listener_handed_over_by_socket_activation,
        ]);
    };
    (@cases $exe:expr, [$($case:ident),* $(,)?]) => {
        $crate::binary_cases!(daemon, $exe, [$($case),*]);
    };
}

/// One `#[test]` per case of `$module` (a module of this crate whose cases
/// take the binary's path), each running the binary at `$exe`.
#[doc(hidden)]
#[macro_export]
macro_rules! binary_cases {
    ($module:ident, $exe:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                $crate::$module::$case(::std::path::Path::new($exe));
            }
        )*
    };
}

/// `porthole forward` end to end for the binary `$exe` (dnsmasq and dig, a
/// socat echo, refusals): `porthole_conformance::forward_suite!(env!("CARGO_BIN_EXE_porthole"))`.
#[macro_export]
macro_rules! forward_suite {
    ($exe:expr) => {
        $crate::forward_suite!(@cases $exe, [
            dnsmasq_behind_forward_answers_several_dig_peers_at_once,
            outbound_forward_reaches_a_socat_echo_from_the_host_port,
            forward_refusals_exit_1_with_the_reason,
        ]);
    };
    (@cases $exe:expr, [$($case:ident),* $(,)?]) => {
        $crate::binary_cases!(forward, $exe, [$($case),*]);
    };
}
