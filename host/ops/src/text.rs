//! The text rules of record operations — what an id, a name, a free text, an email
//! address, a domain and a tag may hold — stated once as character predicates the server
//! checks and once as the JSON Schema patterns the OpenAPI document declares. A unit test
//! keeps the two in step, so a client generated from the document never sends what the
//! server refuses, nor the reverse.

use std::borrow::Cow;

/// Longest id (external ids and references), in characters.
pub const MAX_ID_CHARS: usize = 256;

/// Longest email address (RFC 5321's path limit), in characters.
pub const MAX_EMAIL_CHARS: usize = 254;

/// Longest domain name, in characters.
pub const MAX_DOMAIN_CHARS: usize = 253;

/// Longest tag, in characters (tags are ASCII).
pub const MAX_TAG_CHARS: usize = 64;

// Character classes, as pattern fragments (`\xHH` and `\uHHHH` escapes only: ECMA-262,
// Python's `re` and Rust's `regex` read them alike).
/// Control characters (Unicode category Cc), `char::is_control`.
macro_rules! control {
    () => {
        r"\x00-\x1F\x7F-\x9F"
    };
}
/// Control characters but tab, line feed and carriage return.
macro_rules! text_control {
    () => {
        r"\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F"
    };
}
/// Bidirectional embeddings, overrides and isolates.
macro_rules! bidi {
    () => {
        r"\u202A-\u202E\u2066-\u2069"
    };
}
/// White space, `char::is_whitespace`.
macro_rules! space {
    () => {
        r"\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}
/// Characters that show nothing: white space and invisible formatting characters.
macro_rules! blank {
    () => {
        concat!(
            space!(),
            r"\xAD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u2028-\u202F\u205F-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0"
        )
    };
}
macro_rules! label {
    () => {
        r"[A-Za-z0-9-]+"
    };
}
macro_rules! ulid {
    () => {
        r"[0-7][0-9A-HJKMNP-TV-Z]{25}"
    };
}

/// A label: any characters but control and bidirectional ones (may be empty).
pub const LABEL_PATTERN: &str = concat!("^[^", control!(), bidi!(), "]*$");
/// A name or an id: a label with a visible character.
pub const NAME_PATTERN: &str =
    concat!("^[^", control!(), bidi!(), "]*[^", control!(), bidi!(), blank!(), "][^", control!(), bidi!(), "]*$");
/// Free text: line breaks and tabs allowed, and a visible character.
pub const TEXT_PATTERN: &str =
    concat!("^[^", text_control!(), bidi!(), "]*[^", control!(), bidi!(), blank!(), "][^", text_control!(), bidi!(), "]*$");
/// An email address, surrounding white space allowed.
pub const EMAIL_PATTERN: &str =
    concat!("^[", space!(), "]*[^@\\x00", space!(), "]+@", label!(), "(\\.", label!(), ")+\\.*[", space!(), "]*$");
/// A domain name, surrounding white space and trailing dots allowed.
pub const DOMAIN_PATTERN: &str = concat!("^[", space!(), "]*", label!(), "(\\.", label!(), ")+\\.*[", space!(), "]*$");
/// An observation tag.
pub const TAG_PATTERN: &str = "^[a-z0-9-]{1,64}$";
/// A source (connection) name.
pub const SOURCE_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,64}$";
/// A node id: its kind's prefix and a ULID.
pub const NODE_ID_PATTERN: &str = concat!("^(org|per|deal|int|obs)_", ulid!(), "$");
/// A merge id.
pub const MERGE_ID_PATTERN: &str = concat!("^mrg_", ulid!(), "$");
/// A timeline cursor: a time in milliseconds and an interaction id.
pub const TIMELINE_CURSOR_PATTERN: &str = concat!("^-?[0-9]{1,18}:(org|per|deal|int|obs)_", ulid!(), "$");

fn is_control(c: char, multiline: bool) -> bool {
    c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r'))
}

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Shows nothing: white space and invisible formatting characters (zero-width spaces and
/// joiners, variation selectors, the byte-order mark, fillers).
fn is_blank(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202F}' | '\u{205F}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}' | '\u{FFA0}')
}

/// Why `text` carries characters that hide or disguise what it says: control characters
/// (line breaks and tabs allowed in free text) and bidirectional controls.
pub(super) fn hidden_characters(text: &str, multiline: bool) -> Option<&'static str> {
    for c in text.chars() {
        if is_control(c, multiline) {
            return Some(if multiline {
                "must not contain control characters (NUL and the like; line breaks and tabs are fine)"
            } else {
                "must not contain control characters (NUL, line breaks, tabs and the like)"
            });
        }
        if is_bidi(c) {
            return Some("must not contain bidirectional override or isolate characters (U+202A–U+202E, U+2066–U+2069)");
        }
    }
    None
}

/// Whether `text` has a character that shows.
pub(super) fn is_visible(text: &str) -> bool {
    text.chars().any(|c| !is_blank(c) && !c.is_control() && !is_bidi(c))
}

/// The length of `text` in characters when it exceeds `max`; counts no further than needed
/// past a cheap byte-length check.
pub(super) fn longer_than(text: &str, max: usize) -> Option<usize> {
    (text.len() > max && text.chars().nth(max).is_some()).then(|| text.chars().count())
}

/// What a tag looks like, for error messages.
pub const TAG_RULE: &str = "expected a lowercase tag of at most 64 letters, digits and '-', such as \"price-sensitivity\"";

/// Whether `tag` is a valid observation tag.
pub fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= MAX_TAG_CHARS && tag.chars().all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit())
}

