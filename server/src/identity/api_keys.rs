//! API keys: minted with a session by a member of the key's org, shown once,
//! listed without secrets, revoked at once.

use crate::audit::{self, AuditAction, Entry};
use crate::db::Db;
use crate::identity::accounts::normalize_email;
use crate::identity::key_cache::{KeyCache, KeyChange};
use crate::identity::model::{ApiKey, Role};
use crate::identity::names::check_name;
use crate::identity::notices::Notice;
use crate::identity::orgs::create_owned_by;
use crate::identity::passwords;
use crate::identity::store::{StoredKey, UserRow};
use crate::identity::tokens::digest;
use crate::kernel::context::RequestContext;
use crate::kernel::error::{DomainError, DomainResult, Resource};
use crate::kernel::ids::new_id;
use crate::kernel::ids::random_base62;
use crate::kernel::page::Page;
use crate::kernel::principal::{API_KEY_PREFIX, KeyLimits, Principal, Scope};
use crate::mail::Mailer;

pub const MAX_EXPIRES_IN_DAYS: u32 = 3650;
/// 32 base62 characters: about 190 bits.
const SECRET_LEN: usize = 32;
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub org_id: String,
    /// Narrows the key to one project of the org.
    pub project_id: Option<String>,
    pub expires_in_days: Option<u32>,
    pub limits: KeyLimits,
}

/// A stored key and, once only, its full text.
pub struct MintedKey {
    pub key: ApiKey,
    pub plain: String,
}

/// With `require_verified_email`, the caller's address must be verified.
/// Needs a recent sign-in or reauthentication (`step_up`).
pub async fn api_key_create(
    db: &Db,
    mail: &Mailer,
    principal: &Principal,
    require_verified_email: bool,
    step_up_window_secs: u64,
    input: NewApiKey,
    ctx: &RequestContext,
) -> DomainResult<MintedKey> {
    principal.require_session()?;
    super::step_up::require_recent(db, principal, step_up_window_secs, ctx.now).await?;
    let membership = db.membership(&input.org_id, &principal.user_id).await?;
    match membership.map(|m| m.role) {
        None => return Err(DomainError::NotFound(Resource::Organization)),
        Some(Role::External) => return Err(DomainError::RoleDenied),
        Some(_) => {}
    }
    if require_verified_email {
        let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
        if !user.email_verified {
            return Err(DomainError::EmailUnverified);
        }
    }
    if let Some(project_id) = &input.project_id {
        let project = db.project_by_id(project_id).await?;
        if project.is_none_or(|p| p.org_id != input.org_id) {
            return Err(DomainError::NotFound(Resource::Project));
        }
    }
    let minted = mint(db, &principal.user_id, input, ctx).await?;
    if let Some(user) = db.user_by_id(&principal.user_id).await? {
        let notice = Notice::KeyCreated { name: minted.key.name.clone() };
        super::notices::notify(db, mail, &user, notice, ctx).await?;
    }
    Ok(minted)
}

/// What `switchyard keys create` made.
pub struct Bootstrapped {
    pub minted: MintedKey,
    pub user_created: bool,
    pub org_created: bool,
}

/// Operator bootstrap on the server host: finds or creates the owner (by
/// email) and their org (by name), then mints a key. A new owner gets an
/// unguessable password nobody knows; they set one through a password reset.
pub async fn api_key_bootstrap(
    db: &Db,
    email: &str,
    org_name: &str,
    key_name: String,
    scopes: Vec<Scope>,
    ctx: &RequestContext,
) -> DomainResult<Bootstrapped> {
    let email = normalize_email(email)?;
    let (user_id, user_created) = match db.user_by_email(&email).await? {
        Some(user) => (user.id, false),
        None => (create_user_without_password(db, &email, ctx).await?, true),
    };
    let existing = db.memberships(&user_id, None, i64::MAX).await?;
    let (org_id, org_created) =
        match existing.into_iter().find(|m| m.org.name == org_name && m.role == Role::Owner) {
            Some(membership) => (membership.org.id, false),
            None => (create_owned_by(db, &user_id, org_name, ctx).await?.org.id, true),
        };
    let minted = mint(
        db,
        &user_id,
        NewApiKey {
            name: key_name,
            scopes,
            org_id,
            project_id: None,
            expires_in_days: None,
            limits: KeyLimits::default(),
        },
        ctx,
    )
    .await?;
    Ok(Bootstrapped { minted, user_created, org_created })
}

