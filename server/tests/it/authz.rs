//! The authorization matrix: every operation the committed spec secures,
//! called by each kind of caller, answers as [`MATRIX`] says. An operation the
//! spec secures without a row fails the suite, so new endpoints must join.
//! The columns cover every role a member can hold in an org, both kinds of
//! API key, and a user of another org. An operation may have more than one
//! row, one per state of what it is called on (a private session, a shared
//! one).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use switchyard_server::contract::openapi;
use switchyard_server::runs::PolicyConfig;

use crate::support::{
    Api, BoxError, Credential, MintedKey, PASSWORD, Session, TestEngine, TestResult, add_member,
    assert_error, expect_status, latest_mail, on_both_engines, start, string_at, word_after,
};

on_both_engines!(
    every_secured_operation_answers_each_caller_as_the_matrix_says,
    members_may_mint_keys_but_externals_may_not,
    a_key_stops_working_when_its_owner_leaves_the_org,
);

/// Who calls: one column of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    /// The owner of the org the rows address, with a session token.
    Owner,
    /// An admin of the owner's org, with a session token.
    Admin,
    /// A member of the owner's org, with a session token.
    Member,
    /// An external member of the owner's org, with a session token.
    External,
    /// The owner's API key with scope `*`.
    KeyAll,
    /// The owner's API key with only scope `chat`.
    KeyChat,
    /// The owner's API key with scope `*`, narrowed to the owner's project.
    KeyProject,
    /// A user with a session and an org of their own, not in the owner's org.
    Stranger,
}

impl Caller {
    /// The role a session caller holds in the owner's org, if any.
    fn role_in_owners_org(self) -> Option<&'static str> {
        match self {
            Self::Owner => Some("owner"),
            Self::Admin => Some("admin"),
            Self::Member => Some("member"),
            Self::External => Some("external"),
            Self::Anonymous | Self::KeyAll | Self::KeyChat | Self::KeyProject | Self::Stranger => None,
        }
    }
}

/// The columns of [`MATRIX`], in order.
const CALLERS: [Caller; 9] = [
    Caller::Anonymous,
    Caller::Owner,
    Caller::Admin,
    Caller::Member,
    Caller::External,
    Caller::KeyAll,
    Caller::KeyChat,
    Caller::KeyProject,
    Caller::Stranger,
];

/// What a row sends besides the caller's credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sends {
    /// Nothing else.
    Nothing,
    /// Nothing else, and the call ends the caller's session: session callers
    /// log in afresh for it.
    EndsSession,
    /// A valid new organization.
    NewOrg,
    /// `{id}` is the owner's org.
    OwnersOrg,
    /// A valid new key in the owner's org.
    KeyInOwnersOrg,
    /// `{id}` is a key of the owner's, minted for this one call.
    FreshOwnersKey,
    /// A current code for the caller's pending two-factor setup. Enabling
    /// ends every session of the account, so session callers use an account
    /// registered, and set up, for this one call.
    SetupCode,
    /// The password and a recovery code. Turning two-factor off ends every
    /// session of the account, so session callers use an account registered,
    /// with two-factor on, for this one call.
    RecoveryCode,
    /// The current password and a new one. Changing the password ends every
    /// session of the account, so session callers use an account registered
    /// for this one call.
    PasswordChange,
    /// A well-formed code that was never mailed: the call reaches the code check.
    UnmailedCode,
    /// The caller's password.
    Password,
    /// `{id}` is the owner's org, with a new name.
    RenameOwnersOrg,
    /// `{id}` is an org of the owner's, created for this one call; the
    /// admin, member and external callers are in it with their role.
    FreshOwnersOrg,
    /// `{id}` is the owner's org; the body adds an account made for this call.
    NewMemberForOwnersOrg,
    /// `{id}` is the owner's org and `{user_id}` a member added for this one
    /// call; the body makes them an admin.
    PromoteFreshMember,
    /// `{id}` is the owner's org and `{user_id}` a member added for this one call.
    FreshMember,
    /// A valid new project in the owner's org.
    ProjectInOwnersOrg,
    /// `{id}` is the owner's project.
    OwnersProject,
    /// `{id}` is the owner's project, with a new name.
    RenameOwnersProject,
    /// `{id}` is a project of the owner's, created for this one call.
    FreshOwnersProject,
    /// The token of an invitation to the owner's org. Session callers use an
    /// account registered, after the invitation was mailed to its address,
    /// for this one call; others send a token that was never issued.
    InvitationForCaller,
    /// `{id}` is the owner's org and `{invitation_id}` an invitation to it,
    /// mailed for this one call.
    FreshInvitation,
    /// A chat request to the `default` model, naming the owner's org in
    /// `X-Switchyard-Org` (sessions are metered in the org they name).
    ChatRequest,
    /// An embeddings request to the `default` model, naming the owner's org.
    EmbeddingsRequest,
    /// `{model}` is the `dev` model.
    DevModel,
    /// `?org_id=` is the owner's org.
    OwnersOrgQuery,
    /// `{id}` is a session of the owner's, signed in for this one call.
    OwnersOtherSession,
    /// A run request, naming the owner's org in `X-Switchyard-Org`.
    RunRequest,
    /// `X-Switchyard-Org` is the owner's org.
    OwnersOrgHeader,
    /// `{id}` is a completed run the owner's `*` key started.
    OwnersRun,
    /// `{id}` is a run the owner's `*` key started for this one call, waiting
    /// for a client tool; the body answers it.
    AnswerOwnersWaitingRun,
    /// `{id}` is a run the owner's `*` key started for this one call, waiting
    /// for a client tool.
    OwnersWaitingRun,
    /// A session request, naming the owner's org in `X-Switchyard-Org`.
    SessionRequest,
    /// `{id}` is a session the owner's `*` key started for this one call.
    OwnersSession,
    /// `{id}` is a session the owner's `*` key started for this one call; the
    /// body shares it with the org, to read.
    ShareOwnersSession,
    /// `{id}` is a session the owner's `*` key started and shared with the
    /// org, to read, for this one call; a `PATCH` shares it so again.
    OwnersSharedSession,
    /// A run request continuing a session the owner's `*` key started and
    /// shared with the org, to read, for this one call, naming the owner's
    /// org in `X-Switchyard-Org`.
    ContinueOwnersSharedSession,
    /// `{id}` is a run the owner's `*` key started for this one call, paused
    /// for approval of a `calculate` call; the body approves it.
    DecideOwnersPausedRun,
}

