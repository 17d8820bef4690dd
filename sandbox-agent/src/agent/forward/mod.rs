//! Socket forwarders (`networking.sockets`): a host service appears on the sandbox's loopback
//! (`client`), or a sandbox service on the host's (`server`), in one hop.
//!
//! The agent itself joins the two ends, in its own event loop: a stream connection is spliced
//! (`splice(2)` through a pipe per direction, [`stream`]), a datagram is received and sent
//! once ([`dgram`]); no relay process, no second copy through user space. The sandbox's end
//! is a socket created in its network namespace ([`sockets::NetNs`]); the host's end stays on
//! loopback, or is a unix socket connected as the user, or a socket the user owns in the
//! sandbox's forwarder directory ([`plan`] says which).
//!
//! Each forwarder is a helper slot of the supervision tree, run in the agent instead of in a
//! process: starting it opens its listening socket, stopping it closes that socket and every
//! connection; a forwarder whose listening socket fails is closed and reported as exited, and
//! the tree restarts it within its budget. Each one holds at most [`MAX_CONNS`] connections
//! (or datagram sessions): past that the listening socket is not watched until one ends, so
//! the kernel's backlog, not the agent, holds the rest.

mod creds;
pub mod dgram;
mod epoll;
pub mod plan;
mod sockets;
pub mod stream;

use epoll::Epoll;
use nix::errno::Errno;
use oz_profiles::profile::SocketForward;
use oz_sandbox::user::UserInfo;
use plan::{Kind, Plan};
use sockets::Context;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Concurrent connections (or datagram sessions) per forwarder.
pub const MAX_CONNS: usize = 64;
/// Connections accepted per listener event (fairness with the rest of the loop).
const ACCEPT_BATCH: usize = 16;
/// Datagrams moved per socket event.
const DGRAM_BATCH: usize = 64;
const EVENTS: usize = 128;

/// Epoll tokens: forwarder index in the top 16 bits, then the connection id (0 = the
/// listening socket), then which of the connection's two sockets.
fn token(fwd: usize, id: u64, sock: usize) -> u64 {
    ((fwd as u64) << 48) | (id << 1) | sock as u64
}

fn untoken(t: u64) -> (usize, u64, usize) {
    ((t >> 48) as usize, (t & ((1 << 48) - 1)) >> 1, (t & 1) as usize)
}

struct StreamConn {
    conn: stream::Conn,
    /// The events each socket is registered for (None: not in the epoll set).
    reg: [Option<u32>; 2],
}

struct Forwarder {
    plan: Plan,
    listener: Option<OwnedFd>,
    /// Whether the listener is in the epoll set (not while at the connection cap).
    armed: bool,
    conns: HashMap<u64, StreamConn>,
    sessions: dgram::Sessions,
    next_id: u64,
}

impl Forwarder {
    fn live(&self) -> usize {
        self.conns.len() + self.sessions.list.len()
    }
}

/// Every forwarder of one sandbox.
pub struct Forwarders {
    epoll: Epoll,
    ctx: Context,
    list: Vec<Forwarder>,
    /// The sandbox's forwarder directory on the host (server unix sockets).
    dir: PathBuf,
    buf: Vec<u8>,
}

/// The sandbox's forwarder directory: `<state_dir>/forward/<id>`.
pub fn dir(state_dir: &Path, id: u64) -> PathBuf {
    oz_wire::state::forward_dir(state_dir, id)
}

