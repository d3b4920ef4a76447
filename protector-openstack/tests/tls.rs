//! TLS: `cacert` adds the site's CA, `verify: false` accepts any certificate, and an
//! unknown CA is refused. The server is a minimal HTTPS Keystone on loopback with a
//! test CA and a certificate for 127.0.0.1 (fixtures/tls).

use std::sync::Arc;

use protector_core::BackendErrorKind;
use protector_openstack::{CloudConfig, CloudConfigBuilder, RetryPolicy, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::common::fixture;

fn tls_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// Serves Keystone's token answer to every request over TLS; returns the base URL.
async fn https_keystone() -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(tls_path("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(tls_path("server.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let body = fixture("keystone/token_password.json")
        .replace("{{BASE}}", &base)
        .replace("{{EXPIRES_AT}}", "2999-01-01T00:00:00.000000Z");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                // A refused handshake is what some tests expect: just drop it.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head and the announced body.
                loop {
                    let n = tls.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let response = format!(
                    "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nx-subject-token: tls-token\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    body.len(),
                    body
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    base
}

fn config(base: &str) -> CloudConfigBuilder {
    CloudConfig::builder()
        .auth_url(format!("{base}/identity"))
        .application_credential_id("ac")
        .application_credential_secret("s")
        .retry_policy(RetryPolicy::no_retries())
}

#[tokio::test]
async fn a_site_ca_given_as_cacert_is_trusted() {
    let base = https_keystone().await;
    let session = Session::connect(config(&base).cacert(tls_path("ca.pem")).build().unwrap())
        .await
        .unwrap();
    assert_eq!(
        session.token().await.unwrap().project_id,
        crate::common::PROJECT_ID
    );
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let base = https_keystone().await;
    let err = Session::connect(config(&base).build().unwrap())
        .await
        .unwrap_err();
    let protector_openstack::Error::Backend(e) = err else {
        panic!("expected a backend error, got {err}");
    };
    assert_eq!(e.kind, BackendErrorKind::Transient);
    assert!(e.message.contains("certificate"), "{}", e.message);
}

#[tokio::test]
async fn verify_false_accepts_a_certificate_from_an_unknown_ca() {
    let base = https_keystone().await;
    let session = Session::connect(config(&base).verify(false).build().unwrap())
        .await
        .unwrap();
    session.token().await.unwrap();
}
