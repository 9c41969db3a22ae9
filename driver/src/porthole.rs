//! A running Porthole: the driver task and the handle that talks to it.

use std::sync::Arc;

use porthole_core::{BindingInfo, Command, Config, ConfigError, Reply};

use crate::api::{Api, DriverGoneError};
use crate::config::{HttpConfig, HttpConfigError};
use crate::driver::{production_engine, Driver};
use crate::runtime::Runtime;

/// Why Porthole could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The HTTP configuration is inconsistent.
    #[error("invalid HTTP configuration: {0}")]
    Http(#[from] HttpConfigError),
    /// The operating system gave no randomness to seed binding ids with.
    #[error("no randomness from the operating system: {0}")]
    Seed(String),
    /// A listener could not be bound or registered.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address (`ip:port`, `unix:/path`).
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A running Porthole engine without a listener of its own: serve its
/// [`Api`] from any HTTP server (see [`crate::Server`] for the built-in one).
#[derive(Debug, Clone)]
pub struct Porthole {
    api: Api,
}

impl Porthole {
    /// Starts the driver task on `runtime`: an engine with `config`, binding ids
    /// seeded from the operating system, and the API served as `http` says.
    /// Both configurations are validated first.
    pub fn start(
        runtime: Arc<dyn Runtime>,
        config: Config,
        http: HttpConfig,
    ) -> Result<Self, StartError> {
        http.validate()?;
        let engine = production_engine(&*runtime, config)?;
        let (control_tx, control) = async_channel::unbounded();
        let driver = Driver::new(Arc::clone(&runtime), engine, control, &control_tx);
        runtime.spawn(Box::pin(driver.run()));
        let api = Api::new(runtime, control_tx, http);
        Ok(Porthole { api })
    }

    /// The HTTP API handler.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Every live binding, oldest first.
    pub async fn bindings(&self) -> Result<Vec<BindingInfo>, DriverGoneError> {
        match self.api.call(Command::Status).await? {
            Reply::Status(all) => Ok(all),
            _ => Ok(Vec::new()),
        }
    }

    /// Turns `/readyz` to 503, closes every binding (reason `shutdown`), which
    /// ends every stream, and refuses new bindings. Returns once every socket is closed.
    pub async fn shutdown(&self) {
        self.api.ops().begin_drain();
        // A driver that is already gone has closed its sockets.
        let _ = self.api.call(Command::Shutdown).await;
    }
}
