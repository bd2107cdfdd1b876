//! Deployment for cvtk: the counterpart of the original package's `AMLDeployment`
//! and its web-service load testing.
//!
//! This crate owns the REST scoring service, its client, deployment records,
//! Docker and Kubernetes artifacts and load tests. It is being built (see the
//! deployment issue); today it only fixes its place in the workspace.
