//! The names users give organizations and projects (and keys): trimmed, 1 to
//! [`MAX_NAME_LEN`] characters.

use crate::kernel::error::{DomainError, DomainResult};

/// Longest name of an org or project, in characters.
pub const MAX_NAME_LEN: usize = 100;

/// A trimmed org or project name of 1 to [`MAX_NAME_LEN`] characters.
pub fn check_name(name: &str) -> DomainResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::Invalid {
            param: "name",
            message: "must be 1 to 100 characters".to_owned(),
        });
    }
    Ok(name.to_owned())
}
