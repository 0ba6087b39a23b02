//! Framing: a 4-byte big-endian length followed by a postcard-encoded message.
//!
//! Decoders tell "need more bytes" (`Ok(None)`) apart from "invalid" (`Err`), refuse a frame
//! longer than the caller's limit before reading it, and never allocate more than the bytes
//! they were given.

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// Default largest frame: room for the largest label, sealed, plus headers.
pub const DEFAULT_MAX_FRAME: usize = 9 * 1024 * 1024;
/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame announces (or would need) more bytes than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not a valid message.
    #[error("invalid frame payload")]
    Invalid,
    /// The payload decoded but was followed by unexpected bytes.
    #[error("trailing bytes after the message")]
    Trailing,
    /// The message could not be encoded (a bug, not an input problem).
    #[error("message could not be encoded")]
    Encode,
}

/// Encodes `msg` as one frame.
///
/// # Errors
/// [`FrameError::TooLarge`] when the payload exceeds `max`.
pub fn encode_frame<T: Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; LEN_PREFIX];
    let mut out =
        postcard::to_extend(msg, std::mem::take(&mut out)).map_err(|_| FrameError::Encode)?;
    let len = out.len() - LEN_PREFIX;
    if len > max || u32::try_from(len).is_err() {
        return Err(FrameError::TooLarge { len, max });
    }
    out[..LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Reads the payload length from a frame's prefix and checks it against `max`.
///
/// # Errors
/// [`FrameError::TooLarge`].
pub fn payload_len(prefix: [u8; LEN_PREFIX], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes a frame's payload (without its length prefix).
///
/// # Errors
/// [`FrameError::Invalid`] or [`FrameError::Trailing`].
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (msg, rest) = postcard::take_from_bytes(payload).map_err(|_| FrameError::Invalid)?;
    if !rest.is_empty() {
        return Err(FrameError::Trailing);
    }
    Ok(msg)
}

/// Decodes the first frame of `buf`: `Ok(None)` when more bytes are needed, otherwise the
/// message and how many bytes it used.
///
/// # Errors
/// [`FrameError`] when the frame is too large or its payload invalid.
pub fn decode_frame<T: DeserializeOwned>(
    buf: &[u8],
    max: usize,
) -> Result<Option<(T, usize)>, FrameError> {
    let Some(prefix) = buf.get(..LEN_PREFIX) else {
        return Ok(None);
    };
    let mut p = [0u8; LEN_PREFIX];
    p.copy_from_slice(prefix);
    let len = payload_len(p, max)?;
    let Some(payload) = buf.get(LEN_PREFIX..LEN_PREFIX + len) else {
        return Ok(None);
    };
    Ok(Some((decode_payload(payload)?, LEN_PREFIX + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ErrorCode, Request, Response};
    use crate::Hello;

    #[test]
    fn roundtrip_and_partial() {
        let msg = Request::Hello(Hello {
            certificate: vec![1, 2, 3],
            has_uplink: true,
        });
        let frame = encode_frame(&msg, DEFAULT_MAX_FRAME).expect("encodes");
        assert_eq!(
            frame,
            vec![0, 0, 0, 6, 0, 3, 1, 2, 3, 1],
            "golden frame of a hello"
        );
        for cut in 0..frame.len() {
            assert_eq!(
                decode_frame::<Request>(&frame[..cut], DEFAULT_MAX_FRAME),
                Ok(None)
            );
        }
        assert_eq!(
            decode_frame::<Request>(&frame, DEFAULT_MAX_FRAME),
            Ok(Some((msg, frame.len())))
        );
    }

    #[test]
    fn refuses_oversized_and_garbage() {
        assert_eq!(
            decode_frame::<Request>(&[0, 0, 1, 0], 100),
            Err(FrameError::TooLarge { len: 256, max: 100 })
        );
        assert_eq!(
            decode_frame::<Request>(&[0, 0, 0, 1, 200], 100),
            Err(FrameError::Invalid)
        );
        let ok = encode_frame(&Response::Ok, 100).expect("encodes");
        let mut trailing = ok.clone();
        trailing[3] += 1;
        trailing.push(0);
        assert_eq!(
            decode_frame::<Response>(&trailing, 100),
            Err(FrameError::Trailing)
        );
        let big = Response::Error {
            code: ErrorCode::Internal,
            message: "x".repeat(200),
        };
        assert!(matches!(
            encode_frame(&big, 100),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
