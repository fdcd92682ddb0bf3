//! From the text of `catalog.toml` to its categories, one rule at a time, each broken rule an
//! error at its place in the file.
//!
//! The text is parsed in pieces (see `chunks`), and what TOML says about the whole file is
//! checked across them: a top-level key may appear in several pieces only as `[[key]]` headers
//! (which append) or as the `[categories]` table's entries. Books are validated in file order,
//! so the first error reported is the first in the file, and a duplicate id is reported at the
//! later book.

use std::{collections::HashMap, ops::Range};

use bookshop_proto::BookCategory;
use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::{
    Book, CatalogError, Category, LANGUAGES, Location, MAX_CATEGORIES, MAX_NAME_CHARS,
    MAX_TEXT_CHARS, Problem, chunks,
};

/// The top-level key of the names and order of the categories.
pub(super) const NAMES_KEY: &str = "categories";

/// A category as the file gives it, before the shop's order is known.
struct Shelf {
    key: String,
    first_seen: usize,
    books: Vec<Book>,
}

/// What `[categories.KEY]` says of a category.
#[derive(Default)]
struct Naming {
    names: [Option<String>; 2],
    order: Option<i64>,
    span: Range<usize>,
}

/// The categories of `text`, in the shop's order: those given an `order` first, by it, then the
/// others in the order the file first mentions them.
pub(super) fn categories(text: &str, origin: &str) -> Result<Vec<Category>, CatalogError> {
    let at = |offset: usize| Location::from_span(origin, text, offset);
    let invalid =
        |span: Range<usize>, problem| CatalogError::Invalid { location: at(span.start), problem };
    let mut shelves: Vec<Shelf> = Vec::new();
    let mut namings: HashMap<String, Naming> = HashMap::new();
    let mut first_seen: HashMap<i32, usize> = HashMap::new();
    // Which piece defined each top-level key, and whether by `[[key]]` headers.
    let mut defined: HashMap<String, (usize, bool)> = HashMap::new();
    for (index, chunk) in chunks::split(text).iter().enumerate() {
        let start = chunk.range.start;
        let global = |span: Range<usize>| span.start + start..span.end + start;
        let error = |span: Range<usize>, problem| invalid(global(span), problem);
        let doc = DeTable::parse(&text[chunk.range.clone()]).map_err(|e| {
            let problem = Problem::Toml(e.message().trim().to_owned());
            error(e.span().unwrap_or(0..0), problem)
        })?;
        // Every book of the piece, in file order, with its category; the keys in file order too.
        let mut books = Vec::new();
        let mut keys: Vec<_> = doc.get_ref().iter().collect();
        keys.sort_by_key(|(key, _)| key.span().start);
        for (key, value) in keys {
            let name = key.get_ref().as_ref();
            let appends = chunk.appends(name);
            // In several pieces: `[[key]]` headers append, the names' entries add up; anything
            // else is a key defined twice.
            let earlier = defined.insert(name.to_owned(), (index, appends));
            if let Some((piece, by_headers)) = earlier
                && piece != index
                && !(by_headers && appends)
                && name != NAMES_KEY
            {
                return Err(error(key.span(), Problem::DuplicateKey(name.to_owned())));
            }
            if name == NAMES_KEY {
                read_namings(value, &mut namings, &global, &error)?;
                continue;
            }
            check_key(name).map_err(|problem| error(key.span(), problem))?;
            let DeValue::Array(list) = value.get_ref() else {
                let found = value.get_ref().type_str();
                let problem = Problem::NotAnArrayOfTables { category: name.to_owned(), found };
                return Err(error(value.span(), problem));
            };
            let shelf = match shelves.iter().position(|s| s.key == name) {
                Some(shelf) => shelf,
                None => {
                    if shelves.len() == MAX_CATEGORIES {
                        return Err(error(key.span(), Problem::TooManyCategories));
                    }
                    let first_seen = global(key.span()).start;
                    shelves.push(Shelf { key: name.to_owned(), first_seen, books: Vec::new() });
                    shelves.len() - 1
                }
            };
            books.extend(list.iter().map(|entry| (shelf, entry)));
        }
        books.sort_by_key(|(_, entry)| entry.span().start);
        for (shelf, entry) in books {
            let DeValue::Table(fields) = entry.get_ref() else {
                let category = shelves[shelf].key.clone();
                let found = entry.get_ref().type_str();
                let problem = Problem::NotAnArrayOfTables { category, found };
                return Err(error(entry.span(), problem));
            };
            let (book, id_span) = parse_book(fields, entry.span(), &error)?;
            let id_offset = global(id_span).start;
            if let Some(first) = first_seen.get(&book.id) {
                let problem = Problem::DuplicateId { id: book.id, first: at(*first) };
                return Err(invalid(id_offset..id_offset, problem));
            }
            first_seen.insert(book.id, id_offset);
            shelves[shelf].books.push(book);
        }
    }
    shelves.retain(|shelf| !shelf.books.is_empty());
    if shelves.is_empty() {
        // An empty file is far more likely a truncated write than an intended empty shop.
        return Err(invalid(0..0, Problem::NoBooks));
    }
    for (key, naming) in &namings {
        if !shelves.iter().any(|s| &s.key == key) {
            let problem = Problem::NamesNoCategory(key.clone());
            return Err(invalid(naming.span.clone(), problem));
        }
    }
    shelves.sort_by_key(|shelf| {
        let order = namings.get(&shelf.key).and_then(|n| n.order);
        (order.is_none(), order, shelf.first_seen)
    });
    Ok(shelves
        .into_iter()
        .map(|shelf| {
            let given = namings.remove(&shelf.key).unwrap_or_default().names;
            let [en, ru] = given;
            let [default_en, default_ru] = default_names(&shelf.key);
            Category {
                names: [en.unwrap_or(default_en), ru.unwrap_or(default_ru)],
                key: shelf.key,
                books: shelf.books,
            }
        })
        .collect())
}

