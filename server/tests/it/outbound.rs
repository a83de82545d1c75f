//! The outbound guard against servers the test starts on 127.0.0.1: an
//! exception opens loopback and nothing else does, redirects are judged hop
//! by hop and counted, answers are held to their size and time limits,
//! plain http needs the operator's leave, and a name with one refused
//! address among several is refused before anything connects.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Path, Redirect};
use poem::{Body, EndpointExt, IntoResponse, Response, Route, handler};
use reqwest::Method;
use switchyard_server::outbound::{
    Lookup, LookupFuture, MAX_REDIRECTS, Outbound, OutboundConfig, OutboundError, OutboundRequest, Range,
};
use url::Url;

use crate::support::{BoxError, TestResult, serve_mock};

/// How many requests the mock has answered.
#[derive(Default)]
struct Hits(AtomicUsize);

impl Hits {
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[handler]
fn ok(hits: Data<&Arc<Hits>>) -> &'static str {
    hits.hit();
    "fine"
}

/// `/chain/{n}` redirects to `/chain/{n-1}` until `/chain/0` answers.
#[handler]
fn chain(Path(left): Path<u32>, hits: Data<&Arc<Hits>>) -> Response {
    hits.hit();
    if left == 0 {
        "end of the chain".into_response()
    } else {
        Redirect::see_other(format!("/chain/{}", left - 1)).into_response()
    }
}

#[handler]
fn to_metadata() -> Redirect {
    Redirect::temporary("http://169.254.169.254/latest/meta-data/")
}

#[handler]
fn to_private_name() -> Redirect {
    Redirect::see_other("http://internal.test/admin")
}

#[handler]
fn big() -> Vec<u8> {
    vec![b'x'; 2048]
}

#[handler]
fn exactly_the_limit() -> Vec<u8> {
    vec![b'x'; 1024]
}

/// 2 KiB in 256-byte chunks with no `Content-Length`: only reading counts it.
#[handler]
fn streamed() -> Body {
    let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 256])));
    Body::from_bytes_stream(futures::stream::iter(chunks))
}

#[handler]
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "too late"
}

#[handler]
fn missing() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// Starts the mock; returns its base URL (`http://127.0.0.1:<port>`) and its count.
async fn mock() -> Result<(Url, Arc<Hits>), BoxError> {
    let hits = Arc::new(Hits::default());
    let app = Route::new()
        .at("/ok", poem::get(ok))
        .at("/chain/:left", poem::get(chain))
        .at("/to-metadata", poem::post(to_metadata))
        .at("/to-private-name", poem::get(to_private_name))
        .at("/big", poem::get(big))
        .at("/exactly-the-limit", poem::get(exactly_the_limit))
        .at("/streamed", poem::get(streamed))
        .at("/slow", poem::get(slow))
        .at("/missing", poem::get(missing))
        .data(hits.clone());
    Ok((Url::parse(&serve_mock(app).await?)?, hits))
}

/// A fake DNS: fixed names to fixed addresses.
struct Table(HashMap<String, Vec<IpAddr>>);

impl Lookup for Table {
    fn lookup(&self, host: &str) -> LookupFuture {
        let found = self.0.get(host).cloned();
        Box::pin(async move { found.ok_or_else(|| std::io::Error::other("no such host")) })
    }
}

fn table() -> Arc<Table> {
    let ip = |text: &str| text.parse::<IpAddr>().unwrap();
    Arc::new(Table(HashMap::from([
        ("orders.test".to_owned(), vec![ip("127.0.0.1")]),
        ("mixed.test".to_owned(), vec![ip("127.0.0.1"), ip("10.0.0.7")]),
        ("internal.test".to_owned(), vec![ip("192.168.10.10")]),
    ])))
}

/// Plain http allowed (the mocks do not speak TLS), loopback opened.
fn loopback_open() -> OutboundConfig {
    OutboundConfig { allow_http: true, allow: vec!["127.0.0.1/32".to_owned()], ..OutboundConfig::default() }
}

