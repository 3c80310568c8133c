//! One module per subcommand.

pub mod agent;
pub mod certificate;
pub mod crictl;
pub mod ctr;
pub mod kubectl;
pub mod runtime;
pub mod server;
pub mod token;
