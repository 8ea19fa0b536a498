use super::attributes;
use super::Value;

/// Attributes of the entity producing events: the service, host, process and, where the
/// environment tells, the Lambda function, container or pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    pub attributes: Vec<(String, Value)>,
}

impl Resource {
    /// Describes the current process. `OTEL_SERVICE_NAME` overrides `component` as the service
    /// name, and `OTEL_RESOURCE_ATTRIBUTES` (`key=value,...`) adds attributes.
    pub fn detect(component: &str) -> Self {
        let mut resource = Self::default();
        let service = std::env::var("OTEL_SERVICE_NAME").ok().filter(|name| !name.is_empty());
        resource.set(attributes::SERVICE_NAME, service.unwrap_or_else(|| component.to_owned()));
        resource.set(attributes::PROCESS_PID, i64::from(std::process::id()));
        resource.set(attributes::HOST_ARCH, std::env::consts::ARCH);
        resource.set(attributes::OS_TYPE, std::env::consts::OS);
        if let Ok(name) = nix::unistd::gethostname() {
            resource.set(attributes::HOST_NAME, name.to_string_lossy().into_owned());
        }

        let from_environment = [
            (attributes::FAAS_NAME, "AWS_LAMBDA_FUNCTION_NAME"),
            (attributes::FAAS_VERSION, "AWS_LAMBDA_FUNCTION_VERSION"),
            (attributes::K8S_POD_NAME, "PALISADE_POD_NAME"),
            (attributes::K8S_NAMESPACE_NAME, "PALISADE_POD_NAMESPACE"),
        ];
        for (key, variable) in from_environment {
            if let Some(value) = std::env::var(variable).ok().filter(|value| !value.is_empty()) {
                resource.set(key, value);
            }
        }

        if let Ok(pairs) = std::env::var("OTEL_RESOURCE_ATTRIBUTES") {
            for pair in pairs.split(',').filter(|pair| !pair.trim().is_empty()) {
                if let Some((key, value)) = pair.split_once('=') {
                    resource.set(key.trim(), value.trim());
                }
            }
        }
        resource
    }

    /// Sets an attribute, replacing an earlier value of the same key.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.attributes.iter_mut().find(|(name, _)| name == key) {
            Some(entry) => entry.1 = value,
            None => self.attributes.push((key.to_owned(), value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|(name, _)| name == key).map(|(_, value)| value)
    }
}
