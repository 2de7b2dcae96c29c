"""Socket states recorded during a run, stored next to its pcap as ``<pcap>.states.json``.

pcap has nowhere to put them and pcapng comments are per packet, while a state change (a CLOSE-WAIT
that lasts 140 µs) may fall between packets; a side-car keeps exact times and both recorders
("kernel" from the lab's watcher, "rawtcp" from the endpoint's trace)::

    {"version": 1, "states": [{"time": 1700000000.123456, "who": "kernel", "addr": "198.18.0.2:80",
                               "peer": "198.18.0.1:40000", "old": "LISTEN", "new": "SYN-RECEIVED"}]}
"""

from __future__ import annotations

import json
import os
from typing import Any

from rawtcp.capture.errors import CaptureError

SIDECAR_VERSION = 1
_KEYS = ("time", "who", "addr", "peer", "old", "new")


def sidecar_path(pcap_path: str | os.PathLike[str]) -> str:
    return os.fspath(pcap_path) + ".states.json"


def write_sidecar(pcap_path: str | os.PathLike[str], events: list[dict[str, Any]]) -> str:
    """Write ``events`` (dicts with time, who, addr, peer, old, new) beside the pcap; return its path."""
    states = []
    for event in events:
        missing = [key for key in _KEYS if key not in event]
        if missing:
            raise ValueError(f"state event lacks {', '.join(missing)}: {event!r}")
        states.append({key: (float(event[key]) if key == "time" else str(event[key])) for key in _KEYS})
    path = sidecar_path(pcap_path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"version": SIDECAR_VERSION, "states": states}, f, indent=1)
        f.write("\n")
    return path


def read_sidecar(pcap_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The recorded state changes for a pcap, oldest first; [] when there is no side-car."""
    path = sidecar_path(pcap_path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise CaptureError(f"unreadable state side-car {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != SIDECAR_VERSION or not isinstance(
            doc.get("states"), list):
        raise CaptureError(f"unsupported state side-car {path} (want version {SIDECAR_VERSION})")
    events = []
    for event in doc["states"]:
        if not isinstance(event, dict) or any(key not in event for key in _KEYS):
            raise CaptureError(f"malformed state event in {path}: {event!r}")
        try:
            time = float(event["time"])
        except (TypeError, ValueError):
            raise CaptureError(f"malformed state event time in {path}: {event['time']!r}") from None
        events.append({**{key: str(event[key]) for key in _KEYS}, "time": time})
    events.sort(key=lambda ev: ev["time"])
    return events
