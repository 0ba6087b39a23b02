//! The SP-API operations sealprint calls, in one table: method, path, default rate and burst
//! (the models' usage plans, MFN as raised on 2024-11-06), whether the operation needs a
//! Restricted Data Token, and whether it may be retried after an ambiguous failure.
//!
//! This is the only place that says which operation is restricted: the RDT request is built
//! from it (with the generic paths, so one RDT serves every shipment of a seller), and the
//! client refuses to send an RDT anywhere else.

use hyper::Method;

/// What may be retried after the request was (possibly) processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads and cancellations: retried on timeouts and 5xx.
    Safe,
    /// A purchase with an idempotency key: retried with the same key.
    Idempotent,
    /// A purchase without idempotency (MFN createShipment, Shipping v2 oneClickShipment):
    /// an ambiguous failure is final and the job is in doubt.
    Never,
}

/// One SP-API operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Tokens API `createRestrictedDataToken`.
    CreateRestrictedDataToken,
    /// MFN v0 `getEligibleShipmentServices`.
    MfnGetEligibleShipmentServices,
    /// MFN v0 `createShipment` (restricted).
    MfnCreateShipment,
    /// MFN v0 `getShipment` (restricted).
    MfnGetShipment,
    /// MFN v0 `cancelShipment` (restricted).
    MfnCancelShipment,
    /// MFN v0 `getAdditionalSellerInputs`.
    MfnGetAdditionalSellerInputs,
    /// Shipping v2 `getRates`.
    V2GetRates,
    /// Shipping v2 `purchaseShipment`.
    V2PurchaseShipment,
    /// Shipping v2 `oneClickShipment` (a purchase without an idempotency key).
    V2OneClickShipment,
    /// Shipping v2 `getShipmentDocuments`.
    V2GetShipmentDocuments,
    /// Shipping v2 `cancelShipment`.
    V2CancelShipment,
    /// Shipping v2 `getAdditionalInputs`.
    V2GetAdditionalInputs,
}

/// What the table says about an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationInfo {
    /// Amazon's operation name (for logs, errors and jobs).
    pub name: &'static str,
    /// HTTP method.
    pub method: Method,
    /// Path template; `{shipmentId}` is the one parameter. For restricted operations this is
    /// also the generic path put in the RDT request.
    pub path: &'static str,
    /// Default sustained rate, requests per second.
    pub rate: f64,
    /// Default burst.
    pub burst: u32,
    /// Whether it needs a Restricted Data Token instead of the LWA access token.
    pub restricted: bool,
    /// Retry policy after an ambiguous failure.
    pub retry: Retry,
    /// Whether it is a Shipping v2 operation (sends `x-amzn-shipping-business-id`).
    pub shipping_v2: bool,
}

const fn op(
    name: &'static str,
    method: Method,
    path: &'static str,
    rate: f64,
    burst: u32,
    restricted: bool,
    retry: Retry,
    shipping_v2: bool,
) -> OperationInfo {
    OperationInfo {
        name,
        method,
        path,
        rate,
        burst,
        restricted,
        retry,
        shipping_v2,
    }
}

const MFN_SHIPMENT: &str = "/mfn/v0/shipments/{shipmentId}";

impl Operation {
    /// Every operation, for tables and tests.
    pub const ALL: [Operation; 12] = [
        Operation::CreateRestrictedDataToken,
        Operation::MfnGetEligibleShipmentServices,
        Operation::MfnCreateShipment,
        Operation::MfnGetShipment,
        Operation::MfnCancelShipment,
        Operation::MfnGetAdditionalSellerInputs,
        Operation::V2GetRates,
        Operation::V2PurchaseShipment,
        Operation::V2OneClickShipment,
        Operation::V2GetShipmentDocuments,
        Operation::V2CancelShipment,
        Operation::V2GetAdditionalInputs,
    ];

