//! Sealed label envelopes.
//!
//! A label is sealed by the coordinator to one agent with the one-way Noise pattern
//! `Noise_X_25519_ChaChaPoly_BLAKE2s`: the sender (the coordinator, static key `s`) knows
//! the recipient's static X25519 key from its certificate, and the one handshake message
//! `-> e, es, s, ss` authenticates the sender to the recipient and encrypts to the recipient
//! only. `X` rather than `N` because the agent must know the label comes from its pinned
//! coordinator; rather than `K` because the agent then learns the sender's key from the
//! message and can say "wrong sender" instead of a bare decryption failure.
//!
//! The [`JobHeader`] travels in the clear so that relays can route the job, and is bound to
//! the ciphertext as the Noise prologue: changing any header field makes opening fail. A
//! Noise message holds at most 65535 bytes, so the label follows the handshake message as
//! transport messages of the same session, in order.
//!
//! One-way patterns have no replay protection of their own: the header carries a job id and
//! a deadline, and the agent refuses a job it has seen or whose deadline has passed.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::ident::validate_id;

/// The Noise protocol name used for every envelope.
pub const NOISE_PARAMS: &str = "Noise_X_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE_DOMAIN: &[u8] = b"sealprint/sealed-label/v1\0";
/// Largest label accepted, in bytes.
pub const MAX_LABEL_LEN: usize = 8 * 1024 * 1024;
const NOISE_MAX: usize = 65535;
const TAG_LEN: usize = 16;
const CHUNK: usize = NOISE_MAX - TAG_LEN;
const MAX_CHUNKS: usize = MAX_LABEL_LEN.div_ceil(CHUNK);

/// Why an envelope could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The label is empty or larger than [`MAX_LABEL_LEN`].
    #[error("label size {0} is outside 1..={MAX_LABEL_LEN} bytes")]
    BadSize(usize),
    /// A header field breaks the identifier rules.
    #[error("malformed envelope header")]
    BadHeader,
    /// The envelope is addressed to another device.
    #[error("envelope is addressed to another device")]
    WrongDevice,
    /// The job's deadline has passed.
    #[error("job deadline has passed")]
    DeadlinePassed,
    /// Decryption failed: the envelope was altered, or not sealed to this key.
    #[error("envelope does not open with this key (altered or misaddressed)")]
    Decrypt,
    /// The envelope opened but was sealed by someone other than the pinned coordinator.
    #[error("envelope was sealed by an unexpected sender")]
    WrongSender,
    /// The opened body disagrees with the header or is malformed.
    #[error("envelope body disagrees with its header")]
    Mismatch,
    /// The Noise library refused its parameters (a bug, not an input problem).
    #[error("noise setup failed")]
    Noise,
}

/// The file type of a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LabelFormat {
    /// Zebra Programming Language.
    Zpl,
    /// PDF document.
    Pdf,
    /// PNG image.
    Png,
}

impl LabelFormat {
    /// Lowercase name, as in the API (`zpl`, `pdf`, `png`).
    pub fn as_str(self) -> &'static str {
        match self {
            LabelFormat::Zpl => "zpl",
            LabelFormat::Pdf => "pdf",
            LabelFormat::Png => "png",
        }
    }
}

/// The clear part of a sealed job: what relays need to route it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobHeader {
    /// The job.
    pub job_id: String,
    /// The tenant of the job.
    pub tenant_id: String,
    /// The site of the destination device.
    pub site_id: String,
    /// The destination device.
    pub device_id: String,
    /// The printer (its name on the destination agent).
    pub printer: String,
    /// The agent must not print after this time, unix milliseconds.
    pub deadline_ms: u64,
    /// Delivery attempt number, starting at 1.
    pub attempt: u32,
}

