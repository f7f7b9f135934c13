//! Command-line definition: etcdctl v3's global flags (each also read from `ETCDCTL_<FLAG>`)
//! and commands with their flags.
//!
//! Invariant: flag names, defaults and environment names are etcdctl 3.4's.

use clap::{ArgAction, Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "oxcdctl",
    version,
    about = "A simple command line client for etcd3 (oxcd or etcd)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// gRPC endpoints
    #[arg(
        long,
        env = "ETCDCTL_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ',',
        global = true
    )]
    pub endpoints: Vec<String>,
    /// dial timeout for client connections
    #[arg(
        long,
        env = "ETCDCTL_DIAL_TIMEOUT",
        default_value = "2s",
        global = true
    )]
    pub dial_timeout: String,
    /// timeout for short running command (excluding dial timeout)
    #[arg(
        long,
        env = "ETCDCTL_COMMAND_TIMEOUT",
        default_value = "5s",
        global = true
    )]
    pub command_timeout: String,
    /// keepalive time for client connections
    #[arg(
        long,
        env = "ETCDCTL_KEEPALIVE_TIME",
        default_value = "2s",
        global = true
    )]
    pub keepalive_time: String,
    /// keepalive timeout for client connections
    #[arg(
        long,
        env = "ETCDCTL_KEEPALIVE_TIMEOUT",
        default_value = "6s",
        global = true
    )]
    pub keepalive_timeout: String,
    /// set the output format (fields, json, protobuf, simple, table)
    #[arg(
        short = 'w',
        long = "write-out",
        env = "ETCDCTL_WRITE_OUT",
        default_value = "simple",
        global = true
    )]
    pub write_out: String,
    /// print byte strings as hex encoded strings
    #[arg(long, env = "ETCDCTL_HEX", global = true, num_args = 0..=1, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub hex: bool,
    /// username[:password] for authentication (prompt if password is not supplied)
    #[arg(long = "user", id = "auth_user", env = "ETCDCTL_USER", global = true)]
    pub user: Option<String>,
    /// password for authentication (if this option is used, --user option shouldn't include password)
    #[arg(
        long = "password",
        id = "auth_password",
        env = "ETCDCTL_PASSWORD",
        global = true
    )]
    pub password: Option<String>,
    /// verify certificates of TLS-enabled secure servers using this CA bundle
    #[arg(
        long = "cacert",
        id = "tls_cacert",
        env = "ETCDCTL_CACERT",
        global = true
    )]
    pub cacert: Option<String>,
    /// identify secure client using this TLS certificate file
    #[arg(long = "cert", id = "tls_cert", env = "ETCDCTL_CERT", global = true)]
    pub cert: Option<String>,
    /// identify secure client using this TLS key file
    #[arg(long = "key", id = "tls_key", env = "ETCDCTL_KEY", global = true)]
    pub key: Option<String>,
    /// disable transport security for client connections
    #[arg(long, env = "ETCDCTL_INSECURE_TRANSPORT", global = true, num_args = 0..=1, default_missing_value = "true", default_value = "true", action = ArgAction::Set)]
    pub insecure_transport: bool,
    /// skip server certificate verification (not supported: use --cacert)
    #[arg(long, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", global = true, num_args = 0..=1, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub insecure_skip_tls_verify: bool,
    /// enable client-side debug logging
    #[arg(long, env = "ETCDCTL_DEBUG", global = true, num_args = 0..=1, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub debug: bool,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Gets the key or a range of keys
    Get(GetArgs),
    /// Puts the given key into the store
    Put(PutArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(TxnArgs),
    /// Compacts the event history in etcd
    Compaction(CompactionArgs),
    /// Watches events stream on keys or prefixes
    Watch(WatchArgs),
    /// Lease related commands
    #[command(subcommand)]
    Lease(LeaseCmd),
    /// Membership related commands
    #[command(subcommand)]
    Member(MemberCmd),
    /// Endpoint related commands
    Endpoint(EndpointArgs),
    /// Transfers leadership to another etcd cluster member.
    MoveLeader { transferee: String },
    /// Alarm related commands
    #[command(subcommand)]
    Alarm(AlarmCmd),
    /// Defragments the storage of the etcd members with given endpoints
    Defrag {
        /// use all endpoints from the cluster member list
        #[arg(long)]
        cluster: bool,
    },
    /// Manages etcd node snapshots
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Enable or disable authentication
    #[command(subcommand)]
    Auth(AuthCmd),
    /// User related commands
    #[command(subcommand)]
    User(UserCmd),
    /// Role related commands
    #[command(subcommand)]
    Role(RoleCmd),
    /// Acquires a named lock
    Lock(LockArgs),
    /// Observes and participates in leader election
    Elect(ElectArgs),
    /// commands for checking properties of the etcd cluster
    #[command(subcommand)]
    Check(CheckCmd),
    /// Makes a mirror at the destination etcd cluster
    MakeMirror(MirrorArgs),
    /// Prints the version of etcdctl
    Version,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    pub key: Option<String>,
    pub range_end: Option<String>,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long = "sort-by", default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long = "from-key")]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long = "keys-only")]
    pub keys_only: bool,
    /// Get only the count
    #[arg(long = "count-only")]
    pub count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long = "print-value-only")]
    pub print_value_only: bool,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    pub key: Option<String>,
    pub value: Option<String>,
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long = "ignore-value")]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long = "ignore-lease")]
    pub ignore_lease: bool,
}

