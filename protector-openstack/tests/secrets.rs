//! Passwords, tokens and application-credential secrets never show in `Debug`,
//! `Display`, errors or logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use protector_openstack::{ConfigLoader, OpenStackSite, Session};
use wiremock::matchers::{method, path};
use wiremock::Mock;

use crate::common::{status_json, MockCloud};

const PASSWORD: &str = "pw-SECRET-31337";
const APP_SECRET: &str = "appcred-SECRET-4242";
const TOKEN: &str = "token-SECRET-9001";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in [PASSWORD, APP_SECRET, TOKEN] {
        assert!(!text.contains(secret), "{what} leaks a secret: {text}");
    }
}

#[tokio::test]
async fn secrets_never_appear_in_debug_display_errors_or_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cloud = MockCloud::bare().await;
    cloud
        .mount_token(TOKEN, "keystone/token_password.json", None)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/servers/s1")))
        .respond_with(status_json(404, "nova/error_item_not_found.json"))
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .respond_with(status_json(401, "keystone/error_unauthorized.json"))
        .mount(&cloud.server)
        .await;

    let builder = cloud.config().password(PASSWORD);
    assert_clean("builder Debug", &format!("{builder:?}"));
    let config = builder.build().unwrap();
    assert_clean("config Debug", &format!("{config:?}"));

    let site = OpenStackSite::connect(config.clone()).await.unwrap();
    assert_clean("site Debug", &format!("{site:?}"));
    let session = site.session().clone();
    assert_clean("session Debug", &format!("{session:?}"));
    let token = session.token().await.unwrap();
    assert_clean("token Debug", &format!("{token:?}"));
    assert_clean("clients Debug", &format!("{:?}", site.clients()));

    let not_found = site
        .clients()
        .compute
        .get_server(&"s1".into())
        .await
        .unwrap_err();
    let unauthorized = site.clients().compute.list_flavors().await.unwrap_err();
    for e in [&not_found, &unauthorized] {
        assert_clean("backend error", &format!("{e} {e:?}"));
        assert_clean("serialised error", &serde_json::to_string(e).unwrap());
    }

    // Application credential config and a refused authentication.
    let bad = cloud.config().auth_url("http://127.0.0.1:1/v3");
    let app = protector_openstack::CloudConfig::builder()
        .auth_url(format!("{}/identity", cloud.base()))
        .application_credential_id("ac")
        .application_credential_secret(APP_SECRET)
        .build()
        .unwrap();
    assert_clean("app config Debug", &format!("{app:?}"));
    let refused = Session::connect(
        bad.retry_policy(protector_openstack::RetryPolicy::no_retries())
            .build()
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert_clean("connect error", &format!("{refused} {refused:?}"));

    // Config errors from a file and from the environment that hold the secrets.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clouds.yaml"),
        format!(
            "clouds:\n  c:\n    auth:\n      auth_url: https://k\n      password: {PASSWORD}\n      application_credential_secret: [{APP_SECRET}]\n"
        ),
    )
    .unwrap();
    let loader =
        ConfigLoader::new([("OS_PASSWORD", PASSWORD)]).with_search_dirs([dir.path().to_path_buf()]);
    assert_clean("loader Debug", &format!("{loader:?}"));
    let err = loader.load(Some("c")).unwrap_err();
    assert_clean("config error", &format!("{err} {err:?}"));
    let env_err = ConfigLoader::new([("OS_PASSWORD", PASSWORD), ("OS_AUTH_URL", "https://k")])
        .load(None)
        .unwrap_err();
    assert_clean("env config error", &format!("{env_err} {env_err:?}"));

    drop(_guard);
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("authenticated"),
        "tracing captured nothing: {logged}"
    );
    assert_clean("logs", &logged);
}
