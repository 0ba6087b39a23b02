//! The API's OpenAPI 3.1 document, built from a route table (`routes` hands it its
//! `ROUTES`) and the request types (utoipa's `ToSchema`), served at `GET /v1/openapi.json`.
//!
//! Every operation documents its path ids (the `validate_id` alphabet), its bearer token
//! (all but the public routes), its JSON body, a `2XX` JSON answer and the `4XX` error
//! shape `{"error":{"code","message","request_id"}}`.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema as OaSchema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, RefOr,
    Required, ResponseBuilder,
};

use super::route::{Access, Route};

const BEARER: &str = "bearer";
const ERROR: &str = "Error";

fn error_schema() -> RefOr<OaSchema> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let inner = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("code", string())
        .property("message", string())
        .property("request_id", string())
        .required("code")
        .required("message");
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("error", inner)
        .required("error")
        .into()
}

fn method(m: &axum::http::Method) -> HttpMethod {
    match *m {
        axum::http::Method::POST => HttpMethod::Post,
        axum::http::Method::PUT => HttpMethod::Put,
        axum::http::Method::PATCH => HttpMethod::Patch,
        axum::http::Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// The names of `path`'s `{parameters}`, in order.
pub(crate) fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn operation_id(m: &axum::http::Method, path: &str) -> String {
    let mut id = m.as_str().to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            seg.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .map(|c| if c == '-' { '_' } else { c }),
        );
    }
    id
}

/// The query and header parameters of `route`: pages and filters of the lists, the
/// `Idempotency-Key` of the creating POSTs that honour it.
fn query_params(route: &Route) -> Vec<utoipa::openapi::path::Parameter> {
    use super::{idempotency, page};
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let integer = |min: i64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min as f64))
    };
    let param = |name: &str, schema: ObjectBuilder, what: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(what))
            .schema(Some(schema))
            .build()
    };
    let mut out = Vec::new();
    let labels = route.path == "/v1/tenants/{tenant}/labels";
    let get = route.method == axum::http::Method::GET;
    if get && (labels || page::paged(route.path).is_some()) {
        out.push(param(
            "limit",
            integer(1).maximum(Some(page::MAX_LIMIT as f64)),
            "Most items to answer",
        ));
        out.push(param(
            "starting_after",
            string().pattern(Some("^[A-Za-z0-9._-]{1,64}$")),
            "The last id (audit: seq) of the previous page",
        ));
    }
    if get && labels {
        let status = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([
                "queued",
                "dispatched",
                "printed",
                "failed",
                "in_doubt",
                "cancelled",
            ]));
        out.push(param("status", status, "Only jobs in this status"));
        for (name, what) in [
            ("pool", "Only jobs for this pool"),
            (
                "printer",
                "Only jobs asking for or assigned to this printer",
            ),
            ("agent", "Only jobs assigned to this agent"),
        ] {
            out.push(param(
                name,
                string().min_length(Some(1)).max_length(Some(64)),
                what,
            ));
        }
        out.push(param(
            "created_after",
            integer(0),
            "Created at or after (unix ms)",
        ));
        out.push(param(
            "created_before",
            integer(0),
            "Created before (unix ms)",
        ));
        out.push(param(
            "client_reference",
            string().pattern(Some("^[A-Za-z0-9._:/#-]{1,64}$")),
            "Only jobs with this client_reference",
        ));
        out.push(param(
            "reprint",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["true", "false"])),
            "Only reprints (true) or only first prints (false)",
        ));
    }
    if route.method == axum::http::Method::POST && idempotency::ROUTES.contains(&route.path) {
        out.push(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "A retry with the same key and body within 24 h gets the first answer",
                ))
                .schema(Some(
                    string()
                        .pattern(Some("^[\\x21-\\x7e]{1,255}$"))
                        .min_length(Some(1))
                        .max_length(Some(idempotency::MAX_KEY_LEN)),
                ))
                .build(),
        );
    }
    out
}

fn build(routes: &[Route]) -> OpenApi {
    let mut paths = Paths::new();
    let mut components = ComponentsBuilder::new()
        .schema(ERROR, error_schema())
        .security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    let json_any = || {
        ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(SchemaType::AnyValue)))
            .build()
    };
    let error = || {
        ContentBuilder::new()
            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                ERROR,
            ))))
            .build()
    };
    for route in routes {
        let mut ok = ResponseBuilder::new()
            .description("Done")
            .content("application/json", json_any());
        if route.path.ends_with("/audit") {
            ok = ok.content(
                "application/x-ndjson",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            );
        }
        let mut op = OperationBuilder::new()
            .summary(Some(route.summary))
            .operation_id(Some(operation_id(&route.method, route.path)))
            .response("2XX", ok.build())
            .response(
                "4XX",
                ResponseBuilder::new()
                    .description("Refused: the error says why")
                    .content("application/json", error())
                    .build(),
            );
        if route.path == "/readyz" {
            op = op.response(
                "503",
                ResponseBuilder::new()
                    .description("Not ready: starting (the body names the parts up) or draining")
                    .content("application/json", json_any())
                    .build(),
            );
        }
        if route.path == "/v1/billing/webhook" {
            op = op.response(
                "503",
                ResponseBuilder::new()
                    .description("The billing webhook is not configured")
                    .content("application/json", error())
                    .build(),
            );
        }
        for name in path_params(route.path) {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some("^[A-Za-z0-9._-]{1,64}$"))
                            .min_length(Some(1))
                            .max_length(Some(64)),
                    )),
            );
        }
        for p in query_params(route) {
            op = op.parameter(p);
        }
        if route.access != Access::Public {
            op = op.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
        }
        if let Some(body) = route.body {
            let body = body();
            let schema = match body.name {
                Some(name) => {
                    components = components.schema(name.clone(), body.schema);
                    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
                }
                None => body.schema,
            };
            for (name, s) in body.deps {
                components = components.schema(name, s);
            }
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(schema)).build(),
                    )
                    .build(),
            ));
        }
        paths.add_path_operation(route.path, vec![method(&route.method)], op.build());
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("sealprint coordinator admin API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Times are unix milliseconds. Unknown JSON fields are refused. Every error \
                     is {\"error\":{\"code\",\"message\",\"request_id\"}}.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// The document of `routes`, as JSON.
pub(crate) fn document_json(routes: &[Route]) -> serde_json::Value {
    serde_json::to_value(build(routes)).unwrap_or_default()
}
