//! Whether a tenant's label request is admitted, and how it will print: the backlog bound,
//! the compliance gate, canary orders, the restriction of an open alert, and the volume and
//! hour rules. Every refusal but the backlog is audited by id.

use tracing::warn;

use super::{audit, SubmitError};
use crate::core::compliance::{self, LabelMode};
use crate::core::dispatcher::Dispatch;
use crate::services::monitor;
use crate::store::{AlertRule, Store};

/// Admits a label request of `actor` for `tenant` (`body` is read for the order ids it
/// names), or says why not.
///
/// # Errors
/// [`SubmitError::Busy`], [`SubmitError::NoTenant`], [`SubmitError::Gate`],
/// [`SubmitError::Canary`], [`SubmitError::Restricted`], [`SubmitError::Store`].
pub fn admit(
    store: &Store,
    dispatch: &dyn Dispatch,
    actor: &str,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<LabelMode, SubmitError> {
    if dispatch.backlog_full() {
        return Err(SubmitError::Busy);
    }
    let t = store.tenant(tenant)?.ok_or(SubmitError::NoTenant)?;
    let mode = compliance::label_gate(
        t.suspension.as_ref(),
        t.subscription.state,
        t.attestation.as_ref(),
        &t.tier,
        now,
    )
    .map_err(|refusal| {
        let code = match &refusal {
            compliance::GateRefusal::Suspended(_) => "tenant_suspended",
            compliance::GateRefusal::SubscriptionInactive(_) => "subscription_inactive",
            compliance::GateRefusal::Restricted(_) => "compliance_restricted",
        };
        audit(store, tenant, actor, "label.refused", None, code, now);
        SubmitError::Gate(refusal)
    })?;
    let canaries = store.canaries(tenant)?;
    if !canaries.is_empty() && named_orders(body).iter().any(|o| canaries.contains(o)) {
        let alert = monitor::raise(
            store,
            tenant,
            AlertRule::Canary,
            Some(actor),
            "a label request named a canary order",
            now,
        )?;
        audit(
            store,
            tenant,
            actor,
            "label.refused",
            Some(&alert.id),
            "canary order",
            now,
        );
        warn!(tenant = %tenant, actor = %actor, alert = %alert.id, "canary order requested");
        return Err(SubmitError::Canary(Box::new(alert)));
    }
    let restriction = match store.restriction(tenant)? {
        Some(a) => Some(a),
        None => monitor::label_requested(store, tenant, now)?,
    };
    if let Some(a) = restriction {
        audit(
            store,
            tenant,
            actor,
            "label.refused",
            Some(&a.id),
            &format!("tenant restricted rule={}", a.rule.as_str()),
            now,
        );
        return Err(SubmitError::Restricted(Box::new(a)));
    }
    Ok(mode)
}

/// Where a label request names an order: the upload's `order_id`, MFN's `AmazonOrderId`,
/// Shipping v2 one-click's `channelDetails.amazonOrderDetails.orderId`.
const ORDER_POINTERS: [&str; 3] = [
    "/order_id",
    "/shipment_request/AmazonOrderId",
    "/channelDetails/amazonOrderDetails/orderId",
];

/// The order ids a label request names. Read from the JSON as it is forwarded (a repeated
/// key counts by its last value, as in the request sent on), never from a typed peek that a
/// repeated key or an odd type elsewhere would make fail and so hide a canary order.
pub fn named_orders(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    ORDER_POINTERS
        .iter()
        .filter_map(|p| v.pointer(p).and_then(serde_json::Value::as_str))
        .map(|o| o.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_are_found_in_every_kind_of_request() {
        assert_eq!(
            named_orders(br#"{"order_id":" 111-1 ","format":"zpl","content_base64":"eA=="}"#),
            ["111-1"]
        );
        assert_eq!(
            named_orders(
                br#"{"source":"mfn","shipment_request":{"AmazonOrderId":"222-2","Weight":{}}}"#
            ),
            ["222-2"]
        );
        assert_eq!(
            named_orders(
                br#"{"source":"shipping_v2_one_click","channelDetails":{"channelType":"AMAZON",
                    "amazonOrderDetails":{"orderId":"333-3"}}}"#
            ),
            ["333-3"]
        );
        assert!(named_orders(b"not json").is_empty());
    }

    #[test]
    fn a_repeated_key_does_not_hide_the_order_sent_on() {
        // The MFN request forwards `shipment_request` as parsed JSON, whose last repeated
        // key wins: the canary check must see that value (a typed peek failed on the repeat
        // and saw no order at all; fuzz target api_body).
        let body = br#"{"source":"mfn","connection":"c","shipping_service_id":"S",
            "shipment_request":{"AmazonOrderId":"111-1","AmazonOrderId":"999-CANARY"}}"#;
        assert_eq!(named_orders(body), ["999-CANARY"]);
        // A field of another type elsewhere does not hide it either.
        let body = br#"{"order_id":7,"shipment_request":{"AmazonOrderId":"999-CANARY"}}"#;
        assert_eq!(named_orders(body), ["999-CANARY"]);
    }
}
