//! The request-response codec: one [`Request`] and one [`Response`] per stream, each a
//! [`sealprint_protocol::codec`] frame. A frame longer than the limit is refused from its
//! length prefix, before any of it is read, and a frame's buffer grows with the bytes that
//! actually arrive (never reserved from the announced length).
//!
//! Until the peer behind a connection is verified (see the admission module), its frames may
//! be no larger than a hello or an enrollment request, and it gets one inbound stream at a
//! time; breaking either rule gets the connection closed.

use std::io;
use std::sync::Arc;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use sealprint_protocol::codec::{decode_payload, encode_frame, payload_len, LEN_PREFIX};
use sealprint_protocol::{Request, Response, DEFAULT_MAX_FRAME};
use serde::de::DeserializeOwned;

use crate::gate::{Gate, Handoff, StreamPermit};

/// The libp2p protocol name of the sealprint mesh.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/sealprint/mesh/1");

/// Largest frame from a peer not verified yet: a hello (a certificate) or an enrollment
/// request (token, key, hostname, version) and their answers fit in well under this.
pub const UNVERIFIED_MAX_FRAME: usize = 4 * 1024;

/// The first allocation of a frame buffer; it then doubles as bytes arrive.
const FIRST_CHUNK: usize = 16 * 1024;

/// Frames requests and responses with a size limit.
#[derive(Debug)]
pub struct FrameCodec {
    max_frame: usize,
    unverified_max_frame: usize,
    /// Set on codecs built by [`crate::build_swarm`]: the codec is then gated per connection.
    handoff: Option<Arc<Handoff>>,
    gate: Option<Arc<Gate>>,
    /// The unverified peer's one stream, held by this stream's codec until it is dropped.
    permit: Option<StreamPermit>,
}

impl FrameCodec {
    /// A codec that is not gated: every peer may send frames up to `max_frame`. For tools and
    /// tests; the swarm of [`crate::build_swarm`] uses a gated one.
    pub fn ungated(max_frame: usize) -> FrameCodec {
        FrameCodec {
            max_frame,
            unverified_max_frame: max_frame,
            handoff: None,
            gate: None,
            permit: None,
        }
    }

    pub(crate) fn gated(
        max_frame: usize,
        unverified_max_frame: usize,
        handoff: Arc<Handoff>,
    ) -> FrameCodec {
        FrameCodec {
            max_frame,
            unverified_max_frame: unverified_max_frame.min(max_frame),
            handoff: Some(handoff),
            gate: None,
            permit: None,
        }
    }

    /// The limit for a frame from the peer, or why nothing may be read.
    fn limit(&self) -> io::Result<usize> {
        if self.handoff.is_none() {
            return Ok(self.max_frame);
        }
        let Some(gate) = &self.gate else {
            return Err(denied("connection has no admission gate"));
        };
        if gate.is_closing() {
            return Err(denied("connection is being closed"));
        }
        Ok(if gate.is_verified() {
            self.max_frame
        } else {
            self.unverified_max_frame
        })
    }

    /// Admits an inbound stream: an unverified peer gets one at a time.
    fn admit_inbound(&mut self) -> io::Result<usize> {
        let limit = self.limit()?;
        if let Some(gate) = &self.gate {
            if !gate.is_verified() {
                match gate.take_stream() {
                    Some(p) => self.permit = Some(p),
                    None => return Err(denied("one stream at a time before a hello")),
                }
            }
        }
        Ok(limit)
    }

    async fn read<T, R>(&self, io: &mut R, limit: usize) -> io::Result<T>
    where
        T: DeserializeOwned,
        R: AsyncRead + Unpin + Send,
    {
        let result = read_frame(io, limit).await;
        if let (Err(e), Some(gate), Some(handoff)) = (&result, &self.gate, &self.handoff) {
            if e.kind() == io::ErrorKind::InvalidData && !gate.is_verified() {
                // An unverified peer sent an oversized or malformed frame: close it.
                handoff.report(gate);
            }
        }
        result
    }
}

impl Clone for FrameCodec {
    /// A clone shares the connection's gate; the prototype's clone (request-response building
    /// a connection's handler) takes the gate admission just handed over.
    fn clone(&self) -> Self {
        let gate = match &self.gate {
            Some(g) => Some(g.clone()),
            None => self.handoff.as_ref().and_then(|h| h.take()),
        };
        FrameCodec {
            max_frame: self.max_frame,
            unverified_max_frame: self.unverified_max_frame,
            handoff: self.handoff.clone(),
            gate,
            permit: None,
        }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::ungated(DEFAULT_MAX_FRAME)
    }
}

fn denied(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why)
}

