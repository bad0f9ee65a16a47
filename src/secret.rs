//! Values that must never reach logs: [`Secret`] (passwords, keys, shared secrets) and
//! [`SecretUrl`] (connection URLs, which may carry a password).
//!
//! Neither implements `Display`, and their `Debug` hides the value, so deriving `Debug` on a
//! configuration struct that holds them is safe. The value is read with `expose()`, which makes each
//! use visible in review. Both parse from any string (so clap reads them like a `String`).

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// A secret string. `Debug` prints `Secret("***")` (`Secret("")` when it is empty, which says only
/// that it is unset).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the code that uses it (never for logs).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if self.0.is_empty() { "" } else { "***" };
        f.debug_tuple("Secret").field(&shown).finish()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(value.into())
    }
}

/// A connection URL that may carry a password. `Debug` prints it with the password (in the user
/// info or a `password` query parameter) replaced by `***`; a string that is not a URL (libpq's
/// `key=value` form) is hidden as a whole.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The URL itself, password included, for connecting (never for logs).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`, safe to log.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.redacted()).finish()
    }
}

impl From<String> for SecretUrl {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretUrl {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl FromStr for SecretUrl {
    type Err = Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(value.into())
    }
}

/// Replaces the password of `scheme://user:password@host…?password=…` with `***`. Errs on the side
/// of hiding: the user info runs to the *last* `@` (a stray `@` elsewhere hides more, never less),
/// and every query parameter whose name mentions `pass` or is percent-encoded is hidden.
fn redact_url(url: &str) -> String {
    if url.is_empty() {
        return String::new();
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let mut out = format!("{scheme}://");
    let after_user_info = match rest.rfind('@') {
        Some(at) => {
            let user_info = &rest[..at];
            match user_info.split_once(':') {
                Some((user, _password)) => out += &format!("{user}:***@"),
                None => out += &format!("{user_info}@"),
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    let Some((location, query)) = after_user_info.split_once('?') else {
        out += after_user_info;
        return out;
    };
    out += location;
    out.push('?');
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _value))
                if key.to_ascii_lowercase().contains("pass") || key.contains('%') =>
            {
                format!("{key}=***")
            }
            _ => param.to_owned(),
        })
        .collect();
    out += &params.join("&");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_secrets_say_so_and_others_are_hidden() {
        assert_eq!(format!("{:?}", Secret::default()), r#"Secret("")"#);
        assert_eq!(format!("{:?}", Secret::new("hunter2")), r#"Secret("***")"#);
        assert!(Secret::from("").is_empty());
    }

    #[test]
    fn urls_lose_their_passwords_and_nothing_else() {
        let cases = [
            ("", ""),
            (
                "postgres://postgres@127.0.0.1:5432/deskgraph",
                "postgres://postgres@127.0.0.1:5432/deskgraph",
            ),
            (
                "postgresql://u:p%40ss@h/db?sslmode=require",
                "postgresql://u:***@h/db?sslmode=require",
            ),
            // A raw `@` or `?` in the password: everything up to the last `@` is user info.
            ("postgres://u:a@b?c@h/db", "postgres://u:***@h/db"),
            (
                "postgres://h/db?user=u&password=pw",
                "postgres://h/db?user=u&password=***",
            ),
            (
                "postgres://h/db?p%61ssword=pw",
                "postgres://h/db?p%61ssword=***",
            ),
            ("host=h user=u password=pw", "***"),
        ];
        for (url, shown) in cases {
            assert_eq!(SecretUrl::from(url).redacted(), shown, "{url}");
        }
    }
}