impl Sends {
    /// Whether the call names the owner's objects, which a stranger must not
    /// learn exist.
    fn names_owners_objects(self) -> bool {
        matches!(
            self,
            Self::OwnersOrg
                | Self::KeyInOwnersOrg
                | Self::FreshOwnersKey
                | Self::RenameOwnersOrg
                | Self::FreshOwnersOrg
                | Self::NewMemberForOwnersOrg
                | Self::PromoteFreshMember
                | Self::FreshMember
                | Self::ProjectInOwnersOrg
                | Self::OwnersProject
                | Self::RenameOwnersProject
                | Self::FreshOwnersProject
                | Self::FreshInvitation
                | Self::OwnersOrgQuery
                | Self::OwnersOtherSession
                | Self::ChatRequest
                | Self::EmbeddingsRequest
                | Self::RunRequest
                | Self::OwnersOrgHeader
                | Self::OwnersRun
                | Self::AnswerOwnersWaitingRun
                | Self::OwnersWaitingRun
                | Self::DecideOwnersPausedRun
                | Self::SessionRequest
                | Self::OwnersSession
                | Self::ShareOwnersSession
                | Self::OwnersSharedSession
                | Self::ContinueOwnersSharedSession
        )
    }
}

/// What one cell expects: a status, and for errors the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Status(u16),
    Error(u16, &'static str),
}

impl Expect {
    fn status(self) -> u16 {
        match self {
            Self::Status(status) | Self::Error(status, _) => status,
        }
    }

    fn is_met_by(self, status: u16, body: &Value) -> bool {
        match self {
            Self::Status(expected) => status == expected,
            Self::Error(expected, code) => status == expected && body["error"]["code"] == code,
        }
    }
}

const OK: Expect = Expect::Status(200);
const CREATED: Expect = Expect::Status(201);
const NO_CONTENT: Expect = Expect::Status(204);
const ACCEPTED: Expect = Expect::Status(202);
const WRONG_CODE: Expect = Expect::Error(422, "auth.invalid_verification_code");
const NO_CREDENTIAL: Expect = Expect::Error(401, "auth.missing_credentials");
const SESSION_ONLY: Expect = Expect::Error(403, "auth.session_required");
const NO_SUCH_ORG: Expect = Expect::Error(404, "org.not_found");
const NO_SUCH_KEY: Expect = Expect::Error(404, "api_key.not_found");
const NEEDS_ADMIN_SCOPE: Expect = Expect::Error(403, "auth.scope_denied");
const NO_SUCH_PROJECT: Expect = Expect::Error(404, "project.not_found");
const NEEDS_ROLE: Expect = Expect::Error(403, "auth.role_denied");
const NO_SUCH_SESSION: Expect = Expect::Error(404, "auth.session_not_found");
const ALREADY_VERIFIED: Expect = Expect::Error(409, "auth.email_already_verified");
const PROJECT_KEY: Expect = Expect::Error(403, "auth.project_key_denied");
const NO_SUCH_RUN: Expect = Expect::Error(404, "run.not_found");
const NO_SUCH_RUN_SESSION: Expect = Expect::Error(404, "session.not_found");
const NEEDS_RUNS_SCOPE: Expect = Expect::Error(403, "auth.scope_denied");
const CREATOR_ONLY: Expect = Expect::Error(403, "session.creator_only");
const READ_ONLY: Expect = Expect::Error(403, "session.read_only");

