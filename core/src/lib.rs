//! Palisade's shared core: the workload policy, its enforcement with Landlock and seccomp, the
//! egress engine, integrity checks and the telemetry event schema.

pub mod egress;
pub mod enforce;
pub mod integrity;
pub mod policy;
pub mod supervise;
#[allow(unsafe_code)]
mod sys;
pub mod telemetry;
