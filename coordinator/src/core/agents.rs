//! What the coordinator requires of agents.

/// The oldest agent version served (older agents raise an `agent_outdated` alert).
pub const MIN_AGENT_VERSION: &str = "0.1.0";