async fn read_frame<T, R>(io: &mut R, max: usize) -> io::Result<T>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; LEN_PREFIX];
    io.read_exact(&mut prefix).await?;
    let len =
        payload_len(prefix, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let payload = read_payload(io, len).await?;
    let msg = decode_payload(&payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
    // Frames can carry sealed jobs; they are ciphertext, but wipe the buffer anyway.
    zeroize_vec(payload);
    msg
}

/// Reads exactly `len` bytes into a buffer that grows (doubling, from [`FIRST_CHUNK`]) as
/// they arrive, wiping each buffer it outgrows.
async fn read_payload<R>(io: &mut R, len: usize) -> io::Result<Vec<u8>>
where
    R: AsyncRead + Unpin + Send,
{
    let mut buf: Vec<u8> = Vec::with_capacity(len.min(FIRST_CHUNK));
    let mut chunk = [0u8; 4096];
    while buf.len() < len {
        let want = (len - buf.len()).min(chunk.len());
        let n = match io.read(&mut chunk[..want]).await {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) => {
                zeroize_vec(buf);
                return Err(e);
            }
        };
        if buf.len() + n > buf.capacity() {
            let grown = (buf.capacity() * 2).max(buf.len() + n).min(len);
            let mut bigger = Vec::with_capacity(grown);
            bigger.extend_from_slice(&buf);
            zeroize_vec(std::mem::replace(&mut buf, bigger));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    chunk.iter_mut().for_each(|b| *b = 0);
    Ok(buf)
}

async fn write_frame<T, W>(io: &mut W, msg: &T, max: usize) -> io::Result<()>
where
    T: serde::Serialize,
    W: AsyncWrite + Unpin + Send,
{
    let frame =
        encode_frame(msg, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    io.write_all(&frame).await?;
    io.close().await
}

fn zeroize_vec(mut v: Vec<u8>) {
    v.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&v);
}

impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let limit = self.admit_inbound()?;
        self.read(io, limit).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        // A stream we opened: no permit needed, but the size limit is the peer's.
        let limit = self.limit()?;
        self.read(io, limit).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, self.max_frame).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let written = write_frame(io, &res, self.max_frame).await;
        // The unverified peer's stream is done: it may open the next.
        self.permit = None;
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use libp2p::request_response::Codec;
    use sealprint_protocol::Hello;

    #[tokio::test]
    async fn roundtrip_and_limit() {
        let mut codec = FrameCodec::ungated(64);
        let req = Request::Hello(Hello {
            certificate: vec![9; 10],
            has_uplink: false,
        });
        let mut buf = Cursor::new(Vec::new());
        codec
            .write_request(&PROTOCOL, &mut buf, req.clone())
            .await
            .expect("writes");
        let mut rd = Cursor::new(buf.into_inner());
        let back = codec.read_request(&PROTOCOL, &mut rd).await.expect("reads");
        assert_eq!(back, req);

        let mut huge = Cursor::new(vec![0, 0, 1, 0]);
        let err = codec
            .read_request(&PROTOCOL, &mut huge)
            .await
            .expect_err("over the limit");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let mut garbage = Cursor::new(vec![0, 0, 0, 2, 250, 250]);
        let err = codec
            .read_response(&PROTOCOL, &mut garbage)
            .await
            .expect_err("garbage");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    fn hello_frame(cert_len: usize) -> Vec<u8> {
        let req = Request::Hello(Hello {
            certificate: vec![9; cert_len],
            has_uplink: false,
        });
        encode_frame(&req, usize::MAX).expect("encodes")
    }

    #[tokio::test]
    async fn an_unverified_peer_gets_one_small_stream_at_a_time() {
        let handoff = Arc::new(Handoff::default());
        let prototype = FrameCodec::gated(1 << 20, 64, handoff.clone());
        let gate = Arc::new(Gate::new(false));
        handoff.offer(gate.clone());
        let connection = prototype.clone();
        assert!(
            handoff.take().is_none(),
            "the connection's codec took the gate"
        );

        let mut first = connection.clone();
        let mut second = connection.clone();
        let mut rd = Cursor::new(hello_frame(10));
        first
            .read_request(&PROTOCOL, &mut rd)
            .await
            .expect("a small hello");
        let err = second
            .read_request(&PROTOCOL, &mut Cursor::new(hello_frame(10)))
            .await
            .expect_err("a second stream while the first is open");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        first
            .write_response(
                &PROTOCOL,
                &mut Cursor::new(Vec::new()),
                Response::Enrolled(sealprint_protocol::Enrolled {
                    certificate: Vec::new(),
                    ca_public: [0; 32],
                    coordinator_x25519: [0; 32],
                }),
            )
            .await
            .expect("answers");
        second
            .read_request(&PROTOCOL, &mut Cursor::new(hello_frame(10)))
            .await
            .expect("the next stream once the first is done");
        drop(second);

        let mut big = connection.clone();
        let err = big
            .read_request(&PROTOCOL, &mut Cursor::new(hello_frame(200)))
            .await
            .expect_err("larger than a hello");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(gate.violated(), "admission is told to close the connection");

        gate.set_verified(true);
        let mut verified = connection.clone();
        verified
            .read_request(&PROTOCOL, &mut Cursor::new(hello_frame(200)))
            .await
            .expect("a verified peer's frames go up to the full limit");

        let orphan = FrameCodec::gated(1 << 20, 64, Arc::new(Handoff::default())).clone();
        let err = orphan
            .clone()
            .read_request(&PROTOCOL, &mut Cursor::new(hello_frame(1)))
            .await
            .expect_err("no gate: nothing is read");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    /// A frame announcing far more than arrives costs only what arrived.
    #[tokio::test]
    async fn buffers_grow_with_the_bytes_received() {
        let mut bytes = (8u32 * 1024 * 1024).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1u8; 100]);
        let mut rd = Cursor::new(bytes);
        let mut prefix = [0u8; LEN_PREFIX];
        rd.read_exact(&mut prefix).await.expect("prefix");
        let err = read_payload(&mut rd, 8 * 1024 * 1024)
            .await
            .expect_err("the rest never comes");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut rd = Cursor::new(vec![3u8; 100_000]);
        let buf = read_payload(&mut rd, 100_000).await.expect("all of it");
        assert_eq!(buf.len(), 100_000);
        assert!(buf.capacity() < 2 * 100_000);
    }
}
