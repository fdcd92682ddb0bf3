//! A book as the shop shows it, and its cover.

use std::ops::RangeInclusive;

use serde::Serialize;

pub const MAX_RESULTS: RangeInclusive<u32> = 1..=50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Book {
    pub id: i32,
    pub title: String,
    /// The tutorial's catalog has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

impl Book {
    /// As the proto gives it: an empty author is none.
    pub fn new(id: i32, title: String, author: String) -> Book {
        Book { id, title, author: Some(author).filter(|a| !a.trim().is_empty()) }
    }

    /// Its colour a class (`cover-0`…: the CSP forbids `style`) by a stable hash of the title.
    pub fn cover(&self) -> Cover {
        let colour = bookshop_common::fnv1a(self.title.as_bytes()) % COLOURS;
        Cover { colour, initials: initials(&self.title) }
    }
}

pub const COLOURS: u64 = 12;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cover {
    pub colour: u64,
    pub initials: String,
}

/// Initials of the first two words of 3+ letters ("The Maltese Falcon": TM), else of the first two.
fn initials(title: &str) -> String {
    let initial = |word: &str| word.chars().find(|c| c.is_alphanumeric());
    let words = title.split(|c: char| c.is_whitespace() || c.is_ascii_punctuation());
    let words: Vec<_> = words.filter_map(|word| Some((word, initial(word)?))).collect();
    let long: Vec<_> = words.iter().filter(|(word, _)| word.chars().nth(2).is_some()).collect();
    let chosen = if long.is_empty() { words.iter().collect() } else { long };
    chosen.iter().take(2).flat_map(|(_, first)| first.to_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(title: &str) -> Book {
        Book { id: 1, title: title.into(), author: None }
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
            assert_eq!(book(title).cover().initials, expected, "{title}");
        }
    }

    #[test]
    fn the_colour_is_one_of_the_palette_and_depends_on_the_title_alone() {
        for title in ["Dune", "Ender's Game", "Мальтийский сокол", "", "The Maltese Falcon"]
        {
            let cover = book(title).cover();
            assert!(cover.colour < COLOURS, "{title}");
            // FNV-1a, not the standard library's randomly seeded hasher: the same after a restart.
            assert_eq!(cover.colour, bookshop_common::fnv1a(title.as_bytes()) % 12);
        }
    }

    #[test]
    fn the_palette_has_a_class_for_every_colour() {
        let css = std::str::from_utf8(crate::web::assets::STYLE.body).unwrap_or_default();
        for colour in 0..COLOURS {
            assert!(css.contains(&format!(".cover-{colour} ")), "cover-{colour}");
        }
        assert!(!css.contains(&format!(".cover-{COLOURS} ")));
    }
}
