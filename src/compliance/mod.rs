//! Deliverability checks: what mailbox providers look up before they trust a sender.
//!
//! - [`domains`]: SPF, DKIM, DMARC and MX of each sender domain, from DNS.
//! - [`recipient_domains`]: which mailbox provider hosts a recipient's domain, from
//!   its MX records (the throttles per mailbox group count on it).

pub mod domains;
pub mod recipient_domains;
