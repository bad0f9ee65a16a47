//! The audit chain's canonical encoding and its verifier.
//!
//! The encoding is defined twice on purpose: in SQL (`internal.audit_canonical`, used by the trigger that
//! writes entries) and here (used to check them), so that a changed or replaced trigger function is
//! caught too. Entry n stores `prev_hash` (entry n-1's hash, [`GENESIS`] for n = 1) and
//! `hash = sha256(prev_hash || canonical(entry))`.
//!
//! The client's own request id (`client_request_id`, since V6) is a thirteenth field present only when
//! it is not null, so entries written before it (and entries without one) hash as they always did.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// `prev_hash` of an organization's first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// An entry as stored, with `before`/`after` as PostgreSQL's jsonb text.
#[derive(Debug, Clone)]
pub struct ChainEntry {
    pub org_id: Uuid,
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub table_name: String,
    pub row_id: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    /// The `x-request-id` the client sent, if any (what it claimed; `request_id` is the server's).
    pub client_request_id: Option<String>,
}

fn field(out: &mut String, value: Option<&str>) {
    out.push('|');
    match value {
        // Length-prefixed (in bytes, like SQL's octet_length), so no value can imitate a separator.
        Some(v) => {
            let _ = write!(out, "{}:{v}", v.len());
        }
        None => out.push('-'),
    }
}

