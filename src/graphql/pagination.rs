//! Relay-style pagination shared by every connection: page-size validation, opaque cursors and
//! `PageInfo`. Pages are keyset-paginated on `(sort key, id)`, so they stay stable under inserts.

use async_graphql::SimpleObject;
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: i32 = 100;
/// Page size when `first` is omitted.
pub const DEFAULT_PAGE_SIZE: i32 = 20;

/// Validates `first` (1..=100, default 20).
pub fn page_size(first: Option<i32>) -> AppResult<i64> {
    let first = first.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&first) {
        return Err(AppError::invalid_field(
            "first",
            format!("first must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    Ok(i64::from(first))
}

/// The complexity of a connection: its page size times the complexity of one item, for the
/// `complexity` attribute of every paginated field.
pub fn page_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    list_complexity(
        first.unwrap_or(DEFAULT_PAGE_SIZE),
        MAX_PAGE_SIZE,
        child_complexity,
    )
}

/// The complexity of a list of `count` items each costing `child_complexity`, counting at most
/// `max` items: the most its resolver serves. A count out of range is the resolver's to refuse, with
/// `BAD_USER_INPUT` naming the argument; counted in full here, validation would answer "Query is too
/// complex" first, which names nothing the client can fix.
pub fn list_complexity(count: i32, max: i32, child_complexity: usize) -> usize {
    usize::try_from(count.clamp(0, max))
        .unwrap_or(0)
        .saturating_mul(child_complexity)
}

/// Position of a row in an ordered list: the text form of its sort key and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: String,
    pub id: Uuid,
}

fn invalid_cursor() -> AppError {
    AppError::invalid_field("after", "after is not a cursor returned by this list")
}

impl Cursor {
    /// A cursor on a timestamp (RFC 3339, microseconds: PostgreSQL's precision).
    pub fn at_time(time: DateTime<Utc>, id: Uuid) -> Self {
        Self {
            key: time.to_rfc3339_opts(SecondsFormat::Micros, true),
            id,
        }
    }

    /// The timestamp of a cursor made by [`Cursor::at_time`].
    pub fn time(&self) -> AppResult<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.key)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| invalid_cursor())
    }

    /// Decodes an optional `after` holding a timestamp cursor, into the typed pair SQL needs.
    pub fn decode_time(raw: Option<&str>) -> AppResult<Option<(DateTime<Utc>, Uuid)>> {
        Self::decode_opt(raw)?
            .map(|c| Ok((c.time()?, c.id)))
            .transpose()
    }

    pub fn encode(&self) -> String {
        hex::encode(format!("{}\u{1f}{}", self.id, self.key))
    }

    pub fn decode(raw: &str) -> AppResult<Self> {
        let invalid =
            || AppError::invalid_field("after", "after is not a cursor returned by this list");
        let bytes = hex::decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (id, key) = text.split_once('\u{1f}').ok_or_else(invalid)?;
        Ok(Self {
            key: key.to_owned(),
            id: Uuid::parse_str(id).map_err(|_| invalid())?,
        })
    }

    pub fn decode_opt(raw: Option<&str>) -> AppResult<Option<Self>> {
        raw.map(Self::decode).transpose()
    }
}

/// Relay's page information.
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct PageInfo {
    /// Whether more items follow this page.
    pub has_next_page: bool,
    /// Whether this page was asked for after a cursor.
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// Trims a fetched `limit + 1` rows to the page and builds its `PageInfo`.
pub fn page<T>(
    mut rows: Vec<T>,
    limit: i64,
    after: bool,
    cursor_of: impl Fn(&T) -> Cursor,
) -> (Vec<(String, T)>, PageInfo) {
    let has_next_page = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let edges: Vec<(String, T)> = rows
        .into_iter()
        .map(|r| (cursor_of(&r).encode(), r))
        .collect();
    let info = PageInfo {
        has_next_page,
        has_previous_page: after,
        start_cursor: edges.first().map(|(c, _)| c.clone()),
        end_cursor: edges.last().map(|(c, _)| c.clone()),
    };
    (edges, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complexity_counts_at_most_the_largest_page() {
        assert_eq!(page_complexity(None, 3), 60);
        assert_eq!(page_complexity(Some(10), 3), 30);
        // Out of range: the resolver refuses it, naming `first`; validation must let it through.
        assert_eq!(page_complexity(Some(100_000), 3), 300);
        assert_eq!(page_complexity(Some(i32::MAX), usize::MAX), usize::MAX);
        assert_eq!(page_complexity(Some(-5), 3), 0);
        assert_eq!(list_complexity(50, 20, 2), 40);
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            key: "2026-01-01 10:00:00.123456+00".into(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn time_cursors_round_trip_and_reject_other_keys() {
        let now = Utc::now();
        let c = Cursor::decode(&Cursor::at_time(now, Uuid::nil()).encode()).unwrap();
        assert_eq!(c.time().unwrap().timestamp_micros(), now.timestamp_micros());
        let other = Cursor {
            key: "n:42".into(),
            id: Uuid::nil(),
        };
        assert!(matches!(
            other.time(),
            Err(AppError::BadInput {
                field: Some("after"),
                ..
            })
        ));
    }

    #[test]
    fn foreign_cursors_are_bad_input() {
        for raw in ["zz", "6869", &hex::encode("not-a-uuid\u{1f}x")] {
            assert!(matches!(
                Cursor::decode(raw),
                Err(AppError::BadInput {
                    field: Some("after"),
                    ..
                })
            ));
        }
    }

    #[test]
    fn page_sizes_are_capped() {
        assert_eq!(page_size(None).unwrap(), 20);
        assert_eq!(page_size(Some(100)).unwrap(), 100);
        assert!(page_size(Some(101)).is_err());
        assert!(page_size(Some(0)).is_err());
    }

    #[test]
    fn a_page_knows_whether_more_follow() {
        let rows: Vec<u32> = (0..6).collect();
        let cursor = |n: &u32| Cursor {
            key: n.to_string(),
            id: Uuid::nil(),
        };
        let (edges, info) = page(rows, 5, false, cursor);
        assert_eq!(edges.len(), 5);
        assert!(info.has_next_page);
        let (edges, info) = page(vec![1u32], 5, true, cursor);
        assert_eq!(edges.len(), 1);
        assert!(!info.has_next_page && info.has_previous_page);
    }
}