fn guard(config: &OutboundConfig) -> Outbound {
    Outbound::with_lookup(config, table()).unwrap()
}

fn at(base: &Url, path: &str) -> Url {
    base.join(path).unwrap()
}

async fn get(
    outbound: &Outbound,
    url: Url,
) -> Result<switchyard_server::outbound::OutboundResponse, OutboundError> {
    outbound.send(OutboundRequest::new(Method::GET, url)).await
}

#[tokio::test]
async fn an_exception_opens_loopback_for_the_call() -> TestResult {
    let (base, hits) = mock().await?;
    let outbound = guard(&loopback_open());
    let answer = get(&outbound, at(&base, "/ok")).await?;
    assert_eq!(answer.status, 200);
    assert_eq!(&answer.body[..], b"fine");
    assert_eq!(answer.final_url, at(&base, "/ok"));
    // A name is resolved by the guard and the connection made to the address it checked.
    let mut by_name = at(&base, "/ok");
    by_name.set_host(Some("orders.test"))?;
    assert_eq!(get(&outbound, by_name.clone()).await?.status, 200);
    outbound.check_url(&by_name).await?;
    // An error status is an answer like another.
    assert_eq!(get(&outbound, at(&base, "/missing")).await?.status, 404);
    assert_eq!(hits.count(), 2);
    Ok(())
}

#[tokio::test]
async fn without_the_exception_loopback_is_refused_before_connecting() -> TestResult {
    let (base, hits) = mock().await?;
    let outbound = guard(&OutboundConfig { allow_http: true, ..OutboundConfig::default() });
    let mut spellings = vec![at(&base, "/ok")];
    for host in
        ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "[::ffff:127.0.0.1]", "localhost.", "orders.test"]
    {
        let port = base.port().unwrap();
        spellings.push(Url::parse(&format!("http://{host}:{port}/ok"))?);
    }
    for url in spellings {
        let refused = get(&outbound, url.clone()).await;
        assert!(
            matches!(&refused, Err(OutboundError::Refused { reason, .. }) if reason.range == Range::Loopback),
            "{url}: {refused:?}"
        );
        assert!(matches!(outbound.check_url(&url).await, Err(OutboundError::Refused { .. })), "{url}");
    }
    assert_eq!(hits.count(), 0, "nothing reached the server");
    Ok(())
}

