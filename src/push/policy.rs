//! [`PushPolicy`]: lifetimes and the limits against push fatigue.

use std::time::Duration;

use crate::store::RateLimit;

/// How long approvals live and how often a user may be asked.
///
/// Push fatigue is the attack of sending prompts until a tired user approves one. Number
/// matching stops a blind approval; these limits stop the flood: a user has at most one live
/// approval, at most [`requests`](PushPolicy::requests) of them in a sliding window (3 in 10
/// minutes by default), and an answer of "this wasn't me" stops pushes to the user for
/// [`report_block`](PushPolicy::report_block) (one hour by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushPolicy {
    lifetime: Duration,
    requests: RateLimit,
    answers: RateLimit,
    report_block: Duration,
    answer_skew: Duration,
}

impl Default for PushPolicy {
    /// Two minutes to answer; 3 requests per 10 minutes; 20 answers per 10 minutes; a report
    /// blocks pushes for an hour; a signed answer's time may be 60 s off.
    fn default() -> Self {
        PushPolicy {
            lifetime: Duration::from_secs(120),
            requests: RateLimit::new(3, Duration::from_secs(600)),
            answers: RateLimit::new(20, Duration::from_secs(600)),
            report_block: Duration::from_secs(3600),
            answer_skew: Duration::from_secs(60),
        }
    }
}

impl PushPolicy {
    /// How long an approval waits for its answer (at least 10 s, at most 10 minutes).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.clamp(Duration::from_secs(10), Duration::from_secs(600));
        self
    }

    /// How many approvals a user may be sent in a window.
    pub fn with_requests(mut self, limit: RateLimit) -> Self {
        self.requests = limit;
        self
    }

    /// How many answers, right or wrong, the approvals of one user take in a window: a
    /// bound on the work an endpoint without a session can be made to do.
    pub fn with_answers(mut self, limit: RateLimit) -> Self {
        self.answers = limit;
        self
    }

    /// How long a "this wasn't me" answer stops pushes to the user.
    pub fn with_report_block(mut self, block: Duration) -> Self {
        self.report_block = block;
        self
    }

    /// How far the time in a signed answer may be from the server's (at most 5 minutes).
    pub fn with_answer_skew(mut self, skew: Duration) -> Self {
        self.answer_skew = skew.min(Duration::from_secs(300));
        self
    }

    /// How long an approval waits for its answer.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// How many approvals a user may be sent in a window.
    pub fn requests(&self) -> RateLimit {
        self.requests
    }

    /// How many answers the approvals of one user take in a window.
    pub fn answers(&self) -> RateLimit {
        self.answers
    }

    /// How long a report stops pushes to the user.
    pub fn report_block(&self) -> Duration {
        self.report_block
    }

    /// How far the time in a signed answer may be from the server's.
    pub fn answer_skew(&self) -> Duration {
        self.answer_skew
    }
}
