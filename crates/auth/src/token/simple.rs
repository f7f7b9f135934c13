//! etcd's simple tokens (`server/auth/simple_token.go`): `<16 random letters>.<raft
//! index of the Authenticate entry>`, registered on every member when the entry is
//! applied, valid for a TTL that each use extends.
//!
//! Invariants: a token maps to exactly one user; an expired token is never answered
//! (it is dropped when seen, and by [`SimpleTokens::purge_expired`]); while auth is
//! disabled no token is kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxcd_api::EtcdError;
use oxcd_lease::Clock;
use parking_lot::Mutex;
use rand::Rng;

/// etcd's `defaultSimpleTokenLength`.
pub const SIMPLE_TOKEN_LENGTH: usize = 16;
/// etcd's `simpleTokenTTLDefault` (`--auth-token-ttl`, seconds).
pub const DEFAULT_SIMPLE_TOKEN_TTL: Duration = Duration::from_secs(300);
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// How often [`SimpleTokens::assign`] sweeps expired tokens (etcd's keeper ticks every
/// second).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Inner {
    enabled: bool,
    /// token -> (user, expiry)
    tokens: HashMap<String, (String, Instant)>,
    last_sweep: Option<Instant>,
}

/// The simple-token table.
pub struct SimpleTokens {
    ttl: Duration,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

/// The raft index a simple token names, if `token` has the simple form. A member must
/// have applied that index before it can know the token (etcd's `isValidSimpleToken`
/// waits for it).
pub fn simple_token_index(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, idx) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    idx.parse().ok()
}

impl SimpleTokens {
    pub(crate) fn new(ttl: Duration, clock: Arc<dyn Clock>) -> SimpleTokens {
        let ttl = if ttl.is_zero() {
            DEFAULT_SIMPLE_TOKEN_TTL
        } else {
            ttl
        };
        SimpleTokens {
            ttl,
            clock,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub(crate) fn gen_prefix() -> String {
        let mut rng = rand::thread_rng();
        (0..SIMPLE_TOKEN_LENGTH)
            .map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char)
            .collect()
    }

    pub(crate) fn enable(&self) {
        self.inner.lock().enabled = true;
    }

    /// Drops every token (etcd: "invalidate all tokens").
    pub(crate) fn disable(&self) {
        let mut i = self.inner.lock();
        i.enabled = false;
        i.tokens.clear();
    }

    pub(crate) fn invalidate_user(&self, user: &str) {
        self.inner.lock().tokens.retain(|_, (u, _)| u != user);
    }

    pub(crate) fn assign(&self, user: &str, prefix: &str, index: u64) -> Result<String, EtcdError> {
        let token = format!("{prefix}.{index}");
        let now = self.clock.now();
        let mut i = self.inner.lock();
        if !i.enabled {
            return Ok(token);
        }
        if i.last_sweep
            .is_none_or(|t| now.duration_since(t) >= SWEEP_INTERVAL)
        {
            i.tokens.retain(|_, (_, exp)| *exp >= now);
            i.last_sweep = Some(now);
        }
        if i.tokens.contains_key(&token) {
            return Err(EtcdError::Internal(
                "failed to assign already-used simple token to a user".into(),
            ));
        }
        i.tokens
            .insert(token.clone(), (user.to_string(), now + self.ttl));
        Ok(token)
    }

    /// The user of a live token, extending its TTL.
    pub(crate) fn user_of(&self, token: &str) -> Option<String> {
        simple_token_index(token)?;
        let now = self.clock.now();
        let mut i = self.inner.lock();
        let (user, exp) = i.tokens.get_mut(token)?;
        if *exp < now {
            i.tokens.remove(token);
            return None;
        }
        *exp = now + self.ttl;
        Some(user.clone())
    }

    /// Drops expired tokens; returns how many are left.
    pub(crate) fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        let mut i = self.inner.lock();
        i.tokens.retain(|_, (_, exp)| *exp >= now);
        i.last_sweep = Some(now);
        i.tokens.len()
    }
}
