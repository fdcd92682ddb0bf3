//! A large catalog is parsed in pieces, so memory stays proportional to the file and not to
//! the TOML crate's view of it (its tokens, events and tables take about 30 bytes for every
//! byte of a catalog, all alive at once).
//!
//! [`split`] cuts the text before top-level array-of-tables headers (`[[mystery]]`), found
//! with the TOML lexer itself, so a `[[` inside a string or a value array is never taken for
//! one. Each piece is a TOML document of its own; what TOML says about the whole file (a key
//! may not be defined twice, except by `[[key]]` headers, which append) is checked across the
//! pieces by the caller with [`Chunk::appends`].

use std::{collections::HashSet, ops::Range};

use toml_parser::{Source, lexer::TokenKind};

/// The size pieces are grouped into: large enough that the parser's fixed costs do not show,
/// small enough that its memory is a few megabytes.
const CHUNK_BYTES: usize = 256 * 1024;

/// A piece of the catalog text.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Chunk {
    /// Where it is in the whole text.
    pub(super) range: Range<usize>,
    /// The top-level keys its `[[key]]` headers append to.
    appends: HashSet<String>,
}

impl Chunk {
    /// Whether this piece appends to `key` with `[[key]]` headers (as opposed to defining it
    /// some other way).
    pub(super) fn appends(&self, key: &str) -> bool {
        self.appends.contains(key)
    }
}

/// Cuts `text` into pieces of about [`CHUNK_BYTES`], each starting at a top-level `[[key]]`
/// header (the first one at the start of the text).
pub(super) fn split(text: &str) -> Vec<Chunk> {
    let mut chunks = vec![Chunk { range: 0..text.len(), appends: HashSet::new() }];
    let mut depth = 0usize;
    let mut line_start = true;
    let mut tokens = Source::new(text).lex().peekable();
    while let Some(token) = tokens.next() {
        let span = token.span();
        match token.kind() {
            TokenKind::Newline => line_start = true,
            TokenKind::Whitespace | TokenKind::Comment => {}
            // A header: `[` first on a line, outside any value.
            TokenKind::LeftSquareBracket if line_start && depth == 0 => {
                line_start = false;
                let double = tokens.next_if(|next| {
                    next.kind() == TokenKind::LeftSquareBracket && next.span().start() == span.end()
                });
                let mut header_end = span.end();
                while let Some(next) = tokens.next_if(|next| next.kind() != TokenKind::Newline) {
                    header_end = next.span().end();
                }
                let Some(key) = double.and_then(|_| header_key(&text[span.start()..header_end]))
                else {
                    continue;
                };
                let current = chunks.last_mut().expect("there is always a chunk");
                if span.start() - current.range.start >= CHUNK_BYTES {
                    current.range.end = span.start();
                    chunks.push(Chunk { range: span.start()..text.len(), appends: HashSet::new() });
                }
                let current = chunks.last_mut().expect("there is always a chunk");
                current.appends.insert(key.to_owned());
            }
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => {
                line_start = false;
                depth += 1;
            }
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                line_start = false;
                depth = depth.saturating_sub(1);
            }
            _ => line_start = false,
        }
    }
    chunks
}

/// The key of a `[[key]]` header line, if it is one plain top-level key (not `[[a.b]]`, not
/// quoted: those never start a piece).
fn header_key(line: &str) -> Option<&str> {
    let inner = line.trim().strip_prefix("[[")?;
    let (key, _) = inner.split_once("]]")?;
    let key = key.trim();
    let plain =
        !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    plain.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(text: &str) -> Vec<usize> {
        split(text).iter().map(|c| c.range.start).collect()
    }

    fn book(id: usize) -> String {
        format!("[[mystery]]\nid = {id}\ntitle = \"{}\"\n\n", "x".repeat(1000))
    }

    #[test]
    fn a_small_catalog_is_one_piece() {
        let text = book(1) + &book(2);
        let chunks = split(&text);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].range, 0..text.len());
        assert!(chunks[0].appends("mystery"));
    }

    #[test]
    fn a_large_catalog_is_cut_before_headers_and_nowhere_else() {
        let text: String = (1..=1000).map(book).collect();
        let chunks = split(&text);
        assert!(chunks.len() > 3, "{} pieces", chunks.len());
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].range.end, pair[1].range.start);
            assert!(text[pair[1].range.clone()].starts_with("[[mystery]]"));
        }
        assert_eq!(chunks.last().map(|c| c.range.end), Some(text.len()));
    }

    #[test]
    fn brackets_inside_strings_and_values_are_not_headers() {
        let filler = "x".repeat(CHUNK_BYTES);
        let text = format!(
            "a = \"\"\"\n{filler}\n[[mystery]]\n\"\"\"\nb = [\n[[1]],\n]\n[[mystery]]\nid = 1\n"
        );
        let cuts = starts(&text);
        assert_eq!(cuts, [0, text.rfind("[[mystery]]").expect("a header")]);
    }

    #[test]
    fn only_plain_keys_start_a_piece() {
        assert_eq!(header_key("[[mystery]]"), Some("mystery"));
        assert_eq!(header_key("  [[ self_help ]]  # comment"), Some("self_help"));
        assert_eq!(header_key("[[mystery.notes]]"), None);
        assert_eq!(header_key("[[\"quoted\"]]"), None);
        assert_eq!(header_key("[mystery]"), None);
    }
}