impl JobHeader {
    fn validate(&self) -> Result<(), EnvelopeError> {
        for id in [
            &self.job_id,
            &self.tenant_id,
            &self.site_id,
            &self.device_id,
            &self.printer,
        ] {
            validate_id(id).map_err(|_| EnvelopeError::BadHeader)?;
        }
        Ok(())
    }

    fn prologue(&self) -> Result<Vec<u8>, EnvelopeError> {
        let mut p = PROLOGUE_DOMAIN.to_vec();
        p.extend(postcard::to_allocvec(self).map_err(|_| EnvelopeError::BadHeader)?);
        Ok(p)
    }
}

/// A label sealed to one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedJob {
    /// Readable by every relay; bound to the ciphertext.
    pub header: JobHeader,
    /// The Noise `X` handshake message; its payload is the body's metadata.
    pub handshake: Vec<u8>,
    /// The label bytes as Noise transport messages, in order.
    pub chunks: Vec<Vec<u8>>,
}

const DIGEST_DOMAIN: &[u8] = b"sealprint/sealed-job-digest/v1\0";

impl SealedJob {
    /// SHA-256 of the whole envelope (header, handshake message and every chunk, each
    /// length-prefixed, under a domain prefix). The destination signs its outcome over this
    /// digest, and the coordinator computed the same when it sealed the job, so an outcome
    /// names the very envelope that was opened. Every envelope differs (fresh ephemeral key).
    ///
    /// # Errors
    /// [`EnvelopeError::BadHeader`] when the header cannot be encoded.
    pub fn digest(&self) -> Result<[u8; 32], EnvelopeError> {
        use sha2::{Digest, Sha256};
        let header = postcard::to_allocvec(&self.header).map_err(|_| EnvelopeError::BadHeader)?;
        let mut h = Sha256::new();
        h.update(DIGEST_DOMAIN);
        for part in [&header, &self.handshake] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.update((self.chunks.len() as u64).to_be_bytes());
        for chunk in &self.chunks {
            h.update((chunk.len() as u64).to_be_bytes());
            h.update(chunk);
        }
        Ok(h.finalize().into())
    }
}