/// The names of a category the file does not name: the seed's own for its three, else its key
/// made readable (`history_of_art` is "History of art").
fn default_names(key: &str) -> [String; 2] {
    match BookCategory::from_key(key) {
        Some(seed) => seed.names().map(str::to_owned),
        None => {
            let words = key.replace('_', " ");
            let mut chars = words.chars();
            let readable = match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => words,
            };
            [readable.clone(), readable]
        }
    }
}

/// A category key: snake_case, within `MAX_KEY_CHARS` (the rule both services share).
fn check_key(key: &str) -> Result<(), Problem> {
    if bookshop_proto::is_category_key(key) {
        Ok(())
    } else {
        Err(Problem::BadCategoryKey(key.to_owned()))
    }
}

/// Reads the `[categories]` table: for each category, its names and its order.
fn read_namings(
    value: &Spanned<DeValue<'_>>,
    namings: &mut HashMap<String, Naming>,
    global: &impl Fn(Range<usize>) -> Range<usize>,
    error: &impl Fn(Range<usize>, Problem) -> CatalogError,
) -> Result<(), CatalogError> {
    let DeValue::Table(table) = value.get_ref() else {
        let found = value.get_ref().type_str();
        return Err(error(value.span(), Problem::NotANamesTable { found }));
    };
    for (key, entry) in table {
        let category = key.get_ref().as_ref();
        let DeValue::Table(fields) = entry.get_ref() else {
            let found = entry.get_ref().type_str();
            return Err(error(entry.span(), Problem::NotANamesTable { found }));
        };
        if namings.contains_key(category) {
            let problem = Problem::DuplicateKey(format!("{NAMES_KEY}.{category}"));
            return Err(error(key.span(), problem));
        }
        let mut naming = Naming { span: global(key.span()), ..Naming::default() };
        for (field, value) in fields {
            let field = field.get_ref().as_ref();
            if field == "order" {
                let DeValue::Integer(number) = value.get_ref() else {
                    return Err(wrong_type(value, "order", "an integer", error));
                };
                let order = i64::from_str_radix(number.as_str(), number.radix());
                naming.order = Some(order.map_err(|_| {
                    let problem = Problem::WrongType {
                        field: "order",
                        expected: "an integer",
                        found: "a number too large",
                    };
                    error(value.span(), problem)
                })?);
            } else if let Some(lang) = LANGUAGES.iter().position(|l| *l == field) {
                let name = text(value, "name", MAX_NAME_CHARS, error)?;
                naming.names[lang] =
                    Some(name.ok_or_else(|| error(value.span(), Problem::EmptyName))?);
            } else {
                let span = value.span();
                return Err(error(span, Problem::UnknownNameField(field.to_owned())));
            }
        }
        namings.insert(category.to_owned(), naming);
    }
    Ok(())
}

