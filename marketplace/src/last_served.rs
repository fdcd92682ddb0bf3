//! The books last served for each category, kept in memory so that while Recommendations is
//! unavailable the page shows them, marked as possibly out of date, rather than nothing.
//!
//! Bounded: one answer per category (the last one, whoever asked for it, in whichever
//! language), and at most [`KEPT_BOOKS`] books of it. Nothing is kept across a restart, so a
//! category not served since the start has nothing to show.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use crate::{client::Book, params::MAX_RESULTS_RANGE};

/// The most books kept per category: as many as a page may ask for.
pub const KEPT_BOOKS: usize = *MAX_RESULTS_RANGE.end() as usize;

/// The last answer of each category.
#[derive(Debug, Default)]
pub struct LastServed {
    answers: Mutex<HashMap<Arc<str>, Arc<Vec<Book>>>>,
}

impl LastServed {
    /// Keeps `books` as the last answer for `category` (its first [`KEPT_BOOKS`]); an empty
    /// answer (the category has no books now) forgets the category.
    pub fn keep(&self, category: &Arc<str>, books: &Arc<Vec<Book>>) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if books.is_empty() {
            answers.remove(category);
        } else if books.len() > KEPT_BOOKS {
            answers.insert(category.clone(), Arc::new(books[..KEPT_BOOKS].to_vec()));
        } else {
            answers.insert(category.clone(), Arc::clone(books));
        }
    }

    /// At most `max` of the books last served for `category`; none if it was not served since
    /// the start.
    pub fn last(&self, category: &str, max: u32) -> Vec<Book> {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        answers
            .get(category)
            .map(|books| books.iter().take(max).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn books(n: usize) -> Arc<Vec<Book>> {
        Arc::new(
            (1..=n)
                .map(|id| Book {
                    id: i32::try_from(id).unwrap_or_default(),
                    title: format!("Book {id}"),
                    author: None,
                })
                .collect(),
        )
    }

    fn ids(books: &[Book]) -> Vec<i32> {
        books.iter().map(|book| book.id).collect()
    }

    #[test]
    fn a_category_not_served_yet_has_nothing() {
        let last = LastServed::default();
        last.keep(&"mystery".into(), &books(3));
        assert!(last.last("self_help", 50).is_empty());
    }

    #[test]
    fn only_the_last_answer_of_each_category_is_kept() {
        let last = LastServed::default();
        last.keep(&"mystery".into(), &books(3));
        last.keep(&"self_help".into(), &books(1));
        last.keep(&"mystery".into(), &books(2));
        assert_eq!(ids(&last.last("mystery", 50)), [1, 2]);
        assert_eq!(ids(&last.last("self_help", 50)), [1]);
    }

    #[test]
    fn at_most_the_books_asked_for_are_given() {
        let last = LastServed::default();
        last.keep(&"mystery".into(), &books(5));
        assert_eq!(ids(&last.last("mystery", 3)), [1, 2, 3]);
    }

    #[test]
    fn an_answer_longer_than_a_page_is_cut_to_the_limit() {
        let last = LastServed::default();
        last.keep(&"mystery".into(), &books(KEPT_BOOKS + 10));
        assert_eq!(last.last("mystery", u32::MAX).len(), KEPT_BOOKS);
    }

    #[test]
    fn an_empty_answer_forgets_the_category() {
        let last = LastServed::default();
        last.keep(&"mystery".into(), &books(3));
        last.keep(&"mystery".into(), &books(0));
        assert!(last.last("mystery", 50).is_empty());
    }
}
