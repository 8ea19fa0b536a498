use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Maximum duration of the Init phase (extension, runtime and function init together), as
/// documented in the "Lambda execution environment lifecycle" page of the Lambda developer guide.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Shutdown phase limit of a function with one or more registered external extensions.
pub const SHUTDOWN_BUDGET_EXTERNAL: Duration = Duration::from_millis(2_000);

/// Shutdown phase limit of a function whose only extensions are internal ones.
pub const SHUTDOWN_BUDGET_INTERNAL: Duration = Duration::from_millis(500);

/// Shutdown phase limit of a function without registered extensions.
pub const SHUTDOWN_BUDGET_NONE: Duration = Duration::ZERO;

/// Part of the shutdown budget reserved for the runtime's graceful shutdown after SIGTERM.
pub const RUNTIME_GRACEFUL_SHUTDOWN: Duration = Duration::from_millis(300);

/// Host name that telemetry subscribers use in their destination URI inside real Lambda.
pub const SANDBOX_HOST: &str = "sandbox.localdomain";

/// Settings of one emulated execution environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory whose executables are started as external extensions, like `/opt/extensions`.
    pub extensions_dir: Option<PathBuf>,
    /// Runtime executable and its arguments, like the `bootstrap` of a custom runtime.
    pub runtime_command: Vec<String>,
    /// Value of `AWS_LAMBDA_EXEC_WRAPPER`; when set, the runtime starts as `wrapper runtime_command...`.
    pub exec_wrapper: Option<PathBuf>,
    /// Working directory of the runtime and value of `LAMBDA_TASK_ROOT`.
    pub task_root: PathBuf,
    /// Value of `_HANDLER`.
    pub handler: String,
    pub function_name: String,
    pub function_version: String,
    pub memory_size_mb: u32,
    pub region: String,
    pub account_id: String,
    /// Function environment variables, added to (and overriding) the ones the emulator sets.
    pub environment: BTreeMap<String, String>,
    /// Function timeout: the limit of the whole Invoke phase, runtime and extensions together.
    pub timeout: Duration,
    pub init_timeout: Duration,
    /// Overrides the documented shutdown budget, which depends on the registered extensions.
    pub shutdown_budget: Option<Duration>,
    /// Address of the Runtime API server; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where telemetry destined to a sandbox host name is delivered. Real Lambda resolves
    /// `sandbox.localdomain` inside the execution environment; the emulator maps it here.
    pub sandbox_hosts: BTreeMap<String, IpAddr>,
    /// Freezes every started process between invokes, as Lambda does.
    pub freeze: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            extensions_dir: None,
            runtime_command: Vec::new(),
            exec_wrapper: None,
            task_root: PathBuf::from("/var/task"),
            handler: "function.handler".to_owned(),
            function_name: "palisade-test".to_owned(),
            function_version: "$LATEST".to_owned(),
            memory_size_mb: 128,
            region: "us-east-1".to_owned(),
            account_id: "123456789012".to_owned(),
            environment: BTreeMap::new(),
            timeout: Duration::from_secs(3),
            init_timeout: DEFAULT_INIT_TIMEOUT,
            shutdown_budget: None,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            sandbox_hosts: BTreeMap::from([(SANDBOX_HOST.to_owned(), IpAddr::V4(Ipv4Addr::LOCALHOST))]),
            freeze: true,
        }
    }
}

impl Config {
    /// ARN of the function, as sent in `Lambda-Runtime-Invoked-Function-Arn`.
    pub fn function_arn(&self) -> String {
        format!("arn:aws:lambda:{}:{}:function:{}", self.region, self.account_id, self.function_name)
    }

    /// Environment common to the runtime and the extensions.
    pub(crate) fn base_environment(&self, runtime_api: SocketAddr) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let mut set = |key: &str, value: String| {
            env.insert(key.to_owned(), value);
        };
        set("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string());
        set("AWS_LAMBDA_FUNCTION_NAME", self.function_name.clone());
        set("AWS_LAMBDA_FUNCTION_VERSION", self.function_version.clone());
        set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", self.memory_size_mb.to_string());
        set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned());
        set("AWS_REGION", self.region.clone());
        set("AWS_DEFAULT_REGION", self.region.clone());
        set("TZ", ":UTC".to_owned());
        set("LANG", "en_US.UTF-8".to_owned());
        set("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_owned());
        set(
            "LD_LIBRARY_PATH",
            "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib".to_owned(),
        );
        if let Some(wrapper) = &self.exec_wrapper {
            set("AWS_LAMBDA_EXEC_WRAPPER", wrapper.display().to_string());
        }
        env.extend(self.environment.clone());
        env
    }

    /// Environment of the runtime process: the base one plus the variables that the Extensions
    /// API page lists as specific to the runtime process.
    pub(crate) fn runtime_environment(&self, runtime_api: SocketAddr) -> BTreeMap<String, String> {
        let mut env = self.base_environment(runtime_api);
        let log_group = format!("/aws/lambda/{}", self.function_name);
        let runtime_only = [
            ("_HANDLER", self.handler.clone()),
            ("LAMBDA_TASK_ROOT", self.task_root.display().to_string()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", log_group),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name(&self.function_version)),
        ];
        for (key, value) in runtime_only {
            // A variable set explicitly in the function environment wins.
            if !self.environment.contains_key(key) {
                env.insert(key.to_owned(), value);
            }
        }
        env
    }

    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        if self.runtime_command.is_empty() {
            return Err(crate::Error::EmptyRuntimeCommand);
        }
        if self.timeout.is_zero() {
            return Err(crate::Error::InvalidConfig {
                name: "timeout",
                message: "must be greater than zero".to_owned(),
            });
        }
        Ok(())
    }
}

/// Builds a log stream name shaped like Lambda's: `YYYY/MM/DD/[VERSION]` and 32 hex digits.
fn log_stream_name(version: &str) -> String {
    let date = crate::telemetry::format_time(std::time::SystemTime::now())[..10].replace('-', "/");
    format!("{date}/[{version}]{}", uuid::Uuid::new_v4().simple())
}
