//! Worker-side fencing: a command carries the leader's term (its etcd leader key's
//! create revision, increasing with every election) and the plan epoch (increasing with
//! every plan the leader persists). A worker accepts a command only if its (term, epoch)
//! is at least the newest it accepted, so a deposed leader that still reaches the worker
//! cannot undo its successor's assignment.

use c2c_api::v1::Fence as WireFence;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fence {
    pub term: u64,
    pub epoch: u64,
}

impl From<Option<&WireFence>> for Fence {
    fn from(fence: Option<&WireFence>) -> Fence {
        fence.map_or(Fence::default(), |f| Fence {
            term: f.term,
            epoch: f.epoch,
        })
    }
}

impl From<Fence> for WireFence {
    fn from(fence: Fence) -> WireFence {
        WireFence {
            term: fence.term,
            epoch: fence.epoch,
        }
    }
}

#[derive(Debug, Default)]
pub struct FenceKeeper {
    newest: Fence,
}

impl FenceKeeper {
    /// Accepts `fence` (remembering it) unless it is older than the newest accepted.
    pub fn admit(&mut self, fence: Fence) -> Result<(), String> {
        if fence < self.newest {
            return Err(format!(
                "stale command: term {} epoch {} is older than the accepted term {} epoch {}",
                fence.term, fence.epoch, self.newest.term, self.newest.epoch
            ));
        }
        self.newest = fence;
        Ok(())
    }

    pub fn newest(&self) -> Fence {
        self.newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_older_terms_and_epochs() {
        let mut keeper = FenceKeeper::default();
        keeper.admit(Fence { term: 5, epoch: 2 }).unwrap();
        keeper.admit(Fence { term: 5, epoch: 2 }).unwrap();
        assert!(keeper.admit(Fence { term: 5, epoch: 1 }).is_err());
        assert!(keeper.admit(Fence { term: 4, epoch: 9 }).is_err());
        keeper.admit(Fence { term: 7, epoch: 0 }).unwrap();
        assert_eq!(keeper.newest(), Fence { term: 7, epoch: 0 });
    }
}
