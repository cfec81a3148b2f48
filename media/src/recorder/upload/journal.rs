//! The upload journal, `.uploads.json` beside a recording's files in the bucket: which
//! multipart uploads are open and the parts in them, PUT whenever a part went up. A pod lost
//! mid-recording leaves its parts in unfinished uploads, which S3 keeps but lists as no
//! object; the recorder that continues the recording completes them from the journal once the
//! lost one has had every chance to finish itself ([`Storage::recover_abandoned`]), so a lost
//! pod loses only the part it was filling. A finished upload deletes its journal.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::Storage;

/// The journal's name (hidden: never taken for a recording's file).
pub const JOURNAL: &str = ".uploads.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// By file name.
    pub uploads: BTreeMap<String, Open>,
}

/// One file's open multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    pub upload_id: String,
    /// The parts' ETags, in order (part 1 first).
    pub parts: Vec<String>,
    /// Bytes of the file in those parts.
    pub bytes: u64,
}

impl Journal {
    pub fn is_empty(&self) -> bool {
        self.uploads.is_empty()
    }
}

/// What [`Storage::recover_abandoned`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Files completed from their parts, with the bytes they hold.
    pub files: Vec<(String, u64)>,
}

impl Storage {
    /// The journal of the recording directory `dir` (under `root`), if there is one.
    pub async fn journal(&self, root: &Path, dir: &Path) -> anyhow::Result<Option<Journal>> {
        let key = Key::from(format!("{}/{JOURNAL}", self.prefix(root, dir)));
        match self.store.get(&key).await {
            Ok(got) => Ok(Some(serde_json::from_slice(&got.bytes().await?)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Complete the uploads that the recorder of `dir` left open, once it has had until
    /// `deadline` to finish them itself (its journal gone by then: it did). Idempotent.
    pub async fn recover_abandoned(
        &self,
        root: &Path,
        dir: &Path,
        deadline: Instant,
    ) -> anyhow::Result<Recovered> {
        let journal = loop {
            match self.journal(root, dir).await? {
                None => return Ok(Recovered::default()),
                Some(j) if Instant::now() >= deadline => break j,
                Some(_) => tokio::time::sleep(Duration::from_secs(1).min(deadline - Instant::now())).await,
            }
        };
        let prefix = self.prefix(root, dir);
        let mut done = Recovered::default();
        for (file, open) in journal.uploads {
            let key = Key::from(format!("{prefix}/{file}"));
            let parts = open.parts.iter().map(|e| PartId { content_id: e.clone() }).collect();
            match self.store.complete_multipart(&key, &open.upload_id, parts).await {
                Ok(_) => done.files.push((file, open.bytes)),
                // Completed meanwhile (by the recorder itself, or another recovery).
                Err(e) => warn!(%key, "completing an abandoned upload: {e}"),
            }
        }
        let _ = self.store.delete(&Key::from(format!("{prefix}/{JOURNAL}"))).await;
        info!(%prefix, files = ?done.files, "abandoned uploads completed");
        Ok(done)
    }
}
