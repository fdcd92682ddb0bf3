//! Scenario 8: Recommendations' memory around reloads of a catalog as large as
//! `catalog.max_bytes`, against a running server that serves a small generated catalog
//! (version 0) at `path`. Every catalog is put in place by rename, and each step waits until
//! its marker is served:
//!
//! 1. `VmRSS` with the small catalog: *pre*;
//! 2. small → large: the peak (`VmHWM`, reset just before the write);
//! 3. large → small, then `VmRSS` `settle` later: *after*;
//! 4. large → large (the old catalog still in service while the new one is parsed): its peak,
//!    the most a reload can take, which the memory limits must hold.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use bookshop_proto::recommendations_client::RecommendationsClient;
use tonic::transport::Channel;

use crate::{
    catalog::{self, Shape},
    grpc,
    reload::{self, WriteMethod},
    run::Process,
    usage,
};

/// A 16 MiB catalog takes about a second to parse in a release build; a debug build is slower.
const GIVE_UP: Duration = Duration::from_secs(60);

/// Scenario 8's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The service (`host:port`).
    pub addr: String,
    /// The catalog file it watches.
    pub path: PathBuf,
    /// The server, for `/proc`.
    pub process: Process,
    /// The large catalogs' size in bytes (`catalog.max_bytes` in the full run).
    pub bytes: usize,
    /// How long after the small catalog is back in service its RSS is read.
    pub settle: Duration,
}

/// What scenario 8 measured, in kB as `/proc` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// The large catalogs' size in bytes.
    pub file_bytes: usize,
    /// RSS with the small catalog, before any large one.
    pub pre_kb: u64,
    /// Peak RSS of the small → large reload.
    pub peak_kb: u64,
    /// RSS `settle` after the small catalog replaced the large one.
    pub after_kb: u64,
    /// Peak RSS of the large → large reload.
    pub large_to_large_kb: u64,
}

impl Measured {
    /// The `reload_memory` row of `results.tsv`: file bytes, pre MB, peak MB, after MB,
    /// large → large peak MB, settle seconds.
    pub fn row(&self, settle: Duration) -> String {
        let mb = |kb: u64| kb as f64 / 1024.0;
        format!(
            "reload_memory\t{}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{}",
            self.file_bytes,
            mb(self.pre_kb),
            mb(self.peak_kb),
            mb(self.after_kb),
            mb(self.large_to_large_kb),
            settle.as_secs()
        )
    }
}

/// Runs the steps in the module's documentation.
pub async fn run(options: &Options) -> anyhow::Result<Measured> {
    let mut client = grpc::connect(&options.addr).await?;
    let small = |version| catalog::text(Shape::with_total(9), version);
    let large = |version| catalog::text_of_size(options.bytes, version).0;
    served(&mut client, 0).await?;
    let pre_kb = read(&options.process, "VmRSS")?;
    let first = large(1);
    let file_bytes = first.len();
    let peak_kb = replace(&mut client, options, 1, &first).await?;
    replace(&mut client, options, 2, &small(2)).await?;
    tokio::time::sleep(options.settle).await;
    let after_kb = read(&options.process, "VmRSS")?;
    replace(&mut client, options, 3, &large(3)).await?;
    let large_to_large_kb = replace(&mut client, options, 4, &large(4)).await?;
    replace(&mut client, options, 5, &small(5)).await?;
    Ok(Measured {
        file_bytes,
        pre_kb,
        peak_kb,
        after_kb,
        large_to_large_kb,
    })
}

/// Puts `text` (catalog `version`) in place by rename, waits until it is served, and returns
/// the server's peak RSS since just before the write.
async fn replace(
    client: &mut RecommendationsClient<Channel>,
    options: &Options,
    version: u64,
    text: &str,
) -> anyhow::Result<u64> {
    usage::reset_peak(std::slice::from_ref(&options.process));
    reload::write(&options.path, text, WriteMethod::Rename)?;
    served(client, version).await?;
    read(&options.process, "VmHWM")
}

async fn served(client: &mut RecommendationsClient<Channel>, version: u64) -> anyhow::Result<()> {
    if reload::until_served(client, version, Duration::from_millis(10), GIVE_UP).await {
        Ok(())
    } else {
        bail!("catalog version {version} not in service within {GIVE_UP:?}")
    }
}

fn read(process: &Process, field: &str) -> anyhow::Result<u64> {
    usage::status_kb(process.pid, field).with_context(|| format!("{} has exited", process.name))
}