impl Forwarders {
    /// Plan the forwarders of `sockets` for the sandbox whose init is `init_pid`; nothing is
    /// opened yet. Entries that cannot be forwarded are returned as messages for the log.
    pub fn new(
        sockets: &[SocketForward],
        init_pid: i32,
        user: UserInfo,
        dir: PathBuf,
    ) -> Result<(Forwarders, Vec<String>), String> {
        let mut warnings = Vec::new();
        let mut list = Vec::new();
        for (i, s) in sockets.iter().enumerate() {
            match plan::plan(i, s, &dir) {
                Ok(plan) => list.push(plan),
                Err(e) => warnings.push(e.to_string()),
            }
        }
        let netns = sockets::NetNs::open(init_pid).map_err(|e| format!("network namespace of pid {init_pid}: {e}"))?;
        let epoll = Epoll::new().map_err(|e| format!("epoll_create1: {e}"))?;
        let ctx = Context { netns, user };
        let mut f = Forwarders { epoll, ctx, list: Vec::new(), dir, buf: vec![0; dgram::MAX_DATAGRAM] };
        for plan in list {
            f.add(plan)?;
        }
        Ok((f, warnings))
    }

    /// How many forwarders there are (opened or not).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether forwarder `i` listens.
    pub fn is_listening(&self, i: usize) -> bool {
        self.list.get(i).is_some_and(|f| f.listener.is_some() && f.armed)
    }

    /// Add a forwarder (an external one, asked for at run time); returns its index. Not
    /// opened yet.
    pub fn add(&mut self, plan: Plan) -> Result<usize, String> {
        if sockets::host_path(&plan.listen).is_some() {
            sockets::make_dir(&self.dir).map_err(|e| format!("forwarder directory {}: {e}", self.dir.display()))?;
        }
        self.list.push(Forwarder {
            plan,
            listener: None,
            armed: false,
            conns: HashMap::new(),
            sessions: dgram::Sessions::default(),
            next_id: 1,
        });
        Ok(self.list.len() - 1)
    }

    /// The plan of forwarder `i`.
    pub fn plan(&self, i: usize) -> &Plan {
        &self.list[i].plan
    }

