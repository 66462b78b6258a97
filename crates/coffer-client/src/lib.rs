//! Client pieces shared by Coffer's tools (`coffer admin`, `coffer-bench`): SigV4 signing with
//! `aws-sigv4`, CA bundles for rustls, and the one-request client of the admin API.

pub mod admin;
pub mod sigv4;
pub mod tls;