/// An operation id, what its calls send, and what each of [`CALLERS`] gets.
type Row = (&'static str, Sends, [Expect; 9]);

// The table names what a row sends by the variant alone.
use Sends::{
    AnswerOwnersWaitingRun, ChatRequest, ContinueOwnersSharedSession, DecideOwnersPausedRun, DevModel,
    EmbeddingsRequest, EndsSession, FreshInvitation, FreshMember, FreshOwnersKey, FreshOwnersOrg,
    FreshOwnersProject, InvitationForCaller, KeyInOwnersOrg, NewMemberForOwnersOrg, NewOrg, Nothing,
    OwnersOrg, OwnersOrgHeader, OwnersOrgQuery, OwnersOtherSession, OwnersProject, OwnersRun, OwnersSession,
    OwnersSharedSession, OwnersWaitingRun, Password, PasswordChange, ProjectInOwnersOrg, PromoteFreshMember,
    RecoveryCode, RenameOwnersOrg, RenameOwnersProject, RunRequest, SessionRequest, SetupCode,
    ShareOwnersSession, UnmailedCode,
};

#[rustfmt::skip]
const MATRIX: [Row; 55] = [
//   operation              sends           anonymous      owner       admin       member      external    key `*`       key `chat`    key `*` in project  stranger
    ("two_factor_setup",   Nothing,        [NO_CREDENTIAL, OK, OK, OK, OK, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, OK]),
    ("two_factor_enable",  SetupCode,      [NO_CREDENTIAL, OK, OK, OK, OK, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, OK]),
    ("two_factor_disable", RecoveryCode,   [NO_CREDENTIAL, NO_CONTENT, NO_CONTENT, NO_CONTENT, NO_CONTENT, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, NO_CONTENT]),
    ("auth_verify_email",  UnmailedCode,   [NO_CREDENTIAL, WRONG_CODE, ALREADY_VERIFIED, ALREADY_VERIFIED, ALREADY_VERIFIED, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, WRONG_CODE]),
    ("auth_resend_verification", Nothing,  [NO_CREDENTIAL, ACCEPTED, ALREADY_VERIFIED, ALREADY_VERIFIED, ALREADY_VERIFIED, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, ACCEPTED]),
    ("auth_logout",        EndsSession,    [NO_CREDENTIAL, NO_CONTENT, NO_CONTENT, NO_CONTENT, NO_CONTENT, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, NO_CONTENT]),
    ("auth_password_change", PasswordChange, [NO_CREDENTIAL, OK, OK, OK, OK, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, OK]),
    ("auth_reauthenticate", Password,      [NO_CREDENTIAL, NO_CONTENT, NO_CONTENT, NO_CONTENT, NO_CONTENT, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, NO_CONTENT]),
    ("session_list",       Nothing,        [NO_CREDENTIAL, OK, OK, OK, OK, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, OK]),
    // A session is its user's alone.
    ("session_delete",     OwnersOtherSession, [NO_CREDENTIAL, NO_CONTENT, NO_SUCH_SESSION, NO_SUCH_SESSION, NO_SUCH_SESSION, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, NO_SUCH_SESSION]),
    ("security_log_list",  Nothing,        [NO_CREDENTIAL, OK, OK, OK, OK, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, OK]),
    ("auth_me",            Nothing,        [NO_CREDENTIAL, OK, OK, OK, OK, OK, OK, OK, OK]),
    ("org_create",         NewOrg,         [NO_CREDENTIAL, CREATED, CREATED, CREATED, CREATED, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, CREATED]),
    ("org_list",           Nothing,        [NO_CREDENTIAL, OK, OK, OK, OK, OK, OK, OK, OK]),
    ("org_get",            OwnersOrg,      [NO_CREDENTIAL, OK, OK, OK, OK, OK, OK, OK, NO_SUCH_ORG]),
    ("org_update",         RenameOwnersOrg, [NO_CREDENTIAL, OK, OK, NEEDS_ROLE, NEEDS_ROLE, OK, NEEDS_ADMIN_SCOPE, PROJECT_KEY, NO_SUCH_ORG]),
    // The keys act in the owner's first org, so any other org is not theirs to see.
    ("org_delete",         FreshOwnersOrg, [NO_CREDENTIAL, NO_CONTENT, NEEDS_ROLE, NEEDS_ROLE, NEEDS_ROLE, NO_SUCH_ORG, NO_SUCH_ORG, NO_SUCH_ORG, NO_SUCH_ORG]),
    // Externals do not see who else is in the org, nor keys without `admin`.
    ("org_member_list",    OwnersOrg,      [NO_CREDENTIAL, OK, OK, OK, NEEDS_ROLE, OK, NEEDS_ADMIN_SCOPE, PROJECT_KEY, NO_SUCH_ORG]),
    ("org_member_add",     NewMemberForOwnersOrg, [NO_CREDENTIAL, CREATED, CREATED, NEEDS_ROLE, NEEDS_ROLE, CREATED, NEEDS_ADMIN_SCOPE, PROJECT_KEY, NO_SUCH_ORG]),
    // Only owners make admins.
    ("org_member_update",  PromoteFreshMember, [NO_CREDENTIAL, OK, NEEDS_ROLE, NEEDS_ROLE, NEEDS_ROLE, OK, NEEDS_ADMIN_SCOPE, PROJECT_KEY, NO_SUCH_ORG]),
    ("org_invitation_list", OwnersOrg,     [NO_CREDENTIAL, OK, OK, NEEDS_ROLE, NEEDS_ROLE, OK, NEEDS_ADMIN_SCOPE, PROJECT_KEY, NO_SUCH_ORG]),
    ("org_invitation_delete", FreshInvitation, [NO_CREDENTIAL, NO_CONTENT, NO_CONTENT, NEEDS_ROLE, NEEDS_ROLE, NO_CONTENT, NEEDS_ADMIN_SCOPE, PROJECT_KEY, NO_SUCH_ORG]),
    ("org_invitation_accept", InvitationForCaller, [NO_CREDENTIAL, OK, OK, OK, OK, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, OK]),
    ("org_member_remove",  FreshMember,    [NO_CREDENTIAL, NO_CONTENT, NO_CONTENT, NEEDS_ROLE, NEEDS_ROLE, NO_CONTENT, NEEDS_ADMIN_SCOPE, PROJECT_KEY, NO_SUCH_ORG]),
    ("project_create",     ProjectInOwnersOrg, [NO_CREDENTIAL, CREATED, CREATED, NEEDS_ROLE, NEEDS_ROLE, CREATED, NEEDS_ADMIN_SCOPE, PROJECT_KEY, NO_SUCH_ORG]),
    ("project_list",       Nothing,        [NO_CREDENTIAL, OK, OK, OK, OK, OK, OK, OK, OK]),
    ("project_get",        OwnersProject,  [NO_CREDENTIAL, OK, OK, OK, OK, OK, OK, OK, NO_SUCH_PROJECT]),
    ("project_update",     RenameOwnersProject, [NO_CREDENTIAL, OK, OK, NEEDS_ROLE, NEEDS_ROLE, OK, NEEDS_ADMIN_SCOPE, OK, NO_SUCH_PROJECT]),
    ("project_delete",     FreshOwnersProject, [NO_CREDENTIAL, NO_CONTENT, NO_CONTENT, NEEDS_ROLE, NEEDS_ROLE, NO_CONTENT, NEEDS_ADMIN_SCOPE, NO_SUCH_PROJECT, NO_SUCH_PROJECT]),
    // Externals may not mint keys.
    ("api_key_create",     KeyInOwnersOrg, [NO_CREDENTIAL, CREATED, CREATED, CREATED, NEEDS_ROLE, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, NO_SUCH_ORG]),
    ("api_key_list",       Nothing,        [NO_CREDENTIAL, OK, OK, OK, OK, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, OK]),
    // A key is its minter's: nobody else, not even an admin, can see it.
    ("api_key_delete",     FreshOwnersKey, [NO_CREDENTIAL, NO_CONTENT, NO_SUCH_KEY, NO_SUCH_KEY, NO_SUCH_KEY, SESSION_ONLY, SESSION_ONLY, SESSION_ONLY, NO_SUCH_KEY]),
    // Every member may use the gateway, metered in the org; a session names
    // the org (without it: 403 `auth.org_required`, tested apart).
    ("chat_completion_create", ChatRequest, [NO_CREDENTIAL, OK, OK, OK, OK, OK, OK, OK, NO_SUCH_ORG]),
    ("embedding_create",   EmbeddingsRequest, [NO_CREDENTIAL, OK, OK, OK, OK, OK, OK, OK, NO_SUCH_ORG]),
    ("model_list",         Nothing,        [NO_CREDENTIAL, OK, OK, OK, OK, OK, OK, OK, OK]),
    ("model_get",          DevModel,       [NO_CREDENTIAL, OK, OK, OK, OK, OK, OK, OK, OK]),
    // Members and externals see their own usage, and a key without the
    // `admin` scope its own; none of them is refused.
    // Owners and admins read and check the audit trail; a key needs `admin`.
    ("audit_list",         OwnersOrgQuery, [NO_CREDENTIAL, OK, OK, NEEDS_ROLE, NEEDS_ROLE, OK, NEEDS_ADMIN_SCOPE, PROJECT_KEY, NO_SUCH_ORG]),
    ("audit_verify",       OwnersOrgQuery, [NO_CREDENTIAL, OK, OK, NEEDS_ROLE, NEEDS_ROLE, OK, NEEDS_ADMIN_SCOPE, PROJECT_KEY, NO_SUCH_ORG]),
    ("usage_get",          OwnersOrgQuery, [NO_CREDENTIAL, OK, OK, OK, OK, OK, OK, OK, NO_SUCH_ORG]),
    // Every member may start runs in the org; a key needs `runs`.
    ("run_create",         RunRequest,     [NO_CREDENTIAL, CREATED, CREATED, CREATED, CREATED, CREATED, NEEDS_RUNS_SCOPE, CREATED, NO_SUCH_ORG]),
    ("run_list",           OwnersOrgHeader, [NO_CREDENTIAL, OK, OK, OK, OK, OK, NEEDS_RUNS_SCOPE, OK, NO_SUCH_ORG]),
    // A run is its creator's, and its org's owners' and admins'; a key
    // narrowed to a project sees that project's runs only.
    ("run_get",            OwnersRun,      [NO_CREDENTIAL, OK, OK, NO_SUCH_RUN, NO_SUCH_RUN, OK, NEEDS_RUNS_SCOPE, NO_SUCH_RUN, NO_SUCH_RUN]),
    ("run_events",         OwnersRun,      [NO_CREDENTIAL, OK, OK, NO_SUCH_RUN, NO_SUCH_RUN, OK, NEEDS_RUNS_SCOPE, NO_SUCH_RUN, NO_SUCH_RUN]),
    ("run_submit_tool_outputs", AnswerOwnersWaitingRun, [NO_CREDENTIAL, OK, OK, NO_SUCH_RUN, NO_SUCH_RUN, OK, NEEDS_RUNS_SCOPE, NO_SUCH_RUN, NO_SUCH_RUN]),
    // Without approvers of its own, a paused run is decided by its org's owners and admins.
    ("run_resume",         DecideOwnersPausedRun, [NO_CREDENTIAL, OK, OK, NO_SUCH_RUN, NO_SUCH_RUN, OK, NEEDS_RUNS_SCOPE, NO_SUCH_RUN, NO_SUCH_RUN]),
    // Sessions are like runs: every member may start one, and one is its creator's and its org's owners' and admins'.
    ("run_session_create", SessionRequest, [NO_CREDENTIAL, CREATED, CREATED, CREATED, CREATED, CREATED, NEEDS_RUNS_SCOPE, CREATED, NO_SUCH_ORG]),
    ("run_session_list",   OwnersOrgHeader, [NO_CREDENTIAL, OK, OK, OK, OK, OK, NEEDS_RUNS_SCOPE, OK, NO_SUCH_ORG]),
    ("run_session_get",    OwnersSession,  [NO_CREDENTIAL, OK, OK, NO_SUCH_RUN_SESSION, NO_SUCH_RUN_SESSION, OK, NEEDS_RUNS_SCOPE, NO_SUCH_RUN_SESSION, NO_SUCH_RUN_SESSION]),
    ("run_session_delete", OwnersSession,  [NO_CREDENTIAL, NO_CONTENT, NO_CONTENT, NO_SUCH_RUN_SESSION, NO_SUCH_RUN_SESSION, NO_CONTENT, NEEDS_RUNS_SCOPE, NO_SUCH_RUN_SESSION, NO_SUCH_RUN_SESSION]),
    // Whom a session is shared with is up to those who may delete it; to anyone else a private one does not exist.
    ("run_session_access_update", ShareOwnersSession, [NO_CREDENTIAL, OK, OK, NO_SUCH_RUN_SESSION, NO_SUCH_RUN_SESSION, OK, NEEDS_RUNS_SCOPE, NO_SUCH_RUN_SESSION, NO_SUCH_RUN_SESSION]),
    // Shared with the org to read, a session is every member's (externals too) to read, not to
    // continue, delete or share; the key narrowed to a project still does not see it (it is in none).
    ("run_session_get",    OwnersSharedSession, [NO_CREDENTIAL, OK, OK, OK, OK, OK, NEEDS_RUNS_SCOPE, NO_SUCH_RUN_SESSION, NO_SUCH_RUN_SESSION]),
    ("run_session_delete", OwnersSharedSession, [NO_CREDENTIAL, NO_CONTENT, NO_CONTENT, CREATOR_ONLY, CREATOR_ONLY, NO_CONTENT, NEEDS_RUNS_SCOPE, NO_SUCH_RUN_SESSION, NO_SUCH_RUN_SESSION]),
    ("run_session_access_update", OwnersSharedSession, [NO_CREDENTIAL, OK, OK, CREATOR_ONLY, CREATOR_ONLY, OK, NEEDS_RUNS_SCOPE, NO_SUCH_RUN_SESSION, NO_SUCH_RUN_SESSION]),
    ("run_create",         ContinueOwnersSharedSession, [NO_CREDENTIAL, CREATED, CREATED, READ_ONLY, READ_ONLY, CREATED, NEEDS_RUNS_SCOPE, NO_SUCH_RUN_SESSION, NO_SUCH_ORG]),
    ("run_cancel",         OwnersWaitingRun, [NO_CREDENTIAL, OK, OK, NO_SUCH_RUN, NO_SUCH_RUN, OK, NEEDS_RUNS_SCOPE, NO_SUCH_RUN, NO_SUCH_RUN]),
];

/// An operation the committed spec declares security for.
#[derive(Debug)]
struct SecuredOperation {
    id: String,
    method: Method,
    /// The path template, such as `/v1/orgs/{id}`.
    path: String,
}

/// Every operation of the committed spec with a non-empty `security`, its own
/// or the document's.
fn secured_operations() -> Result<Vec<SecuredOperation>, BoxError> {
    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    let default_security = openapi()?.get("security");
    let paths = openapi()?["paths"].as_object().ok_or("the spec has no paths")?;
    let mut secured = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            let security = operation.get("security").or(default_security);
            if security.and_then(Value::as_array).is_some_and(|requirements| !requirements.is_empty()) {
                secured.push(SecuredOperation {
                    id: string_at(operation, "/operationId")?,
                    method: Method::from_bytes(method.to_uppercase().as_bytes())?,
                    path: path.clone(),
                });
            }
        }
    }
    Ok(secured)
}

