"""Instructions per zero-copy restore and per re-park: a series that the machine's speed cannot move.

``instructions.py`` says what is counted and by which counter. One count per commit
(``setup_cache``: one child under valgrind, or one pass in this process), both series from it.
Where no counter works, ``setup`` prints the reason to stderr and raises ``NotImplementedError``:
asv records the benchmarks as skipped, never a number. Which counter counted goes to stderr
(``asv run -e`` shows it).
"""

import sys

from . import instructions

ROUNDS = 20  # restores and re-parks counted, each alone; the result is their mean per call


class Instructions:
    """Instructions of one zero-copy restore and of one re-park (a store of the restored cache:
    adopted, no copy) of a 1024-token Gemma 3 12B cache, the mean of ``ROUNDS`` calls each."""

    unit = "instructions"
    number = 1
    rounds = 1
    repeat = 1
    timeout = 300
    version = "1"

    def setup_cache(self):
        try:
            counter = instructions.choose_counter()
        except instructions.Unavailable as why:
            return {"unavailable": str(why)}
        return {"counter": counter.name, **counter.count(ROUNDS, instructions.CONTEXT)}

    setup_cache.timeout = 600

    def setup(self, counted):
        if "unavailable" in counted:
            print(f"instructions: {counted['unavailable']}", file=sys.stderr)
            raise NotImplementedError(counted["unavailable"])
        print(f"instructions: counted by {counted['counter']}", file=sys.stderr)

    def track_restore_instructions(self, counted):
        return counted["restore"]

    def track_store_instructions(self, counted):
        return counted["store"]
