//! Whole objects in and out of the bucket, for what runs after a capture: the last segment's
//! recorder fetching earlier segments' files and putting the whole recording's composed file
//! ([`crate::recorder::stitch`]). Streamed both ways, so a file of any size costs a buffer.
use std::path::Path;

use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as Key;
use tokio::io::AsyncWriteExt;

use super::{Storage, plan};

impl Storage {
    /// The key prefix of the recording directory `dir` under the recorder's `root`
    /// (`<shard>/<room>/<start time>[/segment-<n>]`).
    pub fn prefix(&self, root: &Path, dir: &Path) -> String {
        plan::key_prefix(&self.shard, root, dir)
    }

    /// How long an upload may take to finish after its recording stopped.
    pub fn finish_timeout(&self) -> std::time::Duration {
        self.opts.finish_timeout
    }

    /// Object `key` into the file `to` (its directory created). `Ok(false)`: no such object.
    pub async fn fetch(&self, key: &str, to: &Path) -> anyhow::Result<bool> {
        let got = match self.store.get(&Key::from(key)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => anyhow::bail!("reading s3://{}/{key}: {e}", self.bucket),
        };
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut file = tokio::fs::File::create(to).await?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow::anyhow!("reading s3://{}/{key}: {e}", self.bucket))?;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(true)
    }

    /// The file `from` as object `key` (a multipart upload past the first buffer).
    pub async fn put_file(&self, from: &Path, key: &str) -> anyhow::Result<()> {
        let mut file = tokio::fs::File::open(from).await?;
        let mut w = BufWriter::new(self.store.clone(), Key::from(key));
        let copied = tokio::io::copy(&mut file, &mut w).await;
        let done = match copied {
            Ok(_) => w.shutdown().await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            let _ = w.abort().await;
            anyhow::bail!("writing s3://{}/{key}: {e}", self.bucket);
        }
        Ok(())
    }
}
