//! Raw system calls that no safe wrapper covers, one file per kernel interface. This is the only
//! place in palisade-core with unsafe code; every unsafe block carries a `// SAFETY:` note.

mod landlock;
pub mod process;
pub mod seccomp;

pub use self::landlock::landlock_abi_version;
