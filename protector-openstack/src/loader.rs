//! Loading a [`CloudConfig`] from `clouds.yaml`, `secure.yaml` and `OS_*` variables.
//!
//! # Expected flow
//! 1. The cloud is the one asked for, else `OS_CLOUD`.
//! 2. With a cloud name, the first `clouds.yaml`/`clouds.yml` found is read, from
//!    `OS_CLIENT_CONFIG_FILE` and then the search directories (`.`,
//!    `~/.config/openstack`, `/etc/openstack`); the first `secure.yaml`/`secure.yml`
//!    (or `OS_CLIENT_SECURE_FILE`) is merged over that cloud. `OS_*` variables fill keys
//!    the files leave unset (e.g. a password kept out of the file).
//! 3. Without a cloud name, an `envvars` cloud is built from `OS_*` alone.
//!
//! # Assumptions
//! The environment and the search directories are injected ([`ConfigLoader::new`],
//! [`ConfigLoader::with_search_dirs`]), so tests never read the real environment;
//! [`ConfigLoader::from_process_env`] is the one place that does.
//!
//! # Caveats
//! `regions:` lists, `profile:` vendor defaults and per-service endpoint overrides are
//! not supported. Errors name the file, the cloud and the key, never a value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde_yaml_ng::{Mapping, Value};

use crate::config::{CloudConfig, CloudConfigBuilder};
use crate::error::{ConfigError, ConfigOrigin};

/// Finds and reads cloud configurations. See the [module docs](self).
#[derive(Clone)]
pub struct ConfigLoader {
    env: BTreeMap<String, String>,
    search_dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for ConfigLoader {
    // The environment holds `OS_PASSWORD` and friends: show variable names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigLoader")
            .field("env_keys", &self.env.keys().collect::<Vec<_>>())
            .field("search_dirs", &self.search_dirs)
            .finish()
    }
}

impl ConfigLoader {
    /// A loader over the given environment with the standard search directories
    /// (`.`, `$HOME/.config/openstack`, `/etc/openstack`; `$HOME` from `env`).
    pub fn new<K: Into<String>, V: Into<String>>(env: impl IntoIterator<Item = (K, V)>) -> Self {
        let env: BTreeMap<String, String> =
            env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let mut search_dirs = vec![PathBuf::from(".")];
        if let Some(home) = env.get("HOME").filter(|h| !h.is_empty()) {
            search_dirs.push(Path::new(home).join(".config").join("openstack"));
        }
        search_dirs.push(PathBuf::from("/etc/openstack"));
        Self { env, search_dirs }
    }

    /// A loader over this process's environment.
    pub fn from_process_env() -> Self {
        Self::new(std::env::vars())
    }

    /// Replaces the directories searched for `clouds.yaml` and `secure.yaml`.
    pub fn with_search_dirs(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        self.search_dirs = dirs.into_iter().collect();
        self
    }

    /// Loads and validates a cloud (`cloud`, else `OS_CLOUD`, else the `OS_*` variables).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, the cloud and the key at fault.
    pub fn load(&self, cloud: Option<&str>) -> Result<CloudConfig, ConfigError> {
        self.load_builder(cloud)?.build()
    }

    /// Like [`ConfigLoader::load`] but returns the builder, so settings that
    /// `clouds.yaml` cannot express (clock, retry policy, timeouts) can be added.
    ///
    /// # Errors
    /// As [`ConfigLoader::load`], before validation.
    pub fn load_builder(&self, cloud: Option<&str>) -> Result<CloudConfigBuilder, ConfigError> {
        let name = cloud
            .map(str::to_owned)
            .or_else(|| self.env_var("OS_CLOUD").map(str::to_owned));
        match name {
            Some(name) => self.cloud_from_files(&name),
            None => self.cloud_from_env(),
        }
    }

    fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn candidates(&self, env_key: &str, stem: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(file) = self.env_var(env_key) {
            out.push(PathBuf::from(file));
        }
        for dir in &self.search_dirs {
            out.push(dir.join(format!("{stem}.yaml")));
            out.push(dir.join(format!("{stem}.yml")));
        }
        out
    }

