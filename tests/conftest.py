"""Test configuration: the hypothesis profiles.

* ``dev`` (the default): 100 examples, 40 steps per stateful example, for a fast
  edit-and-test loop;
* ``ci``: 1,000 examples (issue 2, item 10), 80 steps per stateful example;
  ``.ci/run`` selects it with ``XUNCHA_HYPOTHESIS_PROFILE=ci``.

Neither profile has a per-example deadline: an example's time depends on how far
its round gets, not on a regression.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=100, stateful_step_count=40, deadline=None)
settings.register_profile(
    "ci", max_examples=1000, stateful_step_count=80, deadline=None, print_blob=True
)
settings.load_profile(os.environ.get("XUNCHA_HYPOTHESIS_PROFILE", "dev"))
