//! Identifier rules shared by every encoded type: ids are short, printable and safe to log.

use thiserror::Error;

/// Longest identifier accepted anywhere in the protocol.
pub const MAX_ID_LEN: usize = 64;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdError {
    /// The identifier is empty.
    #[error("identifier is empty")]
    Empty,
    /// The identifier is longer than [`MAX_ID_LEN`].
    #[error("identifier is longer than {MAX_ID_LEN} bytes")]
    TooLong,
    /// The identifier holds a character outside `[A-Za-z0-9._-]`.
    #[error("identifier holds a character outside [A-Za-z0-9._-]")]
    BadChar,
}

/// Checks that `id` is 1..=64 bytes of `[A-Za-z0-9._-]`.
///
/// # Errors
/// The [`IdError`] that says which rule failed.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(IdError::BadChar);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuid_like_ids() {
        assert_eq!(validate_id("tnt_4f2a-9.b"), Ok(()));
    }

    #[test]
    fn refuses_bad_ids() {
        assert_eq!(validate_id(""), Err(IdError::Empty));
        assert_eq!(validate_id(&"a".repeat(65)), Err(IdError::TooLong));
        assert_eq!(validate_id("a b"), Err(IdError::BadChar));
        assert_eq!(validate_id("a/b"), Err(IdError::BadChar));
    }
}
