//! Waiting for systemd's jobs, race-free as `systemctl` does it: subscribe, open the
//! `JobRemoved` stream, and only then enqueue, so no job can end unseen.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::{Either, select};
use zbus::OwnedObjectPath;

use crate::systemd::{Error, Job, JobRemovedStream, JobResult, Systemd};

/// How a job ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub job: Job,
    pub result: JobResult,
}

/// Why waiting stopped before every job had ended.
#[derive(Debug)]
pub enum WaitError {
    /// The deadline passed; these jobs were still queued or running.
    TimedOut(Vec<Job>),
    /// The bus connection ended; these jobs' fate is unknown.
    Disconnected(Vec<Job>),
}

/// A subscription to job events on one connection.
pub struct JobWatch<'a> {
    systemd: &'a Systemd,
    removed: JobRemovedStream,
    /// Results of jobs that ended before anyone waited for them.
    ended: HashMap<OwnedObjectPath, JobResult>,
}

impl<'a> JobWatch<'a> {
    /// Subscribes to systemd's job signals; systemd sends none to a bus with no subscriber.
    pub async fn new(systemd: &'a Systemd) -> Result<JobWatch<'a>, Error> {
        let manager = systemd.manager();
        let removed = manager
            .receive_job_removed()
            .await
            .map_err(|e| Error::call("watch the jobs of", "the manager", e))?;
        manager
            .subscribe()
            .await
            .map_err(|e| Error::call("subscribe to", "the manager", e))?;
        Ok(JobWatch {
            systemd,
            removed,
            ended: HashMap::new(),
        })
    }

    /// Enqueues `verb` (`start`, `stop`, `restart`) for `unit`, replacing conflicting jobs, and
    /// returns its job followed by every other job of the same transaction.
    pub async fn enqueue(&mut self, unit: &str, verb: &str) -> Result<Vec<Job>, Error> {
        let call = self
            .systemd
            .manager()
            .enqueue_unit_job(unit, verb, "replace");
        let (_, path, unit_id, _, kind, affected) = self
            .draining(call)
            .await
            .map_err(|e| Error::call(verb, unit, e))?;
        let mut jobs = vec![Job {
            path,
            unit: unit_id,
            kind,
        }];
        jobs.extend(
            affected
                .into_iter()
                .map(|(_, path, unit, _, kind)| Job { path, unit, kind }),
        );
        Ok(jobs)
    }

    /// Waits until every one of `jobs` has ended, or `deadline` passes; tells `ended` of each
    /// job as it ends.
    pub async fn wait(
        &mut self,
        jobs: &[Job],
        deadline: Instant,
        ended: &mut dyn FnMut(&Job, &JobResult),
    ) -> Result<Vec<Outcome>, WaitError> {
        let runtime = zruntime::SharedRuntime::current()
            .map_err(|_| WaitError::Disconnected(jobs.to_vec()))?;
        let mut outcomes: Vec<Option<JobResult>> = vec![None; jobs.len()];
        let waiting = async {
            loop {
                for (job, outcome) in jobs.iter().zip(outcomes.iter_mut()) {
                    if outcome.is_none() {
                        *outcome = self.ended.remove(&job.path);
                        if let Some(result) = outcome {
                            ended(job, result);
                        }
                    }
                }
                if outcomes.iter().all(Option::is_some) {
                    return true;
                }
                match self.removed.next().await {
                    Some(signal) => record(&mut self.ended, &signal),
                    None => return false,
                }
            }
        };
        let finished = runtime.timeout_at(deadline, waiting).await;
        let pending = || {
            jobs.iter()
                .zip(&outcomes)
                .filter(|(_, outcome)| outcome.is_none())
                .map(|(job, _)| job.clone())
                .collect()
        };
        match finished {
            Ok(true) => Ok(jobs
                .iter()
                .zip(outcomes)
                .map(|(job, result)| Outcome {
                    job: job.clone(),
                    result: result.unwrap_or_default(),
                })
                .collect()),
            Ok(false) => Err(WaitError::Disconnected(pending())),
            Err(_) => Err(WaitError::TimedOut(pending())),
        }
    }

    /// Awaits a call while reading the signals that arrive meanwhile: an unread stream fills its
    /// queue and then stalls the whole connection, reply included.
    async fn draining<T>(
        &mut self,
        call: impl Future<Output = zbus::Result<T>>,
    ) -> zbus::Result<T> {
        let mut call = pin!(call);
        loop {
            match select(call.as_mut(), self.removed.next()).await {
                Either::Left((reply, _)) => return reply,
                Either::Right((Some(signal), _)) => record(&mut self.ended, &signal),
                Either::Right((None, _)) => {
                    return Err(zbus::Error::Failure("the bus connection ended".into()));
                }
            }
        }
    }
}

fn record(ended: &mut HashMap<OwnedObjectPath, JobResult>, signal: &crate::systemd::JobRemoved) {
    if let Ok(args) = signal.args() {
        ended.insert(args.job.clone(), JobResult::from(args.result.clone()));
    }
}
