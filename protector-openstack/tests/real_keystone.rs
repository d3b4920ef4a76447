//! Against a real Keystone: `scripts/services/keystone-start` (run by `scripts/test`)
//! exports `PROTECTOR_TEST_KEYSTONE_URL` and the admin credentials. When it has not
//! been run, the first test of this process runs it (once) and uses what it prints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use protector_core::{BackendErrorKind, Clock, SystemClock};
use protector_openstack::{
    CloudConfig, CloudConfigBuilder, OpenStackSite, RetryPolicy, ServiceType, Session,
};
use tokio::sync::OnceCell;

#[derive(Debug, Clone)]
struct Keystone {
    url: String,
    user: String,
    password: String,
    project: String,
    domain: String,
    region: String,
    expiration: Duration,
}

static KEYSTONE: OnceCell<Keystone> = OnceCell::const_new();

async fn keystone() -> &'static Keystone {
    KEYSTONE.get_or_init(discover).await
}

async fn discover() -> Keystone {
    let mut vars: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("PROTECTOR_TEST_KEYSTONE_"))
        .collect();
    if !vars.contains_key("PROTECTOR_TEST_KEYSTONE_URL") {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scripts/services/keystone-start");
        eprintln!(
            "PROTECTOR_TEST_KEYSTONE_URL unset: running {}",
            script.display()
        );
        let out = tokio::process::Command::new(&script)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}); run it by hand, `eval \"$(scripts/services/keystone-start)\"`, \
             then `cargo test -p protector-openstack`. Its output:\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line
                .trim()
                .strip_prefix("export ")
                .and_then(|l| l.split_once('='))
            {
                vars.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    let get = |k: &str| {
        vars.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} is not set; run scripts/services/keystone-start"))
    };
    Keystone {
        url: get("PROTECTOR_TEST_KEYSTONE_URL"),
        user: get("PROTECTOR_TEST_KEYSTONE_ADMIN_USER"),
        password: get("PROTECTOR_TEST_KEYSTONE_ADMIN_PASSWORD"),
        project: get("PROTECTOR_TEST_KEYSTONE_ADMIN_PROJECT"),
        domain: get("PROTECTOR_TEST_KEYSTONE_DOMAIN"),
        region: get("PROTECTOR_TEST_KEYSTONE_REGION"),
        expiration: Duration::from_secs(
            get("PROTECTOR_TEST_KEYSTONE_TOKEN_EXPIRATION")
                .parse()
                .unwrap(),
        ),
    }
}

/// The expiry tests wait for real tokens to age; they need short-lived ones.
fn require_short_tokens(k: &Keystone) {
    assert!(
        k.expiration >= Duration::from_secs(12) && k.expiration <= Duration::from_secs(120),
        "token lifetime {:?} is outside 12..=120 s; start Keystone with \
         PROTECTOR_KEYSTONE_EXPIRATION=20 scripts/services/keystone-start",
        k.expiration
    );
}

fn admin(k: &Keystone) -> CloudConfigBuilder {
    CloudConfig::builder()
        .cloud_name("real-keystone")
        .auth_url(&k.url)
        .username(&k.user)
        .password(&k.password)
        .user_domain_name(&k.domain)
        .project_name(&k.project)
        .project_domain_name(&k.domain)
        .region_name(&k.region)
        .token_refresh_margin(Duration::from_secs(2))
}

/// Wall time an hour behind: the session believes its token is fresh after Keystone
/// has expired it, so the next call meets a real 401.
#[derive(Debug)]
struct LaggingClock;

impl Clock for LaggingClock {
    fn now(&self) -> DateTime<Utc> {
        SystemClock.now() - chrono::Duration::hours(1)
    }
}

async fn sleep_until(at: DateTime<Utc>) {
    let wait = (at - SystemClock.now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait).await;
}

