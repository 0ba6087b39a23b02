//! The request-response codec: one [`Request`] and one [`Response`] per stream, each a
//! [`sealprint_protocol::codec`] frame. A frame longer than the limit is refused from its
//! length prefix, before any of it is read.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use sealprint_protocol::codec::{decode_payload, encode_frame, payload_len, LEN_PREFIX};
use sealprint_protocol::{Request, Response, DEFAULT_MAX_FRAME};
use serde::de::DeserializeOwned;

/// The libp2p protocol name of the sealprint mesh.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/sealprint/mesh/1");

/// Frames requests and responses with a size limit.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    /// Largest frame accepted or sent.
    pub max_frame: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
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
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await?;
    let msg = decode_payload(&payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
    // Frames can carry sealed jobs; they are ciphertext, but wipe the buffer anyway.
    zeroize_vec(payload);
    msg
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
        read_frame(io, self.max_frame).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_frame).await
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
        write_frame(io, &res, self.max_frame).await
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
        let mut codec = FrameCodec { max_frame: 64 };
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
}
