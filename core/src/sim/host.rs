//! The simulated host's UDP ports: which binding holds which address.

use std::net::SocketAddr;

use crate::id::IdMap;
use crate::{BindingId, OpenError};

/// First port handed out for a bind of port 0 (the IANA ephemeral range).
const EPHEMERAL: u16 = 49_152;

/// The sockets the simulated runtime has open, like a kernel's port table.
#[derive(Debug)]
pub(crate) struct Host {
    // Looked up on every datagram and never iterated: hash maps.
    by_addr: IdMap<SocketAddr, BindingId>,
    by_binding: IdMap<BindingId, SocketAddr>,
    next_ephemeral: u16,
    /// Most sockets open at once (the process's descriptor limit).
    fd_limit: usize,
}

impl Host {
    pub(crate) fn new(fd_limit: usize) -> Self {
        Host {
            by_addr: IdMap::default(),
            by_binding: IdMap::default(),
            next_ephemeral: EPHEMERAL,
            fd_limit,
        }
    }

    /// Binds `addr` for `binding`, as `bind(2)` would: port 0 picks a free
    /// ephemeral port, a taken port is `AddrInUse`.
    pub(crate) fn open(
        &mut self,
        binding: BindingId,
        addr: SocketAddr,
    ) -> Result<SocketAddr, OpenError> {
        if self.by_binding.len() >= self.fd_limit {
            return Err(OpenError::OutOfDescriptors);
        }
        let local = if addr.port() == 0 {
            self.ephemeral(addr)?
        } else if self.by_addr.contains_key(&addr) {
            return Err(OpenError::AddrInUse);
        } else {
            addr
        };
        self.by_addr.insert(local, binding);
        self.by_binding.insert(binding, local);
        Ok(local)
    }

    fn ephemeral(&mut self, addr: SocketAddr) -> Result<SocketAddr, OpenError> {
        let range = usize::from(u16::MAX - EPHEMERAL) + 1;
        for _ in 0..range {
            let mut candidate = addr;
            candidate.set_port(self.next_ephemeral);
            self.next_ephemeral = self.next_ephemeral.checked_add(1).unwrap_or(EPHEMERAL);
            if !self.by_addr.contains_key(&candidate) {
                return Ok(candidate);
            }
        }
        Err(OpenError::AddrInUse)
    }

    /// Closes the binding's socket; returns its address if it had one.
    pub(crate) fn close(&mut self, binding: BindingId) -> Option<SocketAddr> {
        let addr = self.by_binding.remove(&binding)?;
        self.by_addr.remove(&addr);
        Some(addr)
    }

    /// The binding whose socket is bound to `addr`.
    pub(crate) fn socket_at(&self, addr: SocketAddr) -> Option<BindingId> {
        self.by_addr.get(&addr).copied()
    }

    /// The address of the binding's socket.
    pub(crate) fn addr_of(&self, binding: BindingId) -> Option<SocketAddr> {
        self.by_binding.get(&binding).copied()
    }
}
