//! The command line: every subcommand and flag, with help a k3s user can
//! read without the docs. Values are parsed and checked here, so a bad
//! flag fails before anything starts.

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;

/// The version line `kite --version` prints.
pub const LONG_VERSION: &str = concat!(
    "v",
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("KITE_GIT_COMMIT"),
    ")\nkubernetes v1.33.0+kite"
);

/// kite: a lightweight Kubernetes distribution in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "kite",
    version = LONG_VERSION,
    about = "kite: a lightweight Kubernetes distribution in one binary",
    long_about = "kite: a lightweight Kubernetes distribution in one binary.\n\n\
        `kite server` runs a whole single-node cluster: API server, datastore, scheduler, \
        controllers and a node. `kite agent` joins more nodes to it.",
    propagate_version = true,
    args_override_self = true
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// kite's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a server: the control plane and a node, a single-node cluster on its own.
    Server(Box<ServerArgs>),
    /// Run a node agent that joins an existing server.
    Agent(AgentArgs),
    /// Run kubectl against this cluster with the admin kubeconfig.
    #[command(
        disable_help_flag = true,
        long_about = "Run the `kubectl` found on PATH against this cluster.\n\n\
            KUBECONFIG is set to the admin kubeconfig (the --write-kubeconfig file, \
            /etc/kite/kite.yaml by default, or <data-dir>/server/cred/admin.kubeconfig) \
            unless it is already set. Every argument is passed to kubectl unchanged."
    )]
    Kubectl(KubectlArgs),
    /// Print the join token agents use to join this server.
    Token(DataDirArgs),
    /// Inspect the cluster's certificates.
    Certificate(CertificateArgs),
    /// Manage images and run containers on this node (like k3s's `ctr`).
    #[command(
        long_about = "Manage images and run containers on this node, with the habits of \
            k3s's `ctr`.\n\n\
            Images live in <data-dir>/agent; this works whether or not `kite server` runs. \
            `images import` takes docker-archive (`docker save`) and OCI-layout tarballs, \
            plain, gzip or zstd compressed; airgap/build-busybox-image.sh builds one."
    )]
    Ctr(CtrArgs),
    /// Inspect the pods and containers the kubelet runs on this node (like crictl).
    #[command(
        long_about = "Inspect the pods and containers the kubelet runs on this node, with the \
            habits of crictl (and k3s's `crictl`).\n\n\
            It reads what the kubelet and the runtime keep in <data-dir>/agent, so it works \
            whether or not `kite server` or `kite agent` runs. IDs are shown as 13-character \
            prefixes; any unambiguous prefix names a container or pod."
    )]
    Crictl(CrictlArgs),
    /// The low-level container runtime kite runs itself as (not for direct use).
    #[command(hide = true)]
    Runtime(RuntimeArgs),
}

/// Arguments shared by every long-running command.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Config file; its keys are the long flag names (e.g. `tls-san: [a, b]`).
    #[arg(
        short = 'c',
        long,
        env = "KITE_CONFIG_FILE",
        value_name = "FILE",
        default_value = "/etc/kite/config.yaml",
        help_heading = "General"
    )]
    pub config: PathBuf,

    /// Folder holding all state [default: /var/lib/kite, or ~/.kite when not root].
    #[arg(
        short = 'd',
        long,
        env = "KITE_DATA_DIR",
        value_name = "DIR",
        help_heading = "General"
    )]
    pub data_dir: Option<PathBuf>,

    /// Log line format.
    #[arg(long, env = "KITE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text,
          help_heading = "Logging")]
    pub log_format: LogFormat,

    /// Log verbosity: 0 info, 1-2 debug, 3 and up trace (RUST_LOG overrides).
    #[arg(short = 'v', long = "v", env = "KITE_V", value_name = "LEVEL", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=10), help_heading = "Logging")]
    pub verbosity: u8,
}

