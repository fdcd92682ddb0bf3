//! From the text to its categories, rule by rule in file order: the first error is the first.

use std::{collections::HashMap, ops::Range};

use bookshop_proto::BookCategory;
use toml::{Spanned, de::DeTable, de::DeValue};

use super::{Book, CatalogError, Category, LANGUAGES, Location, Problem, chunks};
use super::{MAX_BOOKS, MAX_CATEGORIES, MAX_NAME_CHARS, MAX_TEXT_CHARS};

/// The names and order of the categories.
const NAMES_KEY: &str = "categories";

type Value<'a> = Spanned<DeValue<'a>>;
type Namings = HashMap<String, Naming>;
/// A broken rule, and where in the piece being read.
type Fault = (Range<usize>, Problem);

/// What `[categories.KEY]` says of a category.
#[derive(Default)]
struct Naming {
    names: [Option<String>; 2],
    order: Option<i64>,
    offset: usize,
}

/// The categories in the shop's order: by `order` where given, then as the file first names them.
pub(super) fn categories(text: &str, origin: &str) -> Result<Vec<Category>, CatalogError> {
    let at = |offset: usize| Location::from_span(origin, text, offset);
    let invalid = |offset: usize, problem| CatalogError::Invalid { location: at(offset), problem };
    let mut categories: Vec<Category> = Vec::new();
    let mut namings = Namings::new();
    let mut first_seen: HashMap<i32, usize> = HashMap::new();
    // Which piece defined each top-level key, and whether by `[[key]]` headers.
    let mut defined: HashMap<String, (usize, bool)> = HashMap::new();
    let pieces = chunks::split(text).map_err(|(offset, problem)| invalid(offset, problem))?;
    for (index, chunk) in pieces.iter().enumerate() {
        let start = chunk.range.start;
        let error = |span: Range<usize>, problem| invalid(start + span.start, problem);
        let fault = |(span, problem): Fault| error(span, problem);
        let piece = &text[chunk.range.clone()];
        let doc = DeTable::parse(piece).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            error(span.clone(), Problem::Toml(plain_words(e.message().trim(), piece, span)))
        })?;
        // The piece's keys in file order, then its books in file order.
        let mut keys: Vec<_> = doc.get_ref().iter().collect();
        keys.sort_by_key(|(key, _)| key.span().start);
        let mut books = Vec::new();
        for (key, value) in keys {
            let name = key.get_ref().as_ref();
            if name == NAMES_KEY {
                read_namings(value, start, &mut namings).map_err(fault)?;
                continue;
            }
            let appends = chunk.appends.contains(name);
            if let Some((piece, by_headers)) = defined.insert(name.to_owned(), (index, appends))
                && piece != index
                && !(by_headers && appends)
            {
                return Err(error(key.span(), Problem::DuplicateKey(name.to_owned())));
            }
            if !bookshop_proto::is_category_key(name) {
                return Err(error(key.span(), Problem::BadCategoryKey(name.to_owned())));
            }
            let DeValue::Array(list) = value.get_ref() else {
                if matches!(name, "id" | "title" | "author") {
                    return Err(error(key.span(), Problem::OutsideBook(name.to_owned())));
                }
                let found = value.get_ref().type_str();
                let problem = Problem::NotAnArrayOfTables { category: name.to_owned(), found };
                return Err(error(value.span(), problem));
            };
            let category = match categories.iter().position(|c| c.key == name) {
                Some(category) => category,
                None if categories.len() == MAX_CATEGORIES => {
                    return Err(error(key.span(), Problem::TooManyCategories));
                }
                None => {
                    let names = default_names(name);
                    categories.push(Category { key: name.to_owned(), names, books: Vec::new() });
                    categories.len() - 1
                }
            };
            books.extend(list.iter().map(|entry| (category, entry)));
        }
        books.sort_by_key(|(_, entry)| entry.span().start);
        for (category, entry) in books {
            let DeValue::Table(fields) = entry.get_ref() else {
                let category = categories[category].key.clone();
                let found = entry.get_ref().type_str();
                return Err(error(entry.span(), Problem::NotAnArrayOfTables { category, found }));
            };
            if first_seen.len() == MAX_BOOKS {
                return Err(error(entry.span(), Problem::TooManyBooks));
            }
            let (book, id_span) = parse_book(fields, entry.span()).map_err(fault)?;
            if let Some(first) = first_seen.insert(book.id, start + id_span.start) {
                return Err(error(id_span, Problem::DuplicateId { id: book.id, first: at(first) }));
            }
            categories[category].books.push(book);
        }
    }
    categories.retain(|category| !category.books.is_empty());
    if categories.is_empty() {
        // An empty file is far more likely a truncated write than an intended empty shop.
        return Err(invalid(0, Problem::NoBooks));
    }
    // A stable sort: the file's order among those without an `order`.
    categories.sort_by_key(|category| {
        let order = namings.get(&category.key).and_then(|n| n.order);
        (order.is_none(), order)
    });
    for category in &mut categories {
        let [en, ru] = namings.remove(&category.key).unwrap_or_default().names;
        let [default_en, default_ru] = std::mem::take(&mut category.names);
        category.names = [en.unwrap_or(default_en), ru.unwrap_or(default_ru)];
    }
    // The names left name no category; the first in the file is reported.
    if let Some((key, naming)) = namings.into_iter().min_by_key(|(_, naming)| naming.offset) {
        return Err(invalid(naming.offset, Problem::NamesNoCategory(key)));
    }
    Ok(categories)
}

