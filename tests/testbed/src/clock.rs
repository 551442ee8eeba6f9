//! The cluster clock: one per server, hybrid (unix seconds, counter), strictly
//! increasing for every write even if the wall clock goes backwards (reference §2.5).

use bson::Timestamp;

#[derive(Debug)]
pub struct ClusterClock {
    last: Timestamp,
}

impl Default for ClusterClock {
    fn default() -> Self {
        ClusterClock::new()
    }
}

impl ClusterClock {
    pub fn new() -> ClusterClock {
        ClusterClock {
            last: Timestamp {
                time: unix_seconds(),
                increment: 0,
            },
        }
    }

    /// The next optime: strictly greater than every one handed out before.
    pub fn tick(&mut self) -> Timestamp {
        let now = unix_seconds();
        self.last = if now > self.last.time {
            Timestamp {
                time: now,
                increment: 1,
            }
        } else if self.last.increment == u32::MAX {
            Timestamp {
                time: self.last.time + 1,
                increment: 1,
            }
        } else {
            Timestamp {
                time: self.last.time,
                increment: self.last.increment + 1,
            }
        };
        self.last
    }

    /// The latest time handed out (the cluster time gossiped in replies).
    pub fn now(&self) -> Timestamp {
        self.last
    }

    /// Moves the clock forward to at least `time` (gossip, `testbedAdvanceClock`).
    pub fn advance_to(&mut self, time: Timestamp) {
        if (time.time, time.increment) > (self.last.time, self.last.increment) {
            self.last = time;
        }
    }
}

pub fn unix_seconds() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_after_a_jump_ahead() {
        let mut clock = ClusterClock::new();
        let first = clock.tick();
        clock.advance_to(Timestamp {
            time: first.time + 100,
            increment: 5,
        });
        let next = clock.tick();
        assert!((first.time, first.increment) < (next.time, next.increment));
        assert_eq!(next.time, first.time + 100);
        assert_eq!(next.increment, 6);
    }
}
