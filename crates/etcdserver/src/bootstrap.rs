//! Starting a member from its data dir (etcd's `bootstrap.go`): a new data dir bootstraps
//! the cluster named by `--initial-cluster`; an existing one resumes from its data, ignoring
//! the initial-cluster flags, as etcd does.
//!
//! Layout (as etcd's): `<data-dir>/member/wal` holds the Raft log, `<data-dir>/member/snap/db`
//! the backend.
//!
//! Invariants: the local member id is stored in the backend with the member list at
//! bootstrap and read back on restart; the Raft thread starts from the backend's consistent
//! index, so committed entries after it are re-applied exactly once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use oxcd_mvcc::watch::WatchableStore;
use oxcd_mvcc::Store;
use oxcd_storage::schema::{META_LOCAL_MEMBER_ID, META_TABLE};
use oxcd_storage::{Backend, BackendConfig, RaftLog};
use parking_lot::RwLock;
use raft::eraftpb::ConfState;
use tokio::sync::watch;

use crate::alarm::AlarmStore;
use crate::apply::Applier;
use crate::apply_guard::AlarmGuard;
use crate::error::{Error, Result};
use crate::membership::RaftCluster;
use crate::quota::QuotaGuard;
use crate::raft_node::{RaftLinks, RaftMsg, RaftNode, RaftNodeConfig, RaftStatus};
use crate::server::{EtcdServer, ServerSettings};
use crate::snapshot::SnapshotInbox;
use crate::transport::Transport;
use crate::wait::Wait;

/// What a member needs to start.
#[derive(Clone)]
pub struct NodeConfig {
    pub name: String,
    pub data_dir: PathBuf,
    /// `--initial-cluster`: member name -> peer URLs (Go URL string form).
    pub initial_cluster: Vec<(String, Vec<String>)>,
    pub initial_cluster_token: String,
    pub initial_cluster_state_new: bool,
    pub advertise_peer_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub pre_vote: bool,
    pub strict_reconfig_check: bool,
    pub force_new_cluster: bool,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub heartbeat: Duration,
    pub election_ticks: usize,
    pub election_timeout: Duration,
    /// `--experimental-enable-lease-checkpoint`.
    pub enable_lease_checkpoint: bool,
    /// Dials `https://` peer URLs (peer transport, joining); `None`: plaintext only.
    pub peer_tls: Option<oxcd_tls::TlsConnector>,
    /// Dials `https://` client URLs of the leader (lease forwarding); `None`: plaintext only.
    pub client_tls: Option<oxcd_tls::TlsConnector>,
    /// `--quota-backend-bytes` (0: etcd's 2 GiB default; negative: no quota).
    pub quota_backend_bytes: i64,
    /// `--auto-compaction-mode`/`--auto-compaction-retention` (None: off).
    pub auto_compaction: Option<crate::compactor::AutoCompaction>,
    /// Where raft-rs's own log records go (the binary bridges them to `tracing`).
    pub raft_logger: slog::Logger,
    /// `--auth-token`, `--auth-token-ttl`, `--bcrypt-cost`.
    pub auth: oxcd_auth::AuthConfig,
}

/// A running member: its server state and the Raft and apply threads.
pub struct Node {
    pub server: Arc<EtcdServer>,
    raft_thread: Option<JoinHandle<()>>,
    apply_thread: Option<JoinHandle<()>>,
}

