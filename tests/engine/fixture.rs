//! A two-site world with a protected workload.

use std::time::Duration;

use protector::core::engine::{
    ConcurrencyLimits, CreatePolicy, CreateProtectionGroup, EngineConfig, FailbackRequest,
    FailoverRequest,
};
use protector::core::model::{
    FailoverType, Operation, OperationFilter, OperationStatus, ProtectionGroup, ReplicationType,
    ResourceMappings,
};
use protector::core::secrecy::SecretString;
use protector::core::{Protector, RequestContext};
use protector::sim::world::{TYPE_ASYNC, TYPE_SYNC};
use protector::sim::{
    DrStores, InvariantInput, LatencyProfile, SimSite, SimWorld, Workload, WorkloadSpec,
};

pub const PG: &str = "prod-web-app";

/// The world, both sites' handles and the protected group.
pub struct Fx {
    pub world: SimWorld,
    pub stores: DrStores,
    pub a: Protector,
    pub b: Protector,
    pub ctx: RequestContext,
    pub workload: Workload,
    pub pg: ProtectionGroup,
}

pub fn seed(default: u64) -> u64 {
    protector::sim::seed_from_env(default)
}

pub fn config() -> EngineConfig {
    config_with(ConcurrencyLimits::default())
}

fn config_with(limits: ConcurrencyLimits) -> EngineConfig {
    EngineConfig::builder()
        .replication_timeout(Duration::from_secs(600))
        .concurrency(limits)
        .build()
        .expect("valid config")
}

pub struct Setup {
    pub seed: u64,
    pub replication: ReplicationType,
    pub servers: usize,
    pub data_volumes: usize,
    pub stores: Option<DrStores>,
    pub profile: Option<LatencyProfile>,
    pub limits: ConcurrencyLimits,
}

impl Setup {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            replication: ReplicationType::Async,
            servers: 2,
            data_volumes: 1,
            stores: None,
            profile: None,
            limits: ConcurrencyLimits::default(),
        }
    }

    pub fn profile(mut self, profile: LatencyProfile) -> Self {
        self.profile = Some(profile);
        self
    }

    pub fn limits(mut self, limits: ConcurrencyLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn sync(mut self) -> Self {
        self.replication = ReplicationType::Sync;
        self
    }

    pub fn servers(mut self, n: usize) -> Self {
        self.servers = n;
        self
    }

    pub fn stores(mut self, stores: DrStores) -> Self {
        self.stores = Some(stores);
        self
    }

    pub async fn build(self) -> Fx {
        eprintln!("PROTECTOR_SIM_SEED={}", self.seed);
        let mut builder = SimWorld::builder().seed(self.seed);
        if let Some(profile) = self.profile {
            builder = builder.profile(profile);
        }
        let world = builder.build().expect("world");
        let stores = self.stores.unwrap_or_else(DrStores::memory);
        let a = world
            .protector(SimSite::A, &stores, config_with(self.limits.clone()))
            .await
            .expect("protector a");
        let b = world
            .protector(SimSite::B, &stores, config_with(self.limits.clone()))
            .await
            .expect("protector b");
        let ctx = world
            .tenant_context(SimSite::A, "tenant-a")
            .expect("tenant");
        let vt = match self.replication {
            ReplicationType::Async => TYPE_ASYNC,
            ReplicationType::Sync => TYPE_SYNC,
        };
        let workload = world
            .create_workload(
                &WorkloadSpec::new(SimSite::A, "tenant-a")
                    .servers(self.servers)
                    .data_volumes(self.data_volumes)
                    .volume_type(vt)
                    .networks(&["tenant-a-web", "tenant-a-db"])
                    .named("web-server"),
            )
            .expect("workload");
        a.create_protection_group(
            &ctx,
            &CreateProtectionGroup {
                name: PG.into(),
                description: "production web application".into(),
                replication_type: self.replication,
                primary_site: None,
                secondary_site: None,
                volume_type: None,
                secondary_volume_type: None,
            },
        )
        .await
        .expect("create protection group");
        let (ia, ib) = (world.site(SimSite::A), world.site(SimSite::B));
        a.create_policy(
            &ctx,
            PG,
            CreatePolicy {
                primary_fa_url: ia.array_url.clone(),
                primary_fa_api_token: SecretString::from(ia.array_token.clone()),
                secondary_fa_url: ib.array_url.clone(),
                secondary_fa_api_token: SecretString::from(ib.array_token.clone()),
                pure_pg_name: None,
                rpo_minutes: Some(15),
                replication_interval_seconds: Some(300),
            },
        )
        .await
        .expect("create policy");
        for s in &workload.servers {
            a.add_member(&ctx, PG, s.id.as_str())
                .await
                .expect("add member");
        }
        let pg = a.get_protection_group(&ctx, PG).await.expect("pg");
        Fx {
            world,
            stores,
            a,
            b,
            ctx,
            workload,
            pg,
        }
    }
}

