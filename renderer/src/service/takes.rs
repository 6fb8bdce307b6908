//! Push mode's `POST /jobs/take` (`tailpdf_shared::messages::TAKE_PATH`): the edge hands over
//! a job and is answered at once; the job runs here on its own. The edge asks about the same
//! job again every little while until it hears that the job ended, so this keeps which jobs
//! are here and how those that ended here did: asked again, a job is never started twice, and
//! a renderer that restarted (and knows nothing) starts it anew.
//!
//! A job that finds no place (its account holds its share, or every place is taken) waits here
//! for one, parked, while fewer than the places' number of jobs are parked, and fewer than its
//! account's share of them are its own; past that it is answered `busy`, and the edge asks
//! again later. So one account's flood keeps the tabs busy without filling the renderer with
//! its jobs, and another account's job still gets in.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use tailpdf_shared::{
    messages::{RenderJobMessage, TakeAnswer},
    JobId,
};

use super::{
    admission::{Place, Purpose},
    runner::{delay_secs, JobEnd},
    AppState,
};

/// How long a job's end is remembered for the edge's next question (it asks every
/// `PUSH_CHECK_SECS`, 10 s by default); one asked about later is started again, and its run
/// stops at once, finding the job ended at the edge.
const KEEP_ENDED: Duration = Duration::from_secs(3600);
/// The most ends remembered, whatever their age: a bound on memory.
const MOST_ENDED: usize = 50_000;
/// What a busy renderer asks the edge to wait (the edge waits longer for an older job).
const BUSY_DELAY_SECS: u32 = 1;

/// The jobs taken here; shared by every request.
#[derive(Default)]
pub struct Takes {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<JobId, Here>,
    /// Ended jobs, oldest first, to forget them.
    ended: VecDeque<(Instant, JobId)>,
    parked: usize,
    parked_by_account: HashMap<Arc<str>, usize>,
}

#[derive(Debug, Clone)]
enum Here {
    /// Waiting for a place or a tab, or running.
    Running,
    /// Ended: its end reported to the edge, or found ended already.
    Ended,
    /// Its run did not end it: started again when asked next.
    Retry { delay_secs: u32, reason: String },
}