#[tokio::test]
async fn a_redirect_to_a_refused_address_is_refused() -> TestResult {
    let (base, _) = mock().await?;
    let outbound = guard(&loopback_open());
    let refused = outbound.send(OutboundRequest::new(Method::POST, at(&base, "/to-metadata"))).await;
    assert!(
        matches!(&refused, Err(OutboundError::Refused { address, reason })
            if *address == "169.254.169.254".parse::<IpAddr>()? && reason.range == Range::LinkLocal),
        "{refused:?}"
    );
    // A name is judged by the resolver the client connects through.
    let refused = get(&outbound, at(&base, "/to-private-name")).await;
    assert!(
        matches!(&refused, Err(OutboundError::Refused { address, reason })
            if *address == "192.168.10.10".parse::<IpAddr>()? && reason.range == Range::Private),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn more_than_three_redirects_are_refused() -> TestResult {
    let (base, hits) = mock().await?;
    let outbound = guard(&loopback_open());
    let answer = get(&outbound, at(&base, &format!("/chain/{MAX_REDIRECTS}"))).await?;
    assert_eq!(&answer.body[..], b"end of the chain");
    assert_eq!(answer.final_url, at(&base, "/chain/0"));
    assert_eq!(hits.count(), MAX_REDIRECTS + 1);
    let refused = get(&outbound, at(&base, &format!("/chain/{}", MAX_REDIRECTS + 1))).await;
    assert_eq!(refused.err(), Some(OutboundError::TooManyRedirects { max: 3 }));
    Ok(())
}

#[tokio::test]
async fn an_answer_over_the_limit_is_refused() -> TestResult {
    let (base, _) = mock().await?;
    let outbound = guard(&OutboundConfig { max_response_bytes: 1024, ..loopback_open() });
    assert_eq!(get(&outbound, at(&base, "/big")).await.err(), Some(OutboundError::TooLarge { limit: 1024 }));
    assert_eq!(
        get(&outbound, at(&base, "/streamed")).await.err(),
        Some(OutboundError::TooLarge { limit: 1024 })
    );
    assert_eq!(get(&outbound, at(&base, "/exactly-the-limit")).await?.body.len(), 1024);
    // A caller may ask for less than the operator allows, never more.
    let mut lower = OutboundRequest::new(Method::GET, at(&base, "/exactly-the-limit"));
    lower.max_response_bytes = Some(100);
    assert_eq!(outbound.send(lower).await.err(), Some(OutboundError::TooLarge { limit: 100 }));
    let mut higher = OutboundRequest::new(Method::GET, at(&base, "/big"));
    higher.max_response_bytes = Some(1 << 20);
    assert_eq!(outbound.send(higher).await.err(), Some(OutboundError::TooLarge { limit: 1024 }));
    Ok(())
}

#[tokio::test]
async fn a_slow_server_times_out() -> TestResult {
    let (base, _) = mock().await?;
    let outbound = guard(&OutboundConfig { timeout_ms: 200, ..loopback_open() });
    let started = std::time::Instant::now();
    assert_eq!(
        get(&outbound, at(&base, "/slow")).await.err(),
        Some(OutboundError::Timeout { after_ms: 200 })
    );
    let mut own = OutboundRequest::new(Method::GET, at(&base, "/slow"));
    own.timeout = Some(Duration::from_millis(100));
    assert_eq!(outbound.send(own).await.err(), Some(OutboundError::Timeout { after_ms: 100 }));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn plain_http_needs_the_operators_leave() -> TestResult {
    let (base, hits) = mock().await?;
    let https_only = guard(&OutboundConfig { allow_http: false, ..loopback_open() });
    let refused = get(&https_only, at(&base, "/ok")).await;
    assert_eq!(refused.err(), Some(OutboundError::SchemeNotAllowed { scheme: "http".to_owned() }));
    assert!(https_only.check_url(&at(&base, "/ok")).await.is_err());
    assert_eq!(hits.count(), 0);
    assert_eq!(get(&guard(&loopback_open()), at(&base, "/ok")).await?.status, 200);
    let mut with_user = at(&base, "/ok");
    with_user.set_username("admin").ok();
    assert_eq!(get(&guard(&loopback_open()), with_user).await.err(), Some(OutboundError::UserinfoNotAllowed));
    Ok(())
}

#[tokio::test]
async fn a_name_with_one_refused_address_among_several_is_refused() -> TestResult {
    let (base, hits) = mock().await?;
    let outbound = guard(&loopback_open());
    let mut mixed = at(&base, "/ok");
    mixed.set_host(Some("mixed.test"))?;
    for refused in [get(&outbound, mixed.clone()).await.err(), outbound.check_url(&mixed).await.err()] {
        assert!(
            matches!(&refused, Some(OutboundError::Refused { address, reason })
                if *address == "10.0.0.7".parse::<IpAddr>()? && reason.range == Range::Private),
            "{refused:?}"
        );
    }
    assert_eq!(hits.count(), 0, "127.0.0.1, the allowed one, was not tried either");
    Ok(())
}

#[test]
fn bad_outbound_settings_name_the_key() {
    for (config, key) in [
        (
            OutboundConfig { allow: vec!["10.0.0.0/33".to_owned()], ..OutboundConfig::default() },
            "outbound.allow",
        ),
        (
            OutboundConfig { max_response_bytes: 0, ..OutboundConfig::default() },
            "outbound.max_response_bytes",
        ),
        (OutboundConfig { timeout_ms: 0, ..OutboundConfig::default() }, "outbound.timeout_ms"),
    ] {
        let err = Outbound::new(&config).err().map(|err| err.to_string());
        assert!(err.as_deref().is_some_and(|err| err.starts_with(key)), "{err:?}");
    }
}
