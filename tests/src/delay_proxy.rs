//! A TCP proxy that holds every byte for a fixed time in each direction: a slow WAN link
//! between agents and the coordinator, for kernels without `tc netem` (like the one these
//! tests run on). Bytes are pipelined (each chunk waits its own delay, not the one before
//! it), so the link is slow, not narrow.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running proxy; stopped (with every connection it carries) on drop.
pub struct DelayProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
    traffic: Arc<Traffic>,
}

/// What went through a proxy.
#[derive(Debug, Default)]
struct Traffic {
    connections: AtomicU64,
    bytes: AtomicU64,
}

impl DelayProxy {
    /// Listens on `listen` and forwards each connection to `target`, every chunk held
    /// `delay` in each direction.
    ///
    /// # Errors
    /// When `listen` cannot be bound.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        delay: Duration,
    ) -> anyhow::Result<DelayProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let traffic = Arc::new(Traffic::default());
        let counted = traffic.clone();
        let task = tokio::spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let traffic = counted.clone();
                links.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    traffic.connections.fetch_add(1, Ordering::Relaxed);
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(
                        pipe(ri, wo, delay, &traffic.bytes),
                        pipe(ro, wi, delay, &traffic.bytes)
                    );
                });
            }
        });
        Ok(DelayProxy {
            addr,
            task,
            traffic,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections forwarded and bytes carried (both directions) so far.
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.traffic.connections.load(Ordering::Relaxed),
            self.traffic.bytes.load(Ordering::Relaxed),
        )
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    bytes: &AtomicU64,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
            bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_intact_and_late() {
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.expect("accept");
            let mut buf = vec![0u8; 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let delay = Duration::from_millis(100);
        let proxy = DelayProxy::start("127.0.0.1:0".parse().expect("addr"), target, delay)
            .await
            .expect("proxy");
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        let started = Instant::now();
        c.write_all(b"hello").await.expect("write");
        let mut got = [0u8; 5];
        c.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hello");
        // Out and back: two delays.
        assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
        assert_eq!(proxy.traffic(), (1, 10));
    }
}
