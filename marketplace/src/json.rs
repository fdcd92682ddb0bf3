//! JSON answers that are safe even where a browser might treat them as HTML.
//!
//! serde_json escapes only what JSON requires, so an error message that quotes the request
//! (`unknown category "<script>…"`) would carry `<script>` verbatim. [`SafeJson`] writes `<`, `>`
//! and `&` as `\u003c`, `\u003e` and `\u0026`: the same JSON value, but no markup in the bytes
//! (as Go's `encoding/json` does by default).

use salvo::{
    Response,
    http::{HeaderValue, StatusCode, header},
    writing::Scribe,
};
use serde::Serialize;

/// A JSON body written with `<`, `>` and `&` escaped.
#[derive(Debug)]
pub struct SafeJson<T>(pub T);

impl<T: Serialize + Send> Scribe for SafeJson<T> {
    fn render(self, res: &mut Response) {
        match to_string(&self.0) {
            Ok(body) => {
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                );
                res.body(body);
            }
            Err(error) => {
                tracing::error!(%error, "cannot serialize a JSON answer");
                res.status_code(StatusCode::INTERNAL_SERVER_ERROR);
            }
        }
    }
}

/// Serializes `value` with `<`, `>` and `&` escaped. These characters only ever occur inside
/// JSON strings, where the `\u` escapes mean the same.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(value)?;
    if !json.contains(['<', '>', '&']) {
        return Ok(json);
    }
    let mut safe = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => safe.push_str("\\u003c"),
            '>' => safe.push_str("\\u003e"),
            '&' => safe.push_str("\\u0026"),
            c => safe.push(c),
        }
    }
    Ok(safe)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn markup_is_escaped_and_the_value_is_unchanged() {
        let value = serde_json::json!({"message": "unknown \"<script>alert(1)</script>\" & more"});
        let text = to_string(&value).unwrap();
        assert!(!text.contains(['<', '>', '&']), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn plain_json_is_untouched() {
        let value = serde_json::json!({"title": "Дюна", "id": 6});
        assert_eq!(
            to_string(&value).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }
}