/// `kite server` flags.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,

    /// Port the API server listens on (HTTPS).
    #[arg(long, env = "KITE_HTTPS_LISTEN_PORT", value_name = "PORT", default_value_t = 6443,
          value_parser = port, help_heading = "Listener")]
    pub https_listen_port: u16,

    /// Address the API server binds to.
    #[arg(
        long,
        env = "KITE_BIND_ADDRESS",
        value_name = "IP",
        default_value = "0.0.0.0",
        help_heading = "Listener"
    )]
    pub bind_address: IpAddr,

    /// Address advertised to the cluster for the API server [default: node-ip].
    #[arg(
        long,
        env = "KITE_ADVERTISE_ADDRESS",
        value_name = "IP",
        help_heading = "Listener"
    )]
    pub advertise_address: Option<IpAddr>,

    /// Extra hostname or IP for the serving certificate (repeatable).
    #[arg(
        long = "tls-san",
        env = "KITE_TLS_SAN",
        value_name = "NAME|IP",
        value_delimiter = ',',
        help_heading = "Listener"
    )]
    pub tls_san: Vec<String>,

    /// Write the admin kubeconfig to this file.
    #[arg(
        short = 'o',
        long,
        env = "KITE_KUBECONFIG_OUTPUT",
        value_name = "FILE",
        help_heading = "Client"
    )]
    pub write_kubeconfig: Option<PathBuf>,

    /// Mode of the written kubeconfig, in octal.
    #[arg(long, env = "KITE_KUBECONFIG_MODE", value_name = "MODE", default_value = "0600",
          value_parser = file_mode, help_heading = "Client")]
    pub write_kubeconfig_mode: u32,

    /// Shared secret agents use to join [default: generated and kept in <data-dir>/server/token].
    #[arg(
        short = 't',
        long,
        env = "KITE_TOKEN",
        value_name = "SECRET",
        hide_env_values = true,
        help_heading = "Cluster"
    )]
    pub token: Option<String>,

    /// Pod network: each node gets a /24 from it.
    #[arg(long, env = "KITE_CLUSTER_CIDR", value_name = "CIDR", default_value = "10.42.0.0/16",
          value_parser = cidr, help_heading = "Networking")]
    pub cluster_cidr: IpNet,

    /// Service network: ClusterIPs come from it; its first address is the API service.
    #[arg(long, env = "KITE_SERVICE_CIDR", value_name = "CIDR", default_value = "10.43.0.0/16",
          value_parser = cidr, help_heading = "Networking")]
    pub service_cidr: IpNet,

    /// Address of the cluster DNS service (inside --service-cidr).
    #[arg(
        long,
        env = "KITE_CLUSTER_DNS",
        value_name = "IP",
        default_value = "10.43.0.10",
        help_heading = "Networking"
    )]
    pub cluster_dns: IpAddr,

    /// Cluster domain.
    #[arg(long, env = "KITE_CLUSTER_DOMAIN", value_name = "DOMAIN", default_value = "cluster.local",
          value_parser = domain, help_heading = "Networking")]
    pub cluster_domain: String,

    /// Port range for NodePort services.
    #[arg(long, env = "KITE_SERVICE_NODE_PORT_RANGE", value_name = "FIRST-LAST",
          default_value = "30000-32767", value_parser = port_range, help_heading = "Networking")]
    pub service_node_port_range: PortRange,

    /// Do not run a packaged component (repeatable).
    #[arg(
        long,
        env = "KITE_DISABLE",
        value_name = "COMPONENT",
        value_enum,
        value_delimiter = ',',
        help_heading = "Components"
    )]
    pub disable: Vec<Component>,

    /// Do not run the scheduler in this server.
    #[arg(long, env = "KITE_DISABLE_SCHEDULER", help_heading = "Components")]
    pub disable_scheduler: bool,

    /// Do not run the controllers (ReplicaSet, Deployment, garbage collector, ...) in this server.
    #[arg(
        long,
        env = "KITE_DISABLE_CONTROLLER_MANAGER",
        help_heading = "Components"
    )]
    pub disable_controller_manager: bool,

    /// How long a node's kubelet may go without renewing its Lease before the
    /// node's conditions turn Unknown and its pods are evicted (a Go duration:
    /// 40s, 1m30s).
    #[arg(long, env = "KITE_NODE_MONITOR_GRACE_PERIOD", value_name = "DURATION",
          default_value = "40s", value_parser = duration, help_heading = "Components")]
    pub node_monitor_grace_period: std::time::Duration,

    /// Do not run the node agent (kubelet and container runtime) in this server:
    /// it schedules and controls, but runs no pods itself.
    #[arg(long, env = "KITE_DISABLE_AGENT", help_heading = "Components")]
    pub disable_agent: bool,

    /// Do not run the service proxy (the nftables rules for ClusterIPs and
    /// NodePorts) on this node.
    #[arg(long, env = "KITE_DISABLE_KUBE_PROXY", help_heading = "Components")]
    pub disable_kube_proxy: bool,

    /// Registry mirrors, rewrites, credentials and TLS settings, in k3s's
    /// registries.yaml format (a missing file means none).
    #[arg(
        long,
        env = "KITE_PRIVATE_REGISTRY",
        value_name = "FILE",
        default_value = "/etc/kite/registries.yaml",
        help_heading = "Node"
    )]
    pub private_registry: PathBuf,

    /// Datastore: empty for the embedded SQLite, or sqlite:///path/to/state.db.
    #[arg(
        long,
        env = "KITE_DATASTORE_ENDPOINT",
        value_name = "URL",
        default_value = "",
        help_heading = "Datastore"
    )]
    pub datastore_endpoint: String,

    /// How often the datastore forgets old revisions (Go duration such as
    /// 5m or 30s; 0 turns compaction off and the database grows forever).
    /// Watches resuming from a forgotten resourceVersion get 410 Expired.
    #[arg(long, env = "KITE_DATASTORE_COMPACTION_INTERVAL", value_name = "DURATION",
          default_value = "5m", value_parser = duration, help_heading = "Datastore")]
    pub datastore_compaction_interval: std::time::Duration,

    /// How many of the newest revisions compaction keeps readable.
    #[arg(
        long,
        env = "KITE_DATASTORE_COMPACTION_RETAIN",
        value_name = "REVISIONS",
        default_value_t = 1000,
        help_heading = "Datastore"
    )]
    pub datastore_compaction_retain: u32,

    /// Non-mutating API requests (get, list) served at once before others are
    /// refused with 429 TooManyRequests; 0 for no limit. Watches and other
    /// long-running requests and system:masters are not counted.
    #[arg(
        long,
        env = "KITE_MAX_REQUESTS_INFLIGHT",
        value_name = "N",
        default_value_t = 400,
        help_heading = "Listener"
    )]
    pub max_requests_inflight: usize,

    /// Mutating API requests (create, update, patch, delete) served at once
    /// before others are refused with 429 TooManyRequests; 0 for no limit.
    #[arg(
        long,
        env = "KITE_MAX_MUTATING_REQUESTS_INFLIGHT",
        value_name = "N",
        default_value_t = 200,
        help_heading = "Listener"
    )]
    pub max_mutating_requests_inflight: usize,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub node: NodeArgs,
}

