//! Tenant isolation and the policy engine at the public entry points.

use std::time::Duration;

use protector::core::model::OperationFilter;
use protector::core::policy::PolicyEngine;
use protector::core::Error;
use protector::sim::SimSite;

use super::fixture::{assert_completed, config, seed, Setup, PG};

#[tokio::test(start_paused = true)]
async fn another_tenant_never_sees_or_touches_a_group_or_its_operations() {
    let fx = Setup::new(seed(41)).build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    let op = fx.a.test_failover(&fx.ctx, PG, Default::default()).await;
    // Mappings are required: use the stored ones after this refusal.
    assert!(op.is_err());
    let op =
        fx.a.test_failover(
            &fx.ctx,
            PG,
            protector::core::engine::TestFailoverRequest {
                mappings: fx.mappings_a_to_b(),
            },
        )
        .await
        .expect("drill");
    assert_completed(&fx.finish(&fx.a, op.clone()).await);

    let bob = fx
        .world
        .tenant_context(SimSite::A, "tenant-b")
        .expect("tenant-b");
    assert!(fx
        .a
        .list_protection_groups(&bob)
        .await
        .expect("list")
        .is_empty());
    assert!(matches!(
        fx.a.get_protection_group(&bob, PG).await,
        Err(Error::NotFound { .. })
    ));
    let by_id =
        fx.a.failover(&bob, fx.pg.id.as_str(), fx.planned())
            .await
            .expect_err("forbidden");
    assert_eq!(
        by_id.to_string(),
        "Policy doesn't allow protector:protection_groups:show to be performed."
    );
    assert!(fx
        .a
        .list_operations(&bob, &OperationFilter::default())
        .await
        .expect("list")
        .is_empty());
    let err =
        fx.a.get_operation(&bob, &op.id)
            .await
            .expect_err("forbidden");
    assert_eq!(
        err.to_string(),
        "Policy doesn't allow protector:operations:show to be performed."
    );

    // The owner and an admin both see it.
    assert_eq!(
        fx.a.list_operations(&fx.ctx, &OperationFilter::default())
            .await
            .expect("own")
            .len(),
        1
    );
    let admin = fx.world.admin_context(SimSite::A).expect("admin");
    assert_eq!(
        fx.a.list_protection_groups(&admin)
            .await
            .expect("all")
            .len(),
        1
    );
    assert_eq!(
        fx.a.list_operations(&admin, &OperationFilter::default())
            .await
            .expect("all")
            .len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn an_admin_only_operations_policy_gives_members_a_403_on_operation_list() {
    let fx = Setup::new(seed(42)).build().await;
    let policy = PolicyEngine::from_yaml_str(
        "\"protector:operations:index\": \"rule:admin_api\"\n",
        "policy.yaml",
    )
    .expect("policy");
    let a = fx
        .world
        .protector_builder(SimSite::A, &fx.stores)
        .await
        .expect("builder")
        .config(config())
        .policy(policy)
        .build()
        .await
        .expect("protector");
    let err = a
        .list_operations(&fx.ctx, &OperationFilter::default())
        .await
        .expect_err("403");
    assert_eq!(
        err.to_string(),
        "Policy doesn't allow protector:operations:index to be performed."
    );
    let admin = fx.world.admin_context(SimSite::A).expect("admin");
    assert!(a
        .list_operations(&admin, &OperationFilter::default())
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn only_admins_register_sites() {
    let fx = Setup::new(seed(43)).build().await;
    let reg = protector::core::engine::SiteRegistration {
        name: "site-b".into(),
        description: "DR site".into(),
    };
    let err =
        fx.a.register_site(&fx.ctx, &reg)
            .await
            .expect_err("member refused");
    assert_eq!(
        err.to_string(),
        "Policy doesn't allow protector:sites:create to be performed."
    );
    let admin = fx.world.admin_context(SimSite::A).expect("admin");
    let site =
        fx.a.register_site(&admin, &reg)
            .await
            .expect("admin registers");
    assert_eq!(site.description, "DR site");
    let report =
        fx.a.validate_site(&admin, "site-b")
            .await
            .expect("validate");
    assert!(report.ok(), "{report:?}");
    fx.world.take_site_down(SimSite::B);
    let report =
        fx.a.validate_site(&admin, "site-b")
            .await
            .expect("validate");
    assert!(!report.ok());
    assert_eq!(report.checks[0].check, "keystone");
    assert!(!report.checks[0].ok);
}
