"""kubectl's table printers moved to `netsim.printers` (the API server's Tables use them too); this name
stays for code written against the old one."""

from netsim.printers import *  # noqa: F403
from netsim.printers import COLUMNS, GENERIC_COLUMNS, age, pod_row, render_table, short_duration, table  # noqa: F401
