//! One module per subcommand.

pub mod agent;
pub mod certificate;
pub mod kubectl;
pub mod server;
pub mod token;
