//! oz wire protocol: typed messages for each channel direction, length-prefixed bincode framing,
//! file-descriptor passing, and the blocking client library.

pub mod spec;

pub use spec::LaunchSpec;
