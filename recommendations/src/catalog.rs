//! The book catalog from `catalog.toml` (docs/catalog.md), or an error naming where and the fix.

use std::{fmt, io::Read, path::Path, sync::Arc};

mod chunks;
mod parse;

/// Longer text is almost certainly a mistake (a missing closing quote) and would break pages.
pub const MAX_TEXT_CHARS: usize = 500;
/// Each category is a link in the shop's navigation.
pub const MAX_CATEGORIES: usize = 50;
/// Bounds a catalog's memory, as `max_bytes` bounds its text (docs/catalog.md, Format).
pub const MAX_BOOKS: usize = 100_000;
pub use bookshop_proto::MAX_CATEGORY_KEY_CHARS as MAX_KEY_CHARS;
pub const MAX_NAME_CHARS: usize = 40;
/// The shop's languages, in the order of [`Category::names`].
pub const LANGUAGES: [&str; 2] = ["en", "ru"];
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// The catalog in service, `None` until the first load; a call answers from one snapshot of it.
pub type Store = tokio::sync::watch::Sender<Option<Arc<Catalog>>>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    /// Unique across the catalog, positive, within the proto's `int32`.
    pub id: i32,
    pub title: String,
    pub author: Option<String>,
    /// In each of [`LANGUAGES`], where the catalog gives them (`en = { title = "…" }`).
    pub titles: [Option<String>; 2],
    pub authors: [Option<String>; 2],
}

impl Book {
    /// Its title and author in the language tagged `lang`, else its own.
    pub fn in_language(&self, lang: &str) -> (&str, Option<&str>) {
        let lang = LANGUAGES.iter().position(|l| *l == lang);
        let title = lang.and_then(|lang| self.titles[lang].as_deref()).unwrap_or(&self.title);
        (title, lang.and_then(|lang| self.authors[lang].as_deref()).or(self.author.as_deref()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// snake_case, as in the file and in URLs.
    pub key: String,
    pub names: [String; 2],
    /// In file order; never empty.
    pub books: Vec<Book>,
}

/// Categories in the shop's order, and the FNV-1a hash of the text: the same on every replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    categories: Vec<Category>,
    hash: u64,
}

impl Catalog {
    /// `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Catalog, CatalogError> {
        let categories = parse::categories(text, origin)?;
        Ok(Catalog { categories, hash: bookshop_common::fnv1a(text.as_bytes()) })
    }

    pub fn load(path: &Path, max_bytes: u64) -> Result<Catalog, CatalogError> {
        let origin = path.display().to_string();
        let text = decode(read_bytes(path, max_bytes)?, &origin)?;
        Catalog::from_toml_str(&text, &origin)
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    pub fn books(&self, key: &str) -> &[Book] {
        self.categories.iter().find(|c| c.key == key).map_or(&[], |c| c.books.as_slice())
    }

    pub fn len(&self) -> usize {
        self.categories.iter().map(|c| c.books.len()).sum()
    }

    /// Always false: a catalog without books is rejected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn content_hash(&self) -> u64 {
        self.hash
    }

    pub fn version(&self) -> String {
        format!("{:016x}", self.hash)
    }

    pub fn short_hash(&self) -> String {
        self.version()[..8].to_owned()
    }

    pub fn summary(&self) -> String {
        let counts = self.categories.iter().map(|c| format!("{}: {}", c.key, c.books.len()));
        counts.collect::<Vec<_>>().join(", ")
    }
}

/// What `recommendations check FILE` prints.
pub fn check(path: &Path, max_bytes: u64) -> Result<String, String> {
    let catalog = Catalog::load(path, max_bytes).map_err(|error| error.to_string())?;
    let (books, categories) = (catalog.len(), catalog.categories().len());
    let hash = catalog.short_hash();
    let [books, categories] = [(books, "book"), (categories, "category")].map(plural);
    let mut report = format!("{}: OK, {books} in {categories}, hash {hash}", path.display());
    for Category { key, names: [en, ru], books } in catalog.categories() {
        let books = plural((books.len(), "book"));
        report.push_str(&format!("\n  {key}: {books}; en {en:?}, ru {ru:?}"));
    }
    Ok(report)
}

fn plural((n, noun): (usize, &str)) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {noun}s"),
    }
}

