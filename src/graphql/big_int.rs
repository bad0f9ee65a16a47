//! The `BigInt` scalar: exact 64-bit integers for amounts that outgrow GraphQL's 32-bit `Int` (credits).
//!
//! Output is a JSON string, as PostGraphile's `BigInt` is: a JSON number above 2^53 loses digits in
//! JavaScript (`JSON.parse`), and strict clients refuse an `Int` above 2^31 − 1. Input takes the string
//! or a plain integer, so `amount: 500` keeps working. Bad input is refused while the document is
//! validated (before anything runs), as `BAD_USER_INPUT` saying `expected type "BigInt"`.

use std::fmt;

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// A signed 64-bit integer (credit amounts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BigInt(pub i64);

/// A signed 64-bit integer, from -9223372036854775808 to 9223372036854775807, sent as a JSON string
/// of decimal digits with an optional leading `-` (e.g. `"5000000000"`), so that it stays exact
/// beyond GraphQL's 32-bit `Int` and JavaScript's 2^53.
///
/// As input, such a string or an integer (a GraphQL integer literal or a JSON number) in that range
/// is accepted. Anything else (other characters, signs other than a leading `-`, exponents,
/// fractions, values out of range) is refused as BAD_USER_INPUT.
#[Scalar(name = "BigInt")]
impl ScalarType for BigInt {
    fn parse(value: Value) -> InputValueResult<Self> {
        exact(&value).map(BigInt).ok_or_else(|| {
            InputValueError::custom(format!(
                "expected a string of decimal digits or an integer from {} to {}, found {}",
                i64::MIN,
                i64::MAX,
                describe(&value)
            ))
        })
    }

    fn is_valid(value: &Value) -> bool {
        exact(value).is_some()
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

/// The integer `value` stands for, if it is a `BigInt`.
fn exact(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => digits(s).then(|| s.parse().ok()).flatten(),
        _ => None,
    }
}

/// Whether `s` is decimal digits with an optional leading `-` (`str::parse` also takes a `+`).
fn digits(s: &str) -> bool {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit())
}