    fn cloud_from_files(&self, name: &str) -> Result<CloudConfigBuilder, ConfigError> {
        let candidates = self.candidates("OS_CLIENT_CONFIG_FILE", "clouds");
        let Some(file) = candidates.iter().find(|p| p.is_file()) else {
            return Err(ConfigError::NoCloudsFile {
                cloud: name.to_owned(),
                searched: candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let doc = read_yaml(file)?;
        let mut cloud =
            clouds_entry(&doc, file, name)?.ok_or_else(|| ConfigError::CloudNotFound {
                file: file.clone(),
                cloud: name.to_owned(),
            })?;
        let secure = self.candidates("OS_CLIENT_SECURE_FILE", "secure");
        if let Some(secure_file) = secure.iter().find(|p| p.is_file()) {
            let secure_doc = read_yaml(secure_file)?;
            if let Some(overlay) = clouds_entry(&secure_doc, secure_file, name)? {
                merge(&mut cloud, overlay);
            }
        }
        let origin = ConfigOrigin::File(file.clone());
        let mut builder = builder_from_mapping(&cloud, &origin, name)?;
        self.fill_from_env(&mut builder);
        builder.origin = Some(origin);
        builder.cloud_name = Some(name.to_owned());
        Ok(builder)
    }

    fn cloud_from_env(&self) -> Result<CloudConfigBuilder, ConfigError> {
        let mut builder = CloudConfigBuilder {
            origin: Some(ConfigOrigin::Environment),
            cloud_name: Some("envvars".to_owned()),
            ..CloudConfigBuilder::default()
        };
        self.fill_from_env(&mut builder);
        if builder.auth_url.is_none() {
            return Err(ConfigError::MissingKey {
                origin: ConfigOrigin::Environment,
                cloud: "envvars".to_owned(),
                key: "OS_AUTH_URL".to_owned(),
            });
        }
        if let Some(v) = self.env_var("OS_VERIFY").or(self.env_var("OS_INSECURE")) {
            let parsed = parse_bool(v).ok_or_else(|| ConfigError::InvalidValue {
                origin: ConfigOrigin::Environment,
                cloud: "envvars".to_owned(),
                key: "OS_INSECURE".to_owned(),
                reason: "expected true or false".to_owned(),
            })?;
            builder.verify = Some(if self.env_var("OS_VERIFY").is_some() {
                parsed
            } else {
                !parsed
            });
        }
        Ok(builder)
    }

    /// Sets every key the builder lacks from its `OS_*` variable.
    fn fill_from_env(&self, b: &mut CloudConfigBuilder) {
        let fill = |slot: &mut Option<String>, keys: &[&str]| {
            if slot.is_none() {
                *slot = keys.iter().find_map(|k| self.env_var(k)).map(str::to_owned);
            }
        };
        fill(&mut b.auth_type, &["OS_AUTH_TYPE"]);
        fill(&mut b.auth_url, &["OS_AUTH_URL"]);
        fill(&mut b.username, &["OS_USERNAME"]);
        fill(&mut b.user_id, &["OS_USER_ID"]);
        fill(&mut b.project_name, &["OS_PROJECT_NAME", "OS_TENANT_NAME"]);
        fill(&mut b.project_id, &["OS_PROJECT_ID", "OS_TENANT_ID"]);
        fill(&mut b.user_domain_name, &["OS_USER_DOMAIN_NAME"]);
        fill(&mut b.user_domain_id, &["OS_USER_DOMAIN_ID"]);
        fill(&mut b.project_domain_name, &["OS_PROJECT_DOMAIN_NAME"]);
        fill(&mut b.project_domain_id, &["OS_PROJECT_DOMAIN_ID"]);
        fill(
            &mut b.domain_name,
            &["OS_DOMAIN_NAME", "OS_DEFAULT_DOMAIN_NAME"],
        );
        fill(
            &mut b.domain_id,
            &["OS_DOMAIN_ID", "OS_DEFAULT_DOMAIN_ID", "OS_DEFAULT_DOMAIN"],
        );
        fill(
            &mut b.application_credential_id,
            &["OS_APPLICATION_CREDENTIAL_ID"],
        );
        fill(
            &mut b.application_credential_name,
            &["OS_APPLICATION_CREDENTIAL_NAME"],
        );
        fill(&mut b.region_name, &["OS_REGION_NAME"]);
        fill(&mut b.interface, &["OS_INTERFACE", "OS_ENDPOINT_TYPE"]);
        if b.password.is_none() {
            b.password = self
                .env_var("OS_PASSWORD")
                .map(|v| SecretString::from(v.to_owned()));
        }
        if b.application_credential_secret.is_none() {
            b.application_credential_secret = self
                .env_var("OS_APPLICATION_CREDENTIAL_SECRET")
                .map(|v| SecretString::from(v.to_owned()));
        }
        if b.cacert.is_none() {
            b.cacert = self.env_var("OS_CACERT").map(PathBuf::from);
        }
    }
}

fn read_yaml(file: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
        file: file.to_path_buf(),
        source,
    })?;
    serde_yaml_ng::from_str::<Value>(&text).map_err(|e| ConfigError::Malformed {
        file: file.to_path_buf(),
        reason: match e.location() {
            Some(loc) => format!(
                "invalid YAML at line {} column {}",
                loc.line(),
                loc.column()
            ),
            None => "invalid YAML".to_owned(),
        },
    })
}

/// The `clouds.<name>` mapping, `None` when absent.
fn clouds_entry(doc: &Value, file: &Path, name: &str) -> Result<Option<Mapping>, ConfigError> {
    let malformed = |reason: String| ConfigError::Malformed {
        file: file.to_path_buf(),
        reason,
    };
    let root = match doc {
        Value::Mapping(m) => m,
        Value::Null => return Ok(None),
        _ => {
            return Err(malformed(
                "the top level must be a mapping with a 'clouds' key".into(),
            ))
        }
    };
    let clouds = match root.get("clouds") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Mapping(m)) => m,
        Some(_) => {
            return Err(malformed(
                "'clouds' must be a mapping of cloud names".into(),
            ))
        }
    };
    match clouds.get(name) {
        None => Ok(None),
        Some(Value::Mapping(m)) => Ok(Some(m.clone())),
        Some(Value::Null) => Ok(Some(Mapping::new())),
        Some(_) => Err(malformed(format!("cloud '{name}' must be a mapping"))),
    }
}

