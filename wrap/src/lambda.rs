//! The Lambda environment: inside Lambda (`AWS_LAMBDA_RUNTIME_API` set) the function's HTTP
//! clients are pointed at the Palisade extension's egress proxy on 127.0.0.1.

use std::ffi::OsString;

/// Port of the extension's egress proxy when `PALISADE_PROXY_PORT` is unset; the extension uses
/// the same default.
pub const DEFAULT_PROXY_PORT: u16 = 3128;

/// Hosts that never go through the proxy: the Runtime API, the Telemetry API destination host,
/// loopback and the link-local range of the Lambda platform endpoints.
const ALWAYS_DIRECT: [&str; 4] = ["sandbox.localdomain", "localhost", "127.0.0.1", "169.254.0.0/16"];

/// Sets the proxy variables when running inside Lambda; does nothing elsewhere.
pub fn configure_environment() {
    let Some(runtime_api) = std::env::var_os("AWS_LAMBDA_RUNTIME_API") else { return };
    for (name, value) in
        proxy_variables(&runtime_api, std::env::var_os("PALISADE_PROXY_PORT"), std::env::var_os("NO_PROXY"))
    {
        std::env::set_var(name, value);
    }
}

/// The variables to set: `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY` and their lower-case forms.
/// An existing `NO_PROXY` is kept after Palisade's entries.
fn proxy_variables(
    runtime_api: &OsString,
    port: Option<OsString>,
    existing_no_proxy: Option<OsString>,
) -> Vec<(&'static str, String)> {
    let port = port
        .and_then(|port| port.to_str().and_then(|port| port.trim().parse::<u16>().ok()))
        .unwrap_or(DEFAULT_PROXY_PORT);
    let proxy = format!("http://127.0.0.1:{port}");

    let runtime_api = runtime_api.to_string_lossy();
    let runtime_host = runtime_api.rsplit_once(':').map_or(&*runtime_api, |(host, _port)| host);
    let mut direct: Vec<String> = vec![runtime_host.to_owned()];
    direct.extend(ALWAYS_DIRECT.iter().map(|host| (*host).to_owned()));
    if let Some(existing) = existing_no_proxy.map(|value| value.to_string_lossy().into_owned()) {
        direct.extend(existing.split(',').map(str::trim).filter(|entry| !entry.is_empty()).map(str::to_owned));
    }
    let mut unique: Vec<String> = Vec::with_capacity(direct.len());
    for entry in direct {
        if !unique.contains(&entry) {
            unique.push(entry);
        }
    }
    let no_proxy = unique.join(",");

    vec![
        ("HTTP_PROXY", proxy.clone()),
        ("HTTPS_PROXY", proxy.clone()),
        ("http_proxy", proxy.clone()),
        ("https_proxy", proxy),
        ("NO_PROXY", no_proxy.clone()),
        ("no_proxy", no_proxy),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable<'a>(variables: &'a [(&'static str, String)], name: &str) -> &'a str {
        &variables.iter().find(|(key, _)| *key == name).unwrap().1
    }

    #[test]
    fn proxy_points_at_extension() {
        let variables = proxy_variables(&"127.0.0.1:9001".into(), None, None);

        assert_eq!(variable(&variables, "HTTP_PROXY"), "http://127.0.0.1:3128");
        assert_eq!(variable(&variables, "https_proxy"), "http://127.0.0.1:3128");
        assert_eq!(variable(&variables, "NO_PROXY"), "127.0.0.1,sandbox.localdomain,localhost,169.254.0.0/16");
    }

    #[test]
    fn proxy_port_and_existing_no_proxy_kept() {
        let variables =
            proxy_variables(&"169.254.100.1:9001".into(), Some("4000".into()), Some(" internal.example, ".into()));

        assert_eq!(variable(&variables, "HTTPS_PROXY"), "http://127.0.0.1:4000");
        assert_eq!(
            variable(&variables, "no_proxy"),
            "169.254.100.1,sandbox.localdomain,localhost,127.0.0.1,169.254.0.0/16,internal.example"
        );
    }
}
