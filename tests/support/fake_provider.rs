//! The provider simulators live in the library (the demo and `bench send` use them too).
pub use postrunner::providers::simulator::*;
