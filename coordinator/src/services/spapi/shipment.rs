//! The calls that return a shipment with its label: MFN createShipment and getShipment,
//! Shipping v2 purchaseShipment, oneClickShipment and getShipmentDocuments. Each reads the
//! answer and decodes the label document in it ([`decode_label`]); a label that does not
//! decode is returned as its error beside the shipment and tracking ids.

use zeroize::Zeroizing;

use super::error::malformed;
use super::label::{decode_label, DecodedLabel, LabelError};
use super::model::{MfnShipmentResponse, V2Documents, V2Purchase, V2Response};
use super::{CallSpec, Connection, Operation, SpApi, SpApiError};

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

impl SpApi {
    /// MFN createShipment or getShipment (`op`): the shipment and its label.
    pub(super) async fn mfn_shipment(
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

    /// A Shipping v2 purchase (purchaseShipment with its idempotency key, or
    /// oneClickShipment): the first package's label.
    pub(super) async fn v2_purchase(
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

    /// Shipping v2 getShipmentDocuments: the label of one package of a shipment bought before.
    pub(super) async fn v2_documents(
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
}