/// The rows of an operation: one, or one per state of what it is called on.
fn rows_of(operation_id: &str) -> impl Iterator<Item = &'static Row> {
    MATRIX.iter().filter(move |(id, ..)| *id == operation_id)
}

#[test]
fn every_secured_operation_has_a_row_in_the_matrix() -> TestResult {
    let secured: BTreeSet<String> = secured_operations()?.into_iter().map(|operation| operation.id).collect();
    assert!(!secured.is_empty(), "the spec secures no operation; is it parsed right?");
    let rows: BTreeSet<String> = MATRIX.iter().map(|(id, ..)| (*id).to_owned()).collect();
    let scenarios: BTreeSet<(&str, Sends)> = MATRIX.iter().map(|(id, sends, _)| (*id, *sends)).collect();
    assert_eq!(scenarios.len(), MATRIX.len(), "an operation has two rows in MATRIX that send the same");
    let missing: Vec<_> = secured.difference(&rows).collect();
    assert!(
        missing.is_empty(),
        "secured in openapi/switchyard.yaml but without a row in MATRIX: {missing:?}"
    );
    let stale: Vec<_> = rows.difference(&secured).collect();
    assert!(stale.is_empty(), "rows in MATRIX for operations the spec does not secure: {stale:?}");
    Ok(())
}

