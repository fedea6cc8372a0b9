//! The fakes: stand-ins for the outside world that the demo, the benchmarks and the tests share. Never used
//! by the daemon's own work.
//!
//! - [`generator`]: deterministic catalogues of any size in every wire format.
//! - [`simulator`]: a SecuTix simulator on loopback (catalogue and availability, REST and SOAP).
//! - [`testkit`]: an in-process HTTP mock for tests and benchmarks that need paused time.

pub mod generator;
pub mod simulator;
pub mod testkit;