    /// The table row.
    pub fn info(self) -> OperationInfo {
        use Retry::{Idempotent, Never, Safe};
        match self {
            Operation::CreateRestrictedDataToken => op(
                "createRestrictedDataToken",
                Method::POST,
                "/tokens/2021-03-01/restrictedDataToken",
                1.0,
                10,
                false,
                Safe,
                false,
            ),
            Operation::MfnGetEligibleShipmentServices => op(
                "getEligibleShipmentServices",
                Method::POST,
                "/mfn/v0/eligibleShippingServices",
                6.0,
                12,
                false,
                Safe,
                false,
            ),
            Operation::MfnCreateShipment => op(
                "createShipment",
                Method::POST,
                "/mfn/v0/shipments",
                2.0,
                2,
                true,
                Never,
                false,
            ),
            Operation::MfnGetShipment => op(
                "getShipment",
                Method::GET,
                MFN_SHIPMENT,
                1.0,
                1,
                true,
                Safe,
                false,
            ),
            Operation::MfnCancelShipment => op(
                "cancelShipment",
                Method::DELETE,
                MFN_SHIPMENT,
                1.0,
                1,
                true,
                Safe,
                false,
            ),
            Operation::MfnGetAdditionalSellerInputs => op(
                "getAdditionalSellerInputs",
                Method::POST,
                "/mfn/v0/additionalSellerInputs",
                1.0,
                1,
                false,
                Safe,
                false,
            ),
            Operation::V2GetRates => op(
                "getRates",
                Method::POST,
                "/shipping/v2/shipments/rates",
                80.0,
                100,
                false,
                Safe,
                true,
            ),
            Operation::V2PurchaseShipment => op(
                "purchaseShipment",
                Method::POST,
                "/shipping/v2/shipments",
                80.0,
                100,
                false,
                Idempotent,
                true,
            ),
            Operation::V2OneClickShipment => op(
                "oneClickShipment",
                Method::POST,
                "/shipping/v2/oneClickShipment",
                80.0,
                100,
                false,
                // The model gives it no idempotency key: a lost answer may be a purchase.
                Never,
                true,
            ),
            Operation::V2GetShipmentDocuments => op(
                "getShipmentDocuments",
                Method::GET,
                "/shipping/v2/shipments/{shipmentId}/documents",
                80.0,
                100,
                false,
                Safe,
                true,
            ),
            Operation::V2CancelShipment => op(
                "cancelShipment",
                Method::PUT,
                "/shipping/v2/shipments/{shipmentId}/cancel",
                80.0,
                100,
                false,
                Safe,
                true,
            ),
            Operation::V2GetAdditionalInputs => op(
                "getAdditionalInputs",
                Method::GET,
                "/shipping/v2/shipments/additionalInputs/schema",
                80.0,
                100,
                false,
                Safe,
                true,
            ),
        }
    }

    /// The concrete path, with `shipment_id` (percent-encoded) in place of `{shipmentId}`.
    pub fn path(self, shipment_id: Option<&str>) -> String {
        let template = self.info().path;
        match shipment_id {
            Some(id) => template.replace("{shipmentId}", &encode_component(id)),
            None => template.to_owned(),
        }
    }

    /// The restricted resources one RDT is asked for: every restricted operation, with its
    /// generic path, so a single token covers all of them for every shipment.
    pub fn restricted_resources() -> Vec<(Method, &'static str)> {
        let mut out: Vec<(Method, &'static str)> = Vec::new();
        for o in Operation::ALL {
            let i = o.info();
            if i.restricted && !out.iter().any(|(m, p)| *m == i.method && *p == i.path) {
                out.push((i.method, i.path));
            }
        }
        out
    }
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters pass).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_mfn_trio_is_restricted_with_generic_paths() {
        let r: Vec<&str> = Operation::ALL
            .iter()
            .filter(|o| o.info().restricted)
            .map(|o| o.info().name)
            .collect();
        assert_eq!(r, ["createShipment", "getShipment", "cancelShipment"]);
        assert_eq!(
            Operation::restricted_resources(),
            vec![
                (Method::POST, "/mfn/v0/shipments"),
                (Method::GET, "/mfn/v0/shipments/{shipmentId}"),
                (Method::DELETE, "/mfn/v0/shipments/{shipmentId}"),
            ]
        );
    }

    #[test]
    fn paths_encode_the_shipment_id() {
        assert_eq!(
            Operation::MfnGetShipment.path(Some("ab/../c d")),
            "/mfn/v0/shipments/ab%2F..%2Fc%20d"
        );
        assert_eq!(
            Operation::V2GetShipmentDocuments.path(Some("s-1")),
            "/shipping/v2/shipments/s-1/documents"
        );
    }

    #[test]
    fn purchases_without_an_idempotency_key_are_never_retried() {
        for o in Operation::ALL {
            assert_eq!(
                o.info().retry == Retry::Never,
                matches!(
                    o,
                    Operation::MfnCreateShipment | Operation::V2OneClickShipment
                ),
                "{o:?}"
            );
        }
    }
}
