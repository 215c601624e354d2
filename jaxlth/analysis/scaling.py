"""The pruning scaling law of Rosenfeld, Frankle, Carbin & Shavit (*On the Predictability of Pruning Across
Scales*, ICML 2021, arXiv 2006.10621), fitted to the IMP levels of a sweep (``jaxlth.results.load_many``).

The form: the paper's Eq. 1 (one network's error against density), made joint over depth and width
through its error-preserving invariant ``m* = l^φ w^ψ d`` (the joint form that follows it):

    ε̂(ε_np, d | l, w) = ε_np · ‖ (l^φ w^ψ d − j·p·(ε↑/ε_np)^(1/γ)) / (l^φ w^ψ d − j·p) ‖^γ,   j = √−1

``d``: density, the fraction of prunable weights kept; ``l``, ``w``: depth and width; ``ε_np``: the test
error of the unpruned network of that depth and width (measured: level 0 of its run, never fitted);
``ε↑``: the high-error plateau reached at the smallest densities; ``γ``: the slope of the power-law
region between the plateaus on log-log axes; ``p``: where that region meets the high plateau, in units
of ``l^φ w^ψ d``; ``φ``, ``ψ``: how depth and width trade against density (equal ``l^φ w^ψ d``, equal
error). With ``z = l^φ w^ψ d / p`` and ``a = (ε↑/ε_np)^(1/γ)`` the modulus is real,
``ε̂ = ε_np ((z² + a²) / (z² + 1))^(γ/2)``: ``ε_np`` for ``z ≫ a``, ``ε↑ z^−γ`` for ``1 ≪ z ≪ a``,
``ε↑`` for ``z ≪ 1``.

The fit, as the paper's: least squares of the relative deviations ``δ = (ε̂ − ε) / ε`` over every
measured point (one per width, depth and IMP level; ``ε`` the mean over replicates of the test error
``1 − accuracy`` at the end of the level's training), judged by the mean ``μ`` and standard deviation
``σ`` of ``δ`` (the paper's joint fits of CIFAR-10 and ImageNet ResNets: ``|μ| < 2%``, ``σ < 6%``).
With one depth ``l^φ`` is a constant that ``p`` absorbs, so ``φ = 0`` is fixed; one width cannot
identify ``ψ`` and is refused.

A width is the table's value of the swept field (``model.options.widths`` by default): a number
(a width factor) or a sequence of layer widths (LeNet's hidden widths), whose mean is the width and
whose length the depth unless a ``depth`` column is named. Only ratios of widths matter: a constant
factor is absorbed by ``p``. ``jaxlth.analysis.scaling_figure.draw`` shows measured and fitted curves.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from jaxlth import tables
from jaxlth.errors import UserError

__all__ = ["ScalingFit", "fit", "form", "points"]

PARAMETERS = ("eps_up", "gamma", "p", "psi", "phi")
MAX_GAMMA = 1e6  # the fit's bound on γ: a steeper transition is a step at this data's resolution
POINT_COLUMNS = ["label", "width", "depth", "level", "density", "error", "error_std", "replicates", "eps_np"]


def form(density, eps_np, width, depth, eps_up: float, gamma: float, p: float, psi: float, phi: float = 0.0):
    """``ε̂`` of the module docstring, elementwise over broadcast arrays (errors as fractions); computed
    through logarithms, so it is finite from the dense network down to any density."""
    density, eps_np, width, depth = (np.asarray(x, dtype=float) for x in (density, eps_np, width, depth))
    log_z = phi * np.log(depth) + psi * np.log(width) + np.log(density) - math.log(p)
    log_a = (math.log(eps_up) - np.log(eps_np)) / gamma
    log_ratio = np.logaddexp(2 * log_z, 2 * log_a) - np.logaddexp(2 * log_z, 0.0)
    return eps_np * np.exp(0.5 * gamma * log_ratio)


def width_and_depth(value: Any, depth: Any = None) -> tuple[float, float]:
    """``(w, l)`` of a width value: a number is ``w`` (``l = depth`` or 1); a sequence of layer widths
    gives their mean and, without ``depth``, their count."""
    if isinstance(value, (tuple, list, np.ndarray)):
        widths = [float(v) for v in value]
        if not widths or min(widths) <= 0:
            raise UserError(f"a width must be a positive number or a list of positive layer widths, got {value!r}")
        return float(np.mean(widths)), float(len(widths) if depth is None else depth)
    if value is None or not isinstance(value, (int, float, np.number)) or not value > 0:
        raise UserError(f"a width must be a positive number or a list of positive layer widths, got {value!r}")
    return float(value), float(1 if depth is None else depth)


def points(
    table: pd.DataFrame,
    width: str = "model.options.widths",
    depth: str | None = None,
    arm: str = "imp",
    split: str = "test",
) -> pd.DataFrame:
    """The measured points of ``table``: one row per width, depth and level of ``arm``.

    Columns: ``label`` (the width as the table holds it), ``width``, ``depth``, ``level``, ``density``
    (fraction of prunable weights kept), ``error`` (mean over replicates of ``1 − accuracy`` at the
    last ``split`` evaluation of the level), ``error_std`` (over replicates, ddof 1), ``replicates``,
    ``eps_np`` (``error`` of level 0 of that width and depth). Runs of one width are pooled.
    """
    for column in (width, depth):
        if column is not None and column not in table.columns:
            raise UserError(
                f"the table has no column {column!r}: load a sweep over it with jaxlth.results.load_many, "
                f"or name the swept column (columns: {', '.join(map(str, table.columns))})"
            )
    rows = table[table["arm"] == arm] if "arm" in table.columns else table.iloc[:0]
    groups: dict[tuple, list[pd.DataFrame]] = {}
    for run, run_rows in rows.groupby("run", sort=False) if "run" in rows.columns else [("", rows)]:
        final = tables.final_metrics(run_rows, split, "accuracy")
        if final.empty:
            continue
        fractions = run_rows["prune_fraction"].dropna().unique() if "prune_fraction" in run_rows else []
        if len(fractions) > 1:
            raise UserError(
                f"run {run or 'of the table'} prunes {len(fractions)} fractions per level; fit the rows of one, "
                "e.g. table[table['prune_fraction'] == 0.2]"
            )
        label = _label(run_rows[width].iloc[0])
        depth_value = run_rows[depth].iloc[0] if depth is not None else None
        groups.setdefault((label, *width_and_depth(label, depth_value)), []).append(final)
    if not groups:
        raise UserError(
            f"the table holds no final {split} accuracy of arm {arm!r}: the scaling law is fitted to the "
            "IMP levels of lottery runs (jaxlth.results.load_many over their workdirs)"
        )
    out = []
    for (label, w, layers), finals in groups.items():
        final = pd.concat(finals, ignore_index=True).assign(error=lambda f: 1.0 - f["value"])
        by_level = final.groupby("level").agg(
            density=("density", "mean"),
            error=("error", "mean"),
            error_std=("error", "std"),
            replicates=("error", "size"),
        )
        if 0 not in by_level.index:
            raise UserError(f"width {label} has no dense level (level 0), whose error ε_np the law starts from")
        by_level = by_level.reset_index().assign(label=[label] * len(by_level), width=w, depth=layers)
        out.append(by_level.assign(eps_np=float(by_level.loc[by_level["level"] == 0, "error"].iloc[0])))
    frame = pd.concat(out, ignore_index=True)[POINT_COLUMNS]
    return frame.sort_values(["depth", "width", "level"], ignore_index=True)


@dataclasses.dataclass(frozen=True, eq=False)
class ScalingFit:
    """A fitted law: its parameters (module docstring), the points it was fitted to (:func:`points`'
    columns and ``fitted``, ``ε̂``, and ``delta``, ``δ``) and how they were read from the table."""

    eps_up: float
    gamma: float
    p: float
    psi: float
    phi: float
    free: tuple[str, ...]  # the parameters fitted (φ is fixed at 0 with one depth)
    points: pd.DataFrame
    width: str = "model.options.widths"
    depth: str | None = None
    arm: str = "imp"
    split: str = "test"

    @property
    def parameters(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in PARAMETERS}

    @property
    def mean(self) -> float:
        """``μ``: the mean relative deviation ``δ`` of the fitted points (a fraction)."""
        return float(self.points["delta"].mean())

    @property
    def std(self) -> float:
        """``σ``: the standard deviation of ``δ`` over the fitted points (ddof 1)."""
        return float(self.points["delta"].std(ddof=1))

    def predict(self, density, eps_np, width, depth=None) -> np.ndarray:
        """``ε̂`` at ``density`` of a network of ``width`` (a number, or its layer widths as the table
        holds them) whose dense error is ``eps_np``; arrays broadcast."""
        return form(density, eps_np, *width_and_depth(width, depth), **self.parameters)

    def deviations(self, table: pd.DataFrame, widths: Sequence | None = None) -> pd.DataFrame:
        """The points of ``table`` (of ``widths``: all by default) with this law's ``fitted`` error, their
        ``delta`` and ``in_fit`` (whether the fit used the point)."""
        measured = _select(points(table, self.width, self.depth, self.arm, self.split), widths)
        return self._with_fit(measured)

    def _with_fit(self, measured: pd.DataFrame) -> pd.DataFrame:
        fitted = form(measured["density"], measured["eps_np"], measured["width"], measured["depth"], **self.parameters)
        keys = set(zip(self.points["label"], self.points["depth"], self.points["level"]))
        in_fit = [k in keys for k in zip(measured["label"], measured["depth"], measured["level"])]
        delta = (fitted - measured["error"]) / measured["error"]
        return measured.assign(fitted=fitted, delta=delta, in_fit=in_fit)

    def __str__(self) -> str:
        named = ", ".join(f"{n}={v:.4g}" + ("" if n in self.free else " (fixed)") for n, v in self.parameters.items())
        return f"{named}; δ over {len(self.points)} points: μ={self.mean:+.2%}, σ={self.std:.2%}"


def fit(
    table: pd.DataFrame,
    *,
    widths: Sequence | None = None,
    width: str = "model.options.widths",
    depth: str | None = None,
    arm: str = "imp",
    split: str = "test",
) -> ScalingFit:
    """The law fitted to the points of ``table`` (:func:`points`) of ``widths`` (values of the ``width``
    column; all by default): least squares of ``δ`` from several starts, the best kept."""
    measured = _select(points(table, width, depth, arm, split), widths)
    labels = list(dict.fromkeys(measured["label"]))
    if measured["width"].nunique() < 2:
        raise UserError(f"fitting the width exponent ψ needs at least two widths, the points hold one: {labels[0]}")
    free = PARAMETERS if measured["depth"].nunique() > 1 else PARAMETERS[:-1]
    if len(measured) <= len(free):
        raise UserError(f"{len(measured)} points cannot fit {len(free)} parameters: run more IMP levels or widths")
    if not (measured["error"] > 0).all():
        raise UserError("a measured error of 0 leaves the relative deviation δ undefined; fit networks that err")
    values = _least_squares(measured, len(free))
    parameters = dict(zip(PARAMETERS, values)) | ({} if "phi" in free else {"phi": 0.0})
    law = ScalingFit(**parameters, free=free, points=measured, width=width, depth=depth, arm=arm, split=split)
    return dataclasses.replace(law, points=law._with_fit(measured).drop(columns="in_fit"))


def _least_squares(measured: pd.DataFrame, n_free: int) -> list[float]:
    """``(ε↑, γ, p, ψ[, φ])`` minimising ``Σ δ²``; optimised over ``(log ε↑, log γ, log p, ψ, φ)`` with
    ``0 < ε↑ ≤ 1`` and ``γ ≤ MAX_GAMMA``, from a grid of starts (deterministic), the best polished to tight
    tolerances."""
    residuals, jacobian = _objective(measured, n_free)
    log_w, log_l, log_d = (np.log(measured[c].to_numpy(float)) for c in ("width", "depth", "density"))
    top = min(float(measured["error"].max()), 0.95)
    # ε↑ > 0 and γ ≤ 1e6 (the transition is then a step): when the levels' errors barely differ the optimum
    # lies at ε↑ → 0, γ → ∞ with log(ε↑/ε_np)/γ finite, and exp() underflowed to ε↑ = 0 or overflowed
    # (seen on an AMD CPU); with the bounds such a fit ends on them, finite.
    lower = [math.log(np.finfo(float).tiny)] + [-np.inf] * (n_free - 1)
    bounds = (lower, [0.0, math.log(MAX_GAMMA)] + [np.inf] * (n_free - 2))
    best = None
    for gamma, psi, phi, where in itertools.product((0.5, 1, 2, 4), (0.5, 1, 2), (0, 1)[: n_free - 3], (0, 0.5)):
        log_p = float(np.quantile(phi * log_l + psi * log_w + log_d, where)) - 1.0
        start = [math.log(0.5 * (1 + top)), math.log(gamma), log_p, psi, phi][:n_free]
        result = optimize.least_squares(residuals, start, jac=jacobian, bounds=bounds)
        if best is None or result.cost < best.cost:
            best = result
    tight = {"ftol": 1e-15, "xtol": 1e-15, "gtol": 1e-15}
    x = optimize.least_squares(residuals, best.x, jac=jacobian, bounds=bounds, **tight).x
    return [math.exp(x[0]), math.exp(x[1]), math.exp(x[2]), *map(float, x[3:])]


def _objective(measured: pd.DataFrame, n_free: int):
    """``δ(x)`` and its Jacobian ``(N, n_free)`` in ``x = (log ε↑, log γ, log p, ψ[, φ])``, from
    ``log ε̂ = log ε_np + γ/2 · (log(z² + a²) − log(z² + 1))``."""
    log_e, log_w, log_l, log_d = (np.log(measured[c].to_numpy(float)) for c in ("eps_np", "width", "depth", "density"))
    error = measured["error"].to_numpy(float)

    def terms(x):
        gamma, phi = math.exp(x[1]), (x[4] if n_free == 5 else 0.0)
        log_z, log_a = phi * log_l + x[3] * log_w + log_d - x[2], (x[0] - log_e) / gamma
        upper, lower = np.logaddexp(2 * log_z, 2 * log_a), np.logaddexp(2 * log_z, 0.0)
        ratio = np.exp(log_e + 0.5 * gamma * (upper - lower)) / error  # ε̂ / ε
        return gamma, log_a, upper - lower, np.exp(2 * log_z - upper), np.exp(2 * log_z - lower), ratio

    def residuals(x):
        return terms(x)[-1] - 1.0

    def jacobian(x):
        gamma, log_a, gap, s_upper, s_lower, ratio = terms(x)  # s_·: z² / (z² + a²), z² / (z² + 1)
        slope = gamma * (s_upper - s_lower)  # ∂ log ε̂ / ∂ log z
        columns = [1 - s_upper, gamma * (0.5 * gap - (1 - s_upper) * log_a), -slope, slope * log_w, slope * log_l]
        return ratio[:, None] * np.stack(columns[:n_free], axis=1)

    return residuals, jacobian


def _label(value: Any) -> Any:
    """A width value as a hashable label: sequences as tuples."""
    return tuple(value) if isinstance(value, (list, tuple, np.ndarray)) else value


def _select(measured: pd.DataFrame, widths: Sequence | None) -> pd.DataFrame:
    """The points of the given width values (labels), all when ``widths`` is None."""
    if widths is None:
        return measured
    wanted = [_label(w) for w in widths]
    missing = [w for w in wanted if w not in set(measured["label"])]
    if missing:
        known = ", ".join(map(str, dict.fromkeys(measured["label"])))
        raise UserError(f"no points of width {missing[0]} in the table (its widths: {known})")
    return measured[measured["label"].isin(wanted)].reset_index(drop=True)