async fn create_user_without_password(db: &Db, email: &str, ctx: &RequestContext) -> DomainResult<String> {
    let unknown_password = random_base62(48);
    let password_hash =
        passwords::hash(unknown_password).await.map_err(|e| DomainError::Internal(e.to_string()))?;
    let user = UserRow {
        id: new_id("usr"),
        email: email.to_owned(),
        display_name: None,
        password_hash,
        email_verified: false,
        two_factor_enabled: false,
        created_at: ctx.now,
    };
    if !db.user_insert(&user).await? {
        return Err(DomainError::EmailTaken);
    }
    audit::record(db, ctx, Entry::own_account(AuditAction::UserRegistered, &user.id)).await?;
    Ok(user.id)
}

/// Validates and stores a key for `user_id`, whose right to the org the
/// caller has already checked.
async fn mint(db: &Db, user_id: &str, input: NewApiKey, ctx: &RequestContext) -> DomainResult<MintedKey> {
    let name = check_name(&input.name)?;
    if input.scopes.is_empty() {
        return Err(DomainError::Invalid { param: "scopes", message: "name at least one scope".to_owned() });
    }
    if input.expires_in_days.is_some_and(|days| days == 0 || days > MAX_EXPIRES_IN_DAYS) {
        return Err(DomainError::Invalid {
            param: "expires_in_days",
            message: "must be 1 to 3650".to_owned(),
        });
    }
    check_limits(&input.limits)?;
    let mut scopes = input.scopes;
    scopes.sort();
    scopes.dedup();
    let id = new_id("key");
    let secret = random_base62(SECRET_LEN);
    let now = ctx.now;
    let key = ApiKey {
        prefix: format!("{API_KEY_PREFIX}{id}"),
        scopes,
        org_id: input.org_id,
        project_id: input.project_id,
        user_id: user_id.to_owned(),
        name,
        created_at: now,
        expires_at: input.expires_in_days.map(|days| now + i64::from(days) * 86_400),
        last_used_at: None,
        revoked_at: None,
        limits: input.limits,
        id,
    };
    let stored = StoredKey { key, secret_hash: digest(&secret) };
    db.api_key_insert(&stored).await?;
    let key = stored.key;
    audit::record(db, ctx, Entry::in_org(AuditAction::ApiKeyCreated, user_id, &key.org_id, &key.id)).await?;
    Ok(MintedKey { plain: format!("{}_{secret}", key.prefix), key })
}

/// Most route names one key may be limited to.
const MAX_ALLOWED_MODELS: usize = 100;

fn check_limits(limits: &KeyLimits) -> DomainResult<()> {
    let invalid =
        |param: &'static str, message: &str| Err(DomainError::Invalid { param, message: message.to_owned() });
    if let Some(models) = &limits.allowed_models {
        if models.is_empty() || models.len() > MAX_ALLOWED_MODELS {
            return invalid("allowed_models", "name 1 to 100 models, or leave it out to allow every model");
        }
        if models.iter().any(|m| m.is_empty() || m.len() > 200 || m.chars().any(char::is_whitespace)) {
            return invalid("allowed_models", "model names are 1 to 200 characters without spaces");
        }
    }
    if limits.requests_per_minute == Some(0) {
        return invalid("rpm_limit", "must be positive; leave it out for no limit");
    }
    if limits.tokens_per_minute == Some(0) {
        return invalid("tpm_limit", "must be positive; leave it out for no limit");
    }
    if limits.budget_micros.is_some_and(|b| b <= 0) {
        return invalid("budget_usd", "must be a positive amount such as \"25.00\"");
    }
    Ok(())
}

/// The caller's live keys, without secrets.
pub async fn api_key_list(
    db: &Db,
    principal: &Principal,
    cursor: Option<&str>,
    limit: i64,
) -> DomainResult<Page<ApiKey>> {
    principal.require_session()?;
    let rows = db.api_keys_of_user(&principal.user_id, cursor, limit + 1).await?;
    Ok(Page::from_rows(rows, limit, |key| &key.id))
}

pub async fn api_key_revoke(
    db: &Db,
    keys: &KeyCache,
    principal: &Principal,
    key_id: &str,
    ctx: &RequestContext,
) -> DomainResult<()> {
    principal.require_session()?;
    let key = db.api_key_by_id(key_id).await?.map(|stored| stored.key);
    let Some(key) = key.filter(|k| k.user_id == principal.user_id && k.revoked_at.is_none()) else {
        return Err(DomainError::NotFound(Resource::ApiKey));
    };
    if !db.api_key_revoke(&key.id, &principal.user_id, ctx.now).await? {
        return Err(DomainError::NotFound(Resource::ApiKey));
    }
    keys.changed(db, KeyChange::Key(key.id.clone())).await;
    audit::record(
        db,
        ctx,
        Entry::in_org(AuditAction::ApiKeyRevoked, &principal.user_id, &key.org_id, &key.id),
    )
    .await
}
