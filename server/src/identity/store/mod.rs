//! The identity area's storage: users, sessions and refresh tokens, codes and
//! tokens mailed for email verification and password reset, two-factor state,
//! organizations, members, invitations, projects, API keys and the shared key
//! epoch.

mod api_keys;
mod email;
mod invitations;
mod key_epoch;
mod orgs;
mod projects;
mod two_factor;
mod users;

pub use api_keys::StoredKey;
pub use email::Resent;
pub use invitations::Accepted;
pub use users::UserRow;