/// The TOML crate's message, with the fix for the mistakes newcomers make most.
fn plain_words(message: &str, piece: &str, span: Range<usize>) -> String {
    let at = piece.get(span.start..).unwrap_or_default();
    if at.starts_with(['“', '”', '„', '«', '»', '‘', '’']) {
        format!("{message}: typographic quotes do not quote a string in TOML; use \"…\"")
    } else if message == "duplicate key" {
        let key = piece.get(span).unwrap_or_default();
        format!("duplicate key `{key}`: it is defined earlier in the file; merge the two")
    } else {
        message.to_owned()
    }
}

/// The seed's names for its three, else the key made readable (`history_of_art`: History of art).
fn default_names(key: &str) -> [String; 2] {
    if let Some(seed) = BookCategory::from_key(key) {
        return seed.names().map(str::to_owned);
    }
    // A key is ASCII.
    let mut readable = key.replace('_', " ");
    if let Some(first) = readable.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    [readable.clone(), readable]
}

fn read_namings(value: &Value<'_>, start: usize, namings: &mut Namings) -> Result<(), Fault> {
    for (key, entry) in names_table(value)? {
        let category = key.get_ref().as_ref();
        let fields = names_table(entry)?;
        if namings.contains_key(category) {
            return Err((key.span(), Problem::DuplicateKey(format!("{NAMES_KEY}.{category}"))));
        }
        let mut naming = Naming { offset: start + key.span().start, ..Naming::default() };
        for (field, value) in fields {
            let field = field.get_ref().as_ref();
            if field == "order" {
                let number = value.get_ref().as_integer();
                let order = number.and_then(|n| i64::from_str_radix(n.as_str(), n.radix()).ok());
                let found = number.map_or(value.get_ref().type_str(), |_| "a number too large");
                let problem = Problem::WrongType { field: "order", expected: "an integer", found };
                naming.order = Some(order.ok_or((value.span(), problem))?);
            } else if let Some(lang) = LANGUAGES.iter().position(|l| *l == field) {
                let name = text(value, "name", MAX_NAME_CHARS)?;
                naming.names[lang] = Some(name.ok_or((value.span(), Problem::EmptyName))?);
            } else {
                return Err((value.span(), Problem::UnknownNameField(field.to_owned())));
            }
        }
        namings.insert(category.to_owned(), naming);
    }
    Ok(())
}

/// `[categories]`, and each `[categories.KEY]` in it, is a table.
fn names_table<'a, 'i>(value: &'a Value<'i>) -> Result<&'a DeTable<'i>, Fault> {
    let found = value.get_ref().type_str();
    value.get_ref().as_table().ok_or((value.span(), Problem::NotANamesTable { found }))
}

/// One book's fields, checked, with the span of its `id` for duplicate reports.
fn parse_book(fields: &DeTable<'_>, span: Range<usize>) -> Result<(Book, Range<usize>), Fault> {
    let (mut id, mut title, mut author, mut local) = (None, None, None, Vec::new());
    for (key, value) in fields {
        match key.get_ref().as_ref() {
            "id" => id = Some(value),
            "title" => title = Some(value),
            "author" => author = Some(value),
            other => match LANGUAGES.iter().position(|lang| *lang == other) {
                Some(lang) => local.push((lang, value)),
                None => return Err((key.span(), Problem::UnknownField(other.to_owned()))),
            },
        }
    }
    let missing = |field| (span.clone(), Problem::MissingField(field));
    let id = id.ok_or_else(|| missing("id"))?;
    let title = title.ok_or_else(|| missing("title"))?;
    let number =
        id.get_ref().as_integer().ok_or_else(|| wrong_type(id, "id", "a positive integer"))?;
    let id_value = match i64::from_str_radix(number.as_str(), number.radix()) {
        Ok(n) if n <= 0 => return Err((id.span(), Problem::NonPositiveId(n))),
        Ok(n) => i32::try_from(n).ok(),
        Err(_) => None,
    }
    .ok_or_else(|| (id.span(), Problem::IdTooLarge(number.to_string())))?;
    let title = text(title, "title", MAX_TEXT_CHARS)?.ok_or((title.span(), Problem::EmptyTitle))?;
    let author = author.map(|author| text(author, "author", MAX_TEXT_CHARS)).transpose()?.flatten();
    let mut book = Book { id: id_value, title, author, ..Book::default() };
    for (lang, value) in local {
        let DeValue::Table(fields) = value.get_ref() else {
            return Err(wrong_type(value, LANGUAGES[lang], "a table (`{ title = \"…\" }`)"));
        };
        for (key, value) in fields {
            let (slot, field) = match key.get_ref().as_ref() {
                "title" => (&mut book.titles[lang], "title"),
                "author" => (&mut book.authors[lang], "author"),
                other => return Err((key.span(), Problem::UnknownField(other.to_owned()))),
            };
            *slot = text(value, field, MAX_TEXT_CHARS)?;
        }
    }
    Ok((book, id.span()))
}

/// A trimmed string within `limit` characters; `None` when it is empty.
fn text(value: &Value<'_>, field: &'static str, limit: usize) -> Result<Option<String>, Fault> {
    let text = value.get_ref().as_str().ok_or_else(|| wrong_type(value, field, "a string"))?;
    // Control characters would reach pages and logs; looked for before trimming, which drops some.
    if let Some(control) = text.chars().find(|c| c.is_control() && *c != '\t') {
        return Err((value.span(), Problem::ControlCharacter { field, code: u32::from(control) }));
    }
    let text = text.trim();
    let chars = text.chars().count();
    if chars > limit {
        return Err((value.span(), Problem::TextTooLong { field, chars, limit }));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

fn wrong_type(value: &Value<'_>, field: &'static str, expected: &'static str) -> Fault {
    (value.span(), Problem::WrongType { field, expected, found: value.get_ref().type_str() })
}
