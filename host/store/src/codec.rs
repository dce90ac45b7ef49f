//! Versioned value encoding: one format byte, then a compact postcard body — or, for the
//! metadata records whose fields grow between releases (the plugin registry, run records),
//! a JSON body under its own format byte, since JSON reads a record written before a field
//! was added.
//!
//! Every stored value starts with its format version so a later release can read old
//! values and migrate them; a value with an unknown version is an error, never a guess.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format version written by this build.
pub const FORMAT_V1: u8 = 1;

/// The format version of postcard values whose layout changed once since [`FORMAT_V1`]
/// (written by [`encode_v2`], read by [`decode_upgrading`]).
pub const FORMAT_V2: u8 = 2;

/// The format byte of JSON-bodied values.
pub const FORMAT_JSON_V1: u8 = b'J';

/// A stored value could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value is empty.
    #[error("empty value")]
    Empty,
    /// The value was written by a newer (or corrupt) format.
    #[error("unsupported value format version {0} (written by a newer release, or corrupt)")]
    UnknownVersion(u8),
    /// The body did not decode.
    #[error("malformed value: {0}")]
    Malformed(#[from] postcard::Error),
    /// The JSON body did not decode.
    #[error("malformed value: {0}")]
    MalformedJson(#[from] serde_json::Error),
}

/// Encodes `value` with the current format version.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Writing to a Vec cannot fail, and the stored types have no failing Serialize impls
    // (no maps with non-string keys, no `serialize_any` tricks): an error is a bug.
    postcard::to_extend(value, vec![FORMAT_V1]).unwrap_or_else(|err| panic!("encoding a stored value failed: {err}"))
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_V1, body)) => Ok(postcard::from_bytes(body)?),
        Some((&other, _)) => Err(CodecError::UnknownVersion(other)),
    }
}

/// Encodes `value` under [`FORMAT_V2`]: for a type whose layout changed since version 1.
pub fn encode_v2<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![FORMAT_V2]).unwrap_or_else(|err| panic!("encoding a stored value failed: {err}"))
}

/// Decodes a value of a type whose layout changed: a [`FORMAT_V2`] value is read as `T`, a
/// [`FORMAT_V1`] one as its earlier layout `Old` and converted, so stores written by an
/// earlier release read without a migration pass.
pub fn decode_upgrading<T: DeserializeOwned, Old: DeserializeOwned + Into<T>>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_V2, body)) => Ok(postcard::from_bytes(body)?),
        Some((&FORMAT_V1, body)) => Ok(postcard::from_bytes::<Old>(body)?.into()),
        Some((&other, _)) => Err(CodecError::UnknownVersion(other)),
    }
}

/// Encodes `value` as JSON under [`FORMAT_JSON_V1`].
pub fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT_JSON_V1];
    // As for `encode`: the stored types serialize without failing, so an error is a bug,
    // never a silently empty value.
    serde_json::to_writer(&mut bytes, value).unwrap_or_else(|err| panic!("encoding a stored value failed: {err}"));
    bytes
}

/// Decodes a value written by [`encode_json`].
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_JSON_V1, body)) => Ok(serde_json::from_slice(body)?),
        Some((&other, _)) => Err(CodecError::UnknownVersion(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_versions() {
        let bytes = encode(&("acme".to_owned(), 42_u32));
        assert_eq!(bytes[0], FORMAT_V1);
        let back: (String, u32) = decode(&bytes).unwrap();
        assert_eq!(back, ("acme".to_owned(), 42));
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(matches!(decode::<(String, u32)>(&future), Err(CodecError::UnknownVersion(9))));
        assert!(matches!(decode::<u32>(&[]), Err(CodecError::Empty)));

        let json = encode_json(&("acme".to_owned(), 42_u32));
        assert_eq!((json[0], &json[1..]), (FORMAT_JSON_V1, br#"["acme",42]"#.as_slice()));
        assert_eq!(decode_json::<(String, u32)>(&json).unwrap(), ("acme".to_owned(), 42));
        assert!(matches!(decode_json::<u32>(br#"{"no": "byte"}"#), Err(CodecError::UnknownVersion(b'{'))));
    }

    #[test]
    fn a_changed_layout_reads_values_of_the_earlier_one() {
        #[derive(serde::Deserialize)]
        struct Before(String);
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct After(String, bool);
        impl From<Before> for After {
            fn from(old: Before) -> Self {
                Self(old.0, false)
            }
        }
        let old = encode(&("acme".to_owned(),));
        assert_eq!(decode_upgrading::<After, Before>(&old).unwrap(), After("acme".to_owned(), false));
        let new = encode_v2(&After("acme".to_owned(), true));
        assert_eq!(new[0], FORMAT_V2);
        assert_eq!(decode_upgrading::<After, Before>(&new).unwrap(), After("acme".to_owned(), true));
        assert!(matches!(decode_upgrading::<After, Before>(&[7, 0]), Err(CodecError::UnknownVersion(7))));
    }
}
