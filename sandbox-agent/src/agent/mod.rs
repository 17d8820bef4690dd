//! Code that runs in the agent: one privileged process per sandbox, outside it. It builds the
//! sandbox ([`sandbox`]), serves the daemon ([`serve`]) or runs standalone ([`standalone`]), and
//! supervises the program ([`supervise`], a pure state machine).

pub mod argfiles;
pub mod health;
pub mod mountinject;
pub mod rendezvous;
pub mod sandbox;
pub mod seccomp;
pub mod serve;
pub mod standalone;
pub mod supervise;
pub mod x11;
