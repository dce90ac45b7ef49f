//! The OpenAPI shapes of record operations (feature `openapi`): the text rules as string
//! schemas, and the "exactly one of" objects serde reads but utoipa cannot derive. The
//! guest builds without it.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};

use crate::text::{
    DOMAIN_PATTERN, EMAIL_PATTERN, LABEL_PATTERN, MAX_DOMAIN_CHARS, MAX_EMAIL_CHARS, MAX_ID_CHARS, MAX_TAG_CHARS, MERGE_ID_PATTERN,
    NAME_PATTERN, NODE_ID_PATTERN, TAG_PATTERN, TEXT_PATTERN, TIMELINE_CURSOR_PATTERN,
};
use crate::{Participant, RecordLimits, Subject};

/// A string schema with a pattern and length bounds.
fn string_schema(pattern: &str, min: Option<usize>, max: usize, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(min)
        .max_length(Some(max))
        .description(Some(description))
        .into()
}

/// Declares a schema-only type: the OpenAPI shape of a text rule, used as `value_type`.
macro_rules! text_schema {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

text_schema!(
    /// An external id: 1 to 256 characters, a visible one among them, no control or
    /// bidirectional characters.
    ExternalId => string_schema(NAME_PATTERN, Some(1), MAX_ID_CHARS, "An id in the source: 1 to 256 characters, no control or bidirectional-control characters, not only blanks.")
);
text_schema!(
    /// A name that must show something.
    Name => string_schema(NAME_PATTERN, Some(1), RecordLimits::default().max_name_chars, "A name: no control or bidirectional-control characters, not only blanks (at most records.max_name_chars characters).")
);
text_schema!(
    /// A short text that may be empty.
    Label => string_schema(LABEL_PATTERN, None, RecordLimits::default().max_name_chars, "A short text: no control or bidirectional-control characters (at most records.max_name_chars characters).")
);
text_schema!(
    /// Free text.
    Text => string_schema(TEXT_PATTERN, Some(1), RecordLimits::default().max_text_chars, "Free text: line breaks and tabs allowed, no other control or bidirectional-control characters, not only blanks (at most records.max_text_chars characters).")
);
text_schema!(
    /// An email address.
    Email => string_schema(EMAIL_PATTERN, Some(3), MAX_EMAIL_CHARS, "An email address such as anna@acme.com (compared in lower case).")
);
text_schema!(
    /// A domain name.
    Domain => string_schema(DOMAIN_PATTERN, Some(3), MAX_DOMAIN_CHARS, "A domain name such as acme.com (a leading www. is dropped).")
);
text_schema!(
    /// An observation tag.
    Tag => string_schema(TAG_PATTERN, Some(1), MAX_TAG_CHARS, "A lowercase tag such as price-sensitivity.")
);
text_schema!(
    /// A node id given in a request.
    NodeIdText => string_schema(NODE_ID_PATTERN, Some(30), 31, "A node id: kind prefix and ULID, such as org_01J9Z3K4X7Q8R2M5N6P7T8V9W0.")
);

text_schema!(
    /// A merge id given in a request.
    MergeIdText => string_schema(MERGE_ID_PATTERN, Some(30), 30, "A merge id, such as mrg_01J9Z3K4X7Q8R2M5N6P7T8V9W0.")
);
text_schema!(
    /// Where a timeline page continues.
    TimelineCursorText => string_schema(TIMELINE_CURSOR_PATTERN, Some(32), 50, "The `next` value of a previous timeline page.")
);

/// The schema of an object with exactly one of `fields` set: one alternative per field,
/// the others absent or null (as the server reads them), nothing else.
fn exactly_one_of(description: &str, fields: &[(&str, RefOr<Schema>)]) -> RefOr<Schema> {
    let mut one_of = OneOfBuilder::new().description(Some(description));
    for (set, _) in fields {
        let mut object = ObjectBuilder::new().schema_type(Type::Object).additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for (name, other) in fields {
            object = if name == set {
                object.property(*name, other.clone()).required(*name)
            } else {
                object.property(*name, ObjectBuilder::new().schema_type(Type::Null))
            };
        }
        one_of = one_of.item(object);
    }
    one_of.into()
}

impl utoipa::PartialSchema for Participant {
    fn schema() -> RefOr<Schema> {
        exactly_one_of(
            "A participant, by email address or by the person's external id in the same source.",
            &[("email", Email::schema()), ("person", ExternalId::schema())],
        )
    }
}

impl utoipa::ToSchema for Participant {}

impl utoipa::PartialSchema for Subject {
    fn schema() -> RefOr<Schema> {
        exactly_one_of(
            "What an observation is about: an organization or a person of the same source by external id, or a graph node by id.",
            &[("organization", ExternalId::schema()), ("person", ExternalId::schema()), ("id", NodeIdText::schema())],
        )
    }
}

impl utoipa::ToSchema for Subject {}
