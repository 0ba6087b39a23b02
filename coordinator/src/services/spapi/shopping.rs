//! The calls the API passes through: the shopping steps ([`ShoppingStep`], getAdditionalInputs)
//! answer their `payload` as it came; cancellations (MFN or Shipping v2) answer a status.

use serde_json::Value;
use zeroize::Zeroizing;

use super::error::malformed;
use super::model::MfnShipmentResponse;
use super::{CallSpec, Connection, Operation, SpApi, SpApiError};

fn pass_through(operation: &'static str, body: &[u8]) -> Result<serde_json::Value, SpApiError> {
    #[derive(serde::Deserialize)]
    struct Payload {
        payload: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Payload>(body)
        .ok()
        .and_then(|p| p.payload)
        .ok_or_else(|| malformed(operation, "no payload"))
}

/// A shopping step the API passes through: a JSON request body in, the answer's `payload`
/// out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShoppingStep {
    /// MFN getEligibleShipmentServices (`GetEligibleShipmentServicesRequest`).
    EligibleServices,
    /// MFN getAdditionalSellerInputs (`GetAdditionalSellerInputsRequest`).
    AdditionalSellerInputs,
    /// Shipping v2 getRates (`GetRatesRequest`).
    Rates,
}

impl ShoppingStep {
    fn operation(self) -> Operation {
        match self {
            ShoppingStep::EligibleServices => Operation::MfnGetEligibleShipmentServices,
            ShoppingStep::AdditionalSellerInputs => Operation::MfnGetAdditionalSellerInputs,
            ShoppingStep::Rates => Operation::V2GetRates,
        }
    }
}

impl SpApi {
    /// Calls a shopping operation and returns its `payload`.
    async fn shopping(
        &self,
        conn: &Connection,
        op: Operation,
        spec: CallSpec<'_>,
    ) -> Result<Value, SpApiError> {
        let a = self.call(conn, op, spec).await?;
        pass_through(op.info().name, &a.body)
    }

    /// Runs `step` with `body` (its request, serialised); returns the answer's `payload`.
    ///
    /// # Errors
    /// Those of [`SpApi::call`], [`SpApiError::Malformed`].
    pub async fn shop(
        &self,
        conn: &Connection,
        step: ShoppingStep,
        body: Zeroizing<Vec<u8>>,
    ) -> Result<Value, SpApiError> {
        self.shopping(conn, step.operation(), CallSpec::json(body))
            .await
    }

    /// Shipping v2 getAdditionalInputs for a rate; returns its `payload` (a JSON schema).
    ///
    /// # Errors
    /// Those of [`SpApi::call`], [`SpApiError::Malformed`].
    pub async fn additional_inputs(
        &self,
        conn: &Connection,
        request_token: &str,
        rate_id: &str,
    ) -> Result<Value, SpApiError> {
        let spec = CallSpec {
            query: vec![
                ("requestToken", request_token.to_owned()),
                ("rateId", rate_id.to_owned()),
            ],
            ..CallSpec::default()
        };
        self.shopping(conn, Operation::V2GetAdditionalInputs, spec)
            .await
    }

    /// Cancels a shipment: MFN cancelShipment when `mfn`, else Shipping v2 cancelShipment.
    /// Returns the MFN status (`RefundPending`, …) or `cancelled`.
    ///
    /// # Errors
    /// Those of [`SpApi::call`].
    pub async fn cancel_shipment(
        &self,
        conn: &Connection,
        mfn: bool,
        shipment_id: &str,
    ) -> Result<String, SpApiError> {
        let spec = CallSpec::shipment(shipment_id);
        if mfn {
            let a = self.call(conn, Operation::MfnCancelShipment, spec).await?;
            let r: MfnShipmentResponse = serde_json::from_slice(&a.body)
                .map_err(|_| malformed("cancelShipment", "not a shipment"))?;
            Ok(r.payload
                .and_then(|s| s.status)
                .map(|s| super::error::sanitise_code(&s))
                .unwrap_or_else(|| "unknown".into()))
        } else {
            self.call(conn, Operation::V2CancelShipment, spec).await?;
            Ok("cancelled".into())
        }
    }
}
