//! Label fetches: from an SP-API source to a queued print job.
//!
//! [`SpApi::spawn_fetch`] runs one [`LabelSource`] in the background. On success the label
//! is decoded, the print job (the fetch's id) is created with [`Store::create_job`] — label
//! encrypted under the tenant key — and handed to [`Dispatch::job_submitted`]; the fetch
//! record becomes `fetched` with the shipment and tracking ids. On failure the fetch record
//! becomes `failed` (or `in_doubt` when a purchase may have happened) with the failing
//! operation, its error code and request id. A fetch interrupted by a restart is settled by
//! [`SpApi::settle_interrupted`] the same way: purchases in doubt, reads failed.
//!
//! MFN createShipment may refuse a `LabelFormat` the service lists as available
//! (amzn/selling-partner-api-models#214). That refusal buys nothing, so the request is sent
//! once more without the label format and label customization; the fetch record says so
//! (`label_format_fallback`) before the second call leaves. Any other failure is final.
//!
//! Also here: the shopping calls the API passes through (eligible services, additional
//! seller inputs, rates, additional inputs) and cancellations.
//!
//! [`Store::create_job`]: crate::store::Store::create_job
//! [`Dispatch::job_submitted`]: crate::core::dispatcher::Dispatch::job_submitted

use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::{info, info_span, warn, Instrument};
use zeroize::Zeroizing;

use super::label::{decode_label, DecodedLabel, LabelError};
use super::model::{MfnShipmentResponse, V2Documents, V2Purchase, V2Response};
use super::{CallSpec, Connection, Operation, SpApi, SpApiError};
use crate::store::{AuditEntry, FetchState, JobRecord, JobStatus, SpapiFetchRecord};

/// The `source` names, in the order of [`LabelSource`].
pub const FETCH_SOURCES: [&str; 5] = [
    "mfn",
    "mfn_shipment",
    "shipping_v2",
    "shipping_v2_shipment",
    "shipping_v2_one_click",
];

/// Where a label comes from. Bodies are already-serialised JSON, wiped on drop.
pub enum LabelSource {
    /// MFN createShipment with this `CreateShipmentRequest` body.
    Mfn {
        /// The body.
        body: Zeroizing<Vec<u8>>,
        /// The body without the label format and label customization, when the request had
        /// either: sent if createShipment refuses the format.
        without_label_format: Option<Zeroizing<Vec<u8>>>,
    },
    /// MFN getShipment (reprint).
    MfnShipment {
        /// The shipment.
        shipment_id: String,
    },
    /// Shipping v2 purchaseShipment with this body and idempotency key.
    ShippingV2 {
        /// The body.
        body: Zeroizing<Vec<u8>>,
        /// `x-amzn-IdempotencyKey`.
        idempotency_key: String,
    },
    /// Shipping v2 getShipmentDocuments (reprint).
    ShippingV2Shipment {
        /// The shipment.
        shipment_id: String,
        /// The package's client reference id.
        package_client_reference_id: String,
        /// `format` query parameter.
        format: Option<String>,
        /// `dpi` query parameter.
        dpi: Option<u32>,
    },
    /// Shipping v2 oneClickShipment with this `OneClickShipmentRequest` body (the model gives
    /// it no idempotency key).
    ShippingV2OneClick {
        /// The body.
        body: Zeroizing<Vec<u8>>,
    },
}

impl std::fmt::Debug for LabelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl LabelSource {
    /// MFN createShipment of `request` (a `CreateShipmentRequest`), with its fallback body
    /// when it asks for a label format or label customization.
    pub fn mfn(request: &Value) -> LabelSource {
        let body = |v: &Value| {
            Zeroizing::new(serde_json::to_vec(v).expect("a JSON value always serialises"))
        };
        let mut plain = request.clone();
        let details = plain.get_mut("ShipmentRequestDetails");
        let customization = details
            .and_then(Value::as_object_mut)
            .and_then(|d| d.remove("LabelCustomization"))
            .is_some();
        let format = plain
            .pointer_mut("/ShipmentRequestDetails/ShippingServiceOptions")
            .and_then(Value::as_object_mut)
            .and_then(|o| o.remove("LabelFormat"))
            .is_some();
        LabelSource::Mfn {
            body: body(request),
            without_label_format: (customization || format).then(|| body(&plain)),
        }
    }

