//! Refuses text no store can hold: a NUL character (U+0000) in the URL
//! (`%00`) or in a JSON body's strings (`\u0000`). PostgreSQL `TEXT` cannot
//! contain it, so letting it through would fail deep in a query; refusing it
//! here gives every operation, on both engines, the same clear 400.

use poem::http::StatusCode;
use poem::{Body, Endpoint, Middleware, Request, Result};

pub struct NoNul;

impl<E: Endpoint> Middleware<E> for NoNul {
    type Output = NoNulEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        NoNulEndpoint { inner: ep }
    }
}

pub struct NoNulEndpoint<E> {
    inner: E,
}

fn refused(place: &str) -> poem::Error {
    poem::Error::from_string(
        format!("The {place} contains a NUL character (U+0000), which is not accepted"),
        StatusCode::BAD_REQUEST,
    )
}

impl<E: Endpoint> Endpoint for NoNulEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let url = req.uri().path_and_query().map_or("", |pq| pq.as_str());
        if contains_ignore_case(url.as_bytes(), b"%00") {
            return Err(refused("URL"));
        }
        // The body is already read and capped by the body limit outside.
        let bytes = req
            .take_body()
            .into_bytes()
            .await
            .map_err(|err| poem::Error::new(err, StatusCode::BAD_REQUEST))?;
        if json_has_nul(&bytes) {
            return Err(refused("body"));
        }
        req.set_body(Body::from(bytes));
        self.inner.call(req).await
    }
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle))
}

/// Whether a (would-be) JSON text holds a NUL: a raw zero byte, or the
/// escape `\u0000` in a string. In JSON a backslash only ever starts an
/// escape, so skipping each escape's next byte keeps `\\u0000` (a literal
/// backslash and "u0000") from counting.
fn json_has_nul(bytes: &[u8]) -> bool {
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            0 => return true,
            b'\\' if bytes.get(at + 1) == Some(&b'u') && bytes.get(at + 2..at + 6) == Some(b"0000") => {
                return true;
            }
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_escaped_and_raw_nul_but_not_a_literal_backslash() {
        assert!(json_has_nul(br#"{"name":"a\u0000b"}"#));
        assert!(json_has_nul(b"{\"name\":\"a\0b\"}"));
        assert!(!json_has_nul(br#"{"name":"a\\u0000b"}"#), "an escaped backslash, then text");
        assert!(json_has_nul(br#"{"name":"a\\\u0000b"}"#), "an escaped backslash, then a NUL");
        assert!(!json_has_nul(br#"{"name":"\u00e9\n\"quoted\""}"#));
        assert!(!json_has_nul(b"\\"), "a trailing backslash");
    }

    #[test]
    fn finds_percent_encoded_nul_in_either_case() {
        assert!(contains_ignore_case(b"/v1/orgs/%00", b"%00"));
        assert!(!contains_ignore_case(b"/v1/orgs/%20x?y=%0A", b"%00"));
    }
}