#[test]
fn strangers_get_404_for_the_owners_objects() {
    for (operation, sends, expected) in MATRIX {
        for (caller, expected) in CALLERS.into_iter().zip(expected) {
            if caller == Caller::Stranger && sends.names_owners_objects() {
                assert_eq!(
                    expected.status(),
                    404,
                    "{operation}: another tenant's objects must not exist for them"
                );
            }
        }
    }
}

/// The state the matrix runs against (the admin, member and external have
/// verified their addresses, as a direct add requires), built once per engine: an owner with an
/// org and two keys in it, and a stranger with an org of their own.
struct World {
    api: Api,
    /// The server's database, to read the mail an invitation sends.
    database_url: String,
    owner: Session,
    /// Sessions of an admin, a member and an external member of the owner's org.
    admin: Session,
    member: Session,
    external: Session,
    owners_org: String,
    owners_project: String,
    key_all: MintedKey,
    key_chat: MintedKey,
    /// A `*` key narrowed to the owner's project.
    key_project: String,
    stranger: Session,
}

/// One request, ready to send.
struct Call {
    method: Method,
    path: String,
    /// The bearer token, if any.
    token: Option<String>,
    body: Option<Value>,
    /// `X-Switchyard-Org`, if sent.
    org: Option<String>,
}

