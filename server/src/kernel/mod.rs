//! What every area shares and nothing in it depends on an area: the domain
//! error, the principal making a request, its context, pagination and ids.

pub mod clock;
pub mod context;
pub mod error;
pub mod ids;
pub mod page;
pub mod principal;