/// One book's fields, checked, with the span of its `id` for duplicate reports.
fn parse_book(
    fields: &DeTable<'_>,
    span: Range<usize>,
    error: &impl Fn(Range<usize>, Problem) -> CatalogError,
) -> Result<(Book, Range<usize>), CatalogError> {
    let (mut id, mut title, mut author) = (None, None, None);
    for (key, value) in fields {
        match key.get_ref().as_ref() {
            "id" => id = Some(value),
            "title" => title = Some(value),
            "author" => author = Some(value),
            other => {
                return Err(error(key.span(), Problem::UnknownField(other.to_owned())));
            }
        }
    }
    let missing = |field| error(span.clone(), Problem::MissingField(field));
    let id = id.ok_or_else(|| missing("id"))?;
    let title = title.ok_or_else(|| missing("title"))?;

    let DeValue::Integer(number) = id.get_ref() else {
        return Err(wrong_type(id, "id", "a positive integer", error));
    };
    let id_value = match i64::from_str_radix(number.as_str(), number.radix()) {
        Ok(n) if n <= 0 => return Err(error(id.span(), Problem::NonPositiveId(n))),
        Ok(n) => i32::try_from(n).ok(),
        Err(_) => None,
    }
    .ok_or_else(|| error(id.span(), Problem::IdTooLarge(number.to_string())))?;

    let title = text(title, "title", MAX_TEXT_CHARS, error)?
        .ok_or_else(|| error(title.span(), Problem::EmptyTitle))?;
    let author = match author {
        Some(author) => text(author, "author", MAX_TEXT_CHARS, error)?,
        None => None,
    };
    let book = Book { id: id_value, title, author };
    Ok((book, id.span()))
}

/// A trimmed string within `limit` characters; `None` when it is empty.
fn text(
    value: &Spanned<DeValue<'_>>,
    field: &'static str,
    limit: usize,
    error: &impl Fn(Range<usize>, Problem) -> CatalogError,
) -> Result<Option<String>, CatalogError> {
    let DeValue::String(text) = value.get_ref() else {
        return Err(wrong_type(value, field, "a string", error));
    };
    // Control characters (C0 but tab, DEL, C1) have no place in a title or a name, and would
    // reach pages and logs as they are; looked for before trimming, which would drop some of
    // them silently.
    if let Some(control) = text.chars().find(|c| c.is_control() && *c != '\t') {
        let problem = Problem::ControlCharacter { field, code: u32::from(control) };
        return Err(error(value.span(), problem));
    }
    let text = text.trim();
    let chars = text.chars().count();
    if chars > limit {
        return Err(error(value.span(), Problem::TextTooLong { field, chars, limit }));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

fn wrong_type(
    value: &Spanned<DeValue<'_>>,
    field: &'static str,
    expected: &'static str,
    error: &impl Fn(Range<usize>, Problem) -> CatalogError,
) -> CatalogError {
    let found = value.get_ref().type_str();
    error(value.span(), Problem::WrongType { field, expected, found })
}
