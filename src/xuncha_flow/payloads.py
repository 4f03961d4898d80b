"""The payload model of every event that takes one (see ``PAYLOADS``), and the enums
they use. Pass an instance as ``payload`` to :meth:`xuncha_flow.Engine.fire`."""

from ._payloads import *  # noqa: F403  # this module is the public face of _payloads
from ._payloads import __all__ as __all__
