//! clouds.yaml / secure.yaml / OS_* loading, with an injected environment and search
//! directories (the real environment is never read).

use std::path::{Path, PathBuf};

use protector_openstack::{
    ApplicationCredentialRef, AuthMethod, ConfigError, ConfigLoader, DomainRef, Interface,
    ProjectScope, Session, UserRef,
};
use secrecy::ExposeSecret;

const CLOUDS: &str = r#"
clouds:
  prod:
    auth_type: password
    auth:
      auth_url: https://keystone.example.com:5000/v3
      username: dr-bot
      project_name: dr
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: internal
    verify: true
  prod-appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example.com:5000
      application_credential_id: 423f19a4ac1e4f48bbb4180756e6eb6c
      application_credential_secret: rEaqvJka48mpv
    region_name: RegionTwo
    verify: false
  broken:
    auth:
      auth_url: https://keystone.example.com:5000/v3
      username: dr-bot
      password: pw
      user_domain_name: Default
"#;

const SECURE: &str = r#"
clouds:
  prod:
    auth:
      password: from-secure-yaml
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn loader(env: &[(&str, &str)], dirs: &[&Path]) -> ConfigLoader {
    ConfigLoader::new(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .with_search_dirs(dirs.iter().map(|d| d.to_path_buf()))
}

#[test]
fn a_named_cloud_is_read_from_clouds_yaml_with_secure_yaml_merged_over_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "clouds.yaml", CLOUDS);
    write(dir.path(), "secure.yaml", SECURE);
    let cfg = loader(&[], &[dir.path()]).load(Some("prod")).unwrap();
    assert_eq!(cfg.cloud_name(), "prod");
    assert_eq!(
        cfg.identity_url().as_str(),
        "https://keystone.example.com:5000/v3"
    );
    assert_eq!(cfg.region_name(), Some("RegionOne"));
    assert_eq!(cfg.interface(), Interface::Internal);
    let AuthMethod::Password {
        user,
        password,
        project,
    } = cfg.auth()
    else {
        panic!("expected password auth");
    };
    assert_eq!(
        user,
        &UserRef::Name {
            name: "dr-bot".into(),
            domain: DomainRef::Name("Default".into())
        }
    );
    assert_eq!(password.expose_secret(), "from-secure-yaml");
    assert_eq!(
        project,
        &ProjectScope::Name {
            name: "dr".into(),
            domain: DomainRef::Name("Default".into())
        }
    );
}

#[test]
fn os_cloud_selects_the_cloud_and_os_client_config_file_comes_first() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let explicit = write(first.path(), "my-clouds.yaml", CLOUDS);
    write(
        second.path(),
        "clouds.yaml",
        "clouds:\n  prod-appcred:\n    auth:\n      auth_url: https://other\n",
    );
    let cfg = loader(
        &[
            ("OS_CLOUD", "prod-appcred"),
            ("OS_CLIENT_CONFIG_FILE", explicit.to_str().unwrap()),
        ],
        &[second.path()],
    )
    .load(None)
    .unwrap();
    assert_eq!(
        cfg.identity_url().as_str(),
        "https://keystone.example.com:5000/v3"
    );
    assert!(matches!(
        cfg.auth(),
        AuthMethod::ApplicationCredential { id_or_name: ApplicationCredentialRef::Id(id), secret }
            if id == "423f19a4ac1e4f48bbb4180756e6eb6c" && secret.expose_secret() == "rEaqvJka48mpv"
    ));
}

#[test]
fn the_first_search_directory_with_a_clouds_yaml_wins() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    write(
        first.path(),
        "clouds.yml",
        "clouds:\n  c:\n    auth:\n      auth_url: https://first\n      application_credential_id: a\n      application_credential_secret: s\n",
    );
    write(
        second.path(),
        "clouds.yaml",
        "clouds:\n  c:\n    auth:\n      auth_url: https://second\n      application_credential_id: a\n      application_credential_secret: s\n",
    );
    let cfg = loader(&[], &[first.path(), second.path()])
        .load(Some("c"))
        .unwrap();
    assert_eq!(cfg.identity_url().host_str(), Some("first"));
}

#[test]
fn a_missing_cloud_names_the_file_and_the_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "clouds.yaml", CLOUDS);
    let err = loader(&[], &[dir.path()])
        .load(Some("staging"))
        .unwrap_err();
    assert!(matches!(err, ConfigError::CloudNotFound { .. }));
    assert_eq!(
        err.to_string(),
        format!("cloud 'staging' not found in {}", file.display())
    );
}

#[test]
fn a_missing_key_names_the_file_the_cloud_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "clouds.yaml", CLOUDS);
    let err = loader(&[], &[dir.path()]).load(Some("broken")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cloud 'broken' is missing project_name or project_id",
            file.display()
        )
    );
}