impl Here {
    /// What the edge is told of a job here.
    fn told(&self) -> TakeAnswer {
        match self {
            Self::Running => TakeAnswer::Running,
            Self::Ended => TakeAnswer::Ended,
            Self::Retry { delay_secs, reason } => {
                TakeAnswer::Retry { delay_secs: *delay_secs, reason: reason.clone() }
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How much of the parking one account and all may hold.
#[derive(Debug, Clone, Copy)]
pub struct Parking {
    pub all: usize,
    pub per_account: usize,
}

impl Takes {
    /// What is known of `job`, or `None` after claiming it (it is `Running` from now on).
    /// One step, so that two questions about one job at once never both start it.
    fn claim(&self, job: &JobId) -> Option<TakeAnswer> {
        let mut state = lock(&self.state);
        let known = state.jobs.get(job).map(Here::told);
        match known {
            None => {
                state.jobs.insert(job.clone(), Here::Running);
            }
            // Said once: the next question (after the delay) starts the job again.
            Some(TakeAnswer::Retry { .. }) => {
                state.jobs.remove(job);
            }
            Some(_) => {}
        }
        known
    }

    /// Forgets a job (not taken after all, or given back on shutdown).
    fn forget(&self, job: &JobId) {
        lock(&self.state).jobs.remove(job);
    }

    /// A parking space for `account`'s job, if the bounds leave one.
    fn park(&self, account: &Arc<str>, bounds: Parking) -> bool {
        let mut state = lock(&self.state);
        let mine = state.parked_by_account.get(account).copied().unwrap_or(0);
        if state.parked >= bounds.all || mine >= bounds.per_account {
            return false;
        }
        state.parked += 1;
        *state.parked_by_account.entry(account.clone()).or_default() += 1;
        true
    }

    fn unpark(&self, account: &Arc<str>) {
        let mut state = lock(&self.state);
        state.parked -= 1;
        if let Some(mine) = state.parked_by_account.get_mut(account) {
            *mine -= 1;
            if *mine == 0 {
                state.parked_by_account.remove(account);
            }
        }
    }

    /// Jobs parked now.
    pub fn parked(&self) -> usize {
        lock(&self.state).parked
    }

    /// Records how a job's run ended, and forgets ends too old or too many.
    fn ended(&self, job: &JobId, end: &JobEnd, now: Instant) {
        let here = match end {
            JobEnd::Reported(_) | JobEnd::Gone => Here::Ended,
            JobEnd::Retry { reason, delay } => {
                Here::Retry { delay_secs: delay_secs(*delay), reason: reason.clone() }
            }
        };
        let mut state = lock(&self.state);
        state.jobs.insert(job.clone(), here);
        state.ended.push_back((now, job.clone()));
        while let Some(&(at, _)) = state.ended.front() {
            if now.duration_since(at) < KEEP_ENDED && state.ended.len() <= MOST_ENDED {
                break;
            }
            let Some((_, old)) = state.ended.pop_front() else { break };
            // Started again since (a retry): then it is not this end's to forget.
            if !matches!(state.jobs.get(&old), Some(Here::Running)) {
                state.jobs.remove(&old);
            }
        }
    }
}

/// `POST /jobs/take`: answers at once; a job taken runs on a task of its own. `start` false:
/// only what is known of the job is told.
pub fn take(state: &Arc<AppState>, job: RenderJobMessage, start: bool) -> TakeAnswer {
    let takes = &state.takes;
    if !start {
        // A run that ended without ending the job is no longer here to be asked about.
        return match lock(&takes.state).jobs.get(&job.job_id).map(Here::told) {
            Some(TakeAnswer::Retry { .. }) | None => TakeAnswer::Unknown,
            Some(known) => known,
        };
    }
    if let Some(known) = takes.claim(&job.job_id) {
        return known;
    }
    let account: Arc<str> = Arc::from(job.account.as_str());
    let place = match state.admit(&account, Purpose::Job) {
        Some(place) => Some(place),
        None if !state.is_closing() && takes.park(&account, state.parking()) => None,
        None => {
            takes.forget(&job.job_id);
            return TakeAnswer::Busy { delay_secs: BUSY_DELAY_SECS };
        }
    };
    tokio::spawn(run(state.clone(), job, account, place));
    TakeAnswer::Taken
}

/// A taken job: its place (waited for if parked), its run, its end recorded.
async fn run(state: Arc<AppState>, job: RenderJobMessage, account: Arc<str>, place: Option<Place>) {
    let place = match place {
        Some(place) => place,
        None => {
            let place = state.places.admit_waiting(&account).await;
            state.takes.unpark(&account);
            match place {
                Some(place) => place,
                // Shutting down: the edge's next question finds another renderer, or this one
                // started again, without it, and it starts there.
                None => return state.takes.forget(&job.job_id),
            }
        }
    };
    let id = job.job_id.clone();
    let attempt = job.attempt.max(1);
    let end = state.runner.run(job, attempt).await;
    state.takes.ended(&id, &end, Instant::now());
    drop(place);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> JobId {
        JobId::from_parts(1_764_230_000_000 + n, u128::from(n))
    }

    #[test]
    fn a_job_is_claimed_once_and_its_end_told_until_forgotten() {
        let takes = Takes::default();
        assert_eq!(takes.claim(&id(1)), None, "new: claimed");
        assert_eq!(takes.claim(&id(1)), Some(TakeAnswer::Running), "never started twice");
        let t0 = Instant::now();
        let gone = JobEnd::Gone;
        takes.ended(&id(1), &gone, t0);
        assert_eq!(takes.claim(&id(1)), Some(TakeAnswer::Ended));
        // A retry is told once, then the job is claimed again.
        takes.claim(&id(2));
        let retry = JobEnd::Retry { reason: "crashed".into(), delay: Duration::from_secs(4) };
        takes.ended(&id(2), &retry, t0);
        let told = TakeAnswer::Retry { delay_secs: 4, reason: "crashed".into() };
        assert_eq!(takes.claim(&id(2)), Some(told));
        assert_eq!(takes.claim(&id(2)), None, "asked again after the delay: claimed anew");
        assert_eq!(takes.claim(&id(2)), Some(TakeAnswer::Running), "and running");
        // An hour later, a third job's end forgets the first's, not the restarted second.
        takes.claim(&id(3));
        takes.ended(&id(3), &gone, t0 + KEEP_ENDED);
        assert_eq!(takes.claim(&id(1)), None, "forgotten: started again if asked");
        assert_eq!(takes.claim(&id(2)), Some(TakeAnswer::Running));
        assert_eq!(takes.claim(&id(3)), Some(TakeAnswer::Ended));
    }

    #[test]
    fn parking_is_bounded_in_all_and_per_account() {
        let takes = Takes::default();
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let bounds = Parking { all: 3, per_account: 2 };
        assert!(takes.park(&a, bounds) && takes.park(&a, bounds));
        assert!(!takes.park(&a, bounds), "a's share of the parking is full");
        assert!(takes.park(&b, bounds), "b still parks");
        assert!(!takes.park(&c, bounds), "all full");
        takes.unpark(&a);
        assert!(takes.park(&c, bounds));
        assert_eq!(takes.parked(), 3);
    }
}
