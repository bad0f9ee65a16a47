//! The canonical form of a GraphQL document: its tokens, one space apart, without what GraphQL
//! ignores (whitespace, line breaks, commas, comments, a byte order mark). A document sent as text
//! runs as a persisted operation when its canonical form is the registered document's, so a client
//! may re-indent it, drop its trailing newline or strip its comments.

/// The canonical form of `text`, or `None` when `text` holds something that is not a GraphQL token
/// (such a document does not parse either, so it matches nothing).
pub fn canonical(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let rest = &bytes[i..];
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && !matches!(bytes[i], b'\n' | b'\r') {
                    i += 1;
                }
                continue;
            }
            _ if rest.starts_with("\u{feff}".as_bytes()) => {
                i += 3;
                continue;
            }
            b'!' | b'$' | b'&' | b'(' | b')' | b':' | b'=' | b'@' | b'[' | b']' | b'{' | b'|'
            | b'}' => i += 1,
            b'.' if rest.starts_with(b"...") => i += 3,
            b'_' | b'A'..=b'Z' | b'a'..=b'z' => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
            }
            // A number, taken whole as written (`-1.5e3`): validity is the parser's business.
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
            }
            b'"' if rest.starts_with(b"\"\"\"") => {
                i += 3;
                loop {
                    let rest = &bytes[i.min(bytes.len())..];
                    if rest.is_empty() {
                        return None;
                    } else if rest.starts_with(b"\\\"\"\"") {
                        i += 4;
                    } else if rest.starts_with(b"\"\"\"") {
                        i += 3;
                        break;
                    } else {
                        i += 1;
                    }
                }
            }
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None | Some(b'\n' | b'\r') => return None,
                        Some(b'\\') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            _ => return None,
        }
        if !out.is_empty() {
            out.push(' ');
        }
        // Every token ends with an ASCII byte, so `i` is on a character boundary.
        out.push_str(text.get(start..i)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn what_graphql_ignores_does_not_count() {
        let file = "# The dashboard.\nquery Dashboard($from: DateTime!, $n: Int = 10) {\n  \
                    tickets(first: $n, filter: {status: OPEN}) { totalCount }\n}\n";
        let sent = "\u{feff}query Dashboard($from:DateTime! $n:Int=10){tickets(first:$n filter:{status:OPEN}){totalCount}}";
        assert_eq!(canonical(file), canonical(sent));
        assert_eq!(
            canonical(sent).unwrap(),
            "query Dashboard ( $ from : DateTime ! $ n : Int = 10 ) { tickets ( first : $ n filter \
             : { status : OPEN } ) { totalCount } }"
        );
    }

    #[test]
    fn what_graphql_reads_counts() {
        let base = canonical("{ a(x: \"b c\") }");
        for other in [
            "{ a(x: \"b  c\") }",
            "{ a(x: \"b c\") b }",
            "{ a(y: \"b c\") }",
            "{ ab(x: \"b c\") }",
        ] {
            assert_ne!(canonical(other), base, "{other}");
        }
        // Inside strings nothing is ignored, a `#` included.
        assert_eq!(
            canonical(r##"{ a(x: "# no comment, \"quoted\"") }"##).unwrap(),
            r##"{ a ( x : "# no comment, \"quoted\"" ) }"##
        );
        assert_eq!(
            canonical("{ a(x: \"\"\"one\n  two \\\"\"\" three\"\"\") ...F }").unwrap(),
            "{ a ( x : \"\"\"one\n  two \\\"\"\" three\"\"\" ) ... F }"
        );
        assert_eq!(
            canonical("{ a(n: -1.5e+3) }").unwrap(),
            "{ a ( n : -1.5e+3 ) }"
        );
    }

    #[test]
    fn what_is_not_a_token_matches_nothing() {
        for text in [
            "{ a(x: \"open) }",
            "{ a(x: \"\"\"open) }",
            "{ a % b }",
            "{ a. }",
            "{ é }",
        ] {
            assert_eq!(canonical(text), None, "{text}");
        }
    }
}