impl Node {
    /// Opens the data dir, bootstraps or resumes, and starts the Raft and apply threads.
    pub fn start(cfg: NodeConfig) -> Result<Node> {
        let member_dir = cfg.data_dir.join("member");
        let backend = Arc::new(Backend::open(
            &member_dir.join("snap").join("db"),
            BackendConfig::default(),
        )?);
        install_pending_snapshot(&member_dir.join("snap"), &backend)?;
        let mut log = RaftLog::open(&member_dir.join("wal"))?;
        let (member_id, cluster) = if log.is_new() && cfg.initial_cluster_state_new {
            bootstrap_new(&cfg, &backend, &mut log)?
        } else if log.is_new() {
            join_existing(&cfg, &backend)?
        } else {
            let cluster = RaftCluster::load(&backend)?;
            let id = load_local_id(&backend)?;
            if cluster.members.is_empty() || !cluster.members.contains_key(&id) {
                return Err(Error::Corrupt(format!(
                    "{}: raft log exists but the member list is missing",
                    cfg.data_dir.display()
                )));
            }
            tracing::info!(
                data_dir = %cfg.data_dir.display(),
                "resuming from existing data dir; --initial-cluster flags are ignored"
            );
            if cfg.force_new_cluster {
                force_new_cluster(&backend, &mut log, id, cluster)?
            } else {
                (id, cluster)
            }
        };
        let store = Arc::new(Store::open(backend.clone())?);
        let watchable = Arc::new(WatchableStore::new(store.clone())?);
        let lessor = crate::apply_lease::open_lessor(&cfg, &backend, &store)?;
        let (consistent_index, _) = backend.consistent_index()?;
        let campaign_now = cluster.members.len() == 1 && cluster.members.contains_key(&member_id);
        tracing::info!(
            member_id = format!("{member_id:x}"),
            cluster_id = format!("{:x}", cluster.cluster_id),
            consistent_index,
            revision = store.current_revision(),
            "starting member"
        );

        let (raft_tx, raft_rx) = mpsc::channel::<RaftMsg>();
        let transport = Transport::new(
            tokio::runtime::Handle::current(),
            cluster.cluster_id,
            member_id,
            raft_tx.clone(),
            backend.clone(),
            cfg.peer_tls.clone(),
        );
        for m in cluster.members.values() {
            transport.add_peer(m.id, m.peer_urls.clone());
        }
        let inbox = Arc::new(SnapshotInbox::default());
        let is_learner = cluster
            .members
            .get(&member_id)
            .is_some_and(|m| m.is_learner);
        let cluster = Arc::new(RwLock::new(cluster));
        let (apply_tx, apply_rx) = mpsc::channel();
        let status = Arc::new(RaftStatus::default());
        let applied = Arc::new(AtomicU64::new(0));
        let wait = Arc::new(Wait::default());
        let queued_proposals = Arc::new(AtomicUsize::new(0));
        let raft = RaftNode::new(
            RaftNodeConfig {
                id: member_id,
                heartbeat: cfg.heartbeat,
                election_ticks: cfg.election_ticks,
                applied: consistent_index,
                catchup_entries: cfg.snapshot_catchup_entries,
                campaign_now,
                pre_vote: cfg.pre_vote,
                logger: cfg.raft_logger.clone(),
            },
            log,
            RaftLinks {
                transport: transport.clone(),
                inbox: inbox.clone(),
                snap_dir: member_dir.join("snap"),
                rx: raft_rx,
                apply_tx,
                status: status.clone(),
                applied: applied.clone(),
                wait: wait.clone(),
                queued_proposals: queued_proposals.clone(),
            },
        )?;
        status.is_learner.store(is_learner, Ordering::Release);
        let start_applied = applied.load(Ordering::Acquire);
        let (applied_tx, applied_rx) = watch::channel(start_applied);
        let alarms = Arc::new(AlarmStore::open(&backend)?);
        let quota_bytes = oxcd_storage::quota::effective_quota(cfg.quota_backend_bytes);
        let quota_exceeded = Arc::new(tokio::sync::Notify::new());
        let (compact_tx, compact_rx) = mpsc::channel();
        let compaction_state = Arc::new(crate::compactor::CompactionState::default());
        let (compacted_tx, compacted_rx) = watch::channel(store.compact_revision());
        crate::compactor::spawn_physical(
            store.clone(),
            compaction_state.clone(),
            compact_rx,
            compacted_tx,
        )?;
        let auth = Arc::new(
            oxcd_auth::AuthStore::open(
                &backend,
                cfg.auth.clone(),
                Arc::new(oxcd_lease::MonotonicClock),
            )
            .map_err(|e| Error::Config(format!("auth store: {e}")))?,
        );
        let applier = Applier {
            backend: backend.clone(),
            snap_dir: member_dir.join("snap"),
            store: store.clone(),
            wait: wait.clone(),
            applied: applied.clone(),
            applied_tx,
            raft_tx: raft_tx.clone(),
            cluster: cluster.clone(),
            member_id,
            leases: crate::apply_lease::LeaseCtx {
                lessor: lessor.clone(),
                status: status.clone(),
                promote_extend: cfg.election_timeout,
            },
            alarms: alarms.clone(),
            auth: auth.clone(),
            guards: vec![
                Box::new(AlarmGuard(alarms.clone())),
                Box::new(crate::apply_auth::AuthGuard {
                    auth: auth.clone(),
                    lessor: lessor.clone(),
                }),
                Box::new(QuotaGuard {
                    backend: backend.clone(),
                    quota: quota_bytes,
                    exceeded: quota_exceeded.clone(),
                }),
            ],
            compact_tx,
            compaction_state,
            snapshot_count: cfg.snapshot_count.max(1),
            snapshot_index: start_applied,
        };
        let apply_thread = std::thread::Builder::new()
            .name("apply".into())
            .spawn(move || applier.run(apply_rx))?;
        let raft_thread = std::thread::Builder::new()
            .name("raft".into())
            .spawn(move || raft.run())?;
        let settings = ServerSettings {
            client_urls: cfg.advertise_client_urls.clone(),
            max_request_bytes: cfg.max_request_bytes,
            max_txn_ops: cfg.max_txn_ops,
            request_timeout: Duration::from_secs(5) + 2 * cfg.election_timeout,
            client_tls: cfg.client_tls.clone(),
            strict_reconfig_check: cfg.strict_reconfig_check,
            election_timeout: cfg.election_timeout,
            quota_bytes,
            data_dir: cfg.data_dir.clone(),
            disk_reserve_bytes: oxcd_storage::quota::disk_reserve_bytes(cfg.max_request_bytes),
        };
        let server = Arc::new(EtcdServer {
            settings,
            next_id: EtcdServer::first_request_id(member_id),
            member_id,
            cluster,
            backend,
            store,
            watchable,
            auth,
            status,
            applied,
            applied_rx,
            wait,
            snapshot_inbox: inbox,
            transport,
            leader_channel: Default::default(),
            cluster_token: cfg.initial_cluster_token.clone(),
            leases: crate::lease_server::LeaseHub::new(lessor),
            raft_tx,
            queued_proposals,
            alarms,
            compacted_rx,
        });
        crate::metrics::init(member_id, oxcd_api::ETCD_API_VERSION);
        crate::lessor_loop::spawn(server.clone());
        crate::quota::spawn(server.clone(), quota_bytes, quota_exceeded);
        if let Some(mode) = cfg.auto_compaction {
            crate::compactor::spawn_auto(server.clone(), mode);
        }
        crate::auth_server::spawn_token_keeper(&server);
        Ok(Node {
            server,
            raft_thread: Some(raft_thread),
            apply_thread: Some(apply_thread),
        })
    }

