//! What the tests, the conformance suite and the SDK's live tests need and
//! production does not, behind the `testing` feature: servers on fresh
//! databases of either engine (`harness`) and the drift check between the
//! committed spec and the code (`drift`).

pub mod drift;
pub mod harness;
