//! Gateway usage reports (moving into the gateway area).

pub mod usage;