/// Whether `source` is a valid source (connection) name: 1 to 64 ASCII letters, digits,
/// `-`, `_`, `.` or `:`.
pub fn is_valid_source(source: &str) -> bool {
    !source.is_empty() && source.len() <= 64 && source.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// What [`is_valid_source`] expects, for error messages.
pub const SOURCE_RULE: &str = "expected 1 to 64 letters, digits, '-', '_', '.' or ':'";

/// Lowercases and trims an address; `None` when it is not an address.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && longer_than(raw, MAX_EMAIL_CHARS).is_none()
        && !local.chars().any(|c| c.is_whitespace() || c == '\0')
        && normalize_domain(domain).is_some()
        && !domain.chars().any(char::is_whitespace);
    valid.then(|| email.to_lowercase())
}

/// Lowercases a domain and strips a leading `www.`; `None` when it is not a domain.
pub fn normalize_domain(raw: &str) -> Option<String> {
    let trimmed = raw.trim().trim_end_matches('.');
    // ASCII only: lowercasing some other characters yields ASCII letters (the Kelvin sign
    // becomes `k`), which would let a non-domain pass as one.
    let labels_valid = trimmed.split('.').all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !(labels_valid && trimmed.contains('.') && longer_than(raw, MAX_DOMAIN_CHARS).is_none()) {
        return None;
    }
    let domain = trimmed.to_ascii_lowercase();
    // `www.acme.com` is acme.com; `www.com` is a domain of its own.
    Some(domain.strip_prefix("www.").filter(|rest| rest.contains('.')).map_or_else(|| domain.clone(), str::to_owned))
}

/// The domain part of a normalized email address.
pub fn email_domain(email: &str) -> Option<&str> {
    email.split_once('@').map(|(_, domain)| domain)
}

/// At most `max_chars` characters of `text`, marked when cut: for echoing client input.
pub fn excerpt(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()).into(),
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(text)
    }

    /// Strings at every edge of the rules: each class's boundaries, alone and among
    /// ordinary characters.
    fn corpus() -> Vec<String> {
        let edges = [
            '\0',
            '\u{8}',
            '\t',
            '\n',
            '\u{b}',
            '\r',
            '\u{1f}',
            ' ',
            '!',
            '\u{7e}',
            '\u{7f}',
            '\u{85}',
            '\u{9f}',
            '\u{a0}',
            '\u{ad}',
            '\u{34f}',
            '\u{61c}',
            '\u{1680}',
            '\u{180e}',
            '\u{2000}',
            '\u{200a}',
            '\u{200b}',
            '\u{200f}',
            '\u{2010}',
            '\u{2028}',
            '\u{202a}',
            '\u{202e}',
            '\u{202f}',
            '\u{205f}',
            '\u{2060}',
            '\u{2066}',
            '\u{2069}',
            '\u{206f}',
            '\u{2070}',
            '\u{3000}',
            '\u{3164}',
            '\u{fe0f}',
            '\u{feff}',
            '\u{ffa0}',
            'é',
            'K',
            '\u{212a}',
            '@',
            '.',
            '-',
            'a',
            'Z',
            '9',
            '\u{1f600}',
        ];
        let mut corpus = vec![String::new()];
        for a in edges {
            corpus.push(a.to_string());
            for b in ["a", " ", "\u{200b}", "@", "."] {
                corpus.push(format!("{a}{b}"));
                corpus.push(format!("{b}{a}"));
            }
        }
        for email in [
            "anna@acme.com",
            " Anna@ACME.com ",
            "a@b.c.",
            "a@b.c..",
            "a@b.c .",
            "a@ b.c",
            "a b@c.d",
            "@c.d",
            "a@",
            "a@b",
            "a@@b.c",
            "a@b..c",
            "a@-.-",
            "\u{0}a@b.c",
            "a\u{1}@b.c",
            "a@\u{212a}.com",
            "a@b.c\u{feff}",
            "\u{feff}a@b.c",
            "a@www.com",
            "a@b.c\u{85}",
            "é@b.c",
            "a@b_c.d",
        ] {
            corpus.push(email.to_owned());
        }
        corpus.push(format!("a@{}.com", "b".repeat(250)));
        corpus.push(format!("{}.com", "b".repeat(249)));
        corpus.push(format!("{}.com", "b".repeat(250)));
        corpus
    }

    #[test]
    fn the_patterns_accept_exactly_what_the_server_accepts() {
        for text in corpus() {
            let name_ok = hidden_characters(&text, false).is_none() && is_visible(&text);
            assert_eq!(matches(NAME_PATTERN, &text), name_ok, "name {text:?}");
            assert_eq!(matches(LABEL_PATTERN, &text), hidden_characters(&text, false).is_none(), "label {text:?}");
            let text_ok = hidden_characters(&text, true).is_none() && is_visible(&text);
            assert_eq!(matches(TEXT_PATTERN, &text), text_ok, "text {text:?}");
            let email_ok = matches(EMAIL_PATTERN, &text) && text.chars().count() <= MAX_EMAIL_CHARS;
            assert_eq!(email_ok, normalize_email(&text).is_some(), "email {text:?}");
            let domain_ok = matches(DOMAIN_PATTERN, &text) && text.chars().count() <= MAX_DOMAIN_CHARS;
            assert_eq!(domain_ok, normalize_domain(&text).is_some(), "domain {text:?}");
            assert_eq!(matches(TAG_PATTERN, &text), is_valid_tag(&text), "tag {text:?}");
            assert_eq!(matches(SOURCE_PATTERN, &text), is_valid_source(&text), "source {text:?}");
        }
    }
}