/// Deep-merges `overlay` into `base` (mappings merge, everything else replaces).
fn merge(base: &mut Mapping, overlay: Mapping) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

fn builder_from_mapping(
    cloud: &Mapping,
    origin: &ConfigOrigin,
    name: &str,
) -> Result<CloudConfigBuilder, ConfigError> {
    let invalid = |key: &str, reason: &str| ConfigError::InvalidValue {
        origin: origin.clone(),
        cloud: name.to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let auth = match cloud.get("auth") {
        None | Some(Value::Null) => Mapping::new(),
        Some(Value::Mapping(m)) => m.clone(),
        Some(_) => return Err(invalid("auth", "must be a mapping")),
    };
    // Auth keys live under `auth:`; accept them at the cloud level too.
    let get = |key: &str| -> Result<Option<String>, ConfigError> {
        let v = auth.get(key).or_else(|| cloud.get(key));
        scalar(v).map_err(|()| invalid(key, "must be a string"))
    };
    let cloud_get = |key: &str| -> Result<Option<String>, ConfigError> {
        scalar(cloud.get(key)).map_err(|()| invalid(key, "must be a string"))
    };
    let mut b = CloudConfigBuilder {
        auth_type: cloud_get("auth_type")?,
        auth_url: get("auth_url")?,
        username: get("username")?,
        user_id: get("user_id")?,
        password: get("password")?.map(SecretString::from),
        project_name: get("project_name")?.or(get("tenant_name")?),
        project_id: get("project_id")?.or(get("tenant_id")?),
        user_domain_name: get("user_domain_name")?,
        user_domain_id: get("user_domain_id")?,
        project_domain_name: get("project_domain_name")?,
        project_domain_id: get("project_domain_id")?,
        domain_name: get("domain_name")?.or(get("default_domain")?),
        domain_id: get("domain_id")?,
        application_credential_id: get("application_credential_id")?,
        application_credential_name: get("application_credential_name")?,
        application_credential_secret: get("application_credential_secret")?
            .map(SecretString::from),
        region_name: cloud_get("region_name")?,
        interface: cloud_get("interface")?.or(cloud_get("endpoint_type")?),
        cacert: cloud_get("cacert")?.map(PathBuf::from),
        ..CloudConfigBuilder::default()
    };
    if let Some(v) = cloud_get("verify")? {
        b.verify = Some(parse_bool(&v).ok_or_else(|| invalid("verify", "expected true or false"))?);
    } else if let Some(v) = cloud_get("insecure")? {
        b.verify =
            Some(!parse_bool(&v).ok_or_else(|| invalid("insecure", "expected true or false"))?);
    }
    Ok(b)
}

/// A YAML scalar as a string; `Err` for sequences and mappings.
fn scalar(v: Option<&Value>) -> Result<Option<String>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(()),
    }
}
