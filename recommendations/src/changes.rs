//! What a reload changed, by category: books added, removed and retitled, names changed. Logged
//! in one line and told on the Watch stream, so that an open page can say it and show the books.

use std::collections::{HashMap, HashSet};

use bookshop_proto::{MAX_PAGE_BOOKS, catalog::CategoryChange};

use crate::catalog::{Book, Catalog, Category};

/// The categories `new` changed against `old`, in `new`'s order, then those it removed.
pub fn between(old: &Catalog, new: &Catalog) -> Vec<CategoryChange> {
    let changed = new.categories().iter().map(|c| compare(find(old, &c.key), c));
    let removed = old.categories().iter().filter(|c| find(new, &c.key).is_none());
    let removed = removed.map(|c| CategoryChange {
        category: c.key.clone(),
        removed: count(c.books.len()),
        ..Default::default()
    });
    let any = |c: &CategoryChange| c.added > 0 || c.removed > 0 || c.retitled > 0 || c.renamed;
    changed.chain(removed).filter(any).collect()
}

fn find<'a>(catalog: &'a Catalog, key: &str) -> Option<&'a Category> {
    catalog.categories().iter().find(|category| category.key == key)
}

fn compare(old: Option<&Category>, new: &Category) -> CategoryChange {
    let before: HashMap<i32, &Book> =
        old.map(|c| c.books.iter().map(|book| (book.id, book)).collect()).unwrap_or_default();
    let now: HashSet<i32> = new.books.iter().map(|book| book.id).collect();
    let added: Vec<i32> =
        new.books.iter().filter(|b| !before.contains_key(&b.id)).map(|b| b.id).collect();
    let retitled = new.books.iter().filter(|b| before.get(&b.id).is_some_and(|was| *was != *b));
    CategoryChange {
        category: new.key.clone(),
        added: count(added.len()),
        added_ids: added.into_iter().take(MAX_PAGE_BOOKS).collect(),
        removed: count(before.keys().filter(|id| !now.contains(id)).count()),
        retitled: count(retitled.count()),
        renamed: old.is_some_and(|old| old.names != new.names),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `poetry: 1 added, 2 retitled; mystery: renamed` for the log; `-` for no change.
pub fn summary(changes: &[CategoryChange]) -> String {
    let said = changes.iter().map(|c| {
        let counts = [(c.added, "added"), (c.removed, "removed"), (c.retitled, "retitled")];
        let counts = counts.into_iter().filter(|(n, _)| *n > 0).map(|(n, w)| format!("{n} {w}"));
        let renamed = c.renamed.then(|| "renamed".to_owned());
        format!("{}: {}", c.category, counts.chain(renamed).collect::<Vec<_>>().join(", "))
    });
    let said = said.collect::<Vec<_>>().join("; ");
    if said.is_empty() { "-".into() } else { said }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn catalog(text: &str) -> Catalog {
        Catalog::from_toml_str(text, "catalog.toml").unwrap()
    }

    const BEFORE: &str = "[categories.poetry]\nen = \"Poetry\"\n\
        [[poetry]]\nid = 1\ntitle = \"Odes\"\n[[poetry]]\nid = 2\ntitle = \"Sonnets\"\n\
        [[mystery]]\nid = 3\ntitle = \"Clue\"\n[[self_help]]\nid = 4\ntitle = \"Calm\"\n";

    #[test]
    fn each_category_says_what_was_added_removed_retitled_and_renamed() {
        let after = "[categories.poetry]\nen = \"Verse\"\n\
            [[poetry]]\nid = 1\ntitle = \"Odes\"\nauthor = \"Keats\"\n[[poetry]]\nid = 5\ntitle = \"Elegies\"\n\
            [[poetry]]\nid = 6\ntitle = \"Psalms\"\n[[mystery]]\nid = 3\ntitle = \"Clue\"\n\
            [[science_fiction]]\nid = 7\ntitle = \"Dune\"\n";
        let changes = between(&catalog(BEFORE), &catalog(after));
        let poetry = CategoryChange {
            category: "poetry".into(),
            added: 2,
            added_ids: vec![5, 6],
            removed: 1,
            retitled: 1,
            renamed: true,
        };
        let science = CategoryChange {
            category: "science_fiction".into(),
            added: 1,
            added_ids: vec![7],
            ..Default::default()
        };
        let gone =
            CategoryChange { category: "self_help".into(), removed: 1, ..Default::default() };
        // Mystery did not change: not listed.
        assert_eq!(changes, [poetry, science, gone]);
        let said = "poetry: 2 added, 1 removed, 1 retitled, renamed; science_fiction: 1 added; \
                    self_help: 1 removed";
        assert_eq!(summary(&changes), said);
    }

    #[test]
    fn the_same_books_in_another_order_or_spacing_change_nothing() {
        let reordered = BEFORE.replace("id = 1\ntitle = \"Odes\"", "title = \"Odes\"\nid = 1");
        let changes = between(&catalog(BEFORE), &catalog(&format!("\n{reordered}")));
        assert_eq!((changes.as_slice(), summary(&changes).as_str()), (&[][..], "-"));
    }

    #[test]
    fn a_large_addition_tells_its_count_and_the_first_ids_a_page_can_show() {
        let many: String =
            (10..200).map(|id| format!("[[mystery]]\nid = {id}\ntitle = \"B\"\n")).collect();
        let changes = between(&catalog(BEFORE), &catalog(&format!("{BEFORE}{many}")));
        assert_eq!(changes[0].added, 190);
        assert_eq!(changes[0].added_ids, (10..10 + MAX_PAGE_BOOKS as i32).collect::<Vec<_>>());
    }
}
