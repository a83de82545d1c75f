//! The generated SDK against a live server: typed successes and a typed error.

use switchyard_sdk::types::{ErrorCode, HealthStatus, ReadyStatus};
use switchyard_sdk::{Credential, Error, connect};
use switchyard_server::testing::harness::{RunningServer, TestDatabase, TestEngine};

mod support;

#[tokio::test]
async fn calls_the_operational_endpoints() -> Result<(), Box<dyn std::error::Error>> {
    let server = RunningServer::start(TestDatabase::create(TestEngine::Sqlite).await?, |_| {}).await?;
    let client = connect(&server.base_url, Credential::None)?;

    let health = client.health_get().send().await?;
    assert_eq!(health.status, HealthStatus::Ok);

    let ready = client.ready_get().send().await?;
    assert_eq!(ready.status, ReadyStatus::Ready);
    assert!(ready.migrations_applied >= 1);

    let meta = client.meta_get().send().await?;
    assert_eq!(meta.name, "switchyard");
    assert_eq!(meta.version, env!("CARGO_PKG_VERSION"));
    assert!(meta.deployment_id.starts_with("dep_"), "{}", meta.deployment_id);
    assert!(meta.headers().contains_key("x-request-id"));

    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn reports_errors_as_typed_error_bodies() -> Result<(), Box<dyn std::error::Error>> {
    let database = TestDatabase::create(TestEngine::Sqlite).await?;
    let server = RunningServer::start(database, |config| config.auto_migrate = false).await?;
    let client = connect(&server.base_url, Credential::None)?;

    match client.ready_get().send().await {
        Err(Error::ErrorResponse(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            assert_eq!(response.error.code, ErrorCode::ServerNotReady);
            assert!(response.error.request_id.starts_with("req_"));
            assert_eq!(response.detail, response.error.message);
        }
        other => panic!("expected a typed 503, got {other:?}"),
    }

    server.stop().await?;
    Ok(())
}

/// The quickstart path: register, log in, create an org, mint a key, `me` with it.
#[tokio::test]
async fn register_login_mint_a_key_and_use_it() -> Result<(), Box<dyn std::error::Error>> {
    use switchyard_sdk::types::{
        ApiKeyScope, CreateApiKeyRequest, CreateOrgRequest, LoginRequest, LoginResult, RegisterRequest, Role,
    };

    let server = RunningServer::start(TestDatabase::create(TestEngine::Sqlite).await?, |_| {}).await?;
    let anonymous = connect(&server.base_url, Credential::None)?;
    let (email, password) = ("ada@example.com".to_owned(), "correct horse battery staple".to_owned());
    anonymous
        .auth_register()
        .body(RegisterRequest { email: email.clone(), password: password.clone(), display_name: None })
        .send()
        .await?;
    let login = anonymous.auth_login().body(LoginRequest { email: email.clone(), password }).send().await?;
    let LoginResult::AuthTokens(session) = login.into_inner() else {
        panic!("no second factor is set up, so login returns tokens");
    };

    let user = connect(&server.base_url, Credential::Bearer(session.access_token.clone()))?;
    let org = user.org_create().body(CreateOrgRequest { name: "Engines".to_owned() }).send().await?;
    assert_eq!(org.role, Role::Owner);
    let minted = user
        .api_key_create()
        .body(CreateApiKeyRequest {
            name: "sdk".to_owned(),
            scopes: vec![ApiKeyScope::Chat],
            org_id: org.id.clone(),
            project_id: None,
            expires_in_days: None,
            allowed_models: Default::default(),
            budget_usd: None,
            rpm_limit: None,
            tpm_limit: None,
        })
        .send()
        .await?;

    let with_key = connect(&server.base_url, Credential::ApiKey(minted.key.clone()))?;
    let me = with_key.auth_me().send().await?;
    assert_eq!(me.user.email, email);
    assert_eq!(me.orgs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), vec![org.id.as_str()]);

    // An API key cannot mint keys: a typed 403.
    let refused = with_key
        .api_key_create()
        .body(CreateApiKeyRequest {
            name: "x".into(),
            scopes: vec![ApiKeyScope::X],
            org_id: org.id.clone(),
            project_id: None,
            expires_in_days: None,
            allowed_models: Default::default(),
            budget_usd: None,
            rpm_limit: None,
            tpm_limit: None,
        })
        .send()
        .await;
    match refused {
        Err(Error::ErrorResponse(err)) => assert_eq!(err.error.code, ErrorCode::AuthSessionRequired),
        other => panic!("expected a typed 403, got {other:?}"),
    }
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn streams_a_chat_completion_as_typed_chunks() -> Result<(), Box<dyn std::error::Error>> {
    use futures::StreamExt;
    use switchyard_sdk::stream::chat_completion_stream;
    use switchyard_sdk::types::{ApiKeyScope, ChatCompletionRequest, ChatMessage};

    let server = RunningServer::start(TestDatabase::create(TestEngine::Sqlite).await?, |_| {}).await?;
    let key =
        support::mint_key(&server.base_url, vec![ApiKeyScope::Chat]).await.map_err(|err| err.to_string())?;
    let client = connect(&server.base_url, Credential::ApiKey(key))?;

    let request = |model: &str| {
        ChatCompletionRequest::new(model, vec![ChatMessage::text("user", "stream this please")])
    };
    let chunks: Vec<_> = chat_completion_stream(&client, &request("default")).await?.collect().await;
    let mut text = String::new();
    let mut finish = None;
    for chunk in chunks {
        let chunk = chunk?;
        assert_eq!(chunk.object, "chat.completion.chunk");
        for choice in chunk.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or_default());
            finish = choice.finish_reason.or(finish);
        }
    }
    assert_eq!(text, "You said: stream this please");
    assert_eq!(finish.as_deref(), Some("stop"));

    // A refusal before the stream starts is the typed envelope.
    match chat_completion_stream(&client, &request("no-such-model")).await {
        Err(Error::ErrorResponse(err)) => assert_eq!(err.error.code, ErrorCode::GatewayModelNotFound),
        Err(other) => panic!("expected a typed 404, got {other}"),
        Ok(_) => panic!("an unknown model must be refused"),
    }
    server.stop().await?;
    Ok(())
}
