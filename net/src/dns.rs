//! The sandbox's DNS forwarder: UDP and TCP listeners on 127.0.0.1:53 inside the sandbox's
//! network namespace (bound there by the agent), served from the host's namespace, where the
//! host's resolvers (127.0.0.53 included) are reachable. Queries are passed through unchanged;
//! the first upstream that answers wins. Bounded: at most [`MAX_INFLIGHT`] queries at once
//! (more are dropped, as a busy resolver would), each with a deadline.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

pub const MAX_INFLIGHT: usize = 64;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The forwarder's listening sockets.
pub struct Listeners {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

/// Bind 127.0.0.1:53 (UDP and TCP) inside the network namespace `netns`.
pub fn bind_in(netns: BorrowedFd<'_>) -> std::io::Result<Listeners> {
    use std::os::fd::AsRawFd;
    crate::rtnl::in_netns(netns.as_raw_fd(), || -> std::io::Result<Listeners> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 53));
        Ok(Listeners { udp: UdpSocket::bind(addr)?, tcp: TcpListener::bind(addr)? })
    })?
}

/// Serve forever (until the process is killed).
pub fn serve(l: Listeners, upstreams: Vec<SocketAddr>) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        l.udp.set_nonblocking(true)?;
        l.tcp.set_nonblocking(true)?;
        let udp = Arc::new(tokio::net::UdpSocket::from_std(l.udp)?);
        let tcp = tokio::net::TcpListener::from_std(l.tcp)?;
        let upstreams: Arc<[SocketAddr]> = upstreams.into();
        let slots = Arc::new(Semaphore::new(MAX_INFLIGHT));
        let mut buf = vec![0u8; 65535];
        loop {
            tokio::select! {
                r = udp.recv_from(&mut buf) => {
                    let Ok((n, client)) = r else { continue };
                    let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
                    let (query, udp, ups) = (buf[..n].to_vec(), udp.clone(), upstreams.clone());
                    tokio::spawn(async move {
                        if let Some(answer) = udp_query(&ups, &query).await {
                            let _ = udp.send_to(&answer, client).await;
                        }
                        drop(permit);
                    });
                }
                r = tcp.accept() => {
                    let Ok((stream, _)) = r else { continue };
                    let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
                    let ups = upstreams.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(CLIENT_TIMEOUT, tcp_client(stream, &ups)).await;
                        drop(permit);
                    });
                }
            }
        }
    })
}

async fn udp_query(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams {
        let local: SocketAddr =
            if up.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
        let Ok(sock) = tokio::net::UdpSocket::bind(local).await else { continue };
        if sock.connect(up).await.is_err() || sock.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        // The answer must carry the query's id (the first two bytes).
        let got = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            loop {
                let n = sock.recv(&mut buf).await.ok()?;
                if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
                    return Some(n);
                }
            }
        })
        .await;
        if let Ok(Some(n)) = got {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// One length-prefixed query from the client, its answer from the first upstream that gives one.
async fn tcp_client(mut client: tokio::net::TcpStream, upstreams: &[SocketAddr]) -> std::io::Result<()> {
    let len = client.read_u16().await? as usize;
    let mut query = vec![0u8; len];
    client.read_exact(&mut query).await?;
    for up in upstreams {
        let answer = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            let mut s = tokio::net::TcpStream::connect(up).await?;
            s.write_u16(len as u16).await?;
            s.write_all(&query).await?;
            let n = s.read_u16().await? as usize;
            let mut answer = vec![0u8; n];
            s.read_exact(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        })
        .await;
        if let Ok(Ok(answer)) = answer {
            client.write_u16(answer.len() as u16).await?;
            return client.write_all(&answer).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake upstream answering every UDP and TCP query with the query plus "!".
    fn echo_upstream() -> SocketAddr {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).unwrap();
        std::thread::spawn(move || loop {
            let mut b = [0u8; 512];
            let (n, from) = udp.recv_from(&mut b).unwrap();
            let mut a = b[..n].to_vec();
            a.push(b'!');
            udp.send_to(&a, from).unwrap();
        });
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for s in tcp.incoming() {
                let mut s = s.unwrap();
                let mut l = [0u8; 2];
                s.read_exact(&mut l).unwrap();
                let mut q = vec![0u8; u16::from_be_bytes(l) as usize];
                s.read_exact(&mut q).unwrap();
                q.push(b'!');
                s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
                s.write_all(&q).unwrap();
            }
        });
        addr
    }

    #[test]
    fn forwards_udp_and_tcp_skipping_a_dead_upstream() {
        let up = echo_upstream();
        let dead: SocketAddr = {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let l =
            Listeners { udp: UdpSocket::bind("127.0.0.1:0").unwrap(), tcp: TcpListener::bind("127.0.0.1:0").unwrap() };
        let (uaddr, taddr) = (l.udp.local_addr().unwrap(), l.tcp.local_addr().unwrap());
        std::thread::spawn(move || serve(l, vec![dead, up]));
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.send_to(b"\x12\x34query", uaddr).unwrap();
        let mut b = [0u8; 64];
        let n = c.recv(&mut b).unwrap();
        assert_eq!(&b[..n], b"\x12\x34query!");
        use std::io::{Read, Write};
        let mut t = std::net::TcpStream::connect(taddr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        t.write_all(b"\x00\x04abcd").unwrap();
        let mut l = [0u8; 2];
        t.read_exact(&mut l).unwrap();
        let mut a = vec![0u8; u16::from_be_bytes(l) as usize];
        t.read_exact(&mut a).unwrap();
        assert_eq!(a, b"abcd!");
    }
}
