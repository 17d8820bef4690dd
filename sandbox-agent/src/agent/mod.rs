//! Code that runs in the agent: one privileged process per sandbox, outside it. It builds the
//! sandbox ([`sandbox`]), serves the daemon ([`serve`]) or runs standalone ([`standalone`]), and
//! supervises the program and its helper processes ([`supervise`], a pure supervision tree;
//! [`children`] starts and reaps the helpers).

pub mod argfiles;
pub mod children;
pub mod dns;
pub mod forward;
pub mod health;
pub mod mountinject;
pub mod rendezvous;
pub mod sandbox;
pub mod seccomp;
pub mod serve;
pub mod standalone;
pub mod supervise;
pub mod vpn;
pub mod x11;
