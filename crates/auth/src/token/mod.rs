//! Auth tokens: parsing etcd's `--auth-token` option and the providers it names
//! (`simple`, `jwt,...`, or `""` for none), as etcd's `NewTokenProvider`.
//!
//! Invariant: the provider is chosen once, at store creation; parsing never panics on
//! bad input (an error names the offending option).

mod jwt;
mod simple;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use oxcd_api::EtcdError;
use oxcd_lease::Clock;

use jwt::JwtTokens;
pub(crate) use simple::SimpleTokens;
pub use simple::{simple_token_index, DEFAULT_SIMPLE_TOKEN_TTL, SIMPLE_TOKEN_LENGTH};

use crate::{AuthError, AuthInfo};

/// etcd's JWT `DefaultTTL`.
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(5 * 60);

/// A parsed `--auth-token` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOptions {
    /// `""`: no tokens (etcd's nop provider; Authenticate fails).
    None,
    /// `simple` (the default).
    Simple,
    /// `jwt,sign-method=...,pub-key=...,priv-key=...,ttl=...`.
    Jwt(JwtOptions),
}

/// JWT settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtOptions {
    /// `sign-method`: RS256/384/512, PS256/384/512, ES256/384, HS256/384/512, EdDSA.
    pub sign_method: String,
    /// `pub-key`: PEM file.
    pub pub_key: Option<PathBuf>,
    /// `priv-key`: PEM file (for HS*, the secret itself).
    pub priv_key: Option<PathBuf>,
    /// `ttl` (a Go duration such as `5m`; default 5 minutes).
    pub ttl: Duration,
}

impl FromStr for TokenOptions {
    type Err = AuthError;

    /// etcd's `decomposeOpts` + `NewTokenProvider`'s type switch.
    fn from_str(s: &str) -> Result<TokenOptions, AuthError> {
        let bad = |m: String| AuthError::InvalidOptions(m);
        let mut parts = s.split(',');
        let kind = parts.next().unwrap_or("");
        let mut opts: Vec<(&str, &str)> = Vec::new();
        for p in parts {
            let kv: Vec<&str> = p.split('=').collect();
            if kv.len() != 2 {
                return Err(bad(format!("invalid token option {p:?} in {s:?}")));
            }
            if opts.iter().any(|(k, _)| *k == kv[0]) {
                return Err(bad(format!("duplicate token option {:?} in {s:?}", kv[0])));
            }
            opts.push((kv[0], kv[1]));
        }
        match kind {
            "simple" => Ok(TokenOptions::Simple),
            "" => Ok(TokenOptions::None),
            "jwt" => {
                let get = |k: &str| opts.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
                let ttl = match get("ttl").filter(|v| !v.is_empty()) {
                    Some(v) => {
                        parse_go_duration(v).ok_or_else(|| bad(format!("invalid JWT ttl {v:?}")))?
                    }
                    None => DEFAULT_JWT_TTL,
                };
                for (k, _) in &opts {
                    if !["sign-method", "pub-key", "priv-key", "ttl"].contains(k) {
                        tracing::warn!(key = k, "unknown JWT option");
                    }
                }
                let path = |k: &str| get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
                Ok(TokenOptions::Jwt(JwtOptions {
                    sign_method: get("sign-method").unwrap_or("").to_string(),
                    pub_key: path("pub-key"),
                    priv_key: path("priv-key"),
                    ttl,
                }))
            }
            other => Err(bad(format!("unknown token type {other:?}"))),
        }
    }
}

/// Go's `time.ParseDuration` for the forms etcd users write (`300s`, `5m`, `1h30m`,
/// `1.5h`, `500ms`); negative durations are refused.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let n: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn read_key(path: &Option<PathBuf>) -> Result<Option<Vec<u8>>, AuthError> {
    match path {
        None => Ok(None),
        Some(p) => std::fs::read(p)
            .map(Some)
            .map_err(|e| AuthError::InvalidOptions(format!("reading {}: {e}", p.display()))),
    }
}

fn jwt_provider(o: &JwtOptions) -> Result<JwtTokens, AuthError> {
    let bad = |m: String| AuthError::InvalidOptions(m);
    let alg = Algorithm::from_str(&o.sign_method)
        .map_err(|_| bad(format!("invalid auth signature method {:?}", o.sign_method)))?;
    let private = read_key(&o.priv_key)?;
    let public = read_key(&o.pub_key)?;
    let key_err = |e: jsonwebtoken::errors::Error| bad(format!("JWT key: {e}"));
    use Algorithm::*;
    let (enc, dec) = match alg {
        HS256 | HS384 | HS512 => {
            let secret = private.ok_or_else(|| bad("auth: missing key data".into()))?;
            (
                Some(EncodingKey::from_secret(&secret)),
                DecodingKey::from_secret(&secret),
            )
        }
        _ => {
            let enc = match &private {
                None => None,
                Some(pem) => Some(match alg {
                    RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
                        EncodingKey::from_rsa_pem(pem).map_err(key_err)?
                    }
                    ES256 | ES384 => EncodingKey::from_ec_pem(pem).map_err(key_err)?,
                    EdDSA => EncodingKey::from_ed_pem(pem).map_err(key_err)?,
                    _ => return Err(bad(format!("unsupported signing method {alg:?}"))),
                }),
            };
            let dec = match (&public, &enc) {
                (Some(pem), _) => match alg {
                    ES256 | ES384 => DecodingKey::from_ec_pem(pem).map_err(key_err)?,
                    EdDSA => DecodingKey::from_ed_pem(pem).map_err(key_err)?,
                    _ => DecodingKey::from_rsa_pem(pem).map_err(key_err)?,
                },
                // Private key only: verify with its public half, as etcd does.
                (None, Some(enc)) => {
                    let jwk = Jwk::from_encoding_key(enc, alg).map_err(key_err)?;
                    DecodingKey::from_jwk(&jwk).map_err(key_err)?
                }
                (None, None) => return Err(bad("auth: missing key data".into())),
            };
            (enc, dec)
        }
    };
    Ok(JwtTokens::new(alg, enc, dec, o.ttl))
}