/// Flags describing the node a server or agent runs.
#[derive(Debug, Args, Clone)]
pub struct NodeArgs {
    /// Name of this node [default: the hostname].
    #[arg(long, env = "KITE_NODE_NAME", value_name = "NAME", value_parser = node_name,
          help_heading = "Node")]
    pub node_name: Option<String>,

    /// IP address of this node [default: the address of the default route].
    #[arg(long, env = "KITE_NODE_IP", value_name = "IP", help_heading = "Node")]
    pub node_ip: Option<IpAddr>,

    /// Port the kubelet API (logs, exec, attach, port-forward) listens on (HTTPS).
    #[arg(long, env = "KITE_KUBELET_PORT", value_name = "PORT", default_value_t = 10250,
          value_parser = port, help_heading = "Node")]
    pub kubelet_port: u16,

    /// A kubelet setting as KEY=VALUE (repeatable), as k3s passes them:
    /// image-gc-high-threshold=85 (disk usage, percent, at which unused images
    /// are removed; 100 turns that off), image-gc-low-threshold=80 (usage to get
    /// down to), minimum-image-ttl-duration=2m (younger images stay) and
    /// pod-max-pids=N (the most processes a pod may have; -1 for no limit).
    #[arg(long = "kubelet-arg", env = "KITE_KUBELET_ARG", value_name = "KEY=VALUE",
          value_parser = kubelet_arg, help_heading = "Node")]
    pub kubelet_args: Vec<(String, String)>,

    /// The resolv.conf whose nameservers answer names outside the cluster
    /// (forwarded by the cluster DNS) and whose search domains pods inherit;
    /// pods with dnsPolicy Default get it as it is [default: /etc/resolv.conf,
    /// or systemd-resolved's /run/systemd/resolve/resolv.conf when the former
    /// names only a loopback stub].
    #[arg(
        long,
        env = "KITE_RESOLV_CONF",
        value_name = "FILE",
        help_heading = "Node"
    )]
    pub resolv_conf: Option<PathBuf>,
}

