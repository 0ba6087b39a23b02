//! What a route of the API is: who may call it ([`Access`]), what its handler gets
//! ([`Call`]) and the body it reads ([`Schema`], for the OpenAPI document). The table of
//! routes is `routes`; the document built from it is `openapi`; both read this file.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use futures::future::BoxFuture;
use utoipa::openapi::schema::{ObjectBuilder, Schema as OaSchema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::auth::{Action, Principal};
use super::error::ApiError;
use super::{ApiState, Reply};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone (the handler checks what it needs: a password, a signature).
    Public,
    /// Any authenticated principal that passes the IP allowlist; the handler authorises.
    Signed,
    /// An authenticated principal allowed `Action` on the `{tenant}` of the path, which
    /// exists.
    Tenant(Action),
    /// `POST …/labels`: as `Tenant(Action::SubmitLabel)`, except that a reprint (a source
    /// that fetches a label already bought, `spapi::pii_actions`) needs
    /// [`Action::Reprint`] and [`Action::ReadShipment`] instead: `pii_reader` only, never a
    /// platform admin.
    Label,
}

/// The request as a handler sees it, after the checks of its [`Access`].
pub(crate) struct Call {
    pub(crate) state: Arc<ApiState>,
    pub(super) who: Option<Principal>,
    pub(super) params: Vec<String>,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Zeroizing<Vec<u8>>,
    /// The unread body of a streamed route (a release artifact); `body` is then empty.
    pub(crate) upload: Option<axum::body::Body>,
    pub(crate) peer: Option<IpAddr>,
    pub(crate) now: u64,
}

impl Call {
    /// The authenticated caller (every route but the [`Access::Public`] ones has one).
    pub(crate) fn who(&self) -> Result<&Principal, ApiError> {
        self.who
            .as_ref()
            .ok_or_else(|| ApiError::unauthenticated("missing bearer token"))
    }

    /// The `i`th path parameter (the tenant is the first of a tenant route).
    pub(crate) fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }
}

/// What a route runs once its checks passed.
pub(crate) type Handler = fn(Call) -> BoxFuture<'static, Result<Reply, ApiError>>;

/// The JSON body a route reads, for the OpenAPI document.
pub(crate) type BodySchema = fn() -> Schema;

/// One route of the table.
pub(crate) struct Route {
    /// Its method.
    pub(crate) method: Method,
    /// Its path, with `{name}` parameters (each one an id checked with `validate_id`).
    pub(crate) path: &'static str,
    /// Who may call it.
    pub(crate) access: Access,
    /// One line for the OpenAPI document.
    pub(crate) summary: &'static str,
    /// The body it reads, if any.
    pub(crate) body: Option<BodySchema>,
    /// Its handler.
    pub(crate) handler: Handler,
}

/// A request body's schema, with the named schemas it refers to.
pub(crate) struct Schema {
    pub(super) name: Option<String>,
    pub(super) schema: RefOr<OaSchema>,
    pub(super) deps: Vec<(String, RefOr<OaSchema>)>,
}

/// The schema of `T`, registered under its name.
pub(crate) fn schema<T: ToSchema>() -> Schema {
    let mut deps = Vec::new();
    T::schemas(&mut deps);
    Schema {
        name: Some(T::name().into_owned()),
        schema: T::schema(),
        deps,
    }
}

/// Any JSON object (the handler checks its fields and answers 400/422 with what is wrong).
pub(crate) fn any_object() -> Schema {
    Schema {
        name: None,
        schema: ObjectBuilder::new().schema_type(Type::Object).into(),
        deps: Vec::new(),
    }
}
