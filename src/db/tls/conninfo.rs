//! Taking libpq's TLS parameters out of a connection string, in either form tokio-postgres reads:
//! a URL (`postgres://…?sslmode=verify-full&sslrootcert=ca.pem`) or `key=value` pairs
//! (`host=db sslmode='verify-full'`). What is left is handed to tokio-postgres unchanged, so both
//! parsers must split exactly where its own parsers do (`tokio_postgres::config`).

use std::path::PathBuf;

use super::SslMode;

/// TLS parameters this module implements (libpq's names).
const HANDLED: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslsni",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    // Has no effect in libpq either with any current OpenSSL; accepted so copied URLs still work.
    "sslcompression",
];

/// libpq TLS parameters that are refused rather than ignored: each would change what is checked
/// or how, and silently dropping it would connect less safely than its author asked for.
const UNSUPPORTED: &[&str] = &[
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslcertmode",
    "sslkeylogfile",
];

/// A connection string split in two: what tokio-postgres reads, and the TLS parameters.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Split {
    pub rest: String,
    pub tls: Vec<(String, String)>,
}

fn is_tls(key: &str) -> bool {
    HANDLED.contains(&key) || UNSUPPORTED.contains(&key)
}

pub(super) fn split(conninfo: &str) -> Result<Split, String> {
    for prefix in ["postgres://", "postgresql://"] {
        if conninfo.starts_with(prefix) {
            return split_url(conninfo, prefix.len());
        }
    }
    split_key_values(conninfo)
}

/// The URL form. As in tokio-postgres, the user info runs to the first `@`, the query starts at the
/// first `?` after it, and parameters are separated by `&`, their name ending at the first `=`.
fn split_url(url: &str, start: usize) -> Result<Split, String> {
    let after_user_info = url[start..].find('@').map_or(start, |at| start + at + 1);
    let Some(question) = url[after_user_info..].find('?') else {
        return Ok(Split {
            rest: url.to_owned(),
            tls: vec![],
        });
    };
    let question = after_user_info + question;
    let mut kept = vec![];
    let mut tls = vec![];
    for param in url[question + 1..].split('&') {
        match param.split_once('=') {
            Some((key, value)) => {
                let key = percent_decode(key)?;
                if is_tls(&key) {
                    tls.push((key, percent_decode(value)?));
                } else {
                    kept.push(param);
                }
            }
            // tokio-postgres reports it.
            None => kept.push(param),
        }
    }
    let mut rest = url[..question].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok(Split { rest, tls })
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "a parameter is not UTF-8 once percent-decoded".to_owned())
}

/// The `key=value` form: whitespace-separated pairs, values optionally single-quoted, backslash
/// escaping the next character.
fn split_key_values(conninfo: &str) -> Result<Split, String> {
    let mut chars = conninfo.char_indices().peekable();
    let mut kept = vec![];
    let mut tls = vec![];
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            // tokio-postgres stops reading here too.
            kept.push(&conninfo[start..]);
            break;
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            // Position only: the word may be part of an unquoted password.
            return Err(format!("`=` missing after the word at byte {start}"));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut value = String::new();
        let mut closed = false;
        while let Some(&(_, c)) = chars.peek() {
            if (quoted && c == '\'') || (!quoted && c.is_whitespace()) {
                break;
            }
            chars.next();
            if c == '\\' {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            } else {
                value.push(c);
            }
        }
        if quoted {
            closed = chars.next_if(|(_, c)| *c == '\'').is_some();
        }
        if quoted && !closed {
            return Err(format!("unterminated quoted value for `{key}`"));
        }
        if !quoted && value.is_empty() {
            return Err(format!("no value for `{key}`"));
        }
        let end = chars.peek().map_or(conninfo.len(), |&(i, _)| i);
        if is_tls(&key) {
            tls.push((key, value));
        } else {
            kept.push(&conninfo[start..end]);
        }
    }
    Ok(Split {
        rest: kept.join(" "),
        tls,
    })
}

/// A TLS protocol version as libpq names them, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Version {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl Version {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "TLSv1" => Some(Self::Tls10),
            "TLSv1.1" => Some(Self::Tls11),
            "TLSv1.2" => Some(Self::Tls12),
            "TLSv1.3" => Some(Self::Tls13),
            _ => None,
        }
    }
}

/// The TLS parameters of one connection string, as given (defaults are applied by the caller).
#[derive(Debug, Default)]
pub(super) struct TlsParams {
    pub mode: Option<SslMode>,
    /// `sslrootcert`: a PEM file, or `system`. Empty counts as not given, as in libpq.
    pub root_cert: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `sslsni=0` turns Server Name Indication off.
    pub sni: bool,
    /// libpq's default minimum is TLS 1.2.
    pub min_version: Option<Version>,
    pub max_version: Option<Version>,
}