#[derive(Debug, Args)]
pub struct DelArgs {
    pub key: Option<String>,
    pub range_end: Option<String>,
    /// delete keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long = "from-key")]
    pub from_key: bool,
}

#[derive(Debug, Args)]
pub struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short = 'i', long)]
    pub interactive: bool,
}

#[derive(Debug, Args)]
pub struct CompactionArgs {
    pub revision: String,
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long)]
    pub physical: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// key [range_end] [--] [exec-command arg1 arg2 ...]
    pub args: Vec<String>,
    /// Interactive mode
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// get periodic watch progress notification from server
    #[arg(long = "progress-notify")]
    pub progress_notify: bool,
}

#[derive(Debug, Subcommand)]
pub enum LeaseCmd {
    /// Creates leases
    Grant { ttl: String },
    /// Revokes leases
    Revoke { id: String },
    /// Get lease information
    Timetolive {
        id: String,
        /// Get keys attached to this lease
        #[arg(long)]
        keys: bool,
    },
    /// List all active leases
    List,
    /// Keeps leases alive (renew)
    KeepAlive {
        id: String,
        /// Resets the keep-alive time to its original value and exits immediately
        #[arg(long)]
        once: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Lists all members in the cluster
    List,
    /// Adds a member into the cluster
    Add {
        name: String,
        /// comma separated peer URLs for the new member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
        /// indicates if the new member is raft learner
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member from the cluster
    Remove { id: String },
    /// Updates a member in the cluster
    Update {
        id: String,
        /// comma separated peer URLs for the updated member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
    },
    /// Promotes a non-voting member in the cluster
    Promote { id: String },
}

#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true)]
    pub cluster: bool,
    #[command(subcommand)]
    pub cmd: EndpointCmd,
}

#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health,
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status,
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv {
        /// maximum revision to hash (default: all revisions)
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlarmCmd {
    /// Disarms all alarms
    Disarm,
    /// Lists all alarms
    List,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Stores an etcd node backend snapshot to a given file
    Save { filename: Option<String> },
    /// Gets backend snapshot status of a given file (offline: use oxcdutl)
    Status { filename: String },
    /// Restores an etcd member snapshot to an etcd directory (offline: use oxcdutl)
    Restore { filename: String },
}

#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Enables authentication
    Enable,
    /// Disables authentication
    Disable,
    /// Returns authentication status
    Status,
}

// Positional arguments of user/role commands are collected as given and checked by the
// command, so a wrong count fails with etcdctl's text and exit code.

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Adds a new user
    Add {
        /// <user name or user:password>
        args: Vec<String>,
        /// Read password from stdin instead of interactive terminal
        #[arg(long = "interactive", default_value = "true", action = ArgAction::Set)]
        interactive: bool,
        /// Add a user without password
        #[arg(long = "no-password")]
        no_password: bool,
        /// Supply password from the command line flag
        #[arg(long = "new-user-password", default_value = "")]
        new_user_password: String,
    },
    /// Deletes a user
    Delete { args: Vec<String> },
    /// Gets detailed information of a user
    Get {
        args: Vec<String>,
        /// Show permissions of roles granted to the user
        #[arg(long)]
        detail: bool,
    },
    /// Lists all users
    List { args: Vec<String> },
    /// Changes password of user
    Passwd {
        args: Vec<String>,
        #[arg(long = "interactive", default_value = "true", action = ArgAction::Set)]
        interactive: bool,
    },
    /// Grants a role to a user
    GrantRole { args: Vec<String> },
    /// Revokes a role from a user
    RevokeRole { args: Vec<String> },
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Adds a new role
    Add { args: Vec<String> },
    /// Deletes a role
    Delete { args: Vec<String> },
    /// Gets detailed information of a role
    Get { args: Vec<String> },
    /// Lists all roles
    List { args: Vec<String> },
    /// Grants a key to a role
    GrantPermission {
        /// <role name> <permission type> <key> [endkey]
        args: Vec<String>,
        /// grant a prefix permission
        #[arg(long)]
        prefix: bool,
        /// grant a permission of keys that are greater than or equal to the given key
        #[arg(long = "from-key")]
        from_key: bool,
    },
    /// Revokes a key from a role
    RevokePermission {
        /// <role name> <key> [endkey]
        args: Vec<String>,
        /// revoke a prefix permission
        #[arg(long)]
        prefix: bool,
        /// revoke a permission of keys that are greater than or equal to the given key
        #[arg(long = "from-key")]
        from_key: bool,
    },
}