    /// The forwarders' names, in slot order.
    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|f| f.plan.name.clone()).collect()
    }

    /// What a forwarder listens on and reaches, for the log.
    pub fn describe(&self, i: usize) -> String {
        let p = &self.list[i].plan;
        format!("forwarder {}: {} -> {}", p.name, p.listen.addr, p.connect.addr)
    }

    /// The fd the agent's loop polls for input.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Open forwarder `i`'s listening socket.
    pub fn start(&mut self, i: usize) -> Result<(), String> {
        self.stop(i);
        let f = &mut self.list[i];
        let fd = sockets::listen(&f.plan.listen, f.plan.kind, &self.ctx)
            .map_err(|e| format!("listen on {}: {e}", f.plan.listen.addr))?;
        self.epoll.add(fd.as_fd(), epoll::IN, token(i, 0, 0)).map_err(|e| format!("epoll_ctl: {e}"))?;
        f.listener = Some(fd);
        f.armed = true;
        Ok(())
    }

    /// Close forwarder `i`: its listening socket and every connection.
    pub fn stop(&mut self, i: usize) {
        let f = &mut self.list[i];
        if let Some(l) = f.listener.take() {
            if f.armed {
                self.epoll.delete(l.as_fd());
            }
            if let Some(p) = sockets::host_path(&f.plan.listen) {
                let _ = std::fs::remove_file(p);
            }
        }
        f.armed = false;
        for (_, c) in f.conns.drain() {
            for s in &c.conn.socks {
                self.epoll.delete(s.as_fd());
            }
        }
        for (_, s) in f.sessions.list.drain(..) {
            self.epoll.delete(s.sock.as_fd());
        }
    }

    /// Live connections and sessions of every forwarder.
    pub fn connections(&self) -> usize {
        self.list.iter().map(Forwarder::live).sum()
    }

    /// Handle what is ready; returns the forwarders that failed (already closed) and why.
    pub fn service(&mut self) -> Vec<(usize, String)> {
        let mut failed = Vec::new();
        for (events, t) in self.epoll.ready(EVENTS) {
            let (i, id, sock) = untoken(t);
            if i >= self.list.len() || self.list[i].listener.is_none() {
                continue;
            }
            let result = match (id, self.list[i].plan.kind) {
                (0, Kind::Stream) => self.accept(i, events),
                (0, Kind::Datagram) => self.datagrams_in(i, events),
                (_, Kind::Stream) => {
                    self.conn_event(i, id, sock, events);
                    Ok(())
                }
                (_, Kind::Datagram) => {
                    self.replies(i, id);
                    Ok(())
                }
            };
            if let Err(why) = result {
                self.stop(i);
                failed.push((i, why));
            }
            self.rearm(i);
        }
        failed
    }

    /// Close datagram sessions idle for too long.
    pub fn sweep(&mut self, now: Instant) {
        for f in &mut self.list {
            for id in f.sessions.idle(now) {
                if let Some(s) = f.sessions.remove(id) {
                    self.epoll.delete(s.sock.as_fd());
                }
            }
        }
        for i in 0..self.list.len() {
            self.rearm(i);
        }
    }

    /// Watch the listener again once below the cap; stop watching it at the cap.
    fn rearm(&mut self, i: usize) {
        let f = &mut self.list[i];
        let Some(l) = &f.listener else { return };
        let want = f.live() < MAX_CONNS || f.plan.kind == Kind::Datagram;
        if want != f.armed {
            if want {
                let _ = self.epoll.add(l.as_fd(), epoll::IN, token(i, 0, 0));
            } else {
                self.epoll.delete(l.as_fd());
            }
            f.armed = want;
        }
    }

    fn accept(&mut self, i: usize, events: u32) -> Result<(), String> {
        for _ in 0..ACCEPT_BATCH {
            let f = &self.list[i];
            if f.live() >= MAX_CONNS {
                return Ok(());
            }
            let Some(listener) = &f.listener else { return Ok(()) };
            let accepted = match sockets::accept(listener.as_fd()) {
                Ok(Some(fd)) => fd,
                Ok(None) if events & epoll::ERR != 0 => return Err("listening socket closed".into()),
                Ok(None) => return Ok(()),
                Err(Errno::ECONNABORTED | Errno::EINTR | Errno::EPROTO | Errno::EPERM) => continue,
                Err(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM) => return Ok(()),
                Err(e) => return Err(format!("accept: {e}")),
            };
            // A refused connect closes the accepted socket: the peer sees the refusal as EOF.
            let Ok((connected, connecting)) = sockets::connect(&f.plan.connect, Kind::Stream, &self.ctx) else {
                continue;
            };
            let Ok(conn) = stream::Conn::new(accepted, connected, connecting) else { continue };
            let f = &mut self.list[i];
            let id = f.next_id;
            f.next_id += 1;
            f.conns.insert(id, StreamConn { conn, reg: [None, None] });
            self.conn_event(i, id, 1, 0);
        }
        Ok(())
    }

    /// Move data of connection `id` and update what its sockets wait for; close it when done.
    fn conn_event(&mut self, i: usize, id: u64, sock: usize, events: u32) {
        let f = &mut self.list[i];
        let Some(c) = f.conns.get_mut(&id) else { return };
        let mut over = false;
        if c.conn.connecting && sock == 1 && events != 0 {
            match sockets::take_error(&c.conn.socks[1]) {
                Ok(()) => c.conn.connecting = false,
                Err(_) => over = true,
            }
        }
        // Readable: data leaves this socket; writable: data waits for it; else both ways.
        let which = match (events & epoll::ERR != 0, events & epoll::IN != 0, events & epoll::OUT != 0) {
            (false, true, false) => [sock == 0, sock == 1],
            (false, false, true) => [sock == 1, sock == 0],
            _ => [true, true],
        };
        over = over || c.conn.pump_dirs(which).unwrap_or(true);
        if !over {
            for s in 0..2 {
                let want = c.conn.interest(s);
                let mask = if want.read { epoll::IN } else { 0 } | if want.write { epoll::OUT } else { 0 };
                let fd = c.conn.socks[s].as_fd();
                let ok = match (c.reg[s], mask) {
                    (Some(m), _) if m == mask => Ok(()),
                    (Some(_), 0) => {
                        self.epoll.delete(fd);
                        Ok(())
                    }
                    (Some(_), _) => self.epoll.modify(fd, mask, token(i, id, s)),
                    (None, 0) => Ok(()),
                    (None, _) => self.epoll.add(fd, mask, token(i, id, s)),
                };
                c.reg[s] = (mask != 0).then_some(mask);
                over |= ok.is_err();
            }
        }
        if over {
            if let Some(c) = f.conns.remove(&id) {
                for (s, reg) in c.reg.iter().enumerate() {
                    if reg.is_some() {
                        self.epoll.delete(c.conn.socks[s].as_fd());
                    }
                }
            }
        }
    }

    /// Datagrams from peers on the listening side: each to its peer's session.
    fn datagrams_in(&mut self, i: usize, events: u32) -> Result<(), String> {
        for _ in 0..DGRAM_BATCH {
            let f = &mut self.list[i];
            let Some(listener) = &f.listener else { return Ok(()) };
            let (n, peer) = match dgram::recv_from(listener, &mut self.buf) {
                Ok(Some(got)) => got,
                Ok(None) if events & epoll::ERR != 0 && events & epoll::IN == 0 => {
                    return Err("bound socket closed".into())
                }
                Ok(None) => return Ok(()),
                Err(Errno::ECONNREFUSED | Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(e) => return Err(format!("recvfrom: {e}")),
            };
            let id = match f.sessions.find(&peer) {
                Some(id) => id,
                None => {
                    if f.sessions.list.len() >= MAX_CONNS {
                        if let Some(old) = f.sessions.oldest().and_then(|o| f.sessions.remove(o)) {
                            self.epoll.delete(old.sock.as_fd());
                        }
                    }
                    let Ok((sock, _)) = sockets::connect(&f.plan.connect, Kind::Datagram, &self.ctx) else {
                        continue;
                    };
                    let id = f.next_id;
                    f.next_id += 1;
                    if self.epoll.add(sock.as_fd(), epoll::IN, token(i, id, 0)).is_err() {
                        continue;
                    }
                    f.sessions.insert(id, peer, sock);
                    id
                }
            };
            if let Some(s) = f.sessions.get_mut(id) {
                s.last = Instant::now();
                let _ = dgram::send(&s.sock, &self.buf[..n]);
            }
        }
        Ok(())
    }

    /// Replies on session `id`'s socket: back to its peer through the listening socket.
    fn replies(&mut self, i: usize, id: u64) {
        let f = &mut self.list[i];
        let Some(listener) = &f.listener else { return };
        let Some(s) = f.sessions.get_mut(id) else { return };
        for _ in 0..DGRAM_BATCH {
            match dgram::recv(&s.sock, &mut self.buf) {
                Ok(Some(n)) => {
                    s.last = Instant::now();
                    if let Some(peer) = &s.peer {
                        let _ = dgram::send_to(listener, &self.buf[..n], peer);
                    }
                }
                Ok(None) => return,
                // Nothing listens on the far end (yet): the session stays.
                Err(Errno::ECONNREFUSED | Errno::EINTR) => {}
                Err(_) => {
                    if let Some(s) = f.sessions.remove(id) {
                        self.epoll.delete(s.sock.as_fd());
                    }
                    return;
                }
            }
        }
    }
}

impl Drop for Forwarders {
    fn drop(&mut self) {
        for i in 0..self.list.len() {
            self.stop(i);
        }
        if std::fs::remove_dir(&self.dir).is_ok() {
            // The shared parent goes when the last sandbox's directory has gone.
            if let Some(parent) = self.dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for (f, id, s) in [(0, 0, 0), (3, 17, 1), (65535, (1 << 47) - 1, 1)] {
            assert_eq!(untoken(token(f, id, s)), (f, id, s));
        }
    }
}
