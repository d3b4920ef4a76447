//! The domain model. Serde names are exactly the product's documented names.

pub mod mappings;
pub use mappings::{parse_mapping, parse_mappings, DirectionalMappings, ResourceMappings};
pub mod operation;
pub use operation::{
    FailoverType, JournalEntry, JournalEvent, NoteData, Operation, OperationFilter,
    OperationParameters, OperationStatus, OperationType, PgRef, ResourceRef,
};
pub mod policy;
pub use policy::{MaskedPolicy, ReplicationPolicy, MASKED};
pub mod protection_group;
pub use protection_group::{
    Member, MemberNetwork, MemberStatus, MemberVolume, Members, PgStatus, ProtectionGroup,
    ReplicationType, SiteBinding, StaleResources, TestResources,
};
pub mod site;
pub use site::{Site, SiteCredentials, SiteStatus};
pub mod sync;
pub use sync::{SyncState, SyncStatus, SyncStatusValue};
pub(crate) mod time;

#[cfg(test)]
mod secret_tests {
    use super::*;
    use crate::ids::{ProtectionGroupId, SiteId};
    use chrono::{DateTime, Utc};
    use secrecy::{ExposeSecret, SecretString};

    const PASSWORD: &str = "s3cr3t-Passw0rd-site-a";
    const TOKEN_A: &str = "fa-token-aaaa-1111";
    const TOKEN_B: &str = "fa-token-bbbb-2222";
    const APP_SECRET: &str = "app-cred-secret-zzz";

    fn site() -> Site {
        Site {
            id: SiteId::new("site-a-uuid"),
            name: "site-a".into(),
            description: String::new(),
            auth_url: "http://site-a:5000/v3".into(),
            region_name: Some("RegionOne".into()),
            interface: None,
            cloud: Some("site-a".into()),
            status: SiteStatus::Active,
            credentials: SiteCredentials {
                username: Some("protector".into()),
                password: Some(SecretString::from(PASSWORD.to_owned())),
                application_credential_secret: Some(SecretString::from(APP_SECRET.to_owned())),
                ..SiteCredentials::default()
            },
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            last_validated_at: None,
        }
    }

    fn policy() -> ReplicationPolicy {
        ReplicationPolicy {
            protection_group_id: ProtectionGroupId::new("pg"),
            primary_fa_url: "https://fa-a".into(),
            primary_fa_api_token: SecretString::from(TOKEN_A.to_owned()),
            secondary_fa_url: "https://fa-b".into(),
            secondary_fa_api_token: SecretString::from(TOKEN_B.to_owned()),
            pure_pg_name: "pg-prod".into(),
            rpo_minutes: 15,
            replication_interval_seconds: 900,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn assert_clean(text: &str) {
        for secret in [PASSWORD, TOKEN_A, TOKEN_B, APP_SECRET] {
            assert!(!text.contains(secret), "secret leaked into: {text}");
        }
    }

    #[test]
    fn site_credentials_never_appear_in_debug_or_json() {
        let s = site();
        assert_clean(&format!("{s:?}"));
        assert_clean(&format!("{:#?}", s.credentials));
        assert_clean(&serde_json::to_string(&s).unwrap());
        assert_clean(&serde_yaml_ng::to_string(&s).unwrap());
        // The secret is still there for the code that needs it.
        assert_eq!(s.credentials.password.unwrap().expose_secret(), PASSWORD);
    }

    #[test]
    fn policy_tokens_never_appear_in_debug_json_or_masked_view() {
        let p = policy();
        assert_clean(&format!("{p:?}"));
        assert_clean(&serde_json::to_string(&p).unwrap());
        let masked = p.masked();
        assert_eq!(masked.primary_fa_api_token, MASKED);
        assert_clean(&format!("{masked:?}"));
        assert_clean(&serde_json::to_string(&masked).unwrap());
        assert_eq!(p.secondary_fa_api_token.expose_secret(), TOKEN_B);
    }
}
