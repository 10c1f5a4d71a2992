"""Small hand-written warehouses for the operations tests (retract, freshness, guard, export,
overrides, purge): CSV text in, `hcode.ingest` and `hcode.runs` as the batch would call them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from hcode.idnumber import make_ids
from hcode.ingest.load import ingest
from hcode.store.pseudonym import person_key

IDS = list(make_ids(40, np.random.default_rng(20220614)))
SHANGHAI = "shanghai@2022.05.23"


def key_of(wh, i: int) -> str:
    return person_key(IDS[i], wh.key)


def pid_of(wh, i: int) -> int:
    return wh.con.execute("SELECT pid FROM persons WHERE person_key = ?", [key_of(wh, i)]).fetchall()[0][0]


def csv(tmp: Path, name: str, header: str, rows: list[str]) -> Path:
    """Write `name` (a fresh subfolder each time, so equal names never clash)."""
    d = tmp / f"f{len(list(tmp.iterdir())) if tmp.exists() else 0}"
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return p


def load(wh, path: Path, batch: dt.date | None = None, now: dt.datetime | None = None):
    now = now or dt.datetime.combine((batch or dt.date(2022, 6, 14)) + dt.timedelta(days=1), dt.time(6))
    [r] = ingest(wh, [path], now=now, batch_date=batch, operator="tester")
    assert not r.rejected, r.error
    return r


def register(wh, tmp: Path, people: range | list[int], batch: dt.date | None = None, when: str = "2022-01-01"):
    rows = [f"{IDS[i]},{when},310101" for i in people]
    return load(wh, csv(tmp, "registrations.csv", "id_number,registered_at,district_code", rows), batch)


def run(wh, as_of: dt.date, publish: bool = True, ruleset: str = SHANGHAI) -> int:
    from hcode.rules.load import find_ruleset
    from hcode.runs.store import evaluate_warehouse, store_run

    ev, top, loads = evaluate_warehouse(wh, find_ruleset(ruleset), as_of)
    return store_run(wh, ev, top, loads, "tester", publish=publish)


A, B, C = dt.date(2022, 6, 10), dt.date(2022, 6, 11), dt.date(2022, 6, 12)
NOW = dt.datetime(2022, 6, 13, 6)


def three_published_runs(wh, tmp):
    """Published runs as of A, B, C (and a held-back run as of A in which person 2 is red):
    0 red from A; 1 red from B; 2 green; 3 registered on C; 4 red, green, red again."""
    from hcode.ops.retract import retract

    register(wh, tmp, [0, 1, 2, 4], A, when="2022-06-01")
    load(wh, csv(tmp, "registrations.csv", "id_number,registered_at,district_code",
                 [f"{IDS[3]},2022-06-12 09:00:00,310101"]), C, NOW)  # person 3 joins on C
    load(wh, csv(tmp, "contacts.csv", "id_number,contact_level,identified_at",
                 [f"{IDS[0]},close,2022-06-09 10:00:00"]), A, NOW)
    load(wh, csv(tmp, "cases.csv", "id_number,case_type,reported_at",
                 [f"{IDS[1]},confirmed,2022-06-11 10:00:00"]), B, NOW)
    load(wh, csv(tmp, "inbound_codes.csv", "id_number,province,color,since",
                 [f"{IDS[4]},44,red,2022-06-09 08:00:00", f"{IDS[4]},44,green,2022-06-11 08:00:00",
                  f"{IDS[4]},44,red,2022-06-12 08:00:00"]), A, NOW)
    ra = run(wh, A)
    # an unpublished run in which person 2 is red: nobody saw it, it must not break the streak
    ov = load(wh, csv(tmp, "overrides.csv", "id_number,color,authority,basis,operator,reason,issued_at,expires_at",
                      [f"{IDS[2]},red,district office,notice 1,op1,test,2022-06-10 09:00:00,"]), A, NOW)
    held = run(wh, A, publish=False)
    retract(wh, ov.load_id, "issued in error", "op1")
    rb = run(wh, B)
    rc = run(wh, C)
    return ra, held, rb, rc
