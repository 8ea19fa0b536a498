//! Attribute names used in Palisade events.
//!
//! Names outside the `palisade.` namespace are OpenTelemetry semantic conventions (process, file,
//! server, client, host, container, faas, k8s); the `palisade.` names cover what those
//! conventions have no name for.

pub const PROCESS_PID: &str = "process.pid";
pub const PROCESS_PARENT_PID: &str = "process.parent_pid";
pub const PROCESS_EXECUTABLE_PATH: &str = "process.executable.path";
pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
pub const PROCESS_COMMAND_ARGS: &str = "process.command_args";
pub const PROCESS_COMMAND_LINE: &str = "process.command_line";
pub const PROCESS_EXIT_CODE: &str = "process.exit.code";

pub const FILE_PATH: &str = "file.path";
pub const FILE_SIZE: &str = "file.size";
pub const FILE_MODE: &str = "file.mode";
pub const FILE_OWNER_ID: &str = "file.owner.id";
pub const FILE_GROUP_ID: &str = "file.group.id";
pub const FILE_INODE: &str = "file.inode";
pub const FILE_SYMBOLIC_LINK_TARGET_PATH: &str = "file.symbolic_link.target_path";

pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
pub const CLIENT_ADDRESS: &str = "client.address";
pub const CLIENT_PORT: &str = "client.port";
pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
pub const NETWORK_PEER_PORT: &str = "network.peer.port";
pub const NETWORK_TRANSPORT: &str = "network.transport";
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";

pub const HOST_NAME: &str = "host.name";
pub const HOST_ARCH: &str = "host.arch";
pub const OS_TYPE: &str = "os.type";
pub const OS_VERSION: &str = "os.version";
pub const CONTAINER_ID: &str = "container.id";
pub const FAAS_NAME: &str = "faas.name";
pub const FAAS_VERSION: &str = "faas.version";
pub const FAAS_INVOCATION_ID: &str = "faas.invocation_id";
pub const K8S_POD_NAME: &str = "k8s.pod.name";
pub const K8S_NAMESPACE_NAME: &str = "k8s.namespace.name";
pub const SERVICE_NAME: &str = "service.name";
pub const ERROR_TYPE: &str = "error.type";

pub const POLICY_NAME: &str = "palisade.policy.name";
pub const POLICY_HASH: &str = "palisade.policy.hash";
pub const POLICY_PATH: &str = "palisade.policy.path";
pub const POLICY_MODE: &str = "palisade.policy.mode";
pub const POLICY_ENFORCEMENT: &str = "palisade.policy.enforcement";
pub const LANDLOCK_ABI: &str = "palisade.landlock.abi";
pub const LANDLOCK_STATUS: &str = "palisade.landlock.status";
pub const LANDLOCK_RIGHTS_ENFORCED: &str = "palisade.landlock.rights_enforced";
pub const LANDLOCK_RIGHTS_DEGRADED: &str = "palisade.landlock.rights_degraded";
pub const LANDLOCK_PATHS_MISSING: &str = "palisade.landlock.paths_missing";
pub const SECCOMP_STATUS: &str = "palisade.seccomp.status";
pub const SECCOMP_FILTER_LENGTH: &str = "palisade.seccomp.filter_length";
pub const SECCOMP_SYSCALLS_ALLOWED: &str = "palisade.seccomp.syscalls_allowed";
pub const SECCOMP_DEFAULT_ERRNO: &str = "palisade.seccomp.default_errno";
pub const SYSCALL_NAME: &str = "palisade.syscall.name";
pub const SYSCALL_NUMBER: &str = "palisade.syscall.number";
pub const SYSCALL_ARCH: &str = "palisade.syscall.arch";
pub const SYSCALL_ARGS: &str = "palisade.syscall.args";
pub const DECISION: &str = "palisade.decision";
pub const RULE_ID: &str = "palisade.rule.id";
pub const REASON: &str = "palisade.reason";
pub const BYTES_SENT: &str = "palisade.bytes.sent";
pub const BYTES_RECEIVED: &str = "palisade.bytes.received";
pub const DURATION_MS: &str = "palisade.duration_ms";
pub const REPEAT_COUNT: &str = "palisade.repeat_count";
pub const INTEGRITY_CHANGE: &str = "palisade.integrity.change";
pub const INTEGRITY_ATTRIBUTES: &str = "palisade.integrity.attributes";
pub const INTEGRITY_OLD_VALUES: &str = "palisade.integrity.old_values";
pub const INTEGRITY_NEW_VALUES: &str = "palisade.integrity.new_values";
pub const INTEGRITY_HARD_LINK_OF: &str = "palisade.integrity.hard_link_of";
pub const INTEGRITY_MANIFEST: &str = "palisade.integrity.manifest";
pub const INTEGRITY_ROOT_PREFIX: &str = "palisade.integrity.root_prefix";
pub const INTEGRITY_ENTRIES_CHECKED: &str = "palisade.integrity.entries_checked";
pub const INTEGRITY_CHANGES: &str = "palisade.integrity.changes";
pub const INTEGRITY_ERRORS: &str = "palisade.integrity.errors";
pub const INTEGRITY_WATCH_BACKEND: &str = "palisade.integrity.watch_backend";
/// Whether audit mode let through a connection that enforce mode would have denied.
pub const EGRESS_AUDITED: &str = "palisade.egress.audited";