/// A file's bytes, refused over `max_bytes` before reading, and while reading if it grew.
pub fn read_bytes(path: &Path, max_bytes: u64) -> Result<Vec<u8>, CatalogError> {
    let name = path.display().to_string();
    let io = |source| CatalogError::Io { path: name.clone(), resolved: resolved(path), source };
    let too_large = |size| CatalogError::TooLarge { path: name.clone(), size, limit: max_bytes };
    let mut options = std::fs::OpenOptions::new();
    // Not blocking: the open of a FIFO would wait for a writer, and a stop would wait on it.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.read(true).open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(CatalogError::NotAFile { path: name });
    }
    let size = metadata.len();
    if size > max_bytes {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    let read = bytes.len() as u64;
    if read > max_bytes { Err(too_large(read)) } else { Ok(bytes) }
}

pub fn decode(bytes: Vec<u8>, origin: &str) -> Result<String, CatalogError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
        let location = Location::from_span(origin, &text, valid);
        CatalogError::Invalid { location, problem: Problem::NotUtf8 }
    })
}

/// For a relative path, where it points: its reader may not know the working directory.
fn resolved(path: &Path) -> String {
    match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => {
            format!(" ({}, from the working directory {})", cwd.join(path).display(), cwd.display())
        }
        _ => String::new(),
    }
}