    /// Stops the Raft thread, lets the apply loop finish what was committed, and flushes
    /// the backend.
    pub fn stop(mut self) {
        self.server.stop_raft();
        if let Some(t) = self.raft_thread.take() {
            let _ = t.join();
        }
        // The Raft thread dropped the apply channel's sender; the apply loop drains and exits.
        if let Some(t) = self.apply_thread.take() {
            let _ = t.join();
        }
    }
}

fn bootstrap_new(
    cfg: &NodeConfig,
    backend: &Backend,
    log: &mut RaftLog,
) -> Result<(u64, RaftCluster)> {
    let cluster = RaftCluster::from_initial(&cfg.initial_cluster, &cfg.initial_cluster_token);
    let Some(me) = cluster.members.values().find(|m| m.name == cfg.name) else {
        return Err(Error::Config(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        )));
    };
    let member_id = me.id;
    save_identity(backend, member_id, &cluster)?;
    log.bootstrap(ConfState {
        voters: cluster.members.keys().copied().collect(),
        ..Default::default()
    })?;
    tracing::info!(
        member_id = format!("{member_id:x}"),
        cluster_id = format!("{:x}", cluster.cluster_id),
        "bootstrapped new cluster"
    );
    Ok((member_id, cluster))
}

/// A snapshot whose rows reached disk but not the backend before a crash (see
/// `pending_snapshot`): installed before anything reads the backend.
fn install_pending_snapshot(snap_dir: &std::path::Path, backend: &Backend) -> Result<()> {
    let (ci, _) = backend.consistent_index()?;
    if let Some((index, rows)) = crate::pending_snapshot::take_newer(snap_dir, ci)? {
        crate::snapshot::install(backend, &rows)?;
        tracing::info!(
            index,
            previous_consistent_index = ci,
            rows = rows.len(),
            "installed a raft snapshot received before the restart"
        );
    }
    crate::pending_snapshot::clear(snap_dir)
}