#[derive(Debug, Args)]
pub struct LockArgs {
    pub name: Option<String>,
    /// command to run while holding the lock
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// timeout for session
    #[arg(long, default_value_t = 10)]
    pub ttl: i64,
}

#[derive(Debug, Args)]
pub struct ElectArgs {
    pub name: Option<String>,
    pub proposal: Option<String>,
    /// observation mode
    #[arg(short = 'l', long)]
    pub listen: bool,
}

#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// <destination>
    pub dest: Vec<String>,
    /// Key-value prefix to mirror
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// destination prefix to mirror a prefix to a different prefix in the destination cluster
    #[arg(long = "dest-prefix", default_value = "")]
    pub dest_prefix: String,
    /// mirror key-values to the root of the destination cluster
    #[arg(long = "no-dest-prefix")]
    pub no_dest_prefix: bool,
    /// Identify secure client using this TLS certificate file for the destination cluster
    #[arg(long = "dest-cert")]
    pub dest_cert: Option<String>,
    /// Identify secure client using this TLS key file
    #[arg(long = "dest-key")]
    pub dest_key: Option<String>,
    /// Verify certificates of TLS enabled secure servers using this CA bundle
    #[arg(long = "dest-cacert")]
    pub dest_cacert: Option<String>,
    /// Disable transport security for client connections
    #[arg(long = "dest-insecure-transport", num_args = 0..=1, default_missing_value = "true", default_value = "true", action = ArgAction::Set)]
    pub dest_insecure_transport: bool,
    /// How often the count of mirrored keys is printed (oxcdctl; for tests)
    #[arg(long = "report-interval", default_value = "30s", hide = true)]
    pub report_interval: String,
}

#[derive(Debug, Subcommand)]
pub enum CheckCmd {
    /// Check the performance of the etcd cluster
    Perf(CheckPerfArgs),
    /// Check the memory usage of holding data for different workloads on a given server endpoint.
    Datascale(CheckDatascaleArgs),
}

#[derive(Debug, Args)]
pub struct CheckPerfArgs {
    /// The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)
    #[arg(long, default_value = "s")]
    pub load: String,
    /// The prefix for writing the performance check's keys.
    #[arg(long, default_value = "/etcdctl-check-perf/")]
    pub prefix: String,
    /// Compact storage with last revision after test is finished.
    #[arg(long = "auto-compact")]
    pub auto_compact: bool,
    /// Defragment storage after test is finished.
    #[arg(long = "auto-defrag")]
    pub auto_defrag: bool,
    /// Seconds to run instead of the workload's 60 (oxcdctl; for tests)
    #[arg(long, hide = true)]
    pub duration: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CheckDatascaleArgs {
    /// The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)
    #[arg(long, default_value = "s")]
    pub load: String,
    /// The prefix for writing the datascale check's keys.
    #[arg(long, default_value = "/etcdctl-check-datascale/")]
    pub prefix: String,
    /// Compact storage with last revision after test is finished.
    #[arg(long = "auto-compact")]
    pub auto_compact: bool,
    /// Defragment storage after test is finished.
    #[arg(long = "auto-defrag")]
    pub auto_defrag: bool,
    /// Keys to write instead of the workload's count (oxcdctl; for tests)
    #[arg(long, hide = true)]
    pub keys: Option<u64>,
}
