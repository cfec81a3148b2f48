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
    /// A short label for the errors metric.
    pub fn reason(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(status)) => format!("api_{}", status.code),
            Error::Kube(_) => "client".into(),
            Error::Finalizer(_) => "finalizer".into(),
            Error::NoNamespace => "no_namespace".into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
