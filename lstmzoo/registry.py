"""Finds recipes through the ``lstmzoo.recipes`` entry-point group, built-in and third-party alike.

Each entry point names a ``Recipe`` subclass (or a factory returning a recipe). Loading one imports only the
module it names, which by the contract holds metadata and defers heavy imports into methods, so listing
the zoo builds nothing. A plugin that fails to import (even by calling ``sys.exit``), or breaks the contract,
is recorded as a failure (distribution, entry point, reason) and skipped: one bad plugin never takes the others
down. What a plugin prints while loading goes to stderr, never into a command's output.
"""

import contextlib
import dataclasses
import difflib
import functools
import importlib.metadata
import sys

from .recipe import contract_problems

GROUP = "lstmzoo.recipes"


class UnknownRecipeError(LookupError):
    """No installed recipe has that name; the message lists close matches."""


@dataclasses.dataclass(frozen=True)
class PluginFailure:
    distribution: str
    entry_point: str        # "name = module:attribute"
    reason: str


@dataclasses.dataclass(frozen=True)
class Provider:
    """A distribution that provides recipes."""
    distribution: str
    version: str
    recipes: tuple


@dataclasses.dataclass(frozen=True)
class Registry:
    recipes: dict           # name -> Recipe instance
    providers: tuple        # Provider, one per distribution with at least one working recipe
    failures: tuple         # PluginFailure


@functools.lru_cache(maxsize=1)
def registry():
    """Every installed recipe, read once per process (``registry.cache_clear()`` to read again)."""
    recipes, origin, failures = {}, {}, []
    for entry_point in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda ep: ep.name):
        dist = entry_point.dist
        dist_name, dist_version = (dist.metadata["Name"], dist.version) if dist else ("<unknown>", "")
        try:
            recipe = _load(entry_point)
            if recipe.name in recipes:
                raise ValueError(f"recipe {recipe.name!r} is already provided by {origin[recipe.name][0]}")
        # SystemExit too: a plugin that calls sys.exit() at import must not end `lstmzoo list` for everyone.
        except (Exception, SystemExit) as error:  # noqa: BLE001 - a plugin's failure is reported, never raised
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            failures.append(PluginFailure(dist_name, f"{entry_point.name} = {entry_point.value}",
                                          f"{type(error).__name__}: {reason}" if reason else type(error).__name__))
            continue
        recipes[recipe.name] = recipe
        origin[recipe.name] = (dist_name, dist_version)
    providers = {}
    for name, (dist_name, dist_version) in origin.items():
        providers.setdefault((dist_name, dist_version), []).append(name)
    return Registry(recipes=recipes,
                    providers=tuple(Provider(d, v, tuple(names)) for (d, v), names in sorted(providers.items())),
                    failures=tuple(failures))


def _load(entry_point):
    """The recipe an entry point names, checked against the contract (ValueError saying what is wrong)."""
    # What a plugin prints while it loads goes to stderr: stdout carries `lstmzoo list --json` and the like.
    with contextlib.redirect_stdout(sys.stderr):
        target = entry_point.load()
        recipe = target() if callable(target) else target   # a Recipe subclass or a factory
    problems = contract_problems(recipe)
    if not problems and recipe.name != entry_point.name:
        problems.append(f"entry point {entry_point.name!r} names recipe {recipe.name!r}: they must agree")
    if problems:
        raise ValueError("; ".join(problems))
    return recipe


def list_recipes(application=None):
    """The installed recipes sorted by name, only those of ``application`` when given."""
    return [r for name, r in sorted(registry().recipes.items())
            if application is None or r.application == application]


def get_recipe(name):
    """The recipe called ``name``; UnknownRecipeError naming close matches when there is none."""
    recipes = registry().recipes
    if name in recipes:
        return recipes[name]
    close = difflib.get_close_matches(name, recipes, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else "run `lstmzoo list` to see the installed ones"
    raise UnknownRecipeError(f"no recipe named {name!r}: {hint}")


def provider_of(name):
    """The ``Provider`` (distribution) of the recipe called ``name``, or None."""
    return next((p for p in registry().providers if name in p.recipes), None)


def plugin_failures():
    return registry().failures


def plugin_report():
    """What was found and what failed, as a JSON-serialisable dict."""
    reg = registry()
    return {"providers": [dataclasses.asdict(p) for p in reg.providers],
            "failures": [dataclasses.asdict(f) for f in reg.failures]}
