"""The card of a checkpoint: ``card.json`` beside ``config.json`` + ``model.safetensors``.

A card says what a checkpoint is for and where it came from; the shipped zoo
(``ampczoo/zoo/<name>/card.json``) is indexed by its cards (:func:`ampczoo.list_policies`,
:func:`ampczoo.zoo_card`) and every training run writes one into ``last/`` and ``best/``
(:func:`training_card`). ``load_policy`` never reads it. Fields (``null`` = not known)::

    env         str    registered Gymnasium env id the checkpoint was trained for
    model       str    policy type (a name of ampczoo.core.registry.POLICY_TYPES) = config.json's
    base        str    refiners only: the zoo checkpoint they run on (demo, golden actions;
                       the frozen base of refine-mode training)                   [optional]
    env_kwargs  dict   gym.make keyword arguments of the env it acts in: the control period
                       of its demonstrations and their scenario (e.g. {"control_dt": 0.1,
                       "obstacle_placement": "between"}); not how the collection simulated
                       (:data:`COLLECTION_ONLY_ENV_KWARGS`)                    [optional]
    data        dict   the demonstration store: path (str), command (the ``ampczoo collect``
                       line), episodes, samples (kept samples), note             [path required]
    command     str    the command that trained it, as it was run (the CLI flags of its date)
    date        str    YYYY-MM-DD of the training                                [optional]
    selection   str    "last" (final, EMA weights), "best" (lowest validation loss) or
                       "snapshot" (a step-NNNNNNN/ folder of keep_checkpoints)  [optional]
    result      dict   the measured closed-loop result, or null when none yet:
                       success_rate [%] (null: not measured; then a note says why),
                       ci95 [lo, hi] [%] (Wilson interval), episodes, date (YYYY-MM-DD),
                       benchmark (its command), page ("docs/results/<bench>.md"), and
                       optionally row (the table row), criterion (what counts as success),
                       base (refiners: the base it was measured on), note
    size_bytes  int    size of model.safetensors [bytes]                         [optional]
    parameters  int    trainable parameters                                      [optional]
    demo        bool   whether ``ampczoo demo`` runs it (default true)           [optional]
    note        str    anything a user should know (how it was run, caveats)     [optional]

:func:`validate_card` checks the structure (ValueError naming every problem); the registry
adds the checks that need the zoo (env registered, model = config.json's type, base shipped).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: File name of the card inside a checkpoint folder.
CARD_NAME = "card.json"
#: field -> (required, allowed JSON types) of a card, of its ``data`` and of its ``result``.
CARD_FIELDS: dict[str, tuple[bool, tuple[type, ...]]] = {
    "env": (True, (str, type(None))),
    "model": (True, (str,)),
    "base": (False, (str,)),
    "env_kwargs": (False, (dict,)),
    "data": (True, (dict,)),
    "command": (True, (str, type(None))),
    "date": (False, (str, type(None))),
    "selection": (False, (str,)),
    "result": (True, (dict, type(None))),
    "size_bytes": (False, (int,)),
    "parameters": (False, (int,)),
    "demo": (False, (bool,)),
    "note": (False, (str,)),
}
DATA_FIELDS: dict[str, tuple[bool, tuple[type, ...]]] = {
    "path": (True, (str,)),
    "command": (False, (str, type(None))),
    "episodes": (False, (int, type(None))),
    "samples": (False, (int, type(None))),
    "note": (False, (str,)),
}
RESULT_FIELDS: dict[str, tuple[bool, tuple[type, ...]]] = {
    "success_rate": (True, (int, float, type(None))),
    "ci95": (True, (list, type(None))),
    "episodes": (True, (int, type(None))),
    "date": (True, (str, type(None))),
    "benchmark": (True, (str, type(None))),
    "page": (True, (str, type(None))),
    "row": (False, (str,)),
    "criterion": (False, (str,)),
    "base": (False, (str,)),
    "note": (False, (str,)),
}
SELECTIONS = ("last", "best", "snapshot")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PAGE = re.compile(r"^docs/results/[A-Za-z0-9_-]+\.md$")


def validate_card(card: Any, where: str = "card") -> dict[str, Any]:
    """``card`` if it follows the schema of the module docstring; ValueError listing every
    problem otherwise (``where`` names the file in the message)."""
    problems = _check_fields(card, CARD_FIELDS, "")
    if isinstance(card, dict):
        if isinstance(card.get("data"), dict):
            problems += _check_fields(card["data"], DATA_FIELDS, "data.")
        if isinstance(card.get("result"), dict):
            problems += _check_fields(card["result"], RESULT_FIELDS, "result.")
            problems += _check_result(card["result"], has_note="note" in card)
        problems += _check_values(card)
    if problems:
        raise ValueError(f"{where}: malformed card: " + "; ".join(problems))
    return card


def _check_fields(obj: Any, fields: Mapping[str, tuple[bool, tuple[type, ...]]], prefix: str):
    if not isinstance(obj, dict):
        return [f"{prefix or 'card'} must be a JSON object, got {type(obj).__name__}"]
    problems = [f"unknown field '{prefix}{k}'" for k in obj if k not in fields]
    for key, (required, types) in fields.items():
        if key not in obj:
            if required:
                problems.append(f"missing field '{prefix}{key}'")
            continue
        value = obj[key]
        bad_bool = isinstance(value, bool) and bool not in types  # bool is an int subclass
        if bad_bool or not isinstance(value, types):
            names = "/".join("null" if t is type(None) else t.__name__ for t in types)
            problems.append(f"{prefix}{key} must be {names}, got {value!r}")
    return problems


def _check_values(card: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("model", "base", "command", "env"):
        if isinstance(card.get(key), str) and not card[key].strip():
            problems.append(f"{key} must not be empty")
    if isinstance(card.get("date"), str) and not _DATE.match(card["date"]):
        problems.append(f"date must be YYYY-MM-DD, got {card['date']!r}")
    if "selection" in card and card["selection"] not in SELECTIONS:
        problems.append(f"selection must be one of {SELECTIONS}, got {card['selection']!r}")
    for key in ("size_bytes", "parameters"):
        if isinstance(card.get(key), int) and card[key] <= 0:
            problems.append(f"{key} must be > 0, got {card[key]}")
    data = card.get("data")
    if isinstance(data, dict):
        for key in ("episodes", "samples"):
            if isinstance(data.get(key), int) and data[key] < 0:
                problems.append(f"data.{key} must be >= 0, got {data[key]}")
    return problems


def _check_result(result: dict[str, Any], has_note: bool) -> list[str]:
    """Percentages within [0, 100], lo <= success rate <= hi, a page under docs/results/."""
    problems = []
    rate, ci = result.get("success_rate"), result.get("ci95")
    if rate is None:
        if ci is not None:
            problems.append("result.ci95 must be null when result.success_rate is null")
        if "note" not in result and not has_note:
            problems.append("a null result.success_rate needs a note saying why")
    elif not 0.0 <= rate <= 100.0:
        problems.append(f"result.success_rate is a percentage in [0, 100], got {rate}")
    if isinstance(ci, list):
        numbers = [isinstance(v, int | float) and not isinstance(v, bool) for v in ci]
        ok = len(ci) == 2 and all(numbers)
        if not ok or not 0.0 <= ci[0] <= ci[1] <= 100.0:
            problems.append(f"result.ci95 must be [lo, hi] with 0 <= lo <= hi <= 100, got {ci}")
        elif rate is not None and not ci[0] <= rate <= ci[1]:
            problems.append(f"result.success_rate {rate} lies outside result.ci95 {ci}")
    elif rate is not None and ci is None:
        problems.append("result.ci95 is required with a measured success rate")
    if isinstance(result.get("episodes"), int) and result["episodes"] <= 0:
        problems.append(f"result.episodes must be > 0, got {result['episodes']}")
    if isinstance(result.get("date"), str) and not _DATE.match(result["date"]):
        problems.append(f"result.date must be YYYY-MM-DD, got {result['date']!r}")
    if isinstance(result.get("page"), str) and not _PAGE.match(result["page"]):
        problems.append(f"result.page must be docs/results/<bench>.md, got {result['page']!r}")
    if rate is not None:
        missing = [k for k in ("episodes", "date", "benchmark", "page") if result.get(k) is None]
        if missing:
            problems.append(f"a measured success rate needs result.{', result.'.join(missing)}")
    return problems


def read_card(folder: str | Path) -> dict[str, Any] | None:
    """The validated card of a checkpoint folder; None when it has no ``card.json``."""
    file = Path(folder) / CARD_NAME
    if not file.is_file():
        return None
    try:
        card = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file}: corrupt JSON ({exc})") from exc
    return validate_card(card, str(file))


def write_card(folder: str | Path, card: Mapping[str, Any]) -> Path:
    """Validate ``card`` and write it as ``folder/card.json`` (folder must exist)."""
    file = Path(folder) / CARD_NAME
    validate_card(dict(card), str(file))
    file.write_text(json.dumps(dict(card), indent=2, ensure_ascii=False) + "\n")
    return file


def command_line(argv: list[str] | None = None) -> str:
    """The command line of this process (or ``argv``), shell-quoted, with no folder of this
    machine in it: a module of a package run with ``python -m`` reads ``python -m pkg.mod``
    (``.../ampczoo/__main__.py`` -> ``python -m ampczoo``), the console script and absolute
    program paths their file name (``.venv/bin/ampczoo`` -> ``ampczoo``); other relative
    paths stay as typed."""
    args = list(sys.argv if argv is None else argv)
    if args:
        args[0:1] = _program(args[0])
    return " ".join(shlex.quote(a) for a in args)


def _program(argv0: str) -> list[str]:
    path = Path(argv0)
    if path.suffix == ".py" and (path.parent / "__init__.py").is_file():
        parts = [] if path.stem == "__main__" else [path.stem]
        folder = path.parent
        while (folder / "__init__.py").is_file():
            parts.insert(0, folder.name)
            folder = folder.parent
        return ["python", "-m", ".".join(parts)]
    if path.name == "ampczoo" or path.is_absolute():
        return [path.name]
    return [argv0]


#: env kwargs of a store that describe how the demonstrations were simulated (kinematic
#: integration, their length), not the env a checkpoint trained on them acts in
COLLECTION_ONLY_ENV_KWARGS = ("simulation", "episode_seconds")


def training_card(
    model: str,
    data: str | Path,
    store_attrs: Mapping[str, Any],
    base: str = "",
    selection: str | None = None,
    parameters: int | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """The card of a freshly trained checkpoint of type ``model`` on the store ``data``:
    env id, control period and counts from the store's attributes (``EpisodeStore.attrs``;
    null where the store does not record them), the command line of this process, today's
    date, no result yet. ``base``: the frozen base of a refine-mode refiner ("" = none);
    ``selection``: "last", "best" or "snapshot" (which of the run's checkpoints);
    ``parameters``: count."""
    counts = store_attrs.get("counts") or {}
    env_kwargs = store_attrs.get("env_kwargs") or {}
    card: dict[str, Any] = {"env": store_attrs.get("env"), "model": model}
    if base:
        card["base"] = base
    acting = {k: v for k, v in env_kwargs.items() if k not in COLLECTION_ONLY_ENV_KWARGS}
    if acting:
        card["env_kwargs"] = acting
    card["data"] = {
        "path": str(data),
        "command": None,
        "episodes": counts.get("n_episodes"),
        "samples": counts.get("n_kept"),
    }
    card["command"] = command_line() if command is None else command
    card["date"] = _dt.date.today().isoformat()
    if selection is not None:
        card["selection"] = selection
    card["result"] = None
    if parameters is not None:
        card["parameters"] = int(parameters)
    return card