/// The token provider the store uses.
pub(crate) enum TokenProvider {
    None,
    Simple(SimpleTokens),
    Jwt(JwtTokens),
}

impl TokenProvider {
    pub(crate) fn new(
        opts: &TokenOptions,
        simple_ttl: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<TokenProvider, AuthError> {
        Ok(match opts {
            TokenOptions::None => TokenProvider::None,
            TokenOptions::Simple => TokenProvider::Simple(SimpleTokens::new(simple_ttl, clock)),
            TokenOptions::Jwt(o) => TokenProvider::Jwt(jwt_provider(o)?),
        })
    }

    pub(crate) fn enable(&self) {
        if let TokenProvider::Simple(s) = self {
            s.enable();
        }
    }

    pub(crate) fn disable(&self) {
        if let TokenProvider::Simple(s) = self {
            s.disable();
        }
    }

    pub(crate) fn invalidate_user(&self, user: &str) {
        if let TokenProvider::Simple(s) = self {
            s.invalidate_user(user);
        }
    }

    pub(crate) fn gen_prefix(&self) -> String {
        match self {
            TokenProvider::Simple(_) => SimpleTokens::gen_prefix(),
            _ => String::new(),
        }
    }

    pub(crate) fn assign(
        &self,
        user: &str,
        revision: u64,
        prefix: &str,
        index: u64,
    ) -> Result<String, EtcdError> {
        match self {
            TokenProvider::None => Err(EtcdError::AuthFailed),
            TokenProvider::Simple(s) => s.assign(user, prefix, index),
            TokenProvider::Jwt(j) => j.assign(user, revision),
        }
    }

    /// The token's user and revision; a simple token carries none, so it gets the
    /// store's `current` revision.
    pub(crate) fn info(&self, token: &str, current: u64) -> Option<AuthInfo> {
        match self {
            TokenProvider::None => None,
            TokenProvider::Simple(s) => s.user_of(token).map(|username| AuthInfo {
                username,
                revision: current,
            }),
            TokenProvider::Jwt(j) => j.info(token),
        }
    }

    pub(crate) fn purge_expired(&self) -> usize {
        match self {
            TokenProvider::Simple(s) => s.purge_expired(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcd_token_options() {
        assert_eq!(
            "simple".parse::<TokenOptions>().unwrap(),
            TokenOptions::Simple
        );
        assert_eq!("".parse::<TokenOptions>().unwrap(), TokenOptions::None);
        let TokenOptions::Jwt(j) = "jwt,pub-key=/a.pub,priv-key=/a.priv,sign-method=RS256,ttl=10m"
            .parse::<TokenOptions>()
            .unwrap()
        else {
            panic!("not jwt");
        };
        assert_eq!(j.sign_method, "RS256");
        assert_eq!(j.pub_key, Some(PathBuf::from("/a.pub")));
        assert_eq!(j.priv_key, Some(PathBuf::from("/a.priv")));
        assert_eq!(j.ttl, Duration::from_secs(600));
        let TokenOptions::Jwt(j) = "jwt,sign-method=HS256".parse::<TokenOptions>().unwrap() else {
            panic!("not jwt");
        };
        assert_eq!(j.ttl, DEFAULT_JWT_TTL);
        assert!("bogus".parse::<TokenOptions>().is_err());
        assert!("jwt,ttl".parse::<TokenOptions>().is_err());
        assert!("jwt,a=b=c".parse::<TokenOptions>().is_err());
        assert!("jwt,ttl=1m,ttl=2m".parse::<TokenOptions>().is_err());
        assert!("jwt,ttl=forever".parse::<TokenOptions>().is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("300s"), Some(Duration::from_secs(300)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("-5s"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn simple_token_index_parses_only_the_simple_form() {
        assert_eq!(simple_token_index("abcdefghijklmnop.42"), Some(42));
        assert_eq!(simple_token_index("abc.def.42"), None);
        assert_eq!(simple_token_index("abc"), None);
        assert_eq!(simple_token_index("abc.x"), None);
    }
}