impl World {
    async fn build(api: Api, database_url: &str) -> Result<Self, BoxError> {
        let owner = api.register("owner@example.com").await?;
        let owners_org = api.create_org(&owner, "Owner's Org").await?;
        let key_all = api.mint_key(&owner, &owners_org, &["*"]).await?;
        let key_chat = api.mint_key(&owner, &owners_org, &["chat"]).await?;
        let stranger = api.register("stranger@example.com").await?;
        api.create_org(&stranger, "Stranger's Org").await?;
        let [admin, member, external] = [
            api.register_verified("admin@example.com", database_url).await?,
            api.register_verified("member@example.com", database_url).await?,
            api.register_verified("external@example.com", database_url).await?,
        ];
        let database_url = database_url.to_owned();
        let owners_project = String::new();
        let mut world = Self {
            api,
            database_url,
            owner,
            admin,
            member,
            external,
            owners_org,
            owners_project,
            key_all,
            key_chat,
            key_project: String::new(),
            stranger,
        };
        for caller in [Caller::Admin, Caller::Member, Caller::External] {
            world.add_to(&world.owners_org, caller).await?;
        }
        world.owners_project = world.create_project("Owner's Project").await?;
        let narrowed = json!({"name": "narrowed", "scopes": ["*"], "org_id": world.owners_org,
            "project_id": world.owners_project});
        let minted =
            expect_status(world.api.post("/v1/api-keys", world.owner.bearer(), narrowed).await?, 201)?;
        world.key_project = string_at(&minted, "/key")?;
        Ok(world)
    }

    /// The caller's session, if it has one.
    fn session_of(&self, caller: Caller) -> Option<&Session> {
        match caller {
            Caller::Owner => Some(&self.owner),
            Caller::Admin => Some(&self.admin),
            Caller::Member => Some(&self.member),
            Caller::External => Some(&self.external),
            Caller::Stranger => Some(&self.stranger),
            Caller::Anonymous | Caller::KeyAll | Caller::KeyChat | Caller::KeyProject => None,
        }
    }

    /// Adds an admin, member or external caller to an org of the owner's with
    /// their role; anyone else is left as they are.
    async fn add_to(&self, org_id: &str, caller: Caller) -> TestResult {
        let (Some(role), Some(session)) = (caller.role_in_owners_org(), self.session_of(caller)) else {
            return Ok(());
        };
        if role == "owner" {
            return Ok(());
        }
        let body = json!({"email": session.email, "role": role});
        let path = format!("/v1/orgs/{org_id}/members");
        expect_status(self.api.post(&path, self.owner.bearer(), body).await?, 201)?;
        Ok(())
    }

    /// A new project in the owner's org.
    async fn create_project(&self, name: &str) -> Result<String, BoxError> {
        let body = json!({"org_id": self.owners_org, "name": name});
        string_at(
            &expect_status(self.api.post("/v1/projects", self.owner.bearer(), body).await?, 201)?,
            "/id",
        )
    }