impl Fx {
    /// Network mappings A → B (ids), as an operator would pass them.
    pub fn mappings_a_to_b(&self) -> ResourceMappings {
        self.mappings(SimSite::A, SimSite::B)
    }

    pub fn mappings(&self, from: SimSite, to: SimSite) -> ResourceMappings {
        let (s, t) = (self.world.site(from), self.world.site(to));
        let mut m = ResourceMappings::default();
        for net in ["tenant-a-web", "tenant-a-db"] {
            m.networks.insert(
                s.network_id(net).expect("net").to_string(),
                t.network_id(net).expect("net").to_string(),
            );
        }
        m
    }

    pub fn planned(&self) -> FailoverRequest {
        FailoverRequest {
            failover_type: FailoverType::Planned,
            mappings: self.mappings_a_to_b(),
            force: false,
        }
    }

    pub fn unplanned(&self) -> FailoverRequest {
        FailoverRequest {
            failover_type: FailoverType::Unplanned,
            mappings: self.mappings_a_to_b(),
            force: false,
        }
    }

    pub fn failback(&self, reverse: bool) -> FailbackRequest {
        FailbackRequest {
            mappings: self.mappings(SimSite::B, SimSite::A),
            reverse_replication: reverse,
            force: false,
        }
    }

    /// Lets virtual time pass so scheduled replication runs.
    pub async fn let_time_pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    pub async fn pg(&self, on: SimSite) -> ProtectionGroup {
        let p = match on {
            SimSite::A => &self.a,
            SimSite::B => &self.b,
        };
        p.get_protection_group(&self.ctx, PG).await.expect("pg")
    }

    /// Runs an operation to its end and returns the final record.
    pub async fn finish(&self, on: &Protector, op: Operation) -> Operation {
        on.wait(&op.id).await.expect("operation record")
    }

    /// Checks the simulator's invariants against both sites' records.
    pub async fn check(&self) {
        let mut input = InvariantInput::default();
        for site in SimSite::BOTH {
            let meta = self.stores.metadata(site);
            let ops = self.stores.operations(site);
            input
                .protection_groups
                .extend(meta.list_protection_groups(None).await.expect("pgs"));
            for op in ops
                .list_operations(&OperationFilter::default())
                .await
                .expect("ops")
            {
                input
                    .journals
                    .extend(ops.journal(&op.id).await.expect("journal"));
                input.operations.push(op);
            }
        }
        if let Err(v) = self.world.check_invariants(&input) {
            panic!(
                "invariants violated (PROTECTOR_SIM_SEED={}):\n{}",
                self.world.seed(),
                v.iter()
                    .map(|v| format!("  - {v}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

pub fn assert_completed(op: &Operation) {
    assert_eq!(
        op.status,
        OperationStatus::Completed,
        "operation {} ended {} ({:?}); steps_failed {:?}",
        op.operation_type,
        op.status,
        op.error_message,
        op.steps_failed
    );
    assert_eq!(op.progress, 100);
}
