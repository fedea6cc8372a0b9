//! The one persistence codec of the store's sled trees: values are JSON, and every failure names the record.
//!
//! Every module that keeps a tree (the store's generations and history, the availability trees, the outbox
//! and dead letters, pass Culture's offer states) encodes and decodes through [`encode`] and [`decode`], so a
//! value that cannot be written is an error (never empty bytes), and an unreadable record says which one.
//! The store turns a [`CodecError`] into its `StoreError::Corrupt`.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A record that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the store record {key} is unreadable: {reason}")]
pub struct CodecError {
    /// The record: its tree and key, in words.
    pub key: String,
    /// What serde said.
    pub reason: String,
}

/// `value` as the bytes stored for the record `key`.
pub fn encode<T: Serialize + ?Sized>(value: &T, key: &str) -> Result<Vec<u8>, CodecError> {
    serde_json::to_vec(value).map_err(|e| CodecError {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// The record `key` read back from its stored bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T, CodecError> {
    serde_json::from_slice(bytes).map_err(|e| CodecError {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_round_trips_and_a_bad_record_is_named() {
        let bytes = encode(&vec![1u32, 2], "tree/key").expect("plain values encode");
        assert_eq!(decode::<Vec<u32>>(&bytes, "tree/key"), Ok(vec![1, 2]));
        let e = decode::<Vec<u32>>(b"{oops", "outbox/site/42").expect_err("not JSON");
        assert_eq!(e.key, "outbox/site/42");
        assert!(
            e.to_string()
                .starts_with("the store record outbox/site/42 is unreadable: "),
            "{e}"
        );
    }

    #[test]
    fn a_value_that_cannot_be_serialised_is_an_error_not_empty_bytes() {
        // JSON object keys must be strings: a map keyed by a pair cannot be written.
        let mut m = std::collections::BTreeMap::new();
        m.insert((1, 2), 3);
        let e = encode(&m, "tree/key").expect_err("not representable in JSON");
        assert_eq!(e.key, "tree/key");
    }
}
