//! Bridged networking for oz sandboxes (`networking.type: bridge`).
//!
//! - [`range`]: the bridge's network, leasing addresses, collisions with host networks;
//! - [`lease`]: one file per bridged sandbox under `<state_dir>/net`, and the lock;
//! - [`rtnl`]: the bridge, veth pairs, addresses and routes over rtnetlink;
//! - [`nft`]: oz's nftables table (NAT, isolation, per-sandbox firewall) as nftables JSON;
//! - [`bridge`]: attaching a sandbox (everything above, in order) and releasing it;
//! - [`resolv`] and [`dns`]: the sandbox's resolv.conf and its DNS forwarder.
//!
//! Ownership: the bridge, the table and the forwarding setting are shared, created with the
//! first lease of a bridge and removed with its last; a veth pair, a lease and the firewall
//! rules belong to one sandbox. The agent attaches and releases; the daemon releases what a
//! dead agent held (from its lease file).

pub mod bridge;
pub mod dns;
pub mod lease;
pub mod nft;
pub mod openvpn;
pub mod range;
pub mod resolv;
pub mod rtnl;

pub use bridge::{attach, release, AttachRequest, Attached, NetError};