/// What a refused value was, for the error message (long strings cut short).
fn describe(value: &Value) -> String {
    const SHOWN: usize = 40;
    match value {
        Value::Number(n) if n.is_f64() => format!("the float {n}"),
        Value::Number(n) => format!("the integer {n}, outside the 64-bit range"),
        Value::String(s) => {
            let shown: String = s.chars().take(SHOWN).collect();
            let cut = if shown.len() < s.len() { "…" } else { "" };
            if digits(s) {
                format!("the string \"{shown}{cut}\", outside the 64-bit range")
            } else {
                format!("the string \"{shown}{cut}\"")
            }
        }
        Value::Null => "null".into(),
        Value::Boolean(_) => "a boolean".into(),
        Value::Enum(name) => format!("the enum value {name}"),
        Value::List(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
        Value::Binary(_) => "binary data".into(),
    }
}

impl From<i64> for BigInt {
    fn from(n: i64) -> Self {
        Self(n)
    }
}

impl From<BigInt> for i64 {
    fn from(n: BigInt) -> Self {
        n.0
    }
}

impl fmt::Display for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{InputType, Number, OutputType, Schema};

    use super::*;

    fn parse(value: Value) -> Result<i64, String> {
        <BigInt as ScalarType>::parse(value)
            .map(|n| n.0)
            .map_err(|e| e.into_server_error(Default::default()).message)
    }

    #[test]
    fn output_is_a_string_of_digits_exact_beyond_2_to_the_53() {
        for (n, text) in [
            (0, "0"),
            (-5, "-5"),
            (5_000_000_000, "5000000000"),
            ((1 << 53) + 1, "9007199254740993"),
            (i64::MAX, "9223372036854775807"),
            (i64::MIN, "-9223372036854775808"),
        ] {
            assert_eq!(ScalarType::to_value(&BigInt(n)), Value::String(text.into()));
            assert_eq!(parse(Value::String(text.into())), Ok(n), "{text}");
        }
    }

    #[test]
    fn input_takes_digit_strings_and_integers_within_64_bits() {
        assert_eq!(parse(Value::from(500)), Ok(500));
        assert_eq!(parse(Value::from(-7)), Ok(-7));
        assert_eq!(parse(Value::from(i64::MAX)), Ok(i64::MAX));
        assert_eq!(parse(Value::String("007".into())), Ok(7));
        assert!(<BigInt as ScalarType>::is_valid(&Value::String(
            "5000000000".into()
        )));
        assert!(<BigInt as ScalarType>::is_valid(&Value::from(
            5_000_000_000_i64
        )));
    }

    #[test]
    fn anything_else_is_refused_naming_what_it_was() {
        let float = |f: f64| Value::Number(Number::from_f64(f).unwrap());
        let cases = [
            (Value::String("12a".into()), "the string \"12a\""),
            (Value::String("1e3".into()), "the string \"1e3\""),
            (Value::String("+5".into()), "the string \"+5\""),
            (Value::String(" 5".into()), "the string \" 5\""),
            (Value::String("".into()), "the string \"\""),
            (Value::String("-".into()), "the string \"-\""),
            (Value::String("1.5".into()), "the string \"1.5\""),
            (
                Value::String("9223372036854775808".into()),
                "the string \"9223372036854775808\", outside the 64-bit range",
            ),
            (
                Value::Number(Number::from(9_223_372_036_854_775_808_u64)),
                "the integer 9223372036854775808, outside the 64-bit range",
            ),
            (float(1.5), "the float 1.5"),
            (float(1000.0), "the float 1000.0"),
            (Value::Boolean(true), "a boolean"),
            (Value::Null, "null"),
            (Value::List(vec![Value::from(1)]), "a list"),
        ];
        for (value, found) in cases {
            assert!(!<BigInt as ScalarType>::is_valid(&value), "{value}");
            let message = parse(value.clone()).unwrap_err();
            assert!(message.contains("BigInt"), "{message}");
            assert!(
                message.ends_with(&format!("found {found}")),
                "{value}: {message}"
            );
        }
        let long = "x".repeat(1000);
        let message = parse(Value::String(long)).unwrap_err();
        assert!(message.len() < 200, "long input is cut short: {message}");
    }

    #[test]
    fn the_schema_calls_it_big_int_and_describes_the_encoding() {
        struct Query;
        #[async_graphql::Object]
        impl Query {
            async fn n(&self, n: BigInt) -> BigInt {
                n
            }
        }
        assert_eq!(<BigInt as InputType>::type_name(), "BigInt");
        assert_eq!(<BigInt as OutputType>::type_name(), "BigInt");
        let sdl = Schema::new(
            Query,
            async_graphql::EmptyMutation,
            async_graphql::EmptySubscription,
        )
        .sdl();
        assert!(sdl.contains("scalar BigInt"), "{sdl}");
        assert!(sdl.contains("JSON string"), "{sdl}");
    }

    #[tokio::test]
    async fn a_document_with_a_bad_big_int_is_refused_before_it_runs() {
        struct Query;
        #[async_graphql::Object]
        impl Query {
            async fn n(&self, n: BigInt) -> BigInt {
                BigInt(n.0 + 1)
            }
        }
        let schema = Schema::new(
            Query,
            async_graphql::EmptyMutation,
            async_graphql::EmptySubscription,
        );
        let ok = schema
            .execute(r#"{ a: n(n: "5000000000") b: n(n: 41) }"#)
            .await;
        assert!(ok.errors.is_empty(), "{:?}", ok.errors);
        assert_eq!(
            ok.data.into_json().unwrap(),
            serde_json::json!({"a": "5000000001", "b": "42"})
        );
        for bad in [
            r#"{ n(n: "12a") }"#,
            "{ n(n: 1.5) }",
            "{ n(n: 1e3) }",
            "{ n(n: 9223372036854775808) }",
        ] {
            let res = schema.execute(bad).await;
            assert_eq!(res.data, Value::Null, "{bad}");
            let message = &res.errors[0].message;
            assert!(
                message.contains("expected type \"BigInt\""),
                "{bad}: {message}"
            );
        }
        let res = schema
            .execute(
                async_graphql::Request::new("query($v: BigInt!) { n(n: $v) }").variables(
                    async_graphql::Variables::from_json(serde_json::json!({"v": "1e3"})),
                ),
            )
            .await;
        assert_eq!(res.data, Value::Null);
        assert!(
            res.errors[0].message.contains("\"BigInt\""),
            "{:?}",
            res.errors
        );
    }
}