/// `kite agent` flags.
#[derive(Debug, Args, Clone)]
pub struct AgentArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,

    /// Server to join, e.g. https://10.0.0.1:6443.
    #[arg(
        short = 's',
        long,
        env = "KITE_URL",
        value_name = "URL",
        help_heading = "Cluster"
    )]
    pub server: String,

    /// Join token, as printed by `kite token` on the server.
    #[arg(
        short = 't',
        long,
        env = "KITE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "Cluster"
    )]
    pub token: String,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub node: NodeArgs,
}

/// `kite kubectl` arguments: everything is kubectl's.
#[derive(Debug, Args)]
pub struct KubectlArgs {
    /// Arguments passed to kubectl.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "KUBECTL ARGS"
    )]
    pub args: Vec<std::ffi::OsString>,
}

/// Arguments of commands that only read the data dir.
#[derive(Debug, Args)]
pub struct DataDirArgs {
    /// Folder holding all state [default: /var/lib/kite, or ~/.kite when not root].
    #[arg(short = 'd', long, env = "KITE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `kite ctr` arguments.
#[derive(Debug, Args)]
pub struct CtrArgs {
    /// Folder holding all state [default: /var/lib/kite, or ~/.kite when not root].
    #[arg(
        short = 'd',
        long,
        env = "KITE_DATA_DIR",
        value_name = "DIR",
        global = true
    )]
    pub data_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: CtrCommand,
}

/// What `kite ctr` can do.
#[derive(Debug, Subcommand)]
pub enum CtrCommand {
    /// Manage images.
    #[command(subcommand, visible_alias = "i", visible_alias = "image")]
    Images(ImagesCommand),
    /// Manage containers that were run without --rm.
    #[command(subcommand, visible_alias = "c", visible_alias = "container")]
    Containers(ContainersCommand),
    /// Run a container in the foreground and exit with its exit code.
    #[command(
        long_about = "Run a container in the foreground: its standard output and \
        error are this command's, and this command exits with the container's exit code \
        (128+N when a signal N killed it).\n\n\
        The container gets its own mount, PID, IPC, UTS and network namespaces (loopback \
        only, or the host's with --net-host), an overlayfs root file system over the \
        image's layers, and a cgroup nested in kite's own. Its host name is its ID."
    )]
    Run(Box<CtrRunArgs>),
}

/// `kite ctr images` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Import image tarballs (docker-archive or OCI layout; plain, gzip or zstd).
    Import {
        /// Tarballs to import; `-` reads standard input.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Pull an image from its registry (mirrors and credentials from registries.yaml).
    Pull {
        /// Image reference, e.g. busybox or 127.0.0.1:5000/app:1.0.
        #[arg(value_name = "REF")]
        reference: String,
        /// Credentials as USER:PASSWORD for the image's registry.
        #[arg(long, value_name = "USER:PASSWORD")]
        user: Option<String>,
        /// The registries.yaml to use.
        #[arg(
            long,
            env = "KITE_PRIVATE_REGISTRY",
            value_name = "FILE",
            default_value = "/etc/kite/registries.yaml"
        )]
        private_registry: PathBuf,
    },
    /// List images.
    #[command(visible_alias = "list")]
    Ls {
        /// Print only the image names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove images (and the content no other image uses).
    #[command(visible_alias = "remove", visible_alias = "delete")]
    Rm {
        /// Image references, e.g. busybox or docker.io/library/busybox:latest.
        #[arg(value_name = "REF", required = true)]
        refs: Vec<String>,
    },
}

/// `kite ctr containers` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContainersCommand {
    /// List containers with their status and host PID.
    #[command(visible_alias = "list")]
    Ls {
        /// Print only the container IDs.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove containers (killing them first).
    #[command(visible_alias = "remove", visible_alias = "delete")]
    Rm {
        /// Container IDs.
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
}

/// `kite crictl` arguments.
#[derive(Debug, Args)]
pub struct CrictlArgs {
    /// Folder holding all state [default: /var/lib/kite, or ~/.kite when not root].
    #[arg(
        short = 'd',
        long,
        env = "KITE_DATA_DIR",
        value_name = "DIR",
        global = true
    )]
    pub data_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: CrictlCommand,
}

