//! What every area shares and nothing in it depends on an area: the domain
//! error, the principal making a request, its context, pagination, ids and
//! the IP networks settings list.

pub mod clock;
pub mod context;
pub mod error;
pub mod ids;
pub mod net;
pub mod page;
pub mod principal;
