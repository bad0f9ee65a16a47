//! Argument validation: each helper returns the cleaned value or `BAD_USER_INPUT` naming the field.

use async_graphql::ID;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Parses a GraphQL ID as a UUID; anything else is BAD_USER_INPUT naming the argument.
pub fn parse_id(field: &'static str, id: &ID) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| AppError::invalid_field(field, format!("{field} is not a valid id")))
}

/// Parses an optional GraphQL ID (see [`parse_id`]).
pub fn parse_opt_id(field: &'static str, id: Option<&ID>) -> AppResult<Option<Uuid>> {
    id.map(|id| parse_id(field, id)).transpose()
}

/// Trims `value` and checks its length in characters.
pub fn text_field(field: &'static str, value: &str, min: usize, max: usize) -> AppResult<String> {
    let value = value.trim();
    let len = value.chars().count();
    if len < min {
        return Err(AppError::invalid_field(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if len > max {
        return Err(AppError::invalid_field(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// A plausible e-mail address (one `@`, something either side, no spaces, ≤ 320 characters).
pub fn email_field(field: &'static str, value: &str) -> AppResult<String> {
    let value = value.trim();
    let ok = value.len() <= 320
        && !value.chars().any(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
        });
    if !ok {
        return Err(AppError::invalid_field(
            field,
            format!("{field} is not a valid e-mail address"),
        ));
    }
    Ok(value.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_trimmed_and_bounded() {
        assert_eq!(text_field("title", "  Hi  ", 1, 200).unwrap(), "Hi");
        assert!(text_field("title", "   ", 1, 200).is_err());
        assert!(text_field("title", &"é".repeat(201), 1, 200).is_err());
        assert!(text_field("title", &"é".repeat(200), 1, 200).is_ok());
    }

    #[test]
    fn emails_are_checked() {
        assert_eq!(
            email_field("email", " Ann@Example.com ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "a b@example.com",
            "ann@example",
        ] {
            assert!(email_field("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(parse_id("id", &ID::from("42")).is_err());
        assert!(parse_id("id", &ID::from(Uuid::new_v4().to_string())).is_ok());
        assert_eq!(parse_opt_id("id", None).unwrap(), None);
        assert!(parse_opt_id("id", Some(&ID::from("x"))).is_err());
    }
}
