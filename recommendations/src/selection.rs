//! Distinct books at random; `per_user` seeds the draw by user, category and catalog: stable picks.

use rand::{SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde::{Deserialize, Serialize};

use crate::catalog::Book;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    #[default]
    Random,
    PerUser,
}

/// Picks `count` distinct books (fewer if the category holds fewer).
pub fn pick<'a>(
    books: &'a [Book],
    count: usize,
    selection: Selection,
    user_id: i32,
    category: &str,
    catalog_hash: u64,
) -> Vec<&'a Book> {
    match selection {
        Selection::Random => books.sample(&mut rand::rng(), count).collect(),
        Selection::PerUser => {
            let (user, catalog) = (user_id.to_le_bytes(), catalog_hash.to_le_bytes());
            let seed = [&user[..], &catalog, category.as_bytes()].concat();
            let mut rng = StdRng::seed_from_u64(bookshop_common::fnv1a(&seed));
            books.sample(&mut rng, count).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn books(n: i32) -> Vec<Book> {
        (1..=n).map(|id| Book { id, title: format!("Book {id}"), ..Book::default() }).collect()
    }

    fn ids(picked: &[&Book]) -> Vec<i32> {
        picked.iter().map(|b| b.id).collect()
    }

    const C: &str = "mystery";

    #[test]
    fn never_more_than_asked_nor_more_than_the_category_holds() {
        let books = books(5);
        for selection in [Selection::Random, Selection::PerUser] {
            assert_eq!(pick(&books, 3, selection, 1, C, 0).len(), 3);
            assert_eq!(pick(&books, 50, selection, 1, C, 0).len(), 5);
            assert_eq!(pick(&books, 0, selection, 1, C, 0).len(), 0);
            assert!(pick(&[], 3, selection, 1, C, 0).is_empty());
        }
    }

    #[test]
    fn a_pick_never_repeats_a_book() {
        let books = books(10);
        for round in 0..200 {
            for selection in [Selection::Random, Selection::PerUser] {
                let picked = ids(&pick(&books, 7, selection, round, C, 9));
                let unique: HashSet<_> = picked.iter().collect();
                assert_eq!(unique.len(), picked.len(), "{picked:?}");
            }
        }
    }

    #[test]
    fn random_selection_is_roughly_uniform() {
        // 10 books, pick 3, 30,000 rounds: each book is expected 9,000 times. A bias of 10%
        // (900) is far beyond chance (the standard deviation is about 80).
        let books = books(10);
        let mut counts: HashMap<i32, u32> = HashMap::new();
        for _ in 0..30_000 {
            for book in pick(&books, 3, Selection::Random, 1, C, 0) {
                *counts.entry(book.id).or_default() += 1;
            }
        }
        assert_eq!(counts.len(), 10);
        for (id, count) in counts {
            assert!((8_100..=9_900).contains(&count), "book {id}: {count}");
        }
    }

    #[test]
    fn random_selection_varies_between_calls() {
        let books = books(10);
        let picks: HashSet<Vec<i32>> =
            (0..50).map(|_| ids(&pick(&books, 3, Selection::Random, 1, C, 0))).collect();
        assert!(picks.len() > 10, "{picks:?}");
    }

    #[test]
    fn per_user_selection_is_stable_for_a_user_and_catalog() {
        let books = books(20);
        let first = ids(&pick(&books, 5, Selection::PerUser, 42, C, 7));
        for _ in 0..20 {
            assert_eq!(ids(&pick(&books, 5, Selection::PerUser, 42, C, 7)), first);
        }
    }

    #[test]
    fn per_user_selection_differs_between_users() {
        let books = books(20);
        let picks: HashSet<Vec<i32>> =
            (0..50).map(|user| ids(&pick(&books, 5, Selection::PerUser, user, C, 7))).collect();
        assert!(picks.len() > 40, "only {} distinct picks", picks.len());
    }

    #[test]
    fn per_user_selection_changes_when_the_catalog_changes() {
        let books = books(20);
        let changed = (0..20)
            .filter(|user| {
                pick(&books, 5, Selection::PerUser, *user, C, 7)
                    != pick(&books, 5, Selection::PerUser, *user, C, 8)
            })
            .count();
        assert!(changed > 15, "only {changed} of 20 users saw a new pick");
    }

    #[test]
    fn per_user_selection_differs_between_categories() {
        let books = books(20);
        let a = ids(&pick(&books, 5, Selection::PerUser, 1, "mystery", 7));
        let b = ids(&pick(&books, 5, Selection::PerUser, 1, "self_help", 7));
        assert_ne!(a, b);
    }
}