/// etcd's `--force-new-cluster`: this member continues alone with its committed data.
fn force_new_cluster(
    backend: &Backend,
    log: &mut RaftLog,
    id: u64,
    mut cluster: RaftCluster,
) -> Result<(u64, RaftCluster)> {
    tracing::warn!(
        member_id = format!("{id:x}"),
        "forcing a new cluster: every other member is removed"
    );
    log.force_new_cluster(id)?;
    let others: Vec<u64> = cluster
        .members
        .keys()
        .copied()
        .filter(|m| *m != id)
        .collect();
    let mut tx = backend.write_tx()?;
    for m in others {
        cluster.members.remove(&m);
        RaftCluster::delete(&mut tx, m)?;
    }
    if let Some(me) = cluster.members.get_mut(&id) {
        me.is_learner = false;
    }
    cluster.save(&mut tx)?;
    backend.commit_durable(tx)?;
    Ok((id, cluster))
}

fn save_identity(backend: &Backend, member_id: u64, cluster: &RaftCluster) -> Result<()> {
    let mut tx = backend.write_tx()?;
    cluster.save(&mut tx)?;
    tx.tx
        .open_table(META_TABLE)
        .map_err(oxcd_storage::Error::from)?
        .insert(META_LOCAL_MEMBER_ID, member_id.to_be_bytes().as_slice())
        .map_err(oxcd_storage::Error::from)?;
    backend.commit_durable(tx)?;
    Ok(())
}

/// `--initial-cluster-state=existing` on a new data dir: ask the listed members for the
/// cluster, find ourselves by our advertised peer URLs (`member add` put us there), and
/// start with an empty log; the leader catches us up with a snapshot.
fn join_existing(cfg: &NodeConfig, backend: &Backend) -> Result<(u64, RaftCluster)> {
    let mut mine = cfg.advertise_peer_urls.clone();
    mine.sort();
    let mut last_err = String::from("no other member listed in --initial-cluster");
    for (name, urls) in &cfg.initial_cluster {
        if *name == cfg.name {
            continue;
        }
        for u in urls {
            match fetch_members(u, cfg.peer_tls.as_ref()) {
                Ok(resp) => {
                    let Some(me) = resp.members.iter().find(|m| {
                        let mut theirs = m.peer_urls.clone();
                        theirs.sort();
                        theirs == mine
                    }) else {
                        return Err(Error::Config(format!(
                            "member with peer URLs {} has not been added to the cluster at {u}; run `etcdctl member add` first",
                            mine.join(",")
                        )));
                    };
                    let cluster = RaftCluster {
                        cluster_id: resp.cluster_id,
                        members: resp.members.iter().map(|m| (m.id, m.clone())).collect(),
                    };
                    let id = me.id;
                    save_identity(backend, id, &cluster)?;
                    tracing::info!(
                        member_id = format!("{id:x}"),
                        cluster_id = format!("{:x}", cluster.cluster_id),
                        "joining existing cluster"
                    );
                    return Ok((id, cluster));
                }
                Err(e) => last_err = format!("{u}: {e}"),
            }
        }
    }
    Err(Error::Config(format!(
        "cannot fetch cluster info from the members in --initial-cluster: {last_err}"
    )))
}

fn fetch_members(
    url: &str,
    tls: Option<&oxcd_tls::TlsConnector>,
) -> Result<oxcd_api::oxcdpb::MembersResponse> {
    let url = url.to_string();
    let tls = tls.cloned();
    // Called from a blocking start-up task: run the call on the runtime and wait for it.
    let handle = tokio::runtime::Handle::current();
    handle.block_on(async move {
        let ch = crate::dial::connect(&url, tls.as_ref(), Duration::from_secs(2), |e| {
            e.timeout(Duration::from_secs(5))
        })
        .await
        .map_err(Error::Config)?;
        let mut c = oxcd_api::oxcdpb::raft_peer_client::RaftPeerClient::new(ch);
        let r = c
            .members(oxcd_api::oxcdpb::MembersRequest {})
            .await
            .map_err(|e| Error::Config(e.message().to_string()))?;
        Ok(r.into_inner())
    })
}

fn load_local_id(backend: &Backend) -> Result<u64> {
    let rtx = backend.read_tx()?;
    let t = rtx
        .open_table(META_TABLE)
        .map_err(oxcd_storage::Error::from)?;
    let v = t
        .get(META_LOCAL_MEMBER_ID)
        .map_err(oxcd_storage::Error::from)?
        .ok_or_else(|| Error::Corrupt("local member id missing from the backend".into()))?;
    let bytes: [u8; 8] = v
        .value()
        .try_into()
        .map_err(|_| Error::Corrupt("malformed local member id".into()))?;
    Ok(u64::from_be_bytes(bytes))
}
