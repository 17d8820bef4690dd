//! `ListProfiles`: any user.

use super::{internal, reply};
use crate::conn::Conn;
use crate::registry::ListProfiles;
use crate::Shared;
use oz_wire::{DaemonReply, WireError};

pub async fn list_profiles(conn: &Conn, shared: &Shared) -> Result<(), WireError> {
    let r = shared.registry.send(ListProfiles).await.map(DaemonReply::Profiles).map_err(internal);
    reply(conn, r).await
}