/// An opened label. Its bytes are wiped when it is dropped.
pub struct Label {
    /// The job.
    pub job_id: String,
    /// The label's file type.
    pub format: LabelFormat,
    /// The label bytes.
    pub data: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Label")
            .field("job_id", &self.job_id)
            .field("format", &self.format)
            .field("len", &self.data.len())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct BodyMeta {
    job_id: String,
    format: LabelFormat,
    len: u32,
}

fn params() -> Result<snow::params::NoiseParams, EnvelopeError> {
    NOISE_PARAMS.parse().map_err(|_| EnvelopeError::Noise)
}

/// Seals `data` to the recipient's X25519 key, as the sender holding `sender_secret`.
///
/// # Errors
/// [`EnvelopeError::BadSize`] or [`EnvelopeError::BadHeader`] on bad input.
pub fn seal(
    header: JobHeader,
    format: LabelFormat,
    data: &[u8],
    sender_secret: &[u8; 32],
    recipient_public: &[u8; 32],
) -> Result<SealedJob, EnvelopeError> {
    if data.is_empty() || data.len() > MAX_LABEL_LEN {
        return Err(EnvelopeError::BadSize(data.len()));
    }
    header.validate()?;
    let prologue = header.prologue()?;
    let mut hs = snow::Builder::new(params()?)
        .local_private_key(sender_secret)
        .remote_public_key(recipient_public)
        .prologue(&prologue)
        .build_initiator()
        .map_err(|_| EnvelopeError::Noise)?;
    let meta = BodyMeta {
        job_id: header.job_id.clone(),
        format,
        // data.len() <= MAX_LABEL_LEN, which fits in u32.
        len: data.len() as u32,
    };
    let meta = postcard::to_allocvec(&meta).map_err(|_| EnvelopeError::BadHeader)?;
    let mut buf = vec![0u8; NOISE_MAX];
    let n = hs
        .write_message(&meta, &mut buf)
        .map_err(|_| EnvelopeError::Noise)?;
    let handshake = buf[..n].to_vec();
    let mut transport = hs.into_transport_mode().map_err(|_| EnvelopeError::Noise)?;
    let mut chunks = Vec::with_capacity(data.len().div_ceil(CHUNK));
    for piece in data.chunks(CHUNK) {
        let mut out = vec![0u8; piece.len() + TAG_LEN];
        let n = transport
            .write_message(piece, &mut out)
            .map_err(|_| EnvelopeError::Noise)?;
        out.truncate(n);
        chunks.push(out);
    }
    Ok(SealedJob {
        header,
        handshake,
        chunks,
    })
}

/// Opens an envelope addressed to `own_device`, checking it was sealed by
/// `expected_sender` and that `now_ms` is not past its deadline.
///
/// # Errors
/// The [`EnvelopeError`] that says what is wrong; nothing of the label is returned then.
pub fn open(
    sealed: &SealedJob,
    recipient_secret: &[u8; 32],
    expected_sender: &[u8; 32],
    own_device: &str,
    now_ms: u64,
) -> Result<Label, EnvelopeError> {
    let header = &sealed.header;
    header.validate()?;
    if header.device_id != own_device {
        return Err(EnvelopeError::WrongDevice);
    }
    if now_ms > header.deadline_ms {
        return Err(EnvelopeError::DeadlinePassed);
    }
    if sealed.chunks.is_empty() || sealed.chunks.len() > MAX_CHUNKS {
        return Err(EnvelopeError::Mismatch);
    }
    let prologue = header.prologue()?;
    let mut hs = snow::Builder::new(params()?)
        .local_private_key(recipient_secret)
        .prologue(&prologue)
        .build_responder()
        .map_err(|_| EnvelopeError::Noise)?;
    let mut buf = Zeroizing::new(vec![0u8; NOISE_MAX]);
    let n = hs
        .read_message(&sealed.handshake, &mut buf)
        .map_err(|_| EnvelopeError::Decrypt)?;
    if hs.get_remote_static() != Some(expected_sender.as_slice()) {
        return Err(EnvelopeError::WrongSender);
    }
    let meta: BodyMeta = postcard::from_bytes(&buf[..n]).map_err(|_| EnvelopeError::Mismatch)?;
    let len = meta.len as usize;
    if meta.job_id != header.job_id
        || len == 0
        || len > MAX_LABEL_LEN
        || len.div_ceil(CHUNK) != sealed.chunks.len()
    {
        return Err(EnvelopeError::Mismatch);
    }
    let mut transport = hs.into_transport_mode().map_err(|_| EnvelopeError::Noise)?;
    let mut data = Zeroizing::new(Vec::with_capacity(len));
    for chunk in &sealed.chunks {
        if chunk.len() > NOISE_MAX {
            return Err(EnvelopeError::Mismatch);
        }
        let n = transport
            .read_message(chunk, &mut buf)
            .map_err(|_| EnvelopeError::Decrypt)?;
        if data.len() + n > len {
            return Err(EnvelopeError::Mismatch);
        }
        data.extend_from_slice(&buf[..n]);
    }
    if data.len() != len {
        return Err(EnvelopeError::Mismatch);
    }
    Ok(Label {
        job_id: meta.job_id,
        format: meta.format,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x25519_dalek::{PublicKey, StaticSecret};

    fn keys(seed: u8) -> ([u8; 32], [u8; 32]) {
        let s = StaticSecret::from([seed; 32]);
        (s.to_bytes(), PublicKey::from(&s).to_bytes())
    }

    fn header() -> JobHeader {
        JobHeader {
            job_id: "job-1".into(),
            tenant_id: "tnt-1".into(),
            site_id: "site-1".into(),
            device_id: "dev-1".into(),
            printer: "zebra-1".into(),
            deadline_ms: 10_000,
            attempt: 1,
        }
    }

    #[test]
    fn seal_open_roundtrip_small_and_large() {
        let (cs, cp) = keys(1);
        let (ds, dp) = keys(2);
        for len in [1usize, 100, CHUNK, CHUNK + 1, 300_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal(header(), LabelFormat::Zpl, &data, &cs, &dp).expect("seals");
            let label = open(&sealed, &ds, &cp, "dev-1", 5_000).expect("opens");
            assert_eq!(label.data.as_slice(), data.as_slice());
            assert_eq!(label.job_id, "job-1");
            assert_eq!(label.format, LabelFormat::Zpl);
        }
    }

    #[test]
    fn digest_names_one_envelope() {
        let (cs, _) = keys(1);
        let (_, dp) = keys(2);
        let data = b"^XA^FDhello^FS^XZ";
        let a = seal(header(), LabelFormat::Zpl, data, &cs, &dp).expect("seals");
        let b = seal(header(), LabelFormat::Zpl, data, &cs, &dp).expect("seals");
        let da = a.digest().expect("digest");
        assert_eq!(da, a.clone().digest().expect("digest"));
        // Same job, same label, sealed twice: fresh ephemeral keys, different envelopes.
        assert_ne!(da, b.digest().expect("digest"));
        let mut moved = a.clone();
        moved.header.attempt = 2;
        assert_ne!(da, moved.digest().expect("digest"));
        let mut cut = a;
        cut.chunks[0].pop();
        assert_ne!(da, cut.digest().expect("digest"));
    }

    #[test]
    fn refusals_are_typed() {
        let (cs, cp) = keys(1);
        let (ds, dp) = keys(2);
        let (other_s, other_p) = keys(3);
        let data = b"^XA^FDhello^FS^XZ";
        let sealed = seal(header(), LabelFormat::Zpl, data, &cs, &dp).expect("seals");
        assert_eq!(
            open(&sealed, &ds, &cp, "dev-2", 5_000).map(|_| ()),
            Err(EnvelopeError::WrongDevice)
        );
        assert_eq!(
            open(&sealed, &ds, &cp, "dev-1", 10_001).map(|_| ()),
            Err(EnvelopeError::DeadlinePassed)
        );
        assert_eq!(
            open(&sealed, &other_s, &cp, "dev-1", 5_000).map(|_| ()),
            Err(EnvelopeError::Decrypt)
        );
        assert_eq!(
            open(&sealed, &ds, &other_p, "dev-1", 5_000).map(|_| ()),
            Err(EnvelopeError::WrongSender)
        );
        // A relay that rewrites the header (say, a later deadline or another printer) breaks it.
        let mut moved = sealed.clone();
        moved.header.deadline_ms = 20_000;
        assert_eq!(
            open(&moved, &ds, &cp, "dev-1", 5_000).map(|_| ()),
            Err(EnvelopeError::Decrypt)
        );
        let mut flipped = sealed.clone();
        flipped.chunks[0][0] ^= 1;
        assert_eq!(
            open(&flipped, &ds, &cp, "dev-1", 5_000).map(|_| ()),
            Err(EnvelopeError::Decrypt)
        );
        let mut dropped = sealed.clone();
        dropped.chunks.clear();
        assert_eq!(
            open(&dropped, &ds, &cp, "dev-1", 5_000).map(|_| ()),
            Err(EnvelopeError::Mismatch)
        );
        // Sealed by someone else with the same recipient: opens only to WrongSender.
        let forged = seal(header(), LabelFormat::Zpl, data, &other_s, &dp).expect("seals");
        assert_eq!(
            open(&forged, &ds, &cp, "dev-1", 5_000).map(|_| ()),
            Err(EnvelopeError::WrongSender)
        );
        assert_eq!(
            seal(header(), LabelFormat::Zpl, &[], &cs, &dp).map(|_| ()),
            Err(EnvelopeError::BadSize(0))
        );
    }
}
