//! A large catalog parsed in pieces cut at `[[key]]` headers, tokens bounded: bounded memory.

use std::{collections::HashSet, ops::Range};

use toml_parser::{Source, lexer::TokenKind};

use super::Problem;

/// Large enough that the parser's fixed costs do not show, small enough to bound its memory.
const CHUNK_TOKENS: usize = 16 * 1024;
/// The most tokens between two places a piece can start (docs/catalog.md, Format).
pub(super) const MAX_PIECE_TOKENS: usize = 64 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Chunk {
    pub(super) range: Range<usize>,
    /// The top-level keys its `[[key]]` headers append to.
    pub(super) appends: HashSet<String>,
}

/// Pieces of about [`CHUNK_TOKENS`] cut at `[[key]]` headers; errs past [`MAX_PIECE_TOKENS`] in one.
pub(super) fn split(text: &str) -> Result<Vec<Chunk>, (usize, Problem)> {
    let mut chunks = Vec::new();
    let mut current = Chunk { range: 0..text.len(), appends: HashSet::new() };
    let (mut depth, mut count) = (0usize, 0usize);
    let mut line_start = true;
    let mut tokens = Source::new(text).lex().peekable();
    while let Some(token) = tokens.next() {
        let (kind, span) = (token.kind(), token.span());
        if matches!(kind, TokenKind::Whitespace | TokenKind::Comment) {
            continue;
        }
        count += usize::from(kind != TokenKind::Newline);
        if count > MAX_PIECE_TOKENS {
            return Err((span.start(), Problem::TooManyTokens));
        }
        // A header: `[` first on a line, outside any value.
        let header_may_start = line_start && depth == 0;
        line_start = kind == TokenKind::Newline;
        match kind {
            TokenKind::LeftSquareBracket if header_may_start => {
                let mut header_end = span.end();
                while let Some(next) = tokens.next_if(|next| next.kind() != TokenKind::Newline) {
                    header_end = next.span().end();
                    count += 1;
                }
                let Some(key) = header_key(&text[span.start()..header_end]) else { continue };
                if count >= CHUNK_TOKENS {
                    count = 0;
                    current.range.end = span.start();
                    let next = Chunk { range: span.start()..text.len(), appends: HashSet::new() };
                    chunks.push(std::mem::replace(&mut current, next));
                }
                current.appends.insert(key.to_owned());
            }
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => depth += 1,
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    chunks.push(current);
    Ok(chunks)
}

/// The key of a `[[key]]` line if it is one plain key (not `[[a.b]]`, not quoted).
fn header_key(line: &str) -> Option<&str> {
    let (key, _) = line.trim().strip_prefix("[[")?.split_once("]]")?;
    let key = key.trim();
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    (!key.is_empty() && key.bytes().all(plain)).then_some(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn split(text: &str) -> Vec<Chunk> {
        super::split(text).unwrap()
    }

    fn starts(text: &str) -> Vec<usize> {
        split(text).iter().map(|c| c.range.start).collect()
    }

    fn book(id: usize) -> String {
        format!("[[mystery]]\nid = {id}\ntitle = \"{}\"\n\n", "x".repeat(10))
    }

    #[test]
    fn a_small_catalog_is_one_piece() {
        let text = book(1) + &book(2);
        let chunks = split(&text);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].range, 0..text.len());
        assert!(chunks[0].appends.contains("mystery"));
    }

    #[test]
    fn a_large_catalog_is_cut_before_headers_and_nowhere_else() {
        let text: String = (1..=10_000).map(book).collect();
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
        let filler = "x = 1\n".repeat(CHUNK_TOKENS / 3 + 1);
        let text = format!(
            "{filler}a = \"\"\"\n[[mystery]]\n\"\"\"\nb = [\n[[1]],\n]\n[[mystery]]\nid = 1\n"
        );
        let cuts = starts(&text);
        assert_eq!(cuts, [0, text.rfind("[[mystery]]").expect("a header")]);
    }

    #[test]
    fn a_piece_that_cannot_be_cut_is_refused_where_it_grows_too_long() {
        // Valid TOML, any shape: an inline array of books, a long table, dotted keys.
        let inline = format!("mystery = [\n{}]\n", "{ id = 1, title = \"x\" },\n".repeat(7000));
        let table = format!("[categories]\n{}", "c.en = \"x\"\n".repeat(14_000));
        for text in [inline, table] {
            let (offset, problem) = super::split(&text).unwrap_err();
            assert_eq!(problem, Problem::TooManyTokens);
            assert!(offset > text.len() / 2 && offset < text.len(), "{offset}");
        }
        let blank_lines = format!("{}[[mystery]]\nid = 1\n", "\n".repeat(MAX_PIECE_TOKENS * 2));
        assert_eq!(split(&blank_lines).len(), 1);
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
