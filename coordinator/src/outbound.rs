//! Outbound HTTPS: the client (system roots plus an optional extra CA, https only, through
//! the address guard of `egress`), the
//! backoff with jitter and the `user-agent` shared by the SP-API client and webhook
//! deliveries.
//!
//! Layer: below the services that call out, above `core`. What it does not do: know what it
//! sends (the callers build requests and judge answers).

pub mod backoff;
pub mod client;
pub mod egress;

pub use backoff::backoff;

/// The `user-agent` of every call, in the form Amazon asks for.
pub const USER_AGENT: &str = concat!(
    "sealprint/",
    env!("CARGO_PKG_VERSION"),
    " (Language=Rust; Platform=Linux)"
);

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn user_agent_has_the_asked_form() {
        assert!(USER_AGENT.starts_with("sealprint/0."));
        assert!(USER_AGENT.ends_with("(Language=Rust; Platform=Linux)"));
    }
}
