//! Reconcile errors. A missing reference is not an error (it becomes a Degraded condition);
//! these are the failures worth a retry.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("object has no namespace")]
    NoNamespace,
}

impl Error {
    /// The `reason`s of the errors metric that carry no API status code (their series exist
    /// from the start, at 0).
    pub const REASONS: [&'static str; 3] = ["client", "finalizer", "no_namespace"];

    /// A short label for the errors metric.
    pub fn reason(&self) -> String {
        let [client, finalizer, no_namespace] = Self::REASONS;
        match self {
            Error::Kube(kube::Error::Api(status)) => format!("api_{}", status.code),
            Error::Kube(_) => client.into(),
            Error::Finalizer(_) => finalizer.into(),
            Error::NoNamespace => no_namespace.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
