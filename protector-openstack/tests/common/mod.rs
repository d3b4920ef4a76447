//! Shared test plumbing: a wiremock cloud whose Keystone hands out a catalog pointing
//! at itself, a settable clock, and fixtures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use protector_core::Clock;
use protector_openstack::{CloudConfigBuilder, OpenStackSite, RetryPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const PROJECT_ID: &str = "e0de47419cad474ab63beea67f81df64";
pub const USER_ID: &str = "e4907a17313d49e99379a0de406435ef";
pub const TOKEN: &str = "gAAAAABtest-token-1";
pub const PASSWORD: &str = "correct horse battery staple";

/// A wall clock the test moves by hand.
#[derive(Debug)]
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(
            Utc.with_ymd_and_hms(2025, 3, 15, 9, 0, 0).single().unwrap(),
        )))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap();
        *now += chrono::Duration::from_std(by).unwrap();
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

pub fn fixture(rel: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

pub fn json_fixture(rel: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(rel)).unwrap()
}

/// A fixture as a 200 JSON response with a request id.
pub fn ok_json(rel: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/json")
        .insert_header(
            "x-openstack-request-id",
            "req-00000000-0000-4000-8000-000000000001",
        )
        .set_body_string(fixture(rel))
}

/// A fixture with the given status and a request id.
pub fn status_json(status: u16, rel: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/json")
        .insert_header(
            "x-openstack-request-id",
            "req-00000000-0000-4000-8000-0000000000e1",
        )
        .set_body_string(fixture(rel))
}

pub struct MockCloud {
    pub server: MockServer,
    pub clock: Arc<TestClock>,
}

impl MockCloud {
    /// A cloud whose Keystone is mounted (any number of token requests).
    pub async fn start() -> Self {
        let cloud = Self::bare().await;
        cloud
            .mount_token(TOKEN, "keystone/token_password.json", None)
            .await;
        cloud
    }

    /// A cloud with nothing mounted.
    pub async fn bare() -> Self {
        Self {
            server: MockServer::start().await,
            clock: TestClock::new(),
        }
    }

    pub fn base(&self) -> String {
        self.server.uri()
    }

    /// The body Keystone answers with: the fixture with this server's URL and a token
    /// valid for an hour from the test clock.
    pub fn token_body(&self, rel: &str) -> String {
        let expires = self.clock.now() + chrono::Duration::hours(1);
        fixture(rel).replace("{{BASE}}", &self.base()).replace(
            "{{EXPIRES_AT}}",
            &expires.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        )
    }

    /// Keystone's answer, with `expires_at` an hour after the test clock's time of
    /// each request.
    pub fn token_response(&self, token: &str, rel: &str) -> TokenResponder {
        TokenResponder {
            clock: self.clock.clone(),
            base: self.base(),
            token: token.to_owned(),
            rel: rel.to_owned(),
        }
    }

    pub async fn mount_token(&self, token: &str, rel: &str, expect: Option<u64>) {
        let mut mock = Mock::given(method("POST"))
            .and(path("/identity/v3/auth/tokens"))
            .respond_with(self.token_response(token, rel));
        if let Some(n) = expect {
            mock = mock.expect(n);
        }
        mock.mount(&self.server).await;
    }

    /// A password config for this cloud, with fast retries and the test clock.
    pub fn config(&self) -> CloudConfigBuilder {
        protector_openstack::CloudConfig::builder()
            .cloud_name("mock")
            .auth_url(format!("{}/identity", self.base()))
            .username("dr-bot")
            .password(PASSWORD)
            .user_domain_name("Default")
            .project_name("dr")
            .project_domain_name("Default")
            .region_name("RegionOne")
            .clock(self.clock.clone())
            .request_timeout(Duration::from_secs(10))
            .retry_policy(fast_retries())
    }

    pub async fn site(&self) -> OpenStackSite {
        OpenStackSite::connect(self.config().build().unwrap())
            .await
            .unwrap()
    }

    pub fn compute_path(&self, rest: &str) -> String {
        format!("/compute/v2.1{rest}")
    }

    pub fn volume_path(&self, rest: &str) -> String {
        format!("/volume/v3/{PROJECT_ID}{rest}")
    }

    pub fn network_path(&self, rest: &str) -> String {
        format!("/network/v2.0{rest}")
    }
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy::default().with_backoff(Duration::from_millis(1), Duration::from_millis(5))
}

pub struct TokenResponder {
    clock: Arc<TestClock>,
    base: String,
    token: String,
    rel: String,
}

impl Respond for TokenResponder {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let expires = self.clock.now() + chrono::Duration::hours(1);
        let body = fixture(&self.rel).replace("{{BASE}}", &self.base).replace(
            "{{EXPIRES_AT}}",
            &expires.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        );
        ResponseTemplate::new(201)
            .insert_header("content-type", "application/json")
            .insert_header("x-subject-token", self.token.as_str())
            .insert_header("x-openstack-request-id", "req-keystone-1")
            .set_body_string(body)
    }
}