/// What `kite crictl` can do.
#[derive(Debug, Subcommand)]
pub enum CrictlCommand {
    /// List containers (running ones unless -a).
    #[command(
        long_about = "List the pods' containers: CONTAINER, IMAGE (the image ID), CREATED, \
        STATE (Created, Running, Exited), NAME, ATTEMPT (the restart it is), POD ID and POD. \
        Only running containers are listed unless --all is given."
    )]
    Ps {
        /// List every container, not only running ones.
        #[arg(short, long)]
        all: bool,
        /// Only containers whose name matches this regular expression.
        #[arg(long, value_name = "REGEX")]
        name: Option<String>,
        /// Only containers of the pod with this ID (or ID prefix).
        #[arg(short, long, value_name = "POD_ID")]
        pod: Option<String>,
        /// Print only the full container IDs.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List pod sandboxes.
    #[command(
        long_about = "List pod sandboxes: POD ID, CREATED, STATE (Ready while the \
        sandbox's namespaces exist, NotReady otherwise), NAME, NAMESPACE, ATTEMPT and RUNTIME."
    )]
    Pods {
        /// Only pods whose name matches this regular expression.
        #[arg(long, value_name = "REGEX")]
        name: Option<String>,
        /// Only pods in this namespace.
        #[arg(long, value_name = "NAMESPACE")]
        namespace: Option<String>,
        /// Print only the full pod IDs.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List images: IMAGE, TAG, IMAGE ID (of the image config) and SIZE.
    #[command(visible_alias = "image", visible_alias = "img")]
    Images {
        /// Print only the full image IDs.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print a container's log.
    #[command(
        long_about = "Print a container's log from its CRI log file: standard output \
        to standard output, standard error to standard error. With --follow, keep printing \
        what it writes until it exits."
    )]
    Logs {
        /// Keep printing the log until the container exits.
        #[arg(short, long)]
        follow: bool,
        /// Print only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Prefix every line with its RFC 3339 time stamp.
        #[arg(short, long)]
        timestamps: bool,
        /// Container ID or ID prefix.
        #[arg(value_name = "CONTAINER")]
        container: String,
    },
    /// Run a command in a running container.
    #[command(
        long_about = "Run a command in a running container, in its namespaces and \
        cgroup, and exit with the command's exit code. Standard input is passed on only \
        with --interactive; --tty gives the command a terminal."
    )]
    Exec {
        /// Pass standard input to the command.
        #[arg(short, long)]
        interactive: bool,
        /// Give the command a terminal (this command's standard input must be one).
        #[arg(short, long)]
        tty: bool,
        /// Container ID or ID prefix.
        #[arg(value_name = "CONTAINER")]
        container: String,
        /// The command and its arguments.
        #[arg(
            value_name = "CMD",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        command: Vec<String>,
    },
    /// Print a container's status and runtime information as JSON.
    Inspect {
        /// Container IDs or ID prefixes.
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// Print a pod sandbox's status as JSON.
    Inspectp {
        /// Pod IDs or ID prefixes.
        #[arg(value_name = "POD", required = true)]
        pods: Vec<String>,
    },
}

/// `kite ctr run` arguments.
#[derive(Debug, Args)]
pub struct CtrRunArgs {
    /// Remove the container when it exits.
    #[arg(long, conflicts_with = "detach")]
    pub rm: bool,

    /// Start the container in the background and return; it keeps running after this
    /// command (and kite) exit, until `kite ctr containers rm ID`.
    #[arg(long)]
    pub detach: bool,

    /// Set an environment variable (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = env_pair)]
    pub env: Vec<String>,

    /// Working directory inside the container [default: the image's].
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,

    /// User to run as: uid[:gid] or a name from the image's /etc/passwd [default: the image's].
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,

    /// Memory limit in bytes (suffixes k, m, g accepted).
    #[arg(long, value_name = "BYTES", value_parser = byte_size)]
    pub memory_limit: Option<i64>,

    /// Maximum number of processes in the container.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub pids_limit: Option<i64>,

    /// CPU limit in CPUs, e.g. 0.5 (a CFS quota over a 100ms period).
    #[arg(long, value_name = "CPUS", value_parser = cpus)]
    pub cpus: Option<f64>,

    /// Share the host's network namespace instead of a new one with loopback only.
    #[arg(long)]
    pub net_host: bool,

    /// The image, e.g. busybox or docker.io/library/busybox:latest.
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// The container ID (also its host name).
    #[arg(value_name = "ID")]
    pub id: String,

    /// The command and its arguments [default: the image's entrypoint and command].
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// `kite runtime`: the hidden low-level runtime kite re-executes itself as.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Directory holding the containers' state.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,

