//! etcd's auth store (users, roles, permissions, tokens). Authentication is built by a later
//! issue; until it is, auth is disabled, as on a fresh etcd, and [`AuthStore::status`]
//! reports exactly that.

/// The auth store's state as `AuthStatus` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStatus {
    /// Whether authentication is enabled.
    pub enabled: bool,
    /// The auth store's revision (bumped by every auth change).
    pub revision: u64,
}

/// The auth store. With no users or roles defined, auth is disabled.
#[derive(Debug, Default)]
pub struct AuthStore {
    status: AuthStatus,
}

impl AuthStore {
    /// A new, disabled auth store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current status.
    pub fn status(&self) -> AuthStatus {
        self.status
    }
}