impl TlsParams {
    /// Reads the pairs [`split`] took out (a later pair overrides an earlier one, as in libpq).
    pub fn read(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut params = Self {
            sni: true,
            ..Self::default()
        };
        let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_owned());
        for (key, value) in pairs {
            match key.as_str() {
                "sslmode" => {
                    params.mode = Some(SslMode::parse(value).ok_or_else(|| {
                        format!(
                            "has an invalid sslmode \"{value}\": expected disable, allow, prefer, \
                             require, verify-ca or verify-full"
                        )
                    })?);
                }
                "sslrootcert" => params.root_cert = non_empty(value),
                "sslcert" => params.cert = non_empty(value).map(PathBuf::from),
                "sslkey" => params.key = non_empty(value).map(PathBuf::from),
                "sslsni" => {
                    params.sni = match value.as_str() {
                        "1" => true,
                        "0" => false,
                        _ => {
                            return Err(format!(
                                "has an invalid sslsni \"{value}\": expected 0 or 1"
                            ));
                        }
                    }
                }
                "ssl_min_protocol_version" => {
                    params.min_version = Some(version(key, value)?);
                }
                "ssl_max_protocol_version" => {
                    params.max_version = if value.is_empty() {
                        None
                    } else {
                        Some(version(key, value)?)
                    };
                }
                "sslcompression" => {}
                _ => {
                    return Err(format!(
                        "sets {key}, which deskgraph does not support; remove it"
                    ));
                }
            }
        }
        Ok(params)
    }
}

fn version(key: &str, value: &str) -> Result<Version, String> {
    Version::parse(value).ok_or_else(|| {
        format!("has an invalid {key} \"{value}\": expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn urls_lose_their_tls_parameters_and_keep_everything_else() {
        let split = split(
            "postgres://u:p%3Fw@db.example:6543/app?sslmode=verify-full&application_name=x\
             &sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(
            split.rest,
            "postgres://u:p%3Fw@db.example:6543/app?application_name=x&connect_timeout=5"
        );
        assert_eq!(
            split.tls,
            pairs(&[("sslmode", "verify-full"), ("sslrootcert", "/etc/ca.pem")])
        );
    }

    #[test]
    fn a_question_mark_in_the_password_does_not_start_the_query() {
        let with_query = split("postgresql://u:a?b@h/db?sslmode=require").unwrap();
        assert_eq!(with_query.rest, "postgresql://u:a?b@h/db");
        assert_eq!(with_query.tls, pairs(&[("sslmode", "require")]));
        let without = split("postgres://h/db").unwrap();
        assert_eq!(without.rest, "postgres://h/db");
        assert!(without.tls.is_empty());
    }

    #[test]
    fn key_value_strings_lose_their_tls_pairs_and_keep_quoting() {
        let split = split(
            r"host=db.example  sslmode = 'verify-ca' password='it\'s secret' sslrootcert=/a\ b.pem dbname=app",
        )
        .unwrap();
        assert_eq!(
            split.rest,
            r"host=db.example password='it\'s secret' dbname=app"
        );
        assert_eq!(
            split.tls,
            pairs(&[("sslmode", "verify-ca"), ("sslrootcert", "/a b.pem")])
        );
        assert!(split_key_values("host=h sslmode='verify-full").is_err());
        assert!(split_key_values("host=h sslmode").is_err());
    }

    #[test]
    fn what_is_left_still_parses_as_tokio_postgres_reads_it() {
        for conninfo in [
            "postgres://u:pw@h:5433/db?sslmode=verify-full&connect_timeout=7",
            "host=h port=5433 user=u sslmode=verify-full connect_timeout=7 dbname=db",
        ] {
            let config: tokio_postgres::Config = split(conninfo).unwrap().rest.parse().unwrap();
            assert_eq!(config.get_ports(), &[5433], "{conninfo}");
            assert_eq!(
                config.get_connect_timeout(),
                Some(&std::time::Duration::from_secs(7))
            );
        }
    }

    #[test]
    fn tls_parameters_are_read_with_libpq_values() {
        let params = TlsParams::read(&pairs(&[
            ("sslmode", "require"),
            ("sslmode", "verify-ca"),
            ("sslrootcert", ""),
            ("sslsni", "0"),
            ("ssl_min_protocol_version", "TLSv1.3"),
        ]))
        .unwrap();
        assert_eq!(params.mode, Some(SslMode::VerifyCa));
        assert_eq!(params.root_cert, None);
        assert!(!params.sni);
        assert_eq!(params.min_version, Some(Version::Tls13));
        let bad = TlsParams::read(&pairs(&[("sslmode", "verify_full")])).unwrap_err();
        assert!(bad.contains("invalid sslmode \"verify_full\""), "{bad}");
        let unsupported = TlsParams::read(&pairs(&[("sslcrl", "x.pem")])).unwrap_err();
        assert!(unsupported.contains("sslcrl"), "{unsupported}");
    }
}
