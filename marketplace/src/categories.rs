//! The shop's categories as the catalog in service defines them (keys, names, order): data that
//! Recommendations lists and `follow` keeps current, so a new category needs no restart.

use std::sync::Arc;

use bookshop_proto::BookCategory;
use bookshop_proto::catalog::{CategoryChange, ListCategoriesResponse};
use tokio::sync::watch;

use crate::i18n::Lang;

/// Which API Recommendations speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Api {
    /// Not reached yet: the tutorial's three categories are shown, any well-formed key asked for.
    #[default]
    Unknown,
    /// Only the tutorial's (`UNIMPLEMENTED` for the catalog's): its categories, its `Recommend`.
    Tutorial,
    /// The catalog's: its categories, asked for by key.
    Catalog,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// snake_case, as in `catalog.toml` and in URLs.
    pub key: Arc<str>,
    /// In each of [`Lang::ALL`].
    pub names: [String; 2],
    /// Its books; 0 when not known (the tutorial's API).
    pub books: u32,
}

impl Category {
    pub fn name(&self, lang: Lang) -> &str {
        &self.names[lang as usize]
    }
}

#[derive(Debug, Clone, Default)]
pub struct Categories {
    pub api: Api,
    /// The catalog version they belong to; empty unless from the catalog.
    pub version: String,
    /// In the shop's order.
    pub list: Vec<Category>,
    /// Why the newest save of the catalog is not served (`file:line:column: message`), or empty.
    pub rejected: String,
    /// What the reload that made this version changed.
    pub changes: Vec<CategoryChange>,
}

/// The categories in service, shared by the pages and the event streams.
pub type LiveCategories = watch::Sender<Arc<Categories>>;

impl Categories {
    /// The tutorial's three, as it names them.
    pub fn tutorial(api: Api) -> Categories {
        let category = |c: BookCategory| Category {
            key: c.key().into(),
            names: c.names().map(str::to_owned),
            books: 0,
        };
        Categories { api, list: BookCategory::ALL.map(category).into(), ..Default::default() }
    }

    /// A name missing in a language falls back to the English one, then to the key.
    pub fn from_catalog(response: ListCategoriesResponse) -> Categories {
        let category = |listed: bookshop_proto::catalog::Category| {
            let name = |lang: Lang| listed.names.get(lang.tag()).cloned();
            let en = name(Lang::En).unwrap_or_else(|| listed.key.clone());
            let ru = name(Lang::Ru).unwrap_or_else(|| en.clone());
            Category { key: listed.key.into(), names: [en, ru], books: listed.books }
        };
        let list = response.categories.into_iter().map(category).collect();
        let version = plain_version(response.version);
        Categories { api: Api::Catalog, version, list, ..Default::default() }
    }

    pub fn get(&self, key: &str) -> Option<&Category> {
        self.list.iter().find(|category| &*category.key == key)
    }

    /// The key itself for a category not listed (only while the API is unknown).
    pub fn name<'a>(&'a self, key: &'a str, lang: Lang) -> &'a str {
        self.get(key).map_or(key, |category| category.name(lang))
    }

    /// Only then is a key they do not list an unknown category.
    pub fn known(&self) -> bool {
        self.api != Api::Unknown
    }

    /// A home page's category: `configured` (`homepage.category`) while listed, else the first.
    pub fn home(&self, configured: &str) -> Arc<str> {
        match self.list.first() {
            Some(first) if self.known() && self.get(configured).is_none() => first.key.clone(),
            _ => configured.into(),
        }
    }
}

/// Whether `new` went into service: not if the same version of the same API (another replica).
pub fn replace(live: &LiveCategories, new: Categories) -> bool {
    live.send_if_modified(|current| {
        let changed = current.api != new.api || current.version != new.version;
        if changed {
            *current = Arc::new(new);
        }
        changed
    })
}

/// A key in the spellings `?category=` takes (any case, `-` or `_`), if it can be one.
pub fn category_key(raw: &str) -> Option<String> {
    let key = raw.trim().to_ascii_lowercase().replace('-', "_");
    bookshop_proto::is_category_key(&key).then_some(key)
}

/// `version` if plain (ASCII letters and digits, at most 64), else a hash of it: it goes into
/// event streams, attributes and JSON as it stands, so nothing a server sends breaks out.
pub fn plain_version(version: String) -> String {
    match version.len() <= 64 && version.bytes().all(|b| b.is_ascii_alphanumeric()) {
        true => version,
        false => format!("{:016x}", bookshop_common::fnv1a(version.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn listed(version: &str, keys: &[&str]) -> Categories {
        let category = |key: &&str| bookshop_proto::catalog::Category {
            key: key.to_string(),
            names: [("en".to_owned(), format!("{key} en"))].into(),
            books: 1,
        };
        let categories = keys.iter().map(category).collect();
        Categories::from_catalog(ListCategoriesResponse { version: version.into(), categories })
    }

    #[test]
    fn a_name_missing_in_a_language_falls_back_to_english() {
        let categories = listed("v1", &["poetry"]);
        let poetry = categories.get("poetry").unwrap();
        assert_eq!(poetry.name(Lang::En), "poetry en");
        assert_eq!(poetry.name(Lang::Ru), "poetry en");
    }

    #[test]
    fn the_home_category_falls_back_to_the_first_only_when_the_categories_are_known() {
        assert_eq!(&*listed("v1", &["poetry", "mystery"]).home("mystery"), "mystery");
        assert_eq!(&*listed("v1", &["poetry"]).home("mystery"), "poetry");
        assert_eq!(&*Categories::tutorial(Api::Unknown).home("history"), "history");
    }

    #[test]
    fn a_version_that_is_not_plain_is_replaced_by_its_hash() {
        assert_eq!(listed("0123abcdef", &["poetry"]).version, "0123abcdef");
        let odd = listed("v1\n\ndata: x", &["poetry"]).version;
        assert_eq!(odd.len(), 16);
        assert!(odd.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn the_same_version_again_is_no_change() {
        let live = LiveCategories::new(Arc::new(Categories::tutorial(Api::Unknown)));
        assert!(replace(&live, listed("v1", &["poetry"])));
        assert!(!replace(&live, listed("v1", &["poetry"])));
        assert!(replace(&live, listed("v2", &["poetry"])));
        assert!(replace(&live, Categories::tutorial(Api::Tutorial)));
        assert!(!replace(&live, Categories::tutorial(Api::Tutorial)));
        assert_eq!(live.borrow().api, Api::Tutorial);
    }
}