    /// The operation.
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

/// Low-level operations, as runc names them.
#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Create a container from a bundle; its process waits for `start`.
    Create {
        /// Bundle directory holding config.json.
        #[arg(long, value_name = "DIR")]
        bundle: PathBuf,
        /// Container ID.
        id: String,
    },
    /// Start a created container.
    Start {
        /// Container ID.
        id: String,
    },
    /// Signal a container.
    Kill {
        /// Signal name or number.
        #[arg(long, default_value = "TERM")]
        signal: String,
        /// Signal every process of the container.
        #[arg(long)]
        all: bool,
        /// Container ID.
        id: String,
    },
    /// Delete a container and its cgroup.
    Delete {
        /// Kill it first if it runs.
        #[arg(long)]
        force: bool,
        /// Container ID.
        id: String,
    },
    /// Print a container's state as JSON.
    State {
        /// Container ID.
        id: String,
    },
    /// Create, start and wait for a container, delete it, exit with its code.
    Run {
        /// Bundle directory holding config.json.
        #[arg(long, value_name = "DIR")]
        bundle: PathBuf,
        /// Container ID.
        id: String,
    },
    /// Run another process in a running container; exit with its code.
    Exec {
        /// Extra environment variable (KEY=value); repeatable.
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Give the process a terminal whose master side is sent to this Unix socket.
        #[arg(long, value_name = "PATH")]
        console_socket: Option<PathBuf>,
        /// Container ID.
        id: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
    /// Create and start a container, log its output, record its exit (runs in
    /// the background; prints `started <pid>` once the container runs).
    Monitor {
        /// Bundle directory holding config.json.
        #[arg(long, value_name = "DIR")]
        bundle: PathBuf,
        /// CRI-format log file for the container's output.
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        /// Give the container a standard input FIFO (`<bundle>/stdin`).
        #[arg(long)]
        stdin: bool,
        /// Rotate the log past this many bytes.
        #[arg(long, default_value_t = 10 << 20)]
        log_max_size: u64,
        /// Log files kept, the live one included.
        #[arg(long, default_value_t = 5)]
        log_max_files: usize,
        /// Do the monitoring in this process (otherwise it runs in a detached
        /// copy of itself and this one exits once the container runs).
        #[arg(long)]
        foreground: bool,
        /// Container ID.
        id: String,
    },
    /// Create a pod sandbox: new network, IPC and UTS namespaces pinned in DIR.
    Sandbox {
        /// The pod's host name.
        #[arg(long)]
        hostname: String,
        /// Keep the node's network and UTS namespaces.
        #[arg(long)]
        host_network: bool,
        /// Keep the node's IPC namespace.
        #[arg(long)]
        host_ipc: bool,
        /// The sandbox directory.
        dir: PathBuf,
    },
}

/// `kite certificate` subcommands.
#[derive(Debug, Args)]
pub struct CertificateArgs {
    /// What to do with the certificates.
    #[command(subcommand)]
    pub command: CertificateCommand,
}

/// What `kite certificate` can do.
#[derive(Debug, Subcommand)]
pub enum CertificateCommand {
    /// List every certificate with its expiry date.
    Check(DataDirArgs),
}

/// Log line formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Packaged components that `--disable` can turn off. k3s's names are accepted as aliases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Component {
    /// Cluster DNS.
    #[value(alias = "coredns")]
    Dns,
    /// The Ingress controller (IngressClass `kite` on the node's ports 80 and 443).
    #[value(alias = "traefik")]
    Ingress,
    /// LoadBalancer services on the node addresses.
    Servicelb,
    /// The local-path storage provisioner.
    LocalStorage,
    /// The metrics API behind `kubectl top`.
    MetricsServer,
    /// The NetworkPolicy controller.
    NetworkPolicy,
}

/// An inclusive port range such as `30000-32767`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

fn port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(0) => Err("port must be between 1 and 65535, not 0".into()),
        Ok(port) => Ok(port),
        Err(_) => Err(format!("{value:?} is not a port number (1-65535)")),
    }
}

