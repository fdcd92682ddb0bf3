//! `catalog.schema.json`, which editors use to flag mistakes as one types, against `check`: on
//! the repository's catalog and on broken ones, both say valid or both say invalid.

use recommendations::catalog::Catalog;

const SCHEMA: &str = include_str!("../../../catalog.schema.json");
const CATALOG: &str = include_str!("../../../catalog.toml");

fn schema_says(text: &str) -> bool {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let instance: serde_json::Value = toml::from_str(text).unwrap();
    validator.is_valid(&instance)
}

#[test]
fn the_repository_catalog_names_the_schema_and_is_valid_by_it() {
    assert!(CATALOG.starts_with("#:schema ./catalog.schema.json\n"), "taplo's directive");
    assert!(schema_says(CATALOG));
}

#[test]
fn the_schema_and_check_agree_on_broken_catalogs() {
    let book = "[[poetry]]\nid = 1\ntitle = \"x\"\n";
    let cases = [
        book.to_owned(),
        format!("{book}author = \"y\"\n[categories.poetry]\nen = \"Verse\"\norder = 2\n"),
        "[[poetry]]\nid = \"one\"\ntitle = \"x\"\n".to_owned(),
        "[[poetry]]\nid = 0\ntitle = \"x\"\n".to_owned(),
        "[[poetry]]\nid = 1\n".to_owned(),
        "[[poetry]]\nid = 1\ntitle = \"  \"\n".to_owned(),
        "[[poetry]]\nid = 1\ntitle = \"x\"\nprice = 3\n".to_owned(),
        "[[Poetry]]\nid = 1\ntitle = \"x\"\n".to_owned(),
        format!("{book}[categories.poetry]\nde = \"Verse\"\n"),
        format!("{book}[categories.poetry]\nen = \"{}\"\n", "v".repeat(41)),
        format!("[[poetry]]\nid = 1\ntitle = \"{}\"\n", "t".repeat(501)),
        "poetry = \"Verse\"\n".to_owned(),
        "id = 1\n".to_owned(),
        format!("{book}en = {{ title = \"Verse\", author = \"A\" }}\nru = {{ author = \"Б\" }}\n"),
        format!("{book}en = {{ titel = \"Verse\" }}\n"),
        format!("{book}en = \"Verse\"\n"),
    ];
    for text in cases {
        let checked = Catalog::from_toml_str(&text, "catalog.toml");
        assert_eq!(schema_says(&text), checked.is_ok(), "{text}{checked:?}");
    }
}
