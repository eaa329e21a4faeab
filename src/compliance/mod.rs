//! Deliverability checks: what mailbox providers look up before they trust a sender.
//!
//! - [`domains`]: SPF, DKIM, DMARC and MX of each sender domain, from DNS.

pub mod domains;
