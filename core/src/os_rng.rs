//! An engine seeded from the operating system (feature `os-rng`).

use crate::{Config, ConfigError, Engine, WallClock};

/// Why [`Engine::from_os_rng`] could not build an engine.
#[derive(Debug, thiserror::Error)]
pub enum OsEngineError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The operating system gave no randomness to seed the binding ids with.
    #[error("cannot read the operating system's randomness: {0}")]
    Seed(#[source] std::io::Error),
}

impl Engine {
    #[cfg_attr(docsrs, doc(cfg(feature = "os-rng")))]
    /// [`Engine::new`] with a seed read from the operating system's randomness
    /// (`getrandom`), as production needs: binding ids are then unguessable.
    /// This constructor is the only thing in the crate that touches the OS.
    pub fn from_os_rng(config: Config, wall: WallClock) -> Result<Self, OsEngineError> {
        config.validate()?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| OsEngineError::Seed(e.into()))?;
        Ok(Engine::new(config, seed, wall)?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Instant, SystemTime};

    use super::*;
    use crate::{Action, BindParams, Command, RequestId};

    fn first_binding_id(engine: &mut Engine) -> crate::BindingId {
        let params = BindParams::new("127.0.0.1:0".parse().expect("an address"));
        engine.handle_command(RequestId(1), Command::Bind(params), engine.now());
        match engine.poll_action() {
            Some(Action::OpenSocket { binding, .. }) => binding,
            other => panic!("a bind asks for a socket, got {other:?}"),
        }
    }

    #[test]
    fn os_seeded_engines_hand_out_different_ids() {
        let wall = WallClock::new(Instant::now(), SystemTime::now());
        let mut a = Engine::from_os_rng(Config::default(), wall).expect("seeded");
        let mut b = Engine::from_os_rng(Config::default(), wall).expect("seeded");
        assert_ne!(first_binding_id(&mut a), first_binding_id(&mut b));
    }

    #[test]
    fn an_invalid_config_is_refused_before_the_os_is_asked() {
        let wall = WallClock::new(Instant::now(), SystemTime::now());
        let config = Config {
            max_bindings: 0,
            ..Config::default()
        };
        assert!(matches!(
            Engine::from_os_rng(config, wall),
            Err(OsEngineError::Config(_))
        ));
    }
}
