"""sample: synthetic nights of department exports with planted persons.

`night` (writing a night), `random_events` (the background population), `planted`
(persons planted for every rule), `scenarios` (their stories), `places` (place codes:
registry, scans, risk places, Henan persons and the station scene), `defects` (bad rows).
May import only the root vocabulary.
"""

import datetime as _dt

DEFAULT_AS_OF = _dt.date(2022, 6, 14)  # the date a sample night is for, unless told
DEFAULT_SCANS = 3.0  # place scans a resident a day
