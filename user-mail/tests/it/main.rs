//! Integration tests of user-mail on real parts: an SMTP server on 127.0.0.1:0, a temporary
//! folder for the outbox, the embedded templates.

// Test helpers outside `#[test]` functions panic on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod file;
mod mime;
mod relay;
mod smtp;
mod templates;
