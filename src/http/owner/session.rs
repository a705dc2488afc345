//! The owner's session: a signed, stateless cookie, and the CSRF tokens bound to it.
//!
//! A session is `<id>.<expires>.<mac>`: 128 random bits, the second it ends (a fixed
//! [`LIFETIME`] from sign-in, not sliding) and an HMAC-SHA256 of both under a key derived from the
//! admin token. Nothing is stored: every replica checks a cookie alone, a restart keeps everyone
//! signed in, and changing `DOCGATE_ADMIN_TOKEN` signs everyone out. Signing out clears the
//! cookie in the browser; a copy of it taken before stays valid until it expires (a stolen
//! `HttpOnly` cookie is the one thing this design cannot withdraw but by changing the token).
//!
//! An action's CSRF token is the HMAC of the session's id (a synchroniser token nobody stores);
//! the sign-in form's is the HMAC of a random nonce held in a short-lived cookie of its own
//! (double submit, signed), so a page elsewhere cannot sign a browser in either.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, header};

/// The session cookie's name.
pub const COOKIE: &str = "docgate_owner";
/// The sign-in form's nonce cookie.
pub const LOGIN_COOKIE: &str = "docgate_owner_login";
/// How long a session lasts from sign-in.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long the sign-in form may wait before it is posted.
pub const LOGIN_LIFETIME: Duration = Duration::from_secs(3600);

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    id: String,
}

/// The OS random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a session: {0}")]
pub struct NoRandom(String);

/// The key that signs sessions and CSRF tokens, derived from the admin token.
pub struct Keys {
    key: hmac::Key,
}

impl Keys {
    /// The keys of `admin_token`.
    pub fn new(admin_token: &[u8]) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, admin_token);
        let derived = hmac::sign(&root, b"docgate owner session v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    fn mac(&self, label: &str, parts: &[&str]) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(label.as_bytes());
        for part in parts {
            context.update(b"|");
            context.update(part.as_bytes());
        }
        URL_SAFE_NO_PAD.encode(context.sign().as_ref())
    }

    fn check(&self, label: &str, parts: &[&str], given: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(given) else {
            return false;
        };
        let mut data = label.as_bytes().to_vec();
        for part in parts {
            data.push(b'|');
            data.extend_from_slice(part.as_bytes());
        }
        hmac::verify(&self.key, &data, &tag).is_ok()
    }

    /// A new session from `now` (seconds since the epoch), and its cookie's value.
    pub fn open(&self, now: u64) -> Result<(Session, String), NoRandom> {
        let id = random()?;
        let expires = now.saturating_add(LIFETIME.as_secs()).to_string();
        let mac = self.mac("session", &[&id, &expires]);
        Ok((Session { id: id.clone() }, format!("{id}.{expires}.{mac}")))
    }

    /// The session a cookie's value names, if it is signed here and not expired at `now`.
    pub fn verify(&self, value: &str, now: u64) -> Option<Session> {
        let mut parts = value.split('.');
        let (id, expires, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !self.check("session", &[id, expires], mac) {
            return None;
        }
        let expires: u64 = expires.parse().ok()?;
        (now < expires).then(|| Session { id: id.to_owned() })
    }

    /// The CSRF token of every form of `session`.
    pub fn csrf(&self, session: &Session) -> String {
        self.mac("csrf", &[&session.id])
    }

    /// Whether `given` is `session`'s CSRF token (constant time).
    pub fn csrf_ok(&self, session: &Session, given: &str) -> bool {
        self.check("csrf", &[&session.id], given)
    }

    /// The sign-in form's CSRF token for the nonce in its cookie.
    pub fn login_csrf(&self, nonce: &str) -> String {
        self.mac("login", &[nonce])
    }

    /// Whether `given` is the sign-in form's token for `nonce` (constant time).
    pub fn login_csrf_ok(&self, nonce: &str, given: &str) -> bool {
        self.check("login", &[nonce], given)
    }
}

/// 128 random bits, base64url.
pub fn random() -> Result<String, NoRandom> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| NoRandom(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The value of the cookie `name` the request carries.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: only ever sent back to this listener's paths, never to a script, never
/// over plain HTTP but to a loopback address (where browsers treat `http://localhost` as
/// secure), never with a request another site starts. `max_age` zero clears it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        max_age.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_signed_expire_and_die_with_the_token() {
        let keys = Keys::new(b"admin-token-0123456789abcdef");
        let (session, value) = keys.open(1_000).unwrap();
        assert_eq!(keys.verify(&value, 1_001), Some(session.clone()));
        assert_eq!(keys.verify(&value, 1_000 + LIFETIME.as_secs()), None);
        // Another token's key, a changed expiry, a changed id: refused.
        assert_eq!(Keys::new(b"another token").verify(&value, 1_001), None);
        let parts: Vec<&str> = value.split('.').collect();
        let later = format!("{}.{}.{}", parts[0], 99_999_999, parts[2]);
        assert_eq!(keys.verify(&later, 1_001), None);
        let other = format!("{}x.{}.{}", parts[0], parts[1], parts[2]);
        assert_eq!(keys.verify(&other, 1_001), None);
        assert_eq!(keys.verify("", 1_001), None);
        assert_eq!(keys.verify("a.b.c.d", 1_001), None);

        let csrf = keys.csrf(&session);
        assert!(keys.csrf_ok(&session, &csrf));
        let (second, _) = keys.open(1_000).unwrap();
        assert!(!keys.csrf_ok(&second, &csrf));
        assert!(!keys.csrf_ok(&session, ""));
        assert!(keys.login_csrf_ok("n", &keys.login_csrf("n")));
        assert!(!keys.login_csrf_ok("m", &keys.login_csrf("n")));
        assert_ne!(keys.login_csrf(&session.id), csrf);
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; docgate_owner=x.y.z".parse().unwrap());
        headers.append(header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&headers, COOKIE), Some("x.y.z"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "docgate"), None);
    }
}