/// `file:line:column`, 1-based, the column counted in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Location {
    fn from_span(file: &str, text: &str, offset: usize) -> Location {
        let before = text.get(..offset.min(text.len())).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        Location { file: file.to_owned(), line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{path}: cannot read the catalog{resolved}: {source}")]
    Io { path: String, resolved: String, source: std::io::Error },
    #[error(
        "{path}: the catalog is {size} bytes, over the limit of {limit} bytes (catalog.max_bytes); it was not parsed"
    )]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: not a regular file (a FIFO, device or directory); save the catalog as a file")]
    NotAFile { path: String },
    #[error("{location}: {problem}")]
    Invalid { location: Location, problem: Problem },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Toml(String),
    #[error("`{category}` must be an array of tables (`[[{category}]]` entries), found {found}")]
    NotAnArrayOfTables { category: String, found: &'static str },
    #[error(
        "unknown field `{0}` in a book; expected `id`, `title` and optionally `author`, `en` and \
         `ru` (`en = {{ title = \"…\", author = \"…\" }}`)"
    )]
    UnknownField(String),
    #[error("the book has no `{0}`")]
    MissingField(&'static str),
    #[error("`{field}` must be {expected}, found {found}")]
    WrongType { field: &'static str, expected: &'static str, found: &'static str },
    #[error("the catalog is not valid UTF-8")]
    NotUtf8,
    #[error(
        "`{0}` cannot name a category: use snake_case (a to z, 0 to 9 and _, starting with a \
         letter), at most {MAX_KEY_CHARS} characters"
    )]
    BadCategoryKey(String),
    #[error("too many categories: the limit is {MAX_CATEGORIES}")]
    TooManyCategories,
    #[error("too many books: the limit is {MAX_BOOKS}")]
    TooManyBooks,
    #[error(
        "more than {} TOML tokens (keys, values, `=`, brackets) with no `[[category]]` header \
         between them; write each book as its own `[[category]]` block (the limit bounds the \
         memory of a reload)",
        chunks::MAX_PIECE_TOKENS
    )]
    TooManyTokens,
    #[error(
        "`[categories]` holds one table per category (`[categories.mystery]` with `en`, `ru` \
         and `order`), found {found}"
    )]
    NotANamesTable { found: &'static str },
    #[error("`[categories.{0}]` names a category without books: add `[[{0}]]` books or remove it")]
    NamesNoCategory(String),
    #[error("unknown field `{0}` in `[categories.…]`; expected `en`, `ru` and `order`")]
    UnknownNameField(String),
    #[error("a category name must not be empty")]
    EmptyName,
    #[error("`id` must be a positive integer, got {0}")]
    NonPositiveId(i64),
    #[error("`id` must be at most {max} (the API's int32), got {0}", max = i32::MAX)]
    IdTooLarge(String),
    /// Defined twice other than by `[[key]]` headers, which append.
    #[error("duplicate key `{0}`: it is defined earlier in the file")]
    DuplicateKey(String),
    #[error("duplicate id {id}, first used at {first}")]
    DuplicateId { id: i32, first: Location },
    #[error("`title` must not be empty")]
    EmptyTitle,
    #[error("`{field}` is {chars} characters long; the limit is {limit}")]
    TextTooLong { field: &'static str, chars: usize, limit: usize },
    #[error("`{field}` contains the control character U+{code:04X}; remove it (a tab is allowed)")]
    ControlCharacter { field: &'static str, code: u32 },
    #[error(
        "the catalog has no books; add at least one book (`[[mystery]]` with `id` and `title`)"
    )]
    NoBooks,
    #[error(
        "`{0}` is outside any book: books go under a `[[category]]` header, such as `[[mystery]]`"
    )]
    OutsideBook(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = r#"
[[mystery]]
id = 1
title = "Мальтийский сокол"
author = "Дэшил Хэммет"

[[science_fiction]]
id = 4
title = "Автостопом по галактике"
"#;

    fn problem(text: &str) -> (Location, Problem) {
        match Catalog::from_toml_str(text, "catalog.toml") {
            Err(CatalogError::Invalid { location, problem }) => (location, problem),
            other => panic!("expected an invalid catalog, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_catalog_parses_into_categories_in_file_order() {
        let catalog = Catalog::from_toml_str(GOOD, "catalog.toml").unwrap();
        assert_eq!(
            catalog.books("mystery"),
            &[Book {
                id: 1,
                title: "Мальтийский сокол".into(),
                author: Some("Дэшил Хэммет".into()),
                ..Book::default()
            }]
        );
        assert_eq!(catalog.books("science_fiction")[0].author, None);
        assert!(catalog.books("self_help").is_empty());
        assert_eq!(catalog.len(), 2);
        assert_eq!(catalog.summary(), "mystery: 1, science_fiction: 1");
    }

    #[test]
    fn the_repository_catalog_is_valid_and_holds_the_seeds_nine_books() {
        let text = include_str!("../../catalog.toml");
        let catalog = Catalog::from_toml_str(text, "catalog.toml").unwrap();
        assert_eq!(catalog.len(), 9);
        let keys: Vec<&str> = catalog.categories().iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["mystery", "science_fiction", "self_help"]);
        for category in catalog.categories() {
            assert_eq!(category.books.len(), 3, "{}", category.key);
        }
        let sf: Vec<_> =
            catalog.books("science_fiction").iter().map(|b| b.title.as_str()).collect();
        assert!(sf.contains(&"Автостопом по галактике"));
        assert!(sf.contains(&"Игра Эндера"));
    }

    #[test]
    fn a_book_gives_its_title_and_author_per_language() {
        let text = "[[mystery]]\nid = 1\ntitle = \"Мальтийский сокол\"\nauthor = \"Дэшил Хэммет\"\nen = { title = \"The Maltese Falcon\", author = \"Dashiell Hammett\" }\n\n[[mystery]]\nid = 2\ntitle = \"Собака Баскервилей\"\nauthor = \"Артур Конан Дойл\"\nen = { title = \"The Hound of the Baskervilles\" }\n";
        let catalog = Catalog::from_toml_str(text, "c").unwrap();
        let [falcon, hound] = catalog.books("mystery") else { panic!("two books") };
        assert_eq!(falcon.in_language("en"), ("The Maltese Falcon", Some("Dashiell Hammett")));
        assert_eq!(falcon.in_language("ru"), ("Мальтийский сокол", Some("Дэшил Хэммет")));
        assert_eq!(falcon.in_language(""), ("Мальтийский сокол", Some("Дэшил Хэммет")));
        assert_eq!(
            hound.in_language("en"),
            ("The Hound of the Baskervilles", Some("Артур Конан Дойл"))
        );
        let (at, problem) = problem("[[mystery]]\nid = 1\ntitle = \"x\"\nen = { titel = \"y\" }\n");
        assert_eq!((at.line, problem), (4, Problem::UnknownField("titel".into())));
        let (_, problem) = self::problem("[[mystery]]\nid = 1\ntitle = \"x\"\nen = \"y\"\n");
        assert!(matches!(problem, Problem::WrongType { field: "en", .. }), "{problem:?}");
    }

    #[test]
    fn toml_syntax_errors_name_line_and_column() {
        let (at, problem) = problem("[[mystery]]\nid = 1\ntitle = \"unterminated\n");
        assert_eq!((at.line, at.file.as_str()), (3, "catalog.toml"));
        assert!(matches!(problem, Problem::Toml(_)), "{problem:?}");
    }

    #[test]
    fn any_snake_case_key_is_a_category_named_after_it_unless_named() {
        let text =
            "[[poetry]]\nid = 1\ntitle = \"x\"\n\n[[history_of_art]]\nid = 2\ntitle = \"y\"\n";
        let catalog = Catalog::from_toml_str(text, "c").unwrap();
        let categories = catalog.categories();
        assert_eq!(categories[0].key, "poetry");
        assert_eq!(categories[0].names, ["Poetry", "Poetry"]);
        assert_eq!(categories[1].names, ["History of art", "History of art"]);
        // The seed's three keep their own names.
        let seed = Catalog::from_toml_str("[[self_help]]\nid = 1\ntitle = \"x\"\n", "c").unwrap();
        assert_eq!(seed.categories()[0].names, ["Self-help", "Саморазвитие"]);
    }

    #[test]
    fn the_names_block_names_and_orders_categories() {
        let text = "[[mystery]]\nid = 1\ntitle = \"m\"\n\n[[poetry]]\nid = 2\ntitle = \"p\"\n\n[[drama]]\nid = 3\ntitle = \"d\"\n\n[categories.poetry]\nen = \"Verse\"\nru = \"Стихи\"\norder = 1\n\n[categories.mystery]\norder = 2\n";
        let catalog = Catalog::from_toml_str(text, "c").unwrap();
        let keys: Vec<&str> = catalog.categories().iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["poetry", "mystery", "drama"], "ordered ones first, then file order");
        assert_eq!(catalog.categories()[0].names, ["Verse", "Стихи"]);
        assert_eq!(catalog.categories()[1].names, ["Mystery", "Детективы"]);
    }

    #[test]
    fn a_key_that_cannot_name_a_category_is_named_with_its_position() {
        for key in ["Romance", "sci-fi", "9lives", "\"with space\""] {
            let (at, problem) = problem(&format!("[[{key}]]\nid = 1\ntitle = \"x\"\n"));
            assert_eq!((at.line, at.column), (1, 3), "{key}");
            assert!(matches!(problem, Problem::BadCategoryKey(_)), "{key}: {problem:?}");
        }
        let long = "a".repeat(MAX_KEY_CHARS + 1);
        let (_, problem) = problem(&format!("[[{long}]]\nid = 1\ntitle = \"x\"\n"));
        assert_eq!(problem, Problem::BadCategoryKey(long));
    }

    #[test]
    fn too_many_categories_is_an_error_at_the_first_one_too_many() {
        let text: String = (0..=MAX_CATEGORIES)
            .map(|n| format!("[[shelf_{n}]]\nid = {}\ntitle = \"x\"\n", n + 1))
            .collect();
        let (at, problem) = problem(&text);
        assert_eq!((at.line, problem), (3 * MAX_CATEGORIES + 1, Problem::TooManyCategories));
    }

    #[test]
    fn too_many_books_is_an_error_at_the_first_one_too_many() {
        let text: String = (1..=MAX_BOOKS + 1)
            .map(|id| format!("[[mystery]]\nid = {id}\ntitle = \"x\"\n"))
            .collect();
        let (at, problem) = problem(&text);
        assert_eq!((at.line, problem), (3 * MAX_BOOKS + 1, Problem::TooManyBooks));
    }

    #[test]
    fn a_newcomers_mistakes_are_said_in_plain_words_with_the_fix() {
        let book = "[[poetry]]\nid = 1\ntitle = \"x\"\n";
        let cases = [
            ("[[poetry]]\nid = 1\ntitle = “Verse”\n".to_owned(), "(3, 9)", "use \"…\""),
            (format!("id = 2\ntitle = \"y\"\n{book}"), "(1, 1)", "`id` is outside any book"),
            (
                format!("{book}[categories.poetry]\nen = \"P\"\n[categories.poetry]\nru = \"P\"\n"),
                "(6, 13)",
                "duplicate key `poetry`: it is defined earlier in the file; merge the two",
            ),
        ];
        for (text, at, words) in cases {
            let (location, problem) = problem(&text);
            assert_eq!(format!("{:?}", (location.line, location.column)), at, "{text}");
            assert!(problem.to_string().contains(words), "{problem}");
        }
        let counts = [(1, "book"), (2, "book"), (1, "category"), (3, "category")].map(plural);
        assert_eq!(counts, ["1 book", "2 books", "1 category", "3 categories"]);
    }

    #[test]
    fn bad_names_are_errors_at_their_place() {
        let book = "[[poetry]]\nid = 1\ntitle = \"x\"\n";
        let cases = [
            ("[categories.poetyr]\nen = \"P\"\n", 4, Problem::NamesNoCategory("poetyr".into())),
            ("[categories.poetry]\nde = \"P\"\n", 5, Problem::UnknownNameField("de".into())),
            ("[categories.poetry]\nen = \" \"\n", 5, Problem::EmptyName),
        ];
        for (names, line, expected) in cases {
            let (at, problem) = problem(&format!("{book}{names}"));
            assert_eq!((at.line, problem), (line, expected), "{names}");
        }
        let (at, not_a_table) = self::problem(&format!("categories = 3\n{book}"));
        let expected = Problem::NotANamesTable { found: "integer" };
        assert_eq!((at.line, not_a_table), (1, expected));
        let long =
            format!("{book}[categories.poetry]\nen = \"{}\"\n", "p".repeat(MAX_NAME_CHARS + 1));
        assert!(matches!(problem(&long).1, Problem::TextTooLong { field: "name", .. }));
        let control = format!("{book}[categories.poetry]\nru = \"a\\u0007\"\n");
        assert!(matches!(problem(&control).1, Problem::ControlCharacter { field: "name", .. }));
    }

    #[test]
    fn a_wrong_type_is_an_error_at_the_value() {
        let (at, problem) = problem("[[mystery]]\nid = \"one\"\ntitle = \"x\"\n");
        assert_eq!(at.line, 2);
        assert_eq!(
            problem,
            Problem::WrongType { field: "id", expected: "a positive integer", found: "string" }
        );
        let (at, problem) = self::problem("[[mystery]]\nid = 1\ntitle = 12\n");
        assert_eq!(at.line, 3);
        assert!(matches!(problem, Problem::WrongType { field: "title", .. }));
        let (at, problem) = self::problem("\nmystery = \"The Maltese Falcon\"\n");
        assert_eq!(at.line, 2);
        assert_eq!(
            problem,
            Problem::NotAnArrayOfTables { category: "mystery".into(), found: "string" }
        );
    }

    #[test]
    fn an_unknown_field_in_a_book_is_an_error() {
        let (at, problem) = problem("[[mystery]]\nid = 1\ntitle = \"x\"\nprice = 3\n");
        assert_eq!((at.line, at.column), (4, 1));
        assert_eq!(problem, Problem::UnknownField("price".into()));
    }

    #[test]
    fn a_missing_id_is_an_error() {
        let (at, problem) = problem("[[mystery]]\ntitle = \"x\"\n");
        assert!(at.line <= 2, "{at}");
        assert_eq!(problem, Problem::MissingField("id"));
    }

    #[test]
    fn a_missing_title_is_an_error() {
        let (_, problem) = problem("[[mystery]]\nid = 1\n");
        assert_eq!(problem, Problem::MissingField("title"));
    }

    #[test]
    fn a_zero_or_negative_id_is_an_error() {
        let (at, problem) = problem("[[mystery]]\nid = 0\ntitle = \"x\"\n");
        assert_eq!((at.line, at.column), (2, 6));
        assert_eq!(problem, Problem::NonPositiveId(0));
        let (_, problem) = self::problem("[[mystery]]\nid = -3\ntitle = \"x\"\n");
        assert_eq!(problem, Problem::NonPositiveId(-3));
    }

    #[test]
    fn an_id_beyond_int32_is_an_error() {
        let (_, problem) = problem("[[mystery]]\nid = 2147483648\ntitle = \"x\"\n");
        assert_eq!(problem, Problem::IdTooLarge("2147483648".into()));
        let (_, problem) = self::problem("[[mystery]]\nid = 99999999999999999999\ntitle = \"x\"\n");
        assert!(matches!(problem, Problem::IdTooLarge(_)), "{problem:?}");
    }

    #[test]
    fn a_duplicate_id_names_both_places_even_across_categories() {
        let text = "[[mystery]]\nid = 7\ntitle = \"a\"\n\n[[self_help]]\nid = 7\ntitle = \"b\"\n";
        let (at, problem) = problem(text);
        assert_eq!(at.line, 6);
        match problem {
            Problem::DuplicateId { id, first } => {
                assert_eq!((id, first.line, first.column), (7, 2, 6));
            }
            other => panic!("{other:?}"),
        }
        let message = Catalog::from_toml_str(text, "catalog.toml").unwrap_err().to_string();
        assert_eq!(message, "catalog.toml:6:6: duplicate id 7, first used at catalog.toml:2:6");
    }

    #[test]
    fn a_duplicate_id_is_reported_at_the_later_book_in_file_order() {
        let text = "[[mystery]]\nid = 1\ntitle = \"a\"\n\n[[science_fiction]]\nid = 4\ntitle = \"b\"\n\n[[mystery]]\nid = 4\ntitle = \"c\"\n";
        let message = Catalog::from_toml_str(text, "catalog.toml").unwrap_err().to_string();
        assert_eq!(message, "catalog.toml:10:6: duplicate id 4, first used at catalog.toml:6:6");
    }

    #[test]
    fn control_characters_in_text_are_errors_with_their_position() {
        for (escape, code) in [
            ("\\u0007", "U+0007"),
            ("\\u007F", "U+007F"),
            ("\\u0085", "U+0085"),
            ("a\\nb", "U+000A"),
        ] {
            let text = format!("[[mystery]]\nid = 1\ntitle = \"ok\"\nauthor = \"{escape}\"\n");
            let (at, problem) = problem(&text);
            assert_eq!((at.line, at.column), (4, 10), "{escape}");
            assert!(problem.to_string().contains(code), "{problem}");
        }
        let tab = "[[mystery]]\nid = 1\ntitle = \"a\\tb\"\n";
        assert!(Catalog::from_toml_str(tab, "c").is_ok());
    }

    #[test]
    fn a_large_catalog_is_parsed_in_pieces_with_positions_and_rules_of_the_whole_file() {
        let mut text = String::new();
        for id in 1..=3000 {
            let title = format!("Book {id} {}", "x".repeat(100));
            text.push_str(&format!("[[mystery]]\nid = {id}\ntitle = \"{title}\"\n\n"));
        }
        text.push_str("[[self_help]]\nid = 5000\ntitle = \"Last\"\n");
        let catalog = Catalog::from_toml_str(&text, "c").unwrap();
        assert_eq!(catalog.len(), 3001);
        assert_eq!(catalog.books("self_help")[0].title, "Last");
        // An error far down the file names its real line.
        let bad = format!("{text}[[mystery]]\nid = 0\ntitle = \"x\"\n");
        let (at, problem) = self::problem(&bad);
        assert_eq!((at.line, problem), (4 * 3000 + 5, Problem::NonPositiveId(0)));
        // A key defined at the top and again far below is a duplicate, as in one document.
        let (at, problem) = self::problem(&format!("self_help = []\n{text}"));
        assert_eq!(problem, Problem::DuplicateKey("self_help".into()));
        assert_eq!(at.line, 4 * 3000 + 2);
    }

    #[test]
    fn an_empty_or_blank_title_is_an_error() {
        let (at, problem) = problem("[[mystery]]\nid = 1\ntitle = \"  \"\n");
        assert_eq!((at.line, problem), (3, Problem::EmptyTitle));
    }

    #[test]
    fn an_overlong_title_is_an_error() {
        let text = format!("[[mystery]]\nid = 1\ntitle = \"{}\"\n", "я".repeat(501));
        let (_, problem) = problem(&text);
        assert_eq!(
            problem,
            Problem::TextTooLong { field: "title", chars: 501, limit: MAX_TEXT_CHARS }
        );
    }

    #[test]
    fn an_empty_author_means_no_author() {
        let text = "[[mystery]]\nid = 1\ntitle = \"x\"\nauthor = \"\"\n";
        let catalog = Catalog::from_toml_str(text, "c").unwrap();
        assert_eq!(catalog.books("mystery")[0].author, None);
    }

    #[test]
    fn a_catalog_without_books_is_an_error() {
        assert_eq!(problem("").1, Problem::NoBooks);
        assert_eq!(problem("mystery = []\n").1, Problem::NoBooks);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let (at, _) = problem("[[mystery]]\nid = 1\ntitle = \"Дюна\"\nauthor = \"Ф\"\nё = 1\n");
        assert_eq!(at.line, 5);
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.toml");
        std::fs::write(&path, GOOD).unwrap();
        let err = Catalog::load(&path, 10).unwrap_err();
        assert!(
            matches!(err, CatalogError::TooLarge { size, limit: 10, .. } if size == GOOD.len() as u64),
            "{err:?}"
        );
        assert!(Catalog::load(&path, DEFAULT_MAX_BYTES).is_ok());
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_the_path() {
        let err = Catalog::load(Path::new("/nonexistent/catalog.toml"), 1000).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/catalog.toml: cannot read the catalog: "),
            "{err}"
        );
    }

    #[test]
    fn a_missing_relative_file_names_the_absolute_path_and_the_working_directory() {
        let err =
            Catalog::load(Path::new("no-such-dir/catalog.toml"), 1000).unwrap_err().to_string();
        let cwd = std::env::current_dir().unwrap();
        let absolute = cwd.join("no-such-dir/catalog.toml");
        for part in [absolute.display().to_string(), format!("working directory {}", cwd.display())]
        {
            assert!(err.contains(&part), "{part} missing from: {err}");
        }
    }

    #[test]
    fn a_file_that_is_not_utf8_is_an_error_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.toml");
        std::fs::write(&path, b"[[mystery]]\nid = 1\ntitle = \"\xff\"\n").unwrap();
        match Catalog::load(&path, 1000).unwrap_err() {
            CatalogError::Invalid { location, problem } => {
                assert_eq!((location.line, problem), (3, Problem::NotUtf8));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_content_hash_is_stable_and_changes_with_the_text() {
        let a = Catalog::from_toml_str(GOOD, "c").unwrap();
        assert_eq!(a.content_hash(), bookshop_common::fnv1a(GOOD.as_bytes()));
        let b = Catalog::from_toml_str(&GOOD.replace("сокол", "Сокол"), "c").unwrap();
        assert_ne!(a.content_hash(), b.content_hash());
        assert_eq!(a.short_hash().len(), 8);
    }
}
