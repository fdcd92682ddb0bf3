//! The last answer for each category, shown as possibly stale while Recommendations is unavailable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::book::{Book, MAX_RESULTS};

#[derive(Debug, Default)]
pub struct LastServed {
    answers: Mutex<HashMap<Arc<str>, Arc<[Book]>>>,
}

impl LastServed {
    /// An empty answer forgets the category.
    pub fn keep(&self, category: &Arc<str>, books: &[Book]) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if books.is_empty() {
            answers.remove(category);
        } else {
            let kept = books.iter().take(*MAX_RESULTS.end() as usize).cloned().collect();
            answers.insert(category.clone(), kept);
        }
    }

    pub fn last(&self, category: &str, max: u32) -> Vec<Book> {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        let books = answers.get(category).map(|books| books.iter().take(max as usize).cloned());
        books.map(Iterator::collect).unwrap_or_default()
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
        last.keep(&"mystery".into(), &books((*MAX_RESULTS.end() as usize) + 10));
        assert_eq!(last.last("mystery", u32::MAX).len(), (*MAX_RESULTS.end() as usize));
    }

    #[test]
    fn an_empty_answer_forgets_the_category() {
        let last = LastServed::default();
        last.keep(&"mystery".into(), &books(3));
        last.keep(&"mystery".into(), &books(0));
        assert!(last.last("mystery", 50).is_empty());
    }
}
