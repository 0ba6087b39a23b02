//! API errors and how they look on the wire: `{"error":{"code","message","request_id"}}`
//! with the matching status (`request_id` is added by `respond`). Messages are short and
//! never echo request values (which may hold PII).

use hyper::StatusCode;
use serde_json::json;
use tracing::warn;

use crate::store::StoreError;

/// The Retry-After, in seconds, of a 429 answer.
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// For a person.
    pub message: String,
    /// The Retry-After of a 429 or 503, seconds (a 429 without one says
    /// [`BUSY_RETRY_AFTER_SECS`]).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 400: malformed JSON or fields.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 with its own code (a bad header, cursor, filter or limit).
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no, bad or expired credentials.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "not allowed")
    }

    /// 403 with its own code and a message saying why (e.g. `password_expired`,
    /// `tenant_suspended`).
    pub fn refused(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 402: the tenant's subscription does not allow this.
    pub fn payment_required(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "subscription_inactive",
            message,
        )
    }

    /// 423: the account is locked after repeated failed logins.
    pub fn locked(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::LOCKED, "account_locked", message)
    }

    /// 404: unknown id, or an object of another tenant.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 405.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this path",
        )
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: body over the limit.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body is larger than {limit} bytes"),
        )
    }

    /// 408: the request took longer than the server waits.
    pub fn timeout() -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request took too long",
        )
    }

    /// 422: well-formed but semantically invalid.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }

    /// 429: too many jobs already wait for a printer; the answer carries a Retry-After of
    /// [`BUSY_RETRY_AFTER_SECS`].
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy", message)
    }

    /// 429 from a per-address limit (requests, logins, password work), with its Retry-After.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> ApiError {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    /// 408: the request body did not arrive within its deadline.
    pub fn body_timeout() -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500; the cause is logged, not sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        warn!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::not_found("object"),
            StoreError::Conflict => ApiError::conflict("already exists"),
            other => ApiError::internal(&other),
        }
    }
}

/// Turns a JSON decoding error into a 400 that names unknown or missing fields but never
/// echoes a value.
pub fn json_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            let msg = e.to_string();
            if msg.starts_with("unknown field") || msg.starts_with("missing field") {
                // serde's message names the field and the expected ones: no values.
                let field_part = msg.split(" at line").next().unwrap_or("invalid field");
                ApiError::bad_request(field_part.to_owned())
            } else {
                ApiError::bad_request("a field has the wrong type or value")
            }
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request("body is not valid JSON")
        }
    }
}
