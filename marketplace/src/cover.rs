//! A book's cover, made from the book rather than downloaded: a colour and the title's
//! initials. The Content-Security-Policy allows no `style="…"`, so the colour is one of the
//! stylesheet's classes `cover-0` to `cover-11`, picked by a stable hash of the title: a book
//! keeps its colour across pages, requests and restarts.

use crate::client::Book;

/// How many cover colours `static/style.css` has (`.cover-0` to `.cover-11`).
pub const COLOURS: u64 = 12;

/// What the cover of a book shows (in the JSON API too, for the live script).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cover {
    /// The colour: `N` of the stylesheet's `cover-N` class.
    pub colour: u64,
    /// One or two upper-case initials of the title's words.
    pub initials: String,
}

impl Cover {
    /// The cover of `book`.
    pub fn of(book: &Book) -> Cover {
        Cover {
            colour: bookshop_common::fnv1a(book.title.as_bytes()) % COLOURS,
            initials: initials(&book.title),
        }
    }
}

/// The first letters of the title's first two words of three or more characters ("The Hound of
/// the Baskervilles": "TH"; "Убийство в Восточном экспрессе": "УВ"), upper-cased; of its first
/// words when it has no such words ("It": "I").
///
/// Words are split at white space and ASCII punctuation, and only the characters that could be
/// initials are asked whether they are letters or digits: for a non-ASCII character that is a
/// Unicode table lookup, and asking it of every character of every title cost a page 7% more
/// instructions (docs/benchmarks.md, "Instructions per page").
fn initials(title: &str) -> String {
    let words = || {
        title
            .split(|c: char| c.is_whitespace() || c.is_ascii_punctuation())
            .filter_map(|word| Some((word, word.chars().find(|c| c.is_alphanumeric())?)))
    };
    let long = first_letters(words().filter(|(word, _)| word.chars().nth(2).is_some()));
    if long.is_empty() {
        first_letters(words())
    } else {
        long
    }
}

/// The upper-cased first letters of the first two of `words` (each with its first letter).
fn first_letters<'a>(words: impl Iterator<Item = (&'a str, char)>) -> String {
    words
        .take(2)
        .flat_map(|(_, first)| first.to_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(title: &str) -> Book {
        Book {
            id: 1,
            title: title.into(),
            author: None,
        }
    }

    #[test]
    fn initials_come_from_the_first_two_words_of_three_letters_or_more() {
        for (title, expected) in [
            ("The Maltese Falcon", "TM"),
            ("The Hound of the Baskervilles", "TH"),
            ("Ender's Game", "EG"),
            ("The 7 Habits of Highly Effective People", "TH"),
            ("Убийство в Восточном экспрессе", "УВ"),
            ("мальтийский сокол", "МС"),
            ("Dune", "D"),
            ("It", "I"),
            ("A b", "AB"),
            ("1984", "1"),
            ("", ""),
            ("<script>", "S"),
        ] {
            assert_eq!(Cover::of(&book(title)).initials, expected, "{title}");
        }
    }

    #[test]
    fn the_colour_is_one_of_the_palette_and_depends_on_the_title_alone() {
        for title in [
            "Dune",
            "Ender's Game",
            "Мальтийский сокол",
            "",
            "The Maltese Falcon",
        ] {
            let cover = Cover::of(&book(title));
            assert!(cover.colour < COLOURS, "{title}");
            // FNV-1a, not the standard library's randomly seeded hasher: the same after a restart.
            assert_eq!(cover.colour, bookshop_common::fnv1a(title.as_bytes()) % 12);
        }
    }

    #[test]
    fn the_palette_has_a_class_for_every_colour() {
        let css = std::str::from_utf8(crate::assets::STYLE.body).unwrap_or_default();
        for colour in 0..COLOURS {
            assert!(css.contains(&format!(".cover-{colour} ")), "cover-{colour}");
        }
        assert!(!css.contains(&format!(".cover-{COLOURS} ")));
    }
}
