//! Why an SP-API call, a token exchange or a label decoding failed.
//!
//! Nothing here holds a message from Amazon: SP-API messages can echo request values (the MFN
//! validation messages quote addresses), so only the error `code`, the HTTP status and the
//! `x-amzn-RequestId` are kept. Codes are sanitised before they are stored.

use thiserror::Error;

use super::label::LabelError;
use crate::store::StoreError;

/// Why an SP-API operation did not give a result.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SpApiError {
    /// The connection does not exist, or its stored secrets are unreadable.
    #[error("spapi connection unusable: {0}")]
    Connection(&'static str),
    /// The store failed while reading or writing SP-API records.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Login with Amazon refused the refresh-token exchange (`invalid_grant`,
    /// `invalid_client`, …) or answered something unusable.
    #[error("lwa token exchange failed with status {status} ({code})")]
    Lwa {
        /// HTTP status.
        status: u16,
        /// The LWA `error` code (sanitised).
        code: String,
    },
    /// SP-API answered with an error status and an `errors` list.
    #[error("{operation} failed with status {status} ({code}, request id {request_id})")]
    Api {
        /// The operation, as Amazon names it.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// The first error's `code` (sanitised), or `unknown`.
        code: String,
        /// `x-amzn-RequestId`, or `-`.
        request_id: String,
    },
    /// MFN createShipment refused the requested `LabelFormat` (or label customization): the
    /// shipping service does not offer it. Nothing was bought, so the request may be sent
    /// again without them.
    #[error("{operation} refused the requested label format with status {status} ({code}, request id {request_id})")]
    LabelFormatRefused {
        /// The operation, as Amazon names it.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// The error's `code` (sanitised).
        code: String,
        /// `x-amzn-RequestId`, or `-`.
        request_id: String,
    },
    /// Still throttled (429) after every retry.
    #[error("{operation} still throttled after {attempts} attempts")]
    Throttled {
        /// The operation.
        operation: &'static str,
        /// Attempts made.
        attempts: u32,
    },
    /// The request could not be completed (connection, TLS, timeout) and retrying was safe
    /// but did not help.
    #[error("{operation} transport failure: {reason}")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// What went wrong (no request or response data).
        reason: String,
    },
    /// A purchase may or may not have happened (timeout, dropped connection or 5xx after the
    /// request was sent) and it must not be retried blindly.
    #[error("{operation} outcome unknown: {reason}")]
    InDoubt {
        /// The operation.
        operation: &'static str,
        /// What happened (no request or response data).
        reason: String,
    },
    /// A 2xx answer that does not have the documented shape.
    #[error("{operation} answer is malformed: {what}")]
    Malformed {
        /// The operation.
        operation: &'static str,
        /// What is missing or wrong.
        what: &'static str,
    },
    /// The answer's body is over the size cap.
    #[error("{operation} answer is larger than {limit} bytes")]
    TooLarge {
        /// The operation.
        operation: &'static str,
        /// The cap.
        limit: usize,
    },
    /// The label in a successful answer does not decode.
    #[error("label rejected: {0}")]
    Label(#[from] LabelError),
    /// The coordinator is shutting down.
    #[error("cancelled by shutdown")]
    Cancelled,
}

impl SpApiError {
    /// The SP-API operation that failed, if the failure came from one.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            SpApiError::Api { operation, .. }
            | SpApiError::LabelFormatRefused { operation, .. }
            | SpApiError::Throttled { operation, .. }
            | SpApiError::Transport { operation, .. }
            | SpApiError::InDoubt { operation, .. }
            | SpApiError::Malformed { operation, .. }
            | SpApiError::TooLarge { operation, .. } => Some(operation),
            SpApiError::Lwa { .. } => Some("lwaToken"),
            _ => None,
        }
    }

    /// The SP-API (or LWA) error code, if there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SpApiError::Api { code, .. }
            | SpApiError::LabelFormatRefused { code, .. }
            | SpApiError::Lwa { code, .. } => Some(code),
            SpApiError::Throttled { .. } => Some("QuotaExceeded"),
            _ => None,
        }
    }

    /// The `x-amzn-RequestId` of the failing answer, if known.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            SpApiError::Api { request_id, .. }
            | SpApiError::LabelFormatRefused { request_id, .. }
                if request_id != "-" =>
            {
                Some(request_id)
            }
            _ => None,
        }
    }

    /// Whether a purchase may have happened.
    pub fn is_in_doubt(&self) -> bool {
        matches!(self, SpApiError::InDoubt { .. })
    }
}

/// Keeps an error code only if it looks like one (letters, digits, `_.-`, ≤ 64), so that a
/// server that puts free text in `code` cannot get it into logs or records.
pub fn sanitise_code(code: &str) -> String {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        code.to_owned()
    } else {
        "unrecognised".to_owned()
    }
}

/// An answer that lacks `what` (or does not parse) for `operation`.
pub(super) fn malformed(operation: &'static str, what: &'static str) -> SpApiError {
    SpApiError::Malformed { operation, what }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sanitised() {
        assert_eq!(sanitise_code("InvalidInput"), "InvalidInput");
        assert_eq!(sanitise_code("TOKEN_EXPIRED"), "TOKEN_EXPIRED");
        assert_eq!(sanitise_code("Value 'Jane Doe' at x"), "unrecognised");
        assert_eq!(sanitise_code(""), "unrecognised");
        assert_eq!(sanitise_code(&"A".repeat(65)), "unrecognised");
    }
}
