//! Cursor pagination and query filters of the list routes.
//!
//! Every list takes `limit` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`] for labels and
//! [`MAX_LIMIT`] for the older lists, whose clients read whole lists) and `starting_after`
//! (the id of the last item of the previous page; the audit log's `seq`). The labels list
//! answers `{"data": […], "has_more", "next_starting_after"}`; the older lists keep their
//! body (an array; alerts' `alerts`) and say the same in the `x-has-more` and
//! `x-next-starting-after` headers. A bad limit, cursor or filter, or an unknown
//! parameter, is 400 with the code `invalid_limit`, `invalid_cursor` or `invalid_filter`;
//! messages name the parameter, never echo its value.

use serde_json::Value;

use super::error::ApiError;

/// Largest page.
pub(crate) const MAX_LIMIT: usize = 1000;
/// The labels list's page when no `limit` is given.
pub(crate) const DEFAULT_LIMIT: usize = 100;

/// The header that says whether more items follow.
pub(crate) const HAS_MORE: &str = "x-has-more";
/// The header with the cursor of the next page.
pub(crate) const NEXT: &str = "x-next-starting-after";

/// A query string's `name=value` pairs, percent-decoded (`+` is a space).
///
/// # Errors
/// 400 `invalid_filter` when a pair is not UTF-8 or repeats a name.
pub(crate) fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let (k, v) = (decode(k)?, decode(v)?);
        if out.iter().any(|(n, _)| *n == k) {
            return Err(ApiError::invalid(
                "invalid_filter",
                "a query parameter is given twice",
            ));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid("invalid_filter", "the query string is not valid UTF-8");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The page asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    /// Most items to answer.
    pub(crate) limit: usize,
    /// Answer the items after this id.
    pub(crate) starting_after: Option<String>,
}

impl Page {
    /// Takes `limit` and `starting_after` out of `pairs`.
    ///
    /// # Errors
    /// 400 `invalid_limit`, `invalid_cursor`.
    pub(crate) fn take(
        pairs: &mut Vec<(String, String)>,
        default: usize,
    ) -> Result<Page, ApiError> {
        let mut page = Page {
            limit: default,
            starting_after: None,
        };
        let mut rest = Vec::new();
        for (k, v) in pairs.drain(..) {
            match k.as_str() {
                "limit" => {
                    page.limit = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "invalid_limit",
                                format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                            )
                        })?;
                }
                "starting_after" => {
                    if sealprint_protocol::validate_id(&v).is_err() {
                        return Err(ApiError::invalid(
                            "invalid_cursor",
                            "starting_after is not an id of this list",
                        ));
                    }
                    page.starting_after = Some(v);
                }
                _ => rest.push((k, v)),
            }
        }
        *pairs = rest;
        Ok(page)
    }
}

/// 400 for the first parameter left in `pairs` (none may be left).
///
/// # Errors
/// 400 `invalid_filter`.
pub(crate) fn no_more(pairs: &[(String, String)], known: &str) -> Result<(), ApiError> {
    match pairs.first() {
        None => Ok(()),
        Some(_) => Err(ApiError::invalid(
            "invalid_filter",
            format!("unknown query parameter (this list takes limit, starting_after{known})"),
        )),
    }
}

/// The list route `path` (GET) whose answer is paged here: the field of the body holding
/// the list (`None`: the body is the list) and the field of an item that is its cursor.
pub(crate) fn paged(path: &str) -> Option<(Option<&'static str>, &'static str)> {
    Some(match path {
        "/v1/tenants/{tenant}/agents"
        | "/v1/tenants/{tenant}/printers"
        | "/v1/tenants/{tenant}/users"
        | "/v1/tenants/{tenant}/notifications"
        | "/v1/tenants/{tenant}/sites" => (None, "id"),
        "/v1/tenants/{tenant}/alerts" => (Some("alerts"), "id"),
        "/v1/tenants/{tenant}/audit" | "/v1/audit" => (None, "seq"),
        _ => return None,
    })
}

fn cursor_of(item: &Value, field: &str) -> Option<String> {
    match &item[field] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Cuts `items` (in the list's own stable order) to `page`; returns whether more follow
/// and the next cursor.
///
/// # Errors
/// 400 `invalid_cursor` when `starting_after` is not an item of the list.
pub(crate) fn cut(
    items: &mut Vec<Value>,
    field: &str,
    page: &Page,
) -> Result<(bool, Option<String>), ApiError> {
    let start = match &page.starting_after {
        None => 0,
        Some(c) => {
            let at = items
                .iter()
                .position(|i| cursor_of(i, field).as_deref() == Some(c.as_str()))
                .ok_or_else(|| {
                    ApiError::invalid("invalid_cursor", "starting_after is not an id of this list")
                })?;
            at + 1
        }
    };
    items.drain(..start);
    let has_more = items.len() > page.limit;
    items.truncate(page.limit);
    let next = if has_more {
        items.last().and_then(|i| cursor_of(i, field))
    } else {
        None
    };
    Ok((has_more, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_decode_and_refuse_repeats_and_bad_bytes() {
        let p = pairs(Some("a=1&client_reference=PO%2342+x&b")).expect("pairs");
        assert_eq!(
            p,
            [
                ("a".into(), "1".into()),
                ("client_reference".into(), "PO#42 x".into()),
                ("b".into(), String::new())
            ]
        );
        for bad in ["a=1&a=2", "a=%zz", "a=%ff", "a=%4"] {
            assert_eq!(
                pairs(Some(bad)).map_err(|e| e.code).err(),
                Some("invalid_filter"),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        let take =
            |q: &str| Page::take(&mut pairs(Some(q)).expect("pairs"), 10).map_err(|e| e.code);
        assert_eq!(
            take("").ok(),
            Some(Page {
                limit: 10,
                starting_after: None
            })
        );
        assert_eq!(take("limit=1000").map(|p| p.limit).ok(), Some(1000));
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=x", "limit="] {
            assert_eq!(take(bad).err(), Some("invalid_limit"), "{bad}");
        }
        for bad in [
            "starting_after=",
            "starting_after=a%2Fb",
            "starting_after=%20",
        ] {
            assert_eq!(take(bad).err(), Some("invalid_cursor"), "{bad}");
        }
    }

    #[test]
    fn pages_cut_in_order_without_gaps() {
        let all: Vec<Value> = (0..25)
            .map(|i| json!({"id": format!("x-{i:02}")}))
            .collect();
        let mut seen = Vec::new();
        let mut page = Page {
            limit: 10,
            starting_after: None,
        };
        loop {
            let mut items = all.clone();
            let (more, next) = cut(&mut items, "id", &page).expect("cut");
            seen.extend(items);
            if !more {
                break;
            }
            page.starting_after = next;
        }
        assert_eq!(seen, all);
        let mut items = all.clone();
        let unknown = Page {
            limit: 10,
            starting_after: Some("x-99".into()),
        };
        assert_eq!(
            cut(&mut items, "id", &unknown).map_err(|e| e.code).err(),
            Some("invalid_cursor")
        );
    }
}