    /// The `source` name.
    pub fn name(&self) -> &'static str {
        match self {
            LabelSource::Mfn { .. } => FETCH_SOURCES[0],
            LabelSource::MfnShipment { .. } => FETCH_SOURCES[1],
            LabelSource::ShippingV2 { .. } => FETCH_SOURCES[2],
            LabelSource::ShippingV2Shipment { .. } => FETCH_SOURCES[3],
            LabelSource::ShippingV2OneClick { .. } => FETCH_SOURCES[4],
        }
    }

    /// The SP-API operation that fetches the label.
    pub fn operation(&self) -> Operation {
        match self {
            LabelSource::Mfn { .. } => Operation::MfnCreateShipment,
            LabelSource::MfnShipment { .. } => Operation::MfnGetShipment,
            LabelSource::ShippingV2 { .. } => Operation::V2PurchaseShipment,
            LabelSource::ShippingV2Shipment { .. } => Operation::V2GetShipmentDocuments,
            LabelSource::ShippingV2OneClick { .. } => Operation::V2OneClickShipment,
        }
    }

    /// Whether it buys something (so an interrupted fetch is in doubt, not failed).
    pub fn purchases(name: &str) -> bool {
        [FETCH_SOURCES[0], FETCH_SOURCES[2], FETCH_SOURCES[4]].contains(&name)
    }
}

/// A shipment as an operation returned it, with its label decoded (or why not).
pub struct FetchedShipment {
    /// The operation that returned it.
    pub operation: &'static str,
    /// Shipment id.
    pub shipment_id: Option<String>,
    /// Tracking id.
    pub tracking_id: Option<String>,
    /// The label.
    pub label: Result<DecodedLabel, LabelError>,
}

