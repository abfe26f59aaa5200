"""Every Redis call of jobsys goes through this package."""

from jobsys.store.scripts import Claimed, NewJob
from jobsys.store.store import Store, Submission

__all__ = ["Claimed", "NewJob", "Store", "Submission"]