    /// The request `caller` sends in the row of `operation`.
    async fn call(
        &self,
        operation: &SecuredOperation,
        sends: Sends,
        caller: Caller,
    ) -> Result<Call, BoxError> {
        let session = self.session_of(caller);
        let mut token = match caller {
            Caller::Anonymous => None,
            Caller::KeyAll => Some(self.key_all.key.clone()),
            Caller::KeyChat => Some(self.key_chat.key.clone()),
            Caller::KeyProject => Some(self.key_project.clone()),
            _ => session.map(|session| session.access.clone()),
        };
        let (mut id, mut user_id, mut invitation_id, mut body) = (None, None, None, None);
        let (mut model, mut query, mut org) = (None, None, None);
        match sends {
            Nothing => {}
            EndsSession => {
                if let Some(session) = session {
                    token = Some(self.api.login(&session.email).await?.access);
                }
            }
            NewOrg => body = Some(json!({"name": "Matrix Org"})),
            OwnersOrg => id = Some(self.owners_org.clone()),
            KeyInOwnersOrg => {
                body = Some(json!({"name": "matrix", "scopes": ["chat"], "org_id": self.owners_org}))
            }
            FreshOwnersKey => {
                id = Some(self.api.mint_key(&self.owner, &self.owners_org, &["chat"]).await?.id)
            }
            SetupCode if session.is_some() => {
                let (account, code) = self.account_setting_up_two_factor().await?;
                (token, body) = (Some(account.access), Some(json!({"code": code})));
            }
            SetupCode => body = Some(json!({"code": "123456"})),
            RecoveryCode if session.is_some() => {
                let (access, recovery_code) = self.account_with_two_factor().await?;
                token = Some(access);
                body = Some(json!({"password": PASSWORD, "recovery_code": recovery_code}));
            }
            RecoveryCode => body = Some(json!({"password": PASSWORD, "recovery_code": "k3f9a-q2m7x"})),
            UnmailedCode => body = Some(json!({"code": "1234567"})),
            Password => body = Some(json!({"password": PASSWORD})),
            PasswordChange => {
                if session.is_some() {
                    token = Some(self.fresh_account().await?.access);
                }
                body = Some(json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}));
            }
            RenameOwnersOrg => {
                id = Some(self.owners_org.clone());
                body = Some(json!({"name": "Renamed Org"}));
            }
            FreshOwnersOrg => {
                let org = self.api.create_org(&self.owner, "Short-lived Org").await?;
                self.add_to(&org, caller).await?;
                id = Some(org);
            }
            NewMemberForOwnersOrg => {
                id = Some(self.owners_org.clone());
                body = Some(json!({"email": self.fresh_account().await?.email, "role": "member"}));
            }
            ProjectInOwnersOrg => body = Some(json!({"org_id": self.owners_org, "name": "Matrix Project"})),
            OwnersProject => id = Some(self.owners_project.clone()),
            RenameOwnersProject => {
                id = Some(self.owners_project.clone());
                body = Some(json!({"name": "Renamed Project"}));
            }
            FreshOwnersProject => id = Some(self.create_project("Short-lived Project").await?),
            InvitationForCaller if session.is_some() => {
                let (account, invitation) = self.account_invited_to_owners_org().await?;
                (token, body) = (Some(account.access), Some(json!({"token": invitation})));
            }
            InvitationForCaller => body = Some(json!({"token": "syi_NeverIssued"})),
            FreshInvitation => {
                let email = format!("{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
                let invite = json!({"email": email, "role": "member"});
                let path = format!("/v1/orgs/{}/members", self.owners_org);
                let invitation =
                    expect_status(self.api.post(&path, self.owner.bearer(), invite).await?, 201)?;
                id = Some(self.owners_org.clone());
                invitation_id = Some(string_at(&invitation, "/id")?);
            }
            ChatRequest => {
                org = Some(self.owners_org.clone());
                body = Some(json!({"model": "default", "messages": [{"role": "user", "content": "Hello"}]}))
            }
            EmbeddingsRequest => {
                org = Some(self.owners_org.clone());
                body = Some(json!({"model": "default", "input": "Hello"}))
            }
            DevModel => model = Some("dev"),
            OwnersOrgQuery => query = Some(format!("org_id={}", self.owners_org)),
            OwnersOtherSession => {
                let other = self.api.login(&self.owner.email).await?;
                let sessions = expect_status(self.api.get("/v1/auth/sessions", other.bearer()).await?, 200)?;
                let current =
                    sessions["data"].as_array().into_iter().flatten().find(|s| s["current"] == true);
                id = Some(string_at(current.ok_or("no current session listed")?, "/id")?);
            }
            RunRequest => {
                org = Some(self.owners_org.clone());
                body = Some(json!({"messages": [{"role": "user", "content": "Hello"}]}))
            }
            OwnersOrgHeader => org = Some(self.owners_org.clone()),
            OwnersRun => {
                id = Some(
                    self.owners_run(json!({"messages": [{"role": "user", "content": "Hello"}]})).await?.0,
                )
            }
            AnswerOwnersWaitingRun | OwnersWaitingRun => {
                let (run_id, call_id) = self.owners_run(waiting_run()).await?;
                id = Some(run_id);
                if sends == AnswerOwnersWaitingRun {
                    body = Some(json!({"tool_outputs": [{"tool_call_id": call_id, "output": "sunny"}]}));
                }
            }
            SessionRequest => {
                org = Some(self.owners_org.clone());
                body = Some(json!({"title": "Matrix"}));
            }
            OwnersSession => id = Some(self.owners_session(false).await?),
            ShareOwnersSession => {
                id = Some(self.owners_session(false).await?);
                body = Some(share_with_org());
            }
            OwnersSharedSession => {
                id = Some(self.owners_session(true).await?);
                body = (operation.method == Method::PATCH).then(share_with_org);
            }
            ContinueOwnersSharedSession => {
                org = Some(self.owners_org.clone());
                let session = self.owners_session(true).await?;
                body = Some(json!({"session_id": session, "message": {"role": "user", "content": "Hello"}}));
            }
            DecideOwnersPausedRun => {
                let paused = json!({"messages": [{"role": "user", "content": "calculate {\"expression\": \"1 + 1\"}"}],
                    "tools": ["calculate"]});
                id = Some(self.owners_run(paused).await?.0);
                body = Some(json!({"decision": "approved"}));
            }
            PromoteFreshMember | FreshMember => {
                let member = self.fresh_account().await?;
                let added = json!({"email": member.email, "role": "member"});
                let path = format!("/v1/orgs/{}/members", self.owners_org);
                expect_status(self.api.post(&path, self.owner.bearer(), added).await?, 201)?;
                id = Some(self.owners_org.clone());
                user_id = Some(member.user_id);
                if sends == PromoteFreshMember {
                    body = Some(json!({"role": "admin"}));
                }
            }
        }
        let mut path = operation.path.clone();
        if let Some(id) = id {
            path = path.replace("{id}", &id);
        }
        if let Some(user_id) = user_id {
            path = path.replace("{user_id}", &user_id);
        }
        if let Some(invitation_id) = invitation_id {
            path = path.replace("{invitation_id}", &invitation_id);
        }
        if let Some(model) = model {
            path = path.replace("{model}", model);
        }
        if path.contains('{') {
            return Err(format!("{}: {sends:?} leaves a parameter of {path} unfilled", operation.id).into());
        }
        if let Some(query) = query {
            path = format!("{path}?{query}");
        }
        Ok(Call { method: operation.method.clone(), path, token, body, org })
    }

    /// A session the owner's `*` key started, `shared` with the org to read.
    async fn owners_session(&self, shared: bool) -> Result<String, BoxError> {
        let key = Credential::Bearer(&self.key_all.key);
        let created = expect_status(self.api.post("/v1/sessions", key, json!({})).await?, 201)?;
        let id = string_at(&created, "/id")?;
        if shared {
            let path = format!("/v1/sessions/{id}/access");
            expect_status(self.api.call(Method::PATCH, &path, key, Some(&share_with_org())).await?, 200)?;
        }
        Ok(id)
    }

    /// A run the owner's `*` key started; its id, and its first pending tool call's.
    async fn owners_run(&self, body: Value) -> Result<(String, String), BoxError> {
        let run = expect_status(
            self.api.post("/v1/runs", Credential::Bearer(&self.key_all.key), body).await?,
            201,
        )?;
        let call = run["pending_tool_calls"][0]["id"].as_str().unwrap_or_default().to_owned();
        Ok((string_at(&run, "/id")?, call))
    }

    /// A new account with a verified address, registered for one call.
    async fn fresh_account(&self) -> Result<Session, BoxError> {
        let email = format!("{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
        self.api.register_verified(&email, &self.database_url).await
    }

    /// A new account whose address the owner invited to their org before it
    /// registered, and the invitation token mailed to it.
    async fn account_invited_to_owners_org(&self) -> Result<(Session, String), BoxError> {
        let email = format!("{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
        let invite = json!({"email": email, "role": "member"});
        let path = format!("/v1/orgs/{}/members", self.owners_org);
        expect_status(self.api.post(&path, self.owner.bearer(), invite).await?, 201)?;
        let mail = latest_mail(&self.database_url, &email).await?;
        let invitation = word_after(&mail.body, "/invitations/accept?token=")?;
        Ok((self.api.register(&email).await?, invitation))
    }

    /// A new account with a two-factor setup started, and a current code for it.
    async fn account_setting_up_two_factor(&self) -> Result<(Session, String), BoxError> {
        let email = format!("{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
        let account = self.api.register(&email).await?;
        let setup = self.api.call(Method::POST, "/v1/auth/2fa/setup", account.bearer(), None).await?;
        let secret = string_at(&expect_status(setup, 200)?, "/secret")?;
        let totp = totp_rs::Builder::new().with_secret(totp_rs::Secret::try_from_base32(secret)?).build()?;
        Ok((account, totp.generate_current().to_string()))
    }

    /// A new account with two-factor on, signed in with one recovery code;
    /// returns its access token and another, unused recovery code.
    async fn account_with_two_factor(&self) -> Result<(String, String), BoxError> {
        let (account, code) = self.account_setting_up_two_factor().await?;
        let enabled = self.api.post("/v1/auth/2fa/enable", account.bearer(), json!({"code": code})).await?;
        let enabled = expect_status(enabled, 200)?;
        let (sign_in_with, keep) =
            (string_at(&enabled, "/recovery_codes/0")?, string_at(&enabled, "/recovery_codes/1")?);
        // Enabling ended the session: log in again, now with the second factor.
        let credentials = json!({"email": account.email, "password": PASSWORD});
        let challenge =
            expect_status(self.api.post("/v1/auth/login", Credential::Anonymous, credentials).await?, 200)?;
        let second_factor = json!({"challenge_token": string_at(&challenge, "/challenge_token")?, "recovery_code": sign_in_with});
        let tokens = self.api.post("/v1/auth/2fa/login", Credential::Anonymous, second_factor).await?;
        let access = string_at(&expect_status(tokens, 200)?, "/access_token")?;
        Ok((access, keep))
    }
}

/// An access change that shares a session with its org, to read.
fn share_with_org() -> Value {
    json!({"visibility": "org", "permission": "read"})
}

/// A run that waits for the output of a client tool.
fn waiting_run() -> Value {
    json!({
        "messages": [{"role": "user", "content": "get_weather {\"city\": \"Paris\"}"}],
        "tools": [{"name": "get_weather", "parameters": {"type": "object"}}],
    })
}

async fn every_secured_operation_answers_each_caller_as_the_matrix_says(engine: TestEngine) -> TestResult {
    // Calls of `calculate` wait for an approver, so `run_resume` has a run to decide on.
    let server = start(engine, |config| {
        let policy =
            PolicyConfig { approval_required_tools: vec!["calculate".to_owned()], ..PolicyConfig::default() };
        config.policies.insert("default".to_owned(), policy);
    })
    .await?;
    let world = World::build(Api::new(&server), &server.database.url).await?;
    let mut mismatches = Vec::new();
    for operation in secured_operations()? {
        let rows: Vec<&Row> = rows_of(&operation.id).collect();
        if rows.is_empty() {
            mismatches.push(format!("{}: no row in MATRIX", operation.id));
        }
        for (_, sends, expected) in rows {
            for (caller, expected) in CALLERS.into_iter().zip(*expected) {
                let call = world.call(&operation, *sends, caller).await?;
                let credential = call.token.as_deref().map_or(Credential::Anonymous, Credential::Bearer);
                let headers: Vec<(&str, &str)> =
                    call.org.iter().map(|org| ("x-switchyard-org", org.as_str())).collect();
                let (status, body) = world
                    .api
                    .call_with_headers(
                        call.method.clone(),
                        &call.path,
                        credential,
                        call.body.as_ref(),
                        &headers,
                    )
                    .await?;
                if !expected.is_met_by(status, &body) {
                    mismatches.push(format!(
                        "{} ({} {}) as {caller:?}: expected {expected:?}, got {status} {body}",
                        operation.id, call.method, call.path
                    ));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} cells disagree with MATRIX:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    server.stop().await?;
    Ok(())
}

async fn members_may_mint_keys_but_externals_may_not(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    let member = api.register("member@example.com").await?;
    let external = api.register("external@example.com").await?;
    add_member(&server, &org, &member.user_id, "member").await?;
    add_member(&server, &org, &external.user_id, "external").await?;

    for (session, role) in [(&member, "member"), (&external, "external")] {
        let seen = expect_status(api.get(&format!("/v1/orgs/{org}"), session.bearer()).await?, 200)?;
        assert_eq!(seen["role"], role, "{seen}");
    }
    let key = api.mint_key(&member, &org, &["chat"]).await?;
    expect_status(api.get("/v1/auth/me", Credential::Bearer(&key.key)).await?, 200)?;

    let mint = json!({"name": "external", "scopes": ["chat"], "org_id": org});
    assert_error(&api.post("/v1/api-keys", external.bearer(), mint).await?, 403, "auth.role_denied");
    server.stop().await?;
    Ok(())
}

async fn a_key_stops_working_when_its_owner_leaves_the_org(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    let member = api.register("member@example.com").await?;
    add_member(&server, &org, &member.user_id, "member").await?;
    let key = api.mint_key(&member, &org, &["*"]).await?;
    expect_status(api.get("/v1/auth/me", Credential::Bearer(&key.key)).await?, 200)?;

    let path = format!("/v1/orgs/{org}/members/{}", member.user_id);
    assert_eq!(api.delete(&path, owner.bearer()).await?.0, 204);
    assert_error(&api.get("/v1/auth/me", Credential::Bearer(&key.key)).await?, 401, "auth.invalid_api_key");
    assert_error(&api.get(&format!("/v1/orgs/{org}"), member.bearer()).await?, 404, "org.not_found");
    server.stop().await?;
    Ok(())
}
