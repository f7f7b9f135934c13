//! etcd's JWT tokens (`server/auth/jwt.go`): claims `username`, `revision` and `exp`,
//! signed with the configured key. A token carries the auth revision it was issued at,
//! so a token older than the store's revision is refused by the permission checks.
//!
//! Invariant: a verify-only provider (public key only) never signs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use oxcd_api::EtcdError;
use serde::{Deserialize, Serialize};

use crate::AuthInfo;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: i64,
}

/// A JWT signer/verifier.
pub struct JwtTokens {
    alg: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    ttl: Duration,
}

impl JwtTokens {
    pub(crate) fn new(
        alg: Algorithm,
        encoding: Option<EncodingKey>,
        decoding: DecodingKey,
        ttl: Duration,
    ) -> JwtTokens {
        JwtTokens {
            alg,
            encoding,
            decoding,
            ttl,
        }
    }

    pub(crate) fn assign(&self, user: &str, revision: u64) -> Result<String, EtcdError> {
        let Some(key) = &self.encoding else {
            return Err(EtcdError::Internal(
                "auth: token signing attempted with verify-only key".into(),
            ));
        };
        // JWT expiry is wall-clock time by definition.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let exp = i64::try_from((now + self.ttl).as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp,
        };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, key)
            .map_err(|e| EtcdError::Internal(format!("failed to sign a JWT token: {e}")))
    }

    pub(crate) fn info(&self, token: &str) -> Option<AuthInfo> {
        let mut v = Validation::new(self.alg);
        v.leeway = 0;
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &v) {
            Ok(t) => Some(AuthInfo {
                username: t.claims.username,
                revision: t.claims.revision,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "failed to parse a JWT token");
                None
            }
        }
    }
}
