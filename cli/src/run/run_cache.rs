//! The caches of one run, outside its tasks: opening the local store (and
//! saying why a run goes on without it), and, after the last task, waiting
//! (bounded, interruptible) for the uploads to the remote cache.

use std::time::{Duration, Instant};

use super::scheduler;
use super::task::{RunCache, RunContext};
use crate::cache::CacheSettings;
use crate::events::{RunEvent, RunNotice, Unavailable};
use crate::remote::{SessionError, UploadOutcome, UploadSkipped};

/// How waiting for one upload ended.
enum UploadWait {
    Done(Result<UploadOutcome, crate::cache::CacheError>),
    TimedOut,
    Interrupted,
}

/// How long vp waits, after the last task, for uploads still in flight.
const UPLOAD_WAIT: Duration = Duration::from_secs(60);

/// Waits (bounded) for the uploads started during the run and reports what
/// matters: the server failing (once), and with `-v` each upload and the
/// run's transfer totals.
pub(super) fn finish_uploads(ctx: &RunContext, verbose: bool, labels: &[String], cancelled: bool) {
    let pending = std::mem::take(&mut *ctx.uploads.borrow_mut());
    let deadline = Instant::now() + UPLOAD_WAIT;
    let mut abandoned = 0;
    // A cancelled run does not wait; neither does one the user interrupts
    // while it waits (the scheduler's signal handling ended with the run).
    let mut signals = async_signal::Signals::new(scheduler::FORWARDED).ok();
    let mut stop = cancelled;
    for p in pending {
        if stop {
            abandoned += 1;
            continue;
        }
        let waited = smol::block_on(futures_lite::future::or(
            futures_lite::future::or(async { UploadWait::Done(p.upload.await) }, async {
                async_io::Timer::at(deadline).await;
                UploadWait::TimedOut
            }),
            async {
                match signals.as_mut() {
                    Some(s) => {
                        let _ = futures_lite::StreamExt::next(s).await;
                        UploadWait::Interrupted
                    }
                    None => std::future::pending().await,
                }
            },
        ));
        let waited = match waited {
            UploadWait::Done(result) => Some(result),
            UploadWait::TimedOut => None,
            UploadWait::Interrupted => {
                stop = true;
                None
            }
        };
        let result = match waited {
            None => {
                abandoned += 1;
                continue;
            }
            Some(Ok(UploadOutcome::Uploaded { bytes, .. })) => Ok(bytes),
            Some(Ok(UploadOutcome::Skipped(why))) => Err(why),
            // The local store failed while reading the entry back: the
            // result stays cached locally, nothing else to say.
            Some(Err(_)) => continue,
        };
        match result {
            Err(UploadSkipped::Unavailable(SessionError::Failed(e))) => {
                (ctx.emit)(RunEvent::Notice(RunNotice::RemoteUnavailable(e)));
            }
            Err(UploadSkipped::Unavailable(SessionError::Disabled)) => {}
            result if verbose && p.task < labels.len() => {
                (ctx.emit)(RunEvent::Notice(RunNotice::Uploaded {
                    task: labels[p.task].clone(),
                    result,
                }));
            }
            _ => {}
        }
    }
    if abandoned > 0 {
        (ctx.emit)(RunEvent::Notice(RunNotice::UploadsAbandoned {
            count: abandoned,
        }));
    }
    if let (true, Some(session)) = (verbose, &ctx.remote) {
        (ctx.emit)(RunEvent::Notice(RunNotice::RemoteTransfers(
            session.stats(),
        )));
    }
}

/// Opens the store, telling the user when it waits for or repairs it.
/// Failing to open is never fatal: the run goes on without the cache.
pub(super) fn open_cache(
    settings: &CacheSettings,
    emit: &dyn Fn(RunEvent),
) -> Result<RunCache, Unavailable> {
    let mut notify = |n: crate::cache::StoreNotice| emit(RunEvent::Notice(RunNotice::Store(n)));
    let why = match crate::cache::open(&settings.dir, &settings.open, &mut notify) {
        Ok(crate::cache::Opened::Ready(store)) => {
            return Ok(RunCache {
                store: std::sync::Arc::new(store),
                dir: settings.dir.clone(),
            });
        }
        // No notice: the header says it once per task, and the outer task
        // caches this whole nested run.
        Ok(crate::cache::Opened::HeldByAncestor { holder, why }) => {
            return Err(Unavailable::HeldByAncestor { holder, why });
        }
        Ok(crate::cache::Opened::Busy { holder }) => Unavailable::Locked { holder },
        Err(e) => Unavailable::OpenFailed {
            dir: settings.dir.clone(),
            error: e.to_string(),
        },
    };
    emit(RunEvent::Notice(RunNotice::CacheUnavailable(why.clone())));
    Err(why)
}