#[test]
fn a_malformed_file_is_named_with_the_position_but_no_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "clouds.yaml",
        "clouds:\n  prod:\n    auth: {password: hunter2\n",
    );
    let err = loader(&[], &[dir.path()]).load(Some("prod")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Malformed { .. }));
    assert!(msg.starts_with(&file.display().to_string()), "{msg}");
    assert!(msg.contains("line"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn a_cloud_that_is_not_a_mapping_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "clouds.yaml",
        "clouds:\n  prod: just-a-string\n",
    );
    let err = loader(&[], &[dir.path()]).load(Some("prod")).unwrap_err();
    assert!(
        err.to_string().contains("cloud 'prod' must be a mapping"),
        "{err}"
    );
}

#[test]
fn a_named_cloud_without_any_clouds_yaml_lists_the_places_searched() {
    let dir = tempfile::tempdir().unwrap();
    let err = loader(&[], &[dir.path()]).load(Some("prod")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::NoCloudsFile { .. }));
    assert!(
        msg.contains("clouds.yaml") && msg.contains(&dir.path().display().to_string()),
        "{msg}"
    );
}

#[test]
fn os_variables_alone_build_an_envvars_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = loader(
        &[
            ("OS_AUTH_URL", "https://k.example.com:5000/"),
            ("OS_USERNAME", "admin"),
            ("OS_PASSWORD", "pw"),
            ("OS_PROJECT_ID", "a694"),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_REGION_NAME", "RegionOne"),
            ("OS_INTERFACE", "internal"),
            ("OS_INSECURE", "true"),
        ],
        &[dir.path()],
    )
    .load(None)
    .unwrap();
    assert_eq!(cfg.cloud_name(), "envvars");
    assert_eq!(cfg.identity_url().as_str(), "https://k.example.com:5000/v3");
    assert_eq!(cfg.interface(), Interface::Internal);
    assert!(matches!(
        cfg.auth(),
        AuthMethod::Password { project: ProjectScope::Id(p), .. } if p == "a694"
    ));
}

#[test]
fn os_application_credential_variables_select_application_credential_auth() {
    let cfg = loader(
        &[
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_AUTH_URL", "https://k/v3"),
            ("OS_APPLICATION_CREDENTIAL_ID", "ac1"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "sec"),
        ],
        &[],
    )
    .load(None)
    .unwrap();
    assert!(matches!(
        cfg.auth(),
        AuthMethod::ApplicationCredential { .. }
    ));
}

#[test]
fn without_a_cloud_or_os_auth_url_the_error_names_the_variable() {
    let err = loader(&[("OS_USERNAME", "u")], &[]).load(None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the OS_* environment variables: cloud 'envvars' is missing OS_AUTH_URL"
    );
}

#[test]
fn os_password_fills_a_cloud_file_that_has_none() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "clouds.yaml", CLOUDS);
    let cfg = loader(&[("OS_PASSWORD", "from-env")], &[dir.path()])
        .load(Some("prod"))
        .unwrap();
    let AuthMethod::Password { password, .. } = cfg.auth() else {
        panic!("expected password auth");
    };
    assert_eq!(password.expose_secret(), "from-env");
}

#[test]
fn home_is_taken_from_the_injected_environment() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".config/openstack");
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir, "clouds.yaml", CLOUDS);
    let cfg = ConfigLoader::new([("HOME", home.path().to_str().unwrap())])
        .load(Some("prod-appcred"))
        .unwrap();
    assert_eq!(cfg.region_name(), Some("RegionTwo"));
}

#[test]
fn a_cacert_that_does_not_exist_is_reported_when_the_session_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = protector_openstack::CloudConfig::builder()
        .auth_url("https://k")
        .application_credential_id("a")
        .application_credential_secret("s")
        .cacert(dir.path().join("missing-ca.pem"))
        .build()
        .unwrap();
    let err = Session::new(cfg).unwrap_err();
    assert!(matches!(err, ConfigError::CaCert { .. }));
    assert!(err.to_string().contains("missing-ca.pem"));
}

#[test]
fn a_cacert_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write(dir.path(), "ca.pem", "not a certificate\n");
    let cfg = protector_openstack::CloudConfig::builder()
        .auth_url("https://k")
        .application_credential_id("a")
        .application_credential_secret("s")
        .cacert(pem)
        .build()
        .unwrap();
    assert!(matches!(Session::new(cfg), Err(ConfigError::CaCert { .. })));
}

#[test]
fn verify_false_ignores_the_cacert() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = protector_openstack::CloudConfig::builder()
        .auth_url("https://k")
        .application_credential_id("a")
        .application_credential_secret("s")
        .cacert(dir.path().join("missing-ca.pem"))
        .verify(false)
        .build()
        .unwrap();
    Session::new(cfg).unwrap();
}
