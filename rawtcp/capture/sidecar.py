"""Socket states recorded during a run, stored next to its capture as ``<capture>.states.json``.

The capture itself carries them when it is pcapng (a comment on each packet, see
rawtcp.capture.annotate); the side-car stays for tools and for classic pcap, which has nowhere to put
them. It keeps exact times from both recorders ("kernel" from the lab's watcher, "rawtcp" from the
endpoint's trace) and, for classic pcap, the per-packet comments a writer was given::

    {"version": 1, "states": [{"time": 1700000000.123456, "who": "kernel", "addr": "198.18.0.2:80",
                               "peer": "198.18.0.1:40000", "old": "LISTEN", "new": "SYN-RECEIVED"}],
     "notes": [{"frame": 1, "time": 1700000000.1, "text": "rawtcp SYN-SENT | connect"}]}
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from rawtcp.capture.errors import CaptureError

SIDECAR_VERSION = 1
_KEYS = ("time", "who", "addr", "peer", "old", "new")


def sidecar_path(pcap_path: str | os.PathLike[str]) -> str:
    return os.fspath(pcap_path) + ".states.json"


def _load(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CaptureError(f"unreadable state side-car {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != SIDECAR_VERSION or not isinstance(
            doc.get("states", []), list) or not isinstance(doc.get("notes", []), list):
        raise CaptureError(f"unsupported state side-car {path} (want version {SIDECAR_VERSION})")
    return doc


def _save(path: str, doc: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def write_sidecar(pcap_path: str | os.PathLike[str], events: list[dict[str, Any]]) -> str:
    """Write ``events`` (dicts with time, who, addr, peer, old, new) beside the capture; return its path.

    A pcapng capture also gets them as packet comments (rewritten in place), so the capture alone
    tells the story in Wireshark. Notes already in the side-car are kept.
    """
    states = []
    for event in events:
        missing = [key for key in _KEYS if key not in event]
        if missing:
            raise ValueError(f"state event lacks {', '.join(missing)}: {event!r}")
        states.append({key: (float(event[key]) if key == "time" else str(event[key])) for key in _KEYS})
    path = sidecar_path(pcap_path)
    old = None
    with contextlib.suppress(CaptureError):  # a broken side-car is replaced
        old = _load(path)
    doc: dict[str, Any] = {"version": SIDECAR_VERSION, "states": states}
    if old and old.get("notes"):
        doc["notes"] = old["notes"]
    _save(path, doc)
    from rawtcp.capture.annotate import annotate_capture
    from rawtcp.capture.pcap import is_pcapng_name

    if is_pcapng_name(pcap_path) and os.path.exists(pcap_path):
        annotate_capture(pcap_path, states)
    return path


def write_notes(pcap_path: str | os.PathLike[str], notes: list[dict[str, Any]]) -> str:
    """Keep a classic pcap's per-packet comments (frame, time, text) in its side-car."""
    path = sidecar_path(pcap_path)
    old = None
    with contextlib.suppress(CaptureError):  # a broken side-car is replaced
        old = _load(path)
    doc: dict[str, Any] = {"version": SIDECAR_VERSION, "states": (old or {}).get("states", [])}
    doc["notes"] = [{"frame": int(n["frame"]), "time": float(n["time"]),  # type: ignore[call-overload]
                     "text": str(n["text"])} for n in notes]
    _save(path, doc)
    return path


def read_sidecar(pcap_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The recorded state changes for a capture, oldest first; [] when there is no side-car."""
    if os.fspath(pcap_path) == "-":
        return []
    path = sidecar_path(pcap_path)
    doc = _load(path)
    if doc is None:
        return []
    events = []
    for event in doc.get("states", []):
        if not isinstance(event, dict) or any(key not in event for key in _KEYS):
            raise CaptureError(f"malformed state event in {path}: {event!r}")
        try:
            time = float(event["time"])
        except (TypeError, ValueError):
            raise CaptureError(f"malformed state event time in {path}: {event['time']!r}") from None
        events.append({**{key: str(event[key]) for key in _KEYS}, "time": time})
    events.sort(key=lambda ev: ev["time"])
    return events


def read_notes(pcap_path: str | os.PathLike[str]) -> dict[int, list[str]]:
    """A classic pcap's per-packet comments from its side-car, by frame number; {} when none."""
    if os.fspath(pcap_path) == "-":
        return {}
    path = sidecar_path(pcap_path)
    doc = _load(path)
    out: dict[int, list[str]] = {}
    for note in (doc or {}).get("notes", []):
        try:
            out.setdefault(int(note["frame"]), []).append(str(note["text"]))
        except (TypeError, ValueError, KeyError):
            raise CaptureError(f"malformed note in {path}: {note!r}") from None
    return out
