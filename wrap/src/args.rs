//! Command-line parsing. The launcher also runs as AWS_LAMBDA_EXEC_WRAPPER, which passes the
//! runtime's own command line, so arguments that do not start with `--` are the command.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::WrapError;

pub const HELP: &str = "\
Usage: palisade-wrap [--policy FILE] [--] COMMAND [ARGS...]

Confines COMMAND with the policy's Landlock rules and seccomp filter, reports what is enforced as
a palisade.policy.applied event, and executes COMMAND in place (same process id, no fork).

Options:
  --policy FILE   Policy file. Default: $PALISADE_POLICY, then the first of
                  /var/task/palisade.yaml, /opt/palisade/policy.yaml, /etc/palisade/policy.yaml
  --learn FILE    Learning run (used by `palisade learn`): every system call goes to the
                  supervisor, which lets it through and writes what the command did to FILE
  -h, --help      Show this help
  -V, --version   Show the version

With spec.syscalls.supervise (the default), a supervisor process started before the command
answers every system call outside the allow-list and reports it as palisade.syscall.denied or
palisade.syscall.audited.

Events go to the OTLP/HTTP endpoint in OTEL_EXPORTER_OTLP_ENDPOINT when it is set, otherwise to
stderr as JSON lines. PALISADE_TELEMETRY_TIMEOUT_MS bounds the export (default 500).

Exit status when COMMAND does not start:
  64   invalid arguments
  78   the policy is missing, unreadable or invalid
  71   the policy cannot be enforced on this kernel (strict mode, or the kernel rejected it)
  126  COMMAND is not executable
  127  COMMAND was not found
";

#[derive(Debug)]
pub struct Invocation {
    pub policy: Option<PathBuf>,
    /// Where a learning run writes its observations.
    pub learn: Option<PathBuf>,
    pub command: Vec<OsString>,
}

#[derive(Debug)]
pub enum Parsed {
    Run(Invocation),
    Help,
    Version,
}

pub fn parse(args: impl Iterator<Item = OsString>) -> Result<Parsed, WrapError> {
    let mut args = args.peekable();
    let mut policy = None;
    let mut learn = None;

    while let Some(arg) = args.peek() {
        let Some(text) = arg.to_str() else { break };
        if !text.starts_with('-') {
            break;
        }
        let arg = args.next().expect("peeked");
        let text = arg.to_str().expect("checked above");
        match text {
            "--" => break,
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "--policy" => {
                let value = args.next().ok_or_else(|| WrapError::Usage("--policy needs a file path".into()))?;
                policy = Some(PathBuf::from(value));
            }
            "--learn" => {
                let value = args.next().ok_or_else(|| WrapError::Usage("--learn needs a file path".into()))?;
                learn = Some(PathBuf::from(value));
            }
            _ => match text.strip_prefix("--policy=") {
                Some("") => return Err(WrapError::Usage("--policy needs a file path".into())),
                Some(value) => policy = Some(PathBuf::from(value)),
                None => return Err(WrapError::Usage(format!("unknown option {text:?}; see palisade-wrap --help"))),
            },
        }
    }

    let command: Vec<OsString> = args.collect();
    if command.is_empty() {
        return Err(WrapError::Usage("no command given: palisade-wrap [--policy FILE] -- COMMAND [ARGS...]".into()));
    }
    Ok(Parsed::Run(Invocation { policy, learn, command }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Invocation {
        match parse(args.iter().map(OsString::from)).unwrap() {
            Parsed::Run(invocation) => invocation,
            other => panic!("expected a command, got {other:?}"),
        }
    }

    #[test]
    fn command_after_double_dash() {
        let invocation = run(&["--policy", "p.yaml", "--", "/bin/ls", "-l"]);
        assert_eq!(invocation.policy, Some(PathBuf::from("p.yaml")));
        assert_eq!(invocation.command, vec![OsString::from("/bin/ls"), OsString::from("-l")]);
    }

    #[test]
    fn command_without_double_dash() {
        let invocation = run(&["/var/runtime/bootstrap", "--handler", "app.handler"]);
        assert_eq!(invocation.policy, None);
        assert_eq!(invocation.command.len(), 3);
    }

    #[test]
    fn policy_with_equals() {
        assert_eq!(run(&["--policy=x.yaml", "true"]).policy, Some(PathBuf::from("x.yaml")));
    }

    #[test]
    fn missing_command_is_usage_error() {
        assert!(matches!(parse(["--policy", "p"].iter().map(OsString::from)), Err(WrapError::Usage(_))));
    }

    #[test]
    fn unknown_option_is_usage_error() {
        assert!(matches!(parse(["--polcy", "p", "x"].iter().map(OsString::from)), Err(WrapError::Usage(_))));
    }
}