fn cidr(value: &str) -> Result<IpNet, String> {
    let net: IpNet = value
        .parse()
        .map_err(|_| format!("{value:?} is not a CIDR such as 10.42.0.0/16"))?;
    if net.trunc() != net {
        return Err(format!(
            "{value:?} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// A Go duration as Kubernetes flags take it (`40s`, `1m30s`, `500ms`, `1.5h`).
fn duration(value: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("{value:?} is not a duration such as 40s or 1m30s");
    let mut rest = value.trim();
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

fn port_range(value: &str) -> Result<PortRange, String> {
    let (first, last) = value
        .split_once('-')
        .ok_or_else(|| format!("{value:?} is not a range such as 30000-32767"))?;
    let first = port(first.trim())?;
    let last = port(last.trim())?;
    if first > last {
        return Err(format!("{value:?}: the first port is above the last"));
    }
    Ok(PortRange { first, last })
}

fn file_mode(value: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(value, 8)
        .map_err(|_| format!("{value:?} is not an octal file mode such as 0600"))?;
    if mode > 0o777 {
        return Err(format!("{value:?} is not a file mode (0000-0777)"));
    }
    Ok(mode)
}

/// `KEY=VALUE` (a leading `--` is allowed), checked against what kite's kubelet takes.
fn kubelet_arg(value: &str) -> Result<(String, String), String> {
    let (key, val) = value
        .trim_start_matches('-')
        .split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{value:?} is not KEY=VALUE"))?;
    kite_kubelet::args::KubeletArgs::check(key, val)?;
    Ok((key.to_string(), val.to_string()))
}

fn env_pair(value: &str) -> Result<String, String> {
    match value.split_once('=') {
        Some((key, _)) if !key.is_empty() => Ok(value.to_string()),
        _ => Err(format!("{value:?} is not KEY=VALUE")),
    }
}

fn byte_size(value: &str) -> Result<i64, String> {
    let lower = value.trim().to_ascii_lowercase();
    let lower = lower.trim_end_matches('b').trim_end_matches('i');
    let (digits, unit) = match lower.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&lower[..i], c),
        _ => (lower, ' '),
    };
    let factor: i64 = match unit {
        ' ' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return Err(format!("{value:?}: unknown unit (use k, m or g)")),
    };
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{value:?} is not a size such as 16m or 1048576"))
}

fn cpus(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(n) if n > 0.0 && n <= 1024.0 => Ok(n),
        _ => Err(format!("{value:?} is not a CPU count such as 0.5 or 2")),
    }
}

/// A DNS-1123 subdomain, as Kubernetes requires of node names and domains.
fn is_dns_subdomain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn domain(value: &str) -> Result<String, String> {
    let value = value.trim_end_matches('.');
    if is_dns_subdomain(value) {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not a lower-case DNS domain"))
    }
}

fn node_name(value: &str) -> Result<String, String> {
    if is_dns_subdomain(value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{value:?} is not a valid node name (lower-case letters, digits, '-' and '.')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn disable_takes_k3s_component_names() {
        let cli = Cli::try_parse_from(["kite", "server", "--disable", "coredns,traefik"])
            .expect("parses");
        let Command::Server(args) = cli.command else {
            panic!("not the server command");
        };
        assert_eq!(args.disable, vec![Component::Dns, Component::Ingress]);
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        use std::time::Duration;
        assert_eq!(duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        for bad in ["40", "5x", "", "m", "-1s", "1s2"] {
            assert!(duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn ports_cidrs_and_ranges_are_checked() {
        assert!(port("0").is_err());
        assert_eq!(port("6443"), Ok(6443));
        assert!(cidr("10.42.0.0/33").is_err());
        assert!(cidr("10.42.0.1/16").is_err());
        assert!(cidr("fd00::/64").is_ok());
        assert_eq!(
            port_range("30000-32767"),
            Ok(PortRange {
                first: 30000,
                last: 32767
            })
        );
        assert!(port_range("32767-30000").is_err());
        assert_eq!(file_mode("644"), Ok(0o644));
        assert!(file_mode("0999").is_err());
        assert!(node_name("Node_1").is_err());
        assert!(domain("cluster.local").is_ok());
        assert_eq!(byte_size("16m"), Ok(16 << 20));
        assert_eq!(byte_size("16Mi"), Ok(16 << 20));
        assert_eq!(byte_size("1024"), Ok(1024));
        assert!(byte_size("-1").is_err());
        assert!(byte_size("5x").is_err());
        assert!(env_pair("=x").is_err());
        assert!(cpus("0").is_err());
    }

    #[test]
    fn the_runtime_subcommand_is_hidden() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("ctr"), "{help}");
        assert!(!help.contains("runtime"), "{help}");
    }
}