fn malformed(operation: &'static str, what: &'static str) -> SpApiError {
    SpApiError::Malformed { operation, what }
}

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

    async fn mfn_shipment(
        &self,
        conn: &Connection,
        op: Operation,
        spec: CallSpec<'_>,
    ) -> Result<FetchedShipment, SpApiError> {
        let name = op.info().name;
        let a = self.call(conn, op, spec).await?;
        let r: MfnShipmentResponse =
            serde_json::from_slice(&a.body).map_err(|_| malformed(name, "not a shipment"))?;
        let s = r.payload.ok_or_else(|| malformed(name, "no payload"))?;
        let label = match s.label.and_then(|l| l.file_contents) {
            Some(fc) => decode_label(&fc.contents.0, &fc.file_type, Some(&fc.checksum)),
            None => Err(LabelError::Empty),
        };
        Ok(FetchedShipment {
            operation: name,
            shipment_id: s.shipment_id,
            tracking_id: s.tracking_id,
            label,
        })
    }

    /// MFN createShipment; if the label format is refused and `without_label_format` is
    /// given, once more with that body (the refusal bought nothing), recorded on `rec` first.
    async fn mfn_purchase(
        &self,
        rec: &SpapiFetchRecord,
        conn: &Connection,
        body: Zeroizing<Vec<u8>>,
        without_label_format: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<FetchedShipment, SpApiError> {
        let op = Operation::MfnCreateShipment;
        let first = self.mfn_shipment(conn, op, CallSpec::json(body)).await;
        let (refusal, fallback) = match (first, without_label_format) {
            (Err(e @ SpApiError::LabelFormatRefused { .. }), Some(b)) => (e, b),
            (other, _) => return other,
        };
        let now = crate::core::clock::now_ms();
        if let Err(e) = self
            .inner
            .store
            .update_spapi_fetch(&rec.tenant_id, &rec.job_id, |r| {
                r.label_format_fallback = true;
                r.updated_at_ms = now;
            })
        {
            warn!(error = %e, "fetch record not updated");
        }
        let code = refusal.code().unwrap_or("-");
        let request_id = refusal.request_id().unwrap_or("-");
        self.audit(
            rec,
            "label.format_fallback",
            &format!("ok call=createShipment code={code} request_id={request_id}"),
            now,
        );
        info!(code, request_id, "label format refused; buying without it");
        self.mfn_shipment(conn, op, CallSpec::json(fallback)).await
    }

    /// A Shipping v2 purchase (purchaseShipment with its idempotency key, or
    /// oneClickShipment): the first package's label.
    async fn v2_purchase(
        &self,
        conn: &Connection,
        op: Operation,
        body: Zeroizing<Vec<u8>>,
        key: Option<&str>,
    ) -> Result<FetchedShipment, SpApiError> {
        let name = op.info().name;
        let spec = CallSpec {
            idempotency_key: key,
            ..CallSpec::json(body)
        };
        let a = self.call(conn, op, spec).await?;
        let r: V2Response<V2Purchase> =
            serde_json::from_slice(&a.body).map_err(|_| malformed(name, "not a purchase"))?;
        let p = r.payload.ok_or_else(|| malformed(name, "no payload"))?;
        let detail = p.package_document_details.first();
        let label = match detail.and_then(|d| d.label()) {
            Some(doc) => decode_label(&doc.contents.0, &doc.format, None),
            None => Err(LabelError::Empty),
        };
        Ok(FetchedShipment {
            operation: name,
            shipment_id: Some(p.shipment_id.clone()),
            tracking_id: detail.and_then(|d| d.tracking_id.clone()),
            label,
        })
    }

    async fn v2_documents(
        &self,
        conn: &Connection,
        shipment_id: &str,
        package: &str,
        format: Option<&str>,
        dpi: Option<u32>,
    ) -> Result<FetchedShipment, SpApiError> {
        let op = Operation::V2GetShipmentDocuments;
        let name = op.info().name;
        let mut query = vec![("packageClientReferenceId", package.to_owned())];
        if let Some(f) = format {
            query.push(("format", f.to_owned()));
        }
        if let Some(d) = dpi {
            query.push(("dpi", d.to_string()));
        }
        let spec = CallSpec {
            query,
            ..CallSpec::shipment(shipment_id)
        };
        let a = self.call(conn, op, spec).await?;
        let r: V2Response<V2Documents> =
            serde_json::from_slice(&a.body).map_err(|_| malformed(name, "not documents"))?;
        let d = r.payload.ok_or_else(|| malformed(name, "no payload"))?;
        let label = match d.package_document_detail.label() {
            Some(doc) => decode_label(&doc.contents.0, &doc.format, None),
            None => Err(LabelError::Empty),
        };
        Ok(FetchedShipment {
            operation: name,
            shipment_id: Some(d.shipment_id.clone()),
            tracking_id: d.package_document_detail.tracking_id.clone(),
            label,
        })
    }

    async fn fetch(
        &self,
        rec: &SpapiFetchRecord,
        source: LabelSource,
    ) -> Result<FetchedShipment, SpApiError> {
        let conn = self.connection(&rec.tenant_id, &rec.connection_id)?;
        let op = source.operation();
        match source {
            LabelSource::Mfn {
                body,
                without_label_format,
            } => {
                self.mfn_purchase(rec, &conn, body, without_label_format)
                    .await
            }
            LabelSource::MfnShipment { shipment_id } => {
                self.mfn_shipment(&conn, op, CallSpec::shipment(&shipment_id))
                    .await
            }
            LabelSource::ShippingV2 {
                body,
                idempotency_key,
            } => {
                self.v2_purchase(&conn, op, body, Some(&idempotency_key))
                    .await
            }
            LabelSource::ShippingV2OneClick { body } => {
                self.v2_purchase(&conn, op, body, None).await
            }
            LabelSource::ShippingV2Shipment {
                shipment_id,
                package_client_reference_id,
                format,
                dpi,
            } => {
                self.v2_documents(
                    &conn,
                    &shipment_id,
                    &package_client_reference_id,
                    format.as_deref(),
                    dpi,
                )
                .await
            }
        }
    }

    /// Fetches `source` for the already-stored fetch record `rec` in the background, then
    /// creates and submits the job, or records the failure. Returns at once.
    pub fn spawn_fetch(&self, rec: SpapiFetchRecord, source: LabelSource) {
        let api = self.clone();
        let span = info_span!("spapi_fetch", tenant = %rec.tenant_id, job = %rec.job_id, source = source.name());
        self.spawn(
            async move {
                let first_call = source.operation().info().name;
                match api.fetch(&rec, source).await {
                    Ok(shipment) => api.fetched(&rec, shipment),
                    Err(e) => api.fail(&rec, first_call, None, None, &e),
                }
            }
            .instrument(span),
        );
    }

    fn fetched(&self, rec: &SpapiFetchRecord, s: FetchedShipment) {
        let label = match s.label {
            Ok(l) => l,
            Err(e) => {
                let e = SpApiError::Label(e);
                return self.fail(rec, s.operation, s.shipment_id, s.tracking_id, &e);
            }
        };
        let store = &self.inner.store;
        let now = crate::core::clock::now_ms();
        let mut label = label;
        if rec.redacted {
            // The tenant may not print buyer data yet: only the redacted label is stored.
            label.bytes = Zeroizing::new(crate::core::compliance::redacted_zpl(
                None,
                None,
                s.tracking_id.as_deref(),
            ));
            label.format = sealprint_protocol::LabelFormat::Zpl;
        }
        let sha256 = hex::encode(Sha256::digest(label.bytes.as_slice()));
        let job = JobRecord {
            id: rec.job_id.clone(),
            tenant_id: rec.tenant_id.clone(),
            pool: rec.pool.clone(),
            requested_printer: rec.printer.clone(),
            printer: None,
            agent: None,
            status: JobStatus::Queued,
            format: label.format,
            // The decoder caps labels at 8 MiB.
            label_len: u32::try_from(label.bytes.len()).unwrap_or(u32::MAX),
            label_sha256: sha256.clone(),
            attempts: 0,
            excluded_printers: Vec::new(),
            attempt_deadline_ms: None,
            expires_at_ms: now + rec.job_ttl_ms,
            created_at_ms: now,
            updated_at_ms: now,
            error: None,
            redacted: rec.redacted,
            client_reference: None,
        };
        if let Err(e) = store.create_job(&job, &label.bytes) {
            warn!(error = %e, "job not stored");
            let e = SpApiError::Store(e);
            return self.fail(rec, s.operation, s.shipment_id, s.tracking_id, &e);
        }
        drop(label.bytes);
        let checksum = label.checksum.as_str();
        if let Err(e) = store.update_spapi_fetch(&rec.tenant_id, &rec.job_id, |r| {
            r.state = FetchState::Fetched;
            r.shipment_id.clone_from(&s.shipment_id);
            r.tracking_id.clone_from(&s.tracking_id);
            r.checksum = Some(checksum.to_owned());
            r.updated_at_ms = now;
        }) {
            warn!(error = %e, "fetch record not updated");
        }
        self.audit(
            rec,
            "label.fetched",
            &format!(
                "ok source={} sha256={sha256} gzip={} checksum={checksum}",
                rec.source, label.gzipped
            ),
            now,
        );
        info!(sha256 = %sha256, len = job.label_len, format = job.format.as_str(), checksum, "label fetched and queued");
        self.inner
            .dispatch
            .job_submitted(&rec.tenant_id, &rec.job_id);
    }

    fn fail(
        &self,
        rec: &SpapiFetchRecord,
        call: &'static str,
        shipment_id: Option<String>,
        tracking_id: Option<String>,
        e: &SpApiError,
    ) {
        let now = crate::core::clock::now_ms();
        let state = if e.is_in_doubt() {
            FetchState::InDoubt
        } else {
            FetchState::Failed
        };
        let failed_call = e.operation().unwrap_or(call).to_owned();
        let code = e.code().map(str::to_owned);
        let request_id = e.request_id().map(str::to_owned);
        let message = e.to_string();
        if let Err(se) = self
            .inner
            .store
            .update_spapi_fetch(&rec.tenant_id, &rec.job_id, |r| {
                r.state = state;
                if shipment_id.is_some() {
                    r.shipment_id.clone_from(&shipment_id);
                }
                if tracking_id.is_some() {
                    r.tracking_id.clone_from(&tracking_id);
                }
                r.failed_call = Some(failed_call.clone());
                r.error_code.clone_from(&code);
                r.request_id.clone_from(&request_id);
                r.error = Some(message.clone());
                r.updated_at_ms = now;
            })
        {
            warn!(error = %se, "fetch record not updated");
        }
        let outcome = match state {
            FetchState::InDoubt => "in_doubt",
            _ => "failed",
        };
        self.audit(
            rec,
            "label.fetch_failed",
            &format!(
                "{outcome} call={failed_call} code={}",
                code.as_deref().unwrap_or("-")
            ),
            now,
        );
        warn!(call = %failed_call, code = code.as_deref().unwrap_or("-"), request_id = request_id.as_deref().unwrap_or("-"), state = outcome, error = %e, "label fetch failed");
    }

    fn audit(&self, rec: &SpapiFetchRecord, action: &str, outcome: &str, now: u64) {
        let entry = AuditEntry {
            at_ms: now,
            tenant_id: Some(rec.tenant_id.clone()),
            actor: "coordinator".to_owned(),
            action: action.to_owned(),
            object: Some(rec.job_id.clone()),
            outcome: outcome.to_owned(),
        };
        if let Err(e) = self.inner.store.append_audit(entry) {
            warn!(error = %e, action, "audit entry not written");
        }
    }

    /// Settles fetches a previous run left `fetching`: a job that exists means the fetch
    /// finished; otherwise a purchase is in doubt and a read failed.
    pub fn settle_interrupted(&self, now: u64) {
        let store = &self.inner.store;
        let pending = match store.spapi_fetches_in(FetchState::Fetching) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "interrupted fetches not settled");
                return;
            }
        };
        for rec in pending {
            let done = matches!(store.job(&rec.tenant_id, &rec.job_id), Ok(Some(_)));
            let (state, error) = if done {
                (FetchState::Fetched, None)
            } else if LabelSource::purchases(&rec.source) {
                (
                    FetchState::InDoubt,
                    Some("interrupted by a coordinator restart during the purchase".to_owned()),
                )
            } else {
                (
                    FetchState::Failed,
                    Some("interrupted by a coordinator restart; submit again".to_owned()),
                )
            };
            let r = store.update_spapi_fetch(&rec.tenant_id, &rec.job_id, |r| {
                r.state = state;
                r.error.clone_from(&error);
                r.updated_at_ms = now;
            });
            if let Err(e) = r {
                warn!(error = %e, job = %rec.job_id, "interrupted fetch not settled");
            } else {
                info!(job = %rec.job_id, tenant = %rec.tenant_id, "interrupted fetch settled");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::core::crypto::MasterKey;
    use crate::core::dispatcher::Dispatch;
    use crate::store::Store;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Dispatch for Recorder {
        fn job_submitted(&self, _tenant_id: &str, job_id: &str) {
            self.0.lock().expect("lock").push(job_id.to_owned());
        }
        fn agent_revoked(&self, _device_id: &str) {}
    }

    fn fetch(tenant: &str, job: &str, source: &str) -> SpapiFetchRecord {
        SpapiFetchRecord {
            job_id: job.into(),
            tenant_id: tenant.into(),
            connection_id: "spc-1".into(),
            source: source.into(),
            state: FetchState::Fetching,
            pool: Some("p".into()),
            printer: None,
            job_ttl_ms: 1000,
            shipment_id: None,
            tracking_id: None,
            idempotency_key: None,
            failed_call: None,
            error_code: None,
            request_id: None,
            error: None,
            checksum: None,
            redacted: false,
            label_format_fallback: false,
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    fn body_of(source: &LabelSource) -> (serde_json::Value, Option<serde_json::Value>) {
        let LabelSource::Mfn {
            body,
            without_label_format,
        } = source
        else {
            panic!("an mfn source");
        };
        let parse = |b: &[u8]| serde_json::from_slice(b).expect("json");
        (
            parse(body),
            without_label_format.as_deref().map(|b| parse(b)),
        )
    }

    #[test]
    fn the_mfn_fallback_drops_only_the_label_format_and_customization() {
        let request = serde_json::json!({
            "ShipmentRequestDetails": {"AmazonOrderId": "903-5563053-5647845",
                "ShippingServiceOptions": {"DeliveryExperience": "NoTracking",
                    "CarrierWillPickUp": false, "LabelFormat": "ZPL203"},
                "LabelCustomization": {"CustomTextForLabel": "BIN 7"}},
            "ShippingServiceId": "UPS_PTP_2ND_DAY_AIR"
        });
        let (body, fallback) = body_of(&LabelSource::mfn(&request));
        assert_eq!(body, request);
        let mut expected = request.clone();
        expected["ShipmentRequestDetails"]
            .as_object_mut()
            .expect("object")
            .remove("LabelCustomization");
        expected["ShipmentRequestDetails"]["ShippingServiceOptions"]
            .as_object_mut()
            .expect("object")
            .remove("LabelFormat");
        assert_eq!(fallback, Some(expected.clone()));
        // Nothing to drop: no fallback (a refusal then is final).
        assert_eq!(body_of(&LabelSource::mfn(&expected)).1, None);
    }

    #[tokio::test]
    async fn a_restart_leaves_purchases_in_doubt_and_reads_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let t = store.create_tenant("t", 1).expect("tenant").id;
        for (job, source) in [
            ("job-a", "mfn"),
            ("job-b", "shipping_v2"),
            ("job-c", "mfn_shipment"),
            ("job-d", "shipping_v2_shipment"),
            ("job-e", "shipping_v2_one_click"),
        ] {
            store
                .create_spapi_fetch(&fetch(&t, job, source))
                .expect("fetch");
        }
        let recorder = Arc::new(Recorder::default());
        let _api = SpApi::for_tests(store.clone(), recorder.clone());
        let state = |job: &str| {
            store
                .spapi_fetch(&t, job)
                .expect("read")
                .expect("some")
                .state
        };
        assert_eq!(state("job-a"), FetchState::InDoubt);
        assert_eq!(state("job-b"), FetchState::InDoubt);
        assert_eq!(state("job-c"), FetchState::Failed);
        assert_eq!(state("job-d"), FetchState::Failed);
        assert_eq!(state("job-e"), FetchState::InDoubt);
        assert!(recorder.0.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_fetched_label_becomes_a_queued_job_and_a_bad_one_a_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let t = store.create_tenant("t", 1).expect("tenant").id;
        let recorder = Arc::new(Recorder::default());
        let api = SpApi::for_tests(store.clone(), recorder.clone());
        let zpl = b"^XA^FDx^FS^XZ".to_vec();
        let rec = fetch(&t, "job-ok", "mfn_shipment");
        store.create_spapi_fetch(&rec).expect("fetch");
        api.fetched(
            &rec,
            FetchedShipment {
                operation: "getShipment",
                shipment_id: Some("s-1".into()),
                tracking_id: Some("1Z1".into()),
                label: decode_label(
                    &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &zpl),
                    "application/zpl",
                    None,
                ),
            },
        );
        let job = store.job(&t, "job-ok").expect("read").expect("job");
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(store.label(&t, "job-ok").expect("label").as_slice(), zpl);
        let f = store
            .spapi_fetch(&t, "job-ok")
            .expect("read")
            .expect("fetch");
        assert_eq!(f.state, FetchState::Fetched);
        assert_eq!(f.tracking_id.as_deref(), Some("1Z1"));
        assert_eq!(*recorder.0.lock().expect("lock"), vec!["job-ok".to_owned()]);

        let rec = fetch(&t, "job-bad", "mfn");
        store.create_spapi_fetch(&rec).expect("fetch");
        api.fetched(
            &rec,
            FetchedShipment {
                operation: "createShipment",
                shipment_id: Some("s-2".into()),
                tracking_id: None,
                label: decode_label("H4sIAAAAAAAAAOR", "image/png", None),
            },
        );
        assert!(store.job(&t, "job-bad").expect("read").is_none());
        let f = store
            .spapi_fetch(&t, "job-bad")
            .expect("read")
            .expect("fetch");
        assert_eq!(f.state, FetchState::Failed);
        assert_eq!(f.failed_call.as_deref(), Some("createShipment"));
        assert_eq!(f.shipment_id.as_deref(), Some("s-2"));
        assert!(f.error.as_deref().unwrap_or_default().contains("base64"));
    }
}
