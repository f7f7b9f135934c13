//! Passwords: bcrypt hashes, computed before a request is proposed (etcd 3.5's
//! `hashedPassword`, base64 of the bcrypt hash), so that applying it is deterministic
//! and the raft log never carries a plain-text password.
//!
//! Invariants: no function here logs a password or a hash; verification
//! ([`verify`]) runs with no lock held by the caller.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use oxcd_api::etcdserverpb::{AuthUserAddRequest, AuthUserChangePasswordRequest};
use oxcd_api::EtcdError;

/// etcd's `--bcrypt-cost` default (Go's `bcrypt.DefaultCost`).
pub const DEFAULT_BCRYPT_COST: u32 = 10;
/// Go's `bcrypt.MinCost`.
pub const MIN_BCRYPT_COST: u32 = 4;
/// Go's `bcrypt.MaxCost`.
pub const MAX_BCRYPT_COST: u32 = 31;

/// etcd's `NewAuthStore`: an out-of-range cost falls back to the default.
pub fn effective_cost(cost: u32) -> u32 {
    if (MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost) {
        cost
    } else {
        tracing::warn!(
            given_cost = cost,
            default_cost = DEFAULT_BCRYPT_COST,
            "use default bcrypt cost instead of the invalid given cost"
        );
        DEFAULT_BCRYPT_COST
    }
}

/// The bcrypt hash of `password` (`$2a$`, as Go's bcrypt writes it).
pub fn hash(password: &str, cost: u32) -> Result<Vec<u8>, EtcdError> {
    let parts = bcrypt::hash_with_result(password, cost)
        .map_err(|e| EtcdError::Internal(format!("bcrypt: {e}")))?;
    Ok(parts.format_for_version(bcrypt::Version::TwoA).into_bytes())
}

/// Whether `password` matches the stored bcrypt `hash` (false for a malformed hash).
pub fn verify(password: &str, hash: &[u8]) -> bool {
    match std::str::from_utf8(hash) {
        Ok(h) => bcrypt::verify(password, h).unwrap_or(false),
        Err(_) => false,
    }
}

/// What the server does to a UserAdd before proposing it (etcd 3.5's
/// `EtcdServer.UserAdd`): unless the user has no password, hash the password into
/// `hashed_password` and clear `password`.
pub fn prepare_user_add(r: &mut AuthUserAddRequest, cost: u32) -> Result<(), EtcdError> {
    if r.options.as_ref().is_some_and(|o| o.no_password) {
        return Ok(());
    }
    let h = hash(&r.password, cost)?;
    r.hashed_password = STANDARD.encode(h);
    r.password.clear();
    Ok(())
}

/// What the server does to a UserChangePassword before proposing it: a non-empty
/// password is hashed into `hashed_password` and cleared.
pub fn prepare_change_password(
    r: &mut AuthUserChangePasswordRequest,
    cost: u32,
) -> Result<(), EtcdError> {
    if r.password.is_empty() {
        return Ok(());
    }
    let h = hash(&r.password, cost)?;
    r.hashed_password = STANDARD.encode(h);
    r.password.clear();
    Ok(())
}

/// etcd's `selectPassword` (apply path): the decoded `hashed_password`, or, for an entry
/// written by a proposer that did not hash (etcd < 3.5), a hash made here.
pub(crate) fn select(password: &str, hashed: &str, cost: u32) -> Result<Vec<u8>, EtcdError> {
    if !password.is_empty() && hashed.is_empty() {
        return hash(password, cost);
    }
    STANDARD
        .decode(hashed)
        .map_err(|_| EtcdError::NoPasswordUser)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_and_looks_like_go_bcrypt() {
        let h = hash("secret", MIN_BCRYPT_COST).unwrap();
        assert!(h.starts_with(b"$2a$04$"));
        assert!(verify("secret", &h));
        assert!(!verify("Secret", &h));
        assert!(!verify("secret", b"not a hash"));
    }

    #[test]
    fn prepare_hashes_and_clears_the_password() {
        let mut r = AuthUserAddRequest {
            name: "u".into(),
            password: "pw".into(),
            ..Default::default()
        };
        prepare_user_add(&mut r, MIN_BCRYPT_COST).unwrap();
        assert!(r.password.is_empty());
        let h = select("", &r.hashed_password, MIN_BCRYPT_COST).unwrap();
        assert!(verify("pw", &h));

        let mut c = AuthUserChangePasswordRequest {
            name: "u".into(),
            password: "new".into(),
            ..Default::default()
        };
        prepare_change_password(&mut c, MIN_BCRYPT_COST).unwrap();
        assert!(c.password.is_empty() && !c.hashed_password.is_empty());
    }

    #[test]
    fn out_of_range_cost_falls_back_to_default() {
        assert_eq!(effective_cost(3), DEFAULT_BCRYPT_COST);
        assert_eq!(effective_cost(32), DEFAULT_BCRYPT_COST);
        assert_eq!(effective_cost(12), 12);
    }
}
