//! TOML documents (`rapport.toml`, `plugin.toml`) deserialized with every error located:
//! the 1-based line and the dotted key of the offending value.

/// A TOML document did not fit its type.
#[derive(Debug)]
pub struct TomlError {
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// Dotted key (empty for a syntax error).
    pub key: String,
    /// What is wrong and expected.
    pub message: String,
}

/// Deserializes a TOML document, locating every error by line and dotted key.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    let line = |offset: Option<usize>| line_of(text, offset.unwrap_or(0));
    let de = toml::de::Deserializer::parse(text).map_err(|e| TomlError {
        line: line(e.span().map(|s| s.start)),
        key: String::new(),
        message: e.message().to_owned(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let offset = inner.span().map(|s| s.start).or_else(|| locate_key(text, &key));
        TomlError { line: line(offset), key, message: inner.message().to_owned() }
    })
}

/// The 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Where the value of `dotted.key` (list indexes allowed, `hosts[0]`) is written in `text`.
pub fn locate_key(text: &str, dotted: &str) -> Option<usize> {
    let table = toml::de::DeTable::parse(text).ok()?;
    let mut current: &toml::de::DeTable<'_> = table.get_ref();
    let mut found = None;
    for part in dotted.split('.') {
        let name = part.split('[').next().unwrap_or(part);
        let value = current.get(name)?;
        found = Some(value.span().start);
        match value.get_ref() {
            toml::de::DeValue::Table(inner) => current = inner,
            _ => break,
        }
    }
    found
}
