//! etcd's auth store (`server/auth`): users, roles, permissions, passwords and tokens,
//! for the core to call from its apply path and gRPC services.
//!
//! - [`AuthStore`]: the state, persisted in the backend's auth tables
//!   (`AUTH_USERS_TABLE`, `AUTH_ROLES_TABLE`, `META_AUTH_ENABLED`, `META_AUTH_REVISION`)
//!   and recovered on open. It changes only through apply functions that take the
//!   backend [`oxcd_storage::WriteTx`] of the raft entry carrying the request.
//! - Permission checks ([`AuthStore::check_txn`] and friends): the one place that
//!   decides whether an identity ([`AuthInfo`]) may do a request.
//! - Passwords are hashed before proposing ([`prepare_user_add`],
//!   [`prepare_change_password`]) and verified outside any lock
//!   ([`AuthStore::check_password`]).
//! - Tokens: `simple` or `jwt` ([`TokenOptions`]), issued when an Authenticate entry is
//!   applied ([`AuthStore::authenticate`]) and resolved by
//!   [`AuthStore::auth_info_from_token`].
//!
//! Invariant: every member that applies the same entries in the same order reaches the
//! same users, roles, flags and revision, and decides every check the same way.

mod check;
mod error;
mod password;
mod perm;
mod store;
mod token;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

pub use check::{LeaseKeys, NoLeases};
pub use error::AuthError;
pub use password::{
    effective_cost, hash as hash_password, prepare_change_password, prepare_user_add,
    verify as verify_password, DEFAULT_BCRYPT_COST, MAX_BCRYPT_COST, MIN_BCRYPT_COST,
};
pub use store::{AuthConfig, AuthStore, ROOT_ROLE, ROOT_USER};
pub use token::{
    parse_go_duration, simple_token_index, JwtOptions, TokenOptions, DEFAULT_JWT_TTL,
    DEFAULT_SIMPLE_TOKEN_TTL, SIMPLE_TOKEN_LENGTH,
};

/// The auth store's state as `AuthStatus` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStatus {
    /// Whether authentication is enabled.
    pub enabled: bool,
    /// The auth store's revision (bumped by every auth change).
    pub revision: u64,
}

/// Who a request comes from, and the auth revision that identity was read at (etcd's
/// `AuthInfo`; it travels in a proposal's header as `username` / `auth_revision`).
/// The default is the anonymous identity, which every check refuses while auth is
/// enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub username: String,
    pub revision: u64,
}
