//! The shop's categories ("shelves"), as the catalog in service defines them: their keys, their
//! names in each language and their order. Categories are data: Recommendations reports them
//! (`bookshop.catalog.v1.Catalog/ListCategories`) and [`follow`](crate::follow) keeps them
//! current, so a shelf added to `catalog.toml` appears in the navigation without a restart.
//!
//! [`LiveShelves`] holds the current [`Shelves`] in a watch channel: handlers read it, the
//! event streams wait on its changes.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use bookshop_proto::{BookCategory, catalog::ListCategoriesResponse};
use tokio::sync::watch;

use crate::{
    i18n::{Lang, LangChoice},
    pages::{Chrome, LinkQuery},
};

/// A category of books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shelf {
    /// Its key: snake_case, as in `catalog.toml` and in URLs.
    pub key: Arc<str>,
    /// Its name in each of [`Lang::ALL`], in that order.
    pub names: [String; 2],
}

impl Shelf {
    /// Its name in `lang`.
    pub fn name(&self, lang: Lang) -> &str {
        &self.names[lang as usize]
    }
}

/// Where the shelves came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Not known yet: Recommendations has not been reached since start. The seed's three
    /// categories are shown, and any well-formed key is asked for.
    Pending,
    /// Recommendations only speaks the seed's API (`UNIMPLEMENTED` for the catalog's): the
    /// seed's three categories, asked for with the seed's `Recommend`.
    Seed,
    /// The catalog in service, as Recommendations reported it.
    Catalog,
}

/// The categories at one moment, with the page chromes built for them.
#[derive(Debug)]
pub struct Shelves {
    /// Where they came from.
    pub source: Source,
    /// The catalog version they belong to (its content hash); empty unless from the catalog.
    pub version: String,
    /// The categories, in the shop's order.
    pub list: Vec<Shelf>,
    /// The chromes of plain home pages (no explicit parameter in their links), built once per
    /// set of shelves at the first request that needs one.
    chromes: OnceLock<HashMap<Arc<str>, [[Chrome; 2]; 2]>>,
}

impl Shelves {
    /// The seed's three categories, as the tutorial names them.
    pub fn seed(source: Source) -> Shelves {
        let list = BookCategory::ALL
            .into_iter()
            .map(|category| Shelf {
                key: category.key().into(),
                names: category.names().map(str::to_owned),
            })
            .collect();
        Shelves::new(source, String::new(), list)
    }

    /// The categories Recommendations listed. A name it gives no language falls back to the
    /// English one, then to the key.
    pub fn from_catalog(response: ListCategoriesResponse) -> Shelves {
        let list = response
            .categories
            .into_iter()
            .map(|category| {
                let name = |lang: Lang| category.names.get(lang.tag()).cloned();
                let en = name(Lang::En).unwrap_or_else(|| category.key.clone());
                let ru = name(Lang::Ru).unwrap_or_else(|| en.clone());
                Shelf {
                    key: category.key.into(),
                    names: [en, ru],
                }
            })
            .collect();
        Shelves::new(Source::Catalog, response.version, list)
    }

    fn new(source: Source, version: String, list: Vec<Shelf>) -> Shelves {
        Shelves {
            source,
            version,
            list,
            chromes: OnceLock::new(),
        }
    }

    /// The shelf with `key`.
    pub fn get(&self, key: &str) -> Option<&Shelf> {
        self.list.iter().find(|shelf| &*shelf.key == key)
    }

    /// The name of `key` in `lang`; the key itself for a category not listed (possible only
    /// while the shelves are [`Source::Pending`]).
    pub fn name<'a>(&'a self, key: &'a str, lang: Lang) -> &'a str {
        self.get(key).map_or(key, |shelf| shelf.name(lang))
    }

    /// Whether the shelves are known (not [`Source::Pending`]): only then is a key they do not
    /// list an unknown category.
    pub fn known(&self) -> bool {
        self.source != Source::Pending
    }

    /// The category of a home page that asks for none: `configured` (`homepage.category`)
    /// while the shelves have it, else the first shelf (see [`follow`](crate::follow), which
    /// logs the fallback).
    pub fn home(&self, configured: &Arc<str>) -> Arc<str> {
        match self.list.first() {
            Some(first) if self.known() && self.get(configured).is_none() => first.key.clone(),
            _ => configured.clone(),
        }
    }