#[tokio::test]
async fn real_keystone_password_auth_gives_the_admin_context_and_catalog() {
    let k = keystone().await;
    let site = OpenStackSite::connect(admin(k).build().unwrap())
        .await
        .unwrap();
    let ctx = site.request_context().await.unwrap();
    assert!(ctx.is_admin(), "{ctx:?}");
    assert!(!ctx.user_id.as_str().is_empty() && !ctx.project_id.as_str().is_empty());
    let token = site.session().token().await.unwrap();
    assert_eq!(token.project_name.as_deref(), Some(k.project.as_str()));
    assert_eq!(token.methods, vec!["password"]);
    let identity = site
        .session()
        .endpoint(ServiceType::Identity)
        .await
        .unwrap();
    assert_eq!(
        identity.as_str().trim_end_matches('/'),
        k.url.trim_end_matches('/')
    );
    // This Keystone's catalog holds only itself: Nova's absence is named clearly.
    let err = site.clients().compute.list_servers().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::NotFound);
    assert!(
        err.message
            .contains("no public endpoint for service type compute in region RegionOne"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn real_keystone_accepts_auth_url_without_v3_and_with_a_trailing_slash() {
    let k = keystone().await;
    let root = k
        .url
        .trim_end_matches('/')
        .trim_end_matches("/v3")
        .to_owned();
    for url in [root.clone(), format!("{root}/"), format!("{root}/v3/")] {
        let session = Session::connect(admin(k).auth_url(&url).build().unwrap())
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(session.request_context().await.unwrap().is_admin());
    }
}

#[tokio::test]
async fn real_keystone_authenticates_an_application_credential_created_through_the_api() {
    let k = keystone().await;
    let session = Session::connect(admin(k).build().unwrap()).await.unwrap();
    let me = session.token().await.unwrap();
    // Create the credential with a raw admin token.
    let http = reqwest::Client::new();
    let auth = http
        .post(format!("{}/auth/tokens", k.url))
        .json(&serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": k.user, "domain": {"name": k.domain}, "password": k.password}}},
            "scope": {"project": {"name": k.project, "domain": {"name": k.domain}}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(auth.status().as_u16(), 201);
    let admin_token = auth.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let name = format!(
        "protector-test-{}-{}",
        std::process::id(),
        me.expires_at.timestamp_micros()
    );
    let created: serde_json::Value = http
        .post(format!(
            "{}/users/{}/application_credentials",
            k.url, me.user_id
        ))
        .header("X-Auth-Token", &admin_token)
        .json(&serde_json::json!({"application_credential": {
            "name": name, "description": "protector-openstack test"}}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["application_credential"]["id"].as_str().unwrap();
    let secret = created["application_credential"]["secret"]
        .as_str()
        .unwrap();

    let config = CloudConfig::builder()
        .auth_url(&k.url)
        .application_credential_id(id)
        .application_credential_secret(secret)
        .region_name(&k.region)
        .build()
        .unwrap();
    let app = Session::connect(config).await.unwrap();
    let token = app.token().await.unwrap();
    assert_eq!(token.methods, vec!["application_credential"]);
    assert_eq!(token.application_credential_id.as_deref(), Some(id));
    assert_eq!(token.project_id, me.project_id);
    assert_eq!(token.user_id, me.user_id);

    // By name plus owner works too; a wrong secret is refused.
    let by_name = CloudConfig::builder()
        .auth_url(&k.url)
        .application_credential_name(&name)
        .user_id(&me.user_id)
        .application_credential_secret(secret)
        .build()
        .unwrap();
    Session::connect(by_name).await.unwrap();
    let wrong = CloudConfig::builder()
        .auth_url(&k.url)
        .application_credential_id(id)
        .application_credential_secret("not-the-secret")
        .build()
        .unwrap();
    let Err(protector_openstack::Error::Backend(e)) = Session::connect(wrong).await else {
        panic!("a wrong application credential secret was accepted");
    };
    assert_eq!(e.kind, BackendErrorKind::Auth);
}

#[tokio::test]
async fn real_keystone_token_is_replaced_before_it_expires() {
    let k = keystone().await;
    require_short_tokens(k);
    // Refresh once less than (lifetime - 8 s) remains: about 8 s after issue.
    let margin = k.expiration.saturating_sub(Duration::from_secs(8));
    let session = Session::connect(admin(k).token_refresh_margin(margin).build().unwrap())
        .await
        .unwrap();
    let first = session.token().await.unwrap();
    let again = session.token().await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "a fresh token was not cached");
    sleep_until(first.issued_at.unwrap() + chrono::Duration::seconds(10)).await;
    let fresh = session.token().await.unwrap();
    assert!(fresh.expires_at > first.expires_at, "{first:?} {fresh:?}");
}

/// A session whose clock lags behind Keystone's and that refreshes nothing early: it
/// keeps using its token after Keystone let it expire.
async fn lagging_session(k: &Keystone) -> Session {
    Session::connect(
        admin(k)
            .clock(Arc::new(LaggingClock))
            .token_refresh_margin(Duration::ZERO)
            .build()
            .unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn real_keystone_expired_token_is_replaced_after_a_401() {
    let k = keystone().await;
    require_short_tokens(k);
    let session = lagging_session(k).await;
    let first = session.token().await.unwrap();
    sleep_until(first.expires_at + chrono::Duration::seconds(2)).await;
    // The session still trusts the expired token; Keystone answers 401 and the call
    // is repeated once with a new token.
    let catalog = session
        .get_json(ServiceType::Identity, &["auth", "catalog"])
        .await
        .unwrap();
    assert!(catalog["catalog"].as_array().is_some_and(|c| !c.is_empty()));
    let fresh = session.token().await.unwrap();
    assert!(fresh.expires_at > first.expires_at);
}

/// `Session::verify` (what a connector's probe does) asks Keystone every time: a real
/// Keystone validates the session's own token, and a token it no longer honours is
/// replaced.
#[tokio::test]
async fn real_keystone_validates_the_sessions_own_token_and_replaces_an_expired_one() {
    let k = keystone().await;
    let session = Session::connect(admin(k).build().unwrap()).await.unwrap();
    let first = session.token().await.unwrap();
    session.verify().await.unwrap();
    session.verify().await.unwrap();
    let same = session.token().await.unwrap();
    assert!(Arc::ptr_eq(&first, &same), "a valid token was replaced");

    require_short_tokens(k);
    let lagging = lagging_session(k).await;
    let old = lagging.token().await.unwrap();
    sleep_until(old.expires_at + chrono::Duration::seconds(2)).await;
    // The session still trusts the expired token; Keystone refuses it and a new one
    // is issued.
    lagging.verify().await.unwrap();
    let fresh = lagging.token().await.unwrap();
    assert!(fresh.expires_at > old.expires_at, "{old:?} {fresh:?}");
}

#[tokio::test]
async fn real_keystone_refuses_a_bad_password_with_a_clear_auth_error() {
    let k = keystone().await;
    let config = admin(k)
        .password("definitely-not-the-password")
        .retry_policy(RetryPolicy::no_retries())
        .build()
        .unwrap();
    let Err(protector_openstack::Error::Backend(e)) = Session::connect(config).await else {
        panic!("a bad password was accepted");
    };
    assert_eq!(e.kind, BackendErrorKind::Auth);
    assert_eq!(e.status, Some(401));
    assert_eq!(e.service, protector_core::Service::Identity);
    assert_eq!(
        e.message,
        "The request you have made requires authentication."
    );
    assert!(e.request_id.is_some());
    assert!(!e.to_string().contains("definitely-not-the-password"));
}

#[tokio::test]
async fn real_keystone_refuses_a_nonexistent_project() {
    let k = keystone().await;
    let config = admin(k)
        .project_name("no-such-project-protector")
        .build()
        .unwrap();
    let Err(protector_openstack::Error::Backend(e)) = Session::connect(config).await else {
        panic!("a nonexistent project was accepted");
    };
    assert_eq!(e.kind, BackendErrorKind::Auth, "{e}");
    assert_eq!(e.status, Some(401));
}
