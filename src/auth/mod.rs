//! Who may do what: the rules and hashing of passwords, shared by the config, the first-boot
//! file and the HTTP login.
//!
//! Owns: `password` (policy and Argon2id) and `permissions` (who may read or publish
//! which path). Does not own: protocol-specific credential
//! checks (`http::login` for the API's Basic login, `rtsp::auth` for RTSP Digest/Basic).

pub mod password;
pub mod permissions;