    /// The chrome of the home page of `key`: shared when its links carry no explicit parameter
    /// (the usual visit), built for this request otherwise.
    pub fn chrome(&self, choice: LangChoice, key: &str, carry: LinkQuery<'_>) -> Cow<'_, Chrome> {
        if carry == LinkQuery::default() {
            let chromes = self.chromes.get_or_init(|| self.plain_chromes());
            if let Some(chrome) = chromes.get(key) {
                return Cow::Borrowed(&chrome[choice.lang as usize][usize::from(choice.explicit)]);
            }
        }
        Cow::Owned(Chrome::home(choice, self, key, carry))
    }

    /// For each shelf, its chrome in each language, chosen by `?lang=` or not.
    fn plain_chromes(&self) -> HashMap<Arc<str>, [[Chrome; 2]; 2]> {
        self.list
            .iter()
            .map(|shelf| {
                let chromes = Lang::ALL.map(|lang| {
                    [false, true].map(|explicit| {
                        let choice = LangChoice { lang, explicit };
                        Chrome::home(choice, self, &shelf.key, LinkQuery::default())
                    })
                });
                (shelf.key.clone(), chromes)
            })
            .collect()
    }
}

/// The current [`Shelves`], shared by the handlers, the event streams and [`follow`](crate::follow).
#[derive(Debug, Clone)]
pub struct LiveShelves {
    sender: Arc<watch::Sender<Arc<Shelves>>>,
}

impl Default for LiveShelves {
    fn default() -> Self {
        LiveShelves {
            sender: Arc::new(watch::Sender::new(Arc::new(Shelves::seed(Source::Pending)))),
        }
    }
}

impl LiveShelves {
    /// The shelves now.
    pub fn current(&self) -> Arc<Shelves> {
        self.sender.borrow().clone()
    }

    /// A receiver that sees every change from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Shelves>> {
        self.sender.subscribe()
    }

    /// Puts `shelves` in place. Returns whether the catalog changed: another version, or
    /// another source. The same version from another replica changes nothing, so a browser is
    /// told once per real change, not once per replica.
    pub fn replace(&self, shelves: Shelves) -> bool {
        self.sender.send_if_modified(|current| {
            let changed = current.source != shelves.source || current.version != shelves.version;
            if changed {
                *current = Arc::new(shelves);
            }
            changed
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use bookshop_proto::catalog::Category;

    use super::*;

    fn listed(version: &str, keys: &[&str]) -> Shelves {
        Shelves::from_catalog(ListCategoriesResponse {
            version: version.into(),
            categories: keys
                .iter()
                .map(|key| Category {
                    key: (*key).into(),
                    names: [("en".to_owned(), format!("{key} en"))].into(),
                    books: 1,
                })
                .collect(),
        })
    }

    #[test]
    fn a_name_missing_in_a_language_falls_back_to_english() {
        let shelves = listed("v1", &["poetry"]);
        let poetry = shelves.get("poetry").unwrap();
        assert_eq!(poetry.name(Lang::En), "poetry en");
        assert_eq!(poetry.name(Lang::Ru), "poetry en");
    }

    #[test]
    fn the_home_category_falls_back_to_the_first_shelf_only_when_the_shelves_are_known() {
        let mystery: Arc<str> = "mystery".into();
        assert_eq!(
            &*listed("v1", &["poetry", "mystery"]).home(&mystery),
            "mystery"
        );
        assert_eq!(&*listed("v1", &["poetry"]).home(&mystery), "poetry");
        let unknown: Arc<str> = "history".into();
        assert_eq!(&*Shelves::seed(Source::Pending).home(&unknown), "history");
    }

    #[test]
    fn the_same_version_again_is_no_change() {
        let live = LiveShelves::default();
        assert!(live.replace(listed("v1", &["poetry"])));
        assert!(!live.replace(listed("v1", &["poetry"])));
        assert!(live.replace(listed("v2", &["poetry"])));
        assert!(live.replace(Shelves::seed(Source::Seed)));
        assert!(!live.replace(Shelves::seed(Source::Seed)));
        assert_eq!(live.current().source, Source::Seed);
    }
}
