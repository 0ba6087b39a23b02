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
//! [`Store::create_job`]: crate::store::Store::create_job
//! [`Dispatch::job_submitted`]: crate::core::dispatcher::Dispatch::job_submitted

use sha2::{Digest, Sha256};
use tracing::{info, info_span, warn, Instrument};
use zeroize::Zeroizing;

use super::shipment::FetchedShipment;
use super::{CallSpec, Connection, LabelSource, Operation, SpApi, SpApiError};
use crate::store::{FetchState, JobRecord, JobStatus, SpapiFetchRecord};

impl SpApi {
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
            reprint: super::source::is_reprint(&rec.source),
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
        self.inner.store.audit(
            Some(&rec.tenant_id),
            "coordinator",
            action,
            Some(&rec.job_id),
            outcome,
            now,
        );
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
mod tests;