/// The text an entry's hash covers; must match `internal.audit_canonical` byte for byte.
pub fn canonical(e: &ChainEntry) -> String {
    let mut out = String::from("v1");
    let uuid = |id: Option<Uuid>| id.map(|id| id.to_string());
    field(&mut out, Some(&e.org_id.to_string()));
    field(&mut out, Some(&e.seq.to_string()));
    field(
        &mut out,
        Some(&e.occurred_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    );
    field(&mut out, uuid(e.actor_user_id).as_deref());
    field(&mut out, uuid(e.actor_api_key_id).as_deref());
    field(&mut out, e.actor_role.as_deref());
    field(&mut out, e.request_id.as_deref());
    field(&mut out, Some(&e.action));
    field(&mut out, Some(&e.table_name));
    field(&mut out, e.row_id.as_deref());
    field(&mut out, e.before.as_deref());
    field(&mut out, e.after.as_deref());
    // Only when present (V6): older entries keep their twelve fields and their hashes.
    if let Some(client) = e.client_request_id.as_deref() {
        field(&mut out, Some(client));
    }
    out
}

/// `sha256(prev_hash || canonical)`.
pub fn entry_hash(prev_hash: &[u8], canonical: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(canonical.as_bytes());
    h.finalize().into()
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub checked_entries: i64,
    /// The first entry that does not fit the chain (or the first missing sequence number).
    pub first_broken_seq: Option<i64>,
}

/// Checks entries fed in sequence order, one at a time, so a long chain is verified in constant
/// memory.
#[derive(Debug)]
pub struct Verifier {
    next_seq: i64,
    prev_hash: Vec<u8>,
    checked: i64,
    first_broken: Option<i64>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            next_seq: 1,
            prev_hash: GENESIS.to_vec(),
            checked: 0,
            first_broken: None,
        }
    }
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence number after the last entry seen.
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    pub fn push(&mut self, e: &ChainEntry) {
        self.checked += 1;
        if self.first_broken.is_none() {
            if e.seq != self.next_seq {
                // Entries are missing before this one: the first missing one is where it broke.
                self.first_broken = Some(self.next_seq.min(e.seq));
            } else if e.prev_hash != self.prev_hash
                || entry_hash(&e.prev_hash, &canonical(e)).as_slice() != e.hash.as_slice()
            {
                self.first_broken = Some(e.seq);
            }
        }
        // Continue from the stored values, so one bad entry is reported once, not as a cascade.
        self.next_seq = e.seq + 1;
        self.prev_hash.clone_from(&e.hash);
    }

    /// Ends the check against the chain's recorded head (last sequence number and hash), which catches
    /// entries removed from the end.
    pub fn finish(mut self, head: Option<(i64, Vec<u8>)>) -> Verdict {
        if self.first_broken.is_none() {
            let last = self.next_seq - 1;
            match head {
                Some((seq, hash)) if seq != last || (last > 0 && hash != self.prev_hash) => {
                    self.first_broken = Some(last + 1);
                }
                None if last > 0 => self.first_broken = Some(1),
                _ => {}
            }
        }
        Verdict {
            ok: self.first_broken.is_none(),
            checked_entries: self.checked,
            first_broken_seq: self.first_broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<ChainEntry> {
        let org = Uuid::new_v4();
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let mut e = ChainEntry {
                    org_id: org,
                    seq,
                    occurred_at: Utc::now(),
                    actor_user_id: Some(Uuid::new_v4()),
                    actor_api_key_id: None,
                    actor_role: Some("agent".into()),
                    request_id: None,
                    action: "UPDATE".into(),
                    table_name: "tickets".into(),
                    row_id: Some(Uuid::new_v4().to_string()),
                    before: Some(r#"{"title": "a|b"}"#.into()),
                    after: Some(format!(r#"{{"title": "é {seq}"}}"#)),
                    prev_hash: prev.clone(),
                    hash: vec![],
                    client_request_id: None,
                };
                e.hash = entry_hash(&prev, &canonical(&e)).to_vec();
                prev.clone_from(&e.hash);
                e
            })
            .collect()
    }

    fn verify(entries: &[ChainEntry], head: Option<(i64, Vec<u8>)>) -> Verdict {
        let mut v = Verifier::new();
        entries.iter().for_each(|e| v.push(e));
        v.finish(head)
    }

    fn head(entries: &[ChainEntry]) -> Option<(i64, Vec<u8>)> {
        entries.last().map(|e| (e.seq, e.hash.clone()))
    }

    #[test]
    fn fields_are_length_prefixed_in_bytes_and_nulls_marked() {
        let e = &chain(1)[0];
        let text = canonical(e);
        assert!(text.starts_with(&format!("v1|36:{}|1:1|27:", e.org_id)));
        assert!(text.contains("|-|5:agent|-|6:UPDATE|7:tickets|"));
        // "é" is two bytes.
        assert!(text.ends_with(r#"|17:{"title": "é 1"}"#), "{text}");
    }

    #[test]
    fn a_client_request_id_is_a_trailing_field_only_when_present() {
        let mut e = chain(1).remove(0);
        let without = canonical(&e);
        e.client_request_id = Some("client-abc".into());
        assert_eq!(canonical(&e), format!("{without}|10:client-abc"));
        // Changing or removing it changes the hash.
        let hash = entry_hash(&e.prev_hash, &canonical(&e));
        e.client_request_id = Some("client-abd".into());
        assert_ne!(entry_hash(&e.prev_hash, &canonical(&e)), hash);
        e.client_request_id = None;
        assert_ne!(entry_hash(&e.prev_hash, &canonical(&e)), hash);
    }

    #[test]
    fn an_intact_chain_verifies() {
        let entries = chain(5);
        let verdict = verify(&entries, head(&entries));
        assert_eq!(
            verdict,
            Verdict {
                ok: true,
                checked_entries: 5,
                first_broken_seq: None
            }
        );
        assert!(verify(&[], None).ok);
    }

    #[test]
    fn a_changed_entry_is_named() {
        let mut entries = chain(5);
        entries[2].after = Some(r#"{"title": "forged"}"#.into());
        let verdict = verify(&entries, head(&entries));
        assert!(!verdict.ok);
        assert_eq!(verdict.first_broken_seq, Some(3));
        assert_eq!(verdict.checked_entries, 5);
    }

    #[test]
    fn a_rehashed_entry_breaks_the_link_to_the_next() {
        let mut entries = chain(5);
        entries[1].after = Some(r#"{"title": "forged"}"#.into());
        entries[1].hash = entry_hash(&entries[1].prev_hash, &canonical(&entries[1])).to_vec();
        assert_eq!(verify(&entries, head(&entries)).first_broken_seq, Some(3));
    }

    #[test]
    fn missing_entries_are_found_in_the_middle_and_at_the_end() {
        let entries = chain(5);
        let full_head = head(&entries);
        let mut gap = entries.clone();
        gap.remove(1);
        assert_eq!(verify(&gap, full_head.clone()).first_broken_seq, Some(2));
        assert_eq!(verify(&entries[..3], full_head).first_broken_seq, Some(4));
    }
}
