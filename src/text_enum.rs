//! Enums that PostgreSQL stores as text (`tickets.status`, `memberships.role`, `credit_ledger.kind`,
//! …): one macro gives each its stored names, so `as_str`, `ALL`, `Display` and `FromStr` cannot drift
//! apart. Written by hand because the crates that derive this (strum and friends) would add a
//! proc-macro dependency for forty lines.

/// Counts the identifiers it is given (the length of `ALL`).
#[doc(hidden)]
macro_rules! count_variants {
    () => { 0usize };
    ($head:ident $($tail:ident)*) => { 1usize + $crate::text_enum::count_variants!($($tail)*) };
}
#[doc(hidden)]
pub(crate) use count_variants;

/// `text_enum!(Type, "what it is", { Variant => "stored", … })` implements, for a fieldless enum:
/// `Type::ALL` (every variant, in order), `as_str` (the stored name), `Display` (the same) and
/// `FromStr` (the inverse; an unknown name is an error naming `what it is`).
macro_rules! text_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: [$ty; $crate::text_enum::count_variants!($($variant)+)] =
                [$($ty::$variant),+];

            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = ::anyhow::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(::anyhow::anyhow!(concat!("unknown ", $what, " {:?}"), s)),
                }
            }
        }
    };
}
pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Colour {
        Red,
        DeepBlue,
    }
    text_enum!(Colour, "colour", { Red => "red", DeepBlue => "deep_blue" });

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        assert_eq!(Colour::ALL, [Colour::Red, Colour::DeepBlue]);
        for c in Colour::ALL {
            assert_eq!(c.as_str().parse::<Colour>().unwrap(), c);
            assert_eq!(c.to_string(), c.as_str());
        }
        let err = "Red".parse::<Colour>().unwrap_err().to_string();
        assert_eq!(err, "unknown colour \"Red\"");
    }
}
