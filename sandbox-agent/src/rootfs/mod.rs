//! root filesystem construction (in progress)
