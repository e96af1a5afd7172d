"""Style control for the Arena's ratings (as LMArena does it): a Bradley–Terry model with the answers'
style as covariates, so that a side is not rated higher only because voters liked longer answers or more
Markdown. Each vote's outcome is modelled as

    P(A beats B) = sigmoid(theta_A - theta_B + sum_k gamma_k * (f_k(A) - f_k(B)) / (f_k(A) + f_k(B) + 1))

with the features f: the answer's length in characters, its Markdown headers, list items and bold
spans. theta are the ratings with style controlled (shown on the Elo scale), gamma what each feature
was worth to the voters. Fitted by Newton's method with small L2 priors (which keep it finite with few
votes); ties count half a win to each side.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..history.records import RatedBattle, Vote
from .ratings import BASE, SCALE, Outcome, Table, table

FEATURES = ("length", "headers", "list items", "bold")
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s", re.M)
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
PRIOR = 1.0  # L2 weight on each rating (keeps them finite with few votes)
STYLE_PRIOR = 0.05  # and on each style coefficient (weaker: a consistent style preference shows fully)


@dataclass(frozen=True)
class Style:
    length: int
    headers: int
    lists: int
    bold: int

    @classmethod
    def of(cls, text: str) -> Style:
        return cls(len(text), len(_HEADER.findall(text)), len(_LIST.findall(text)), len(_BOLD.findall(text)))

    def values(self) -> tuple[int, int, int, int]:
        return self.length, self.headers, self.lists, self.bold


@dataclass(frozen=True)
class StyledVote:
    a: str
    b: str
    score_a: float  # 1, 0 or 0.5
    style_a: Style
    style_b: Style


@dataclass(frozen=True)
class StyleControlled:
    ratings: dict[str, float]  # on the Elo scale, style held equal
    coefficients: dict[str, float]  # what each style feature was worth (log-odds per unit of difference)


def fit(votes: Sequence[StyledVote], *, iterations: int = 50) -> StyleControlled:
    """The style-controlled ratings and the style coefficients (empty without votes)."""
    names = sorted({v.a for v in votes} | {v.b for v in votes})
    if not names:
        return StyleControlled({}, {})
    x, y, w = _design(votes, names)
    beta = np.zeros(x.shape[1])
    prior = np.array([PRIOR] * len(names) + [STYLE_PRIOR] * len(FEATURES))
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        gradient = x.T @ (w * (y - p)) - prior * beta
        hessian = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(prior)
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    theta = beta[: len(names)] - float(np.mean(beta[: len(names)]))
    ratings = {n: BASE + SCALE * float(t) / math.log(10) for n, t in zip(names, theta, strict=True)}
    return StyleControlled(ratings, dict(zip(FEATURES, (float(g) for g in beta[len(names) :]), strict=True)))


def _design(votes: Sequence[StyledVote], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each vote twice, as a win and as a loss, weighted by its score (a tie: half each)."""
    index = {n: i for i, n in enumerate(names)}
    rows, targets, weights = [], [], []
    for vote in votes:
        row = np.zeros(len(names) + len(FEATURES))
        row[index[vote.a]], row[index[vote.b]] = 1.0, -1.0
        for k, (fa, fb) in enumerate(zip(vote.style_a.values(), vote.style_b.values(), strict=True)):
            row[len(names) + k] = (fa - fb) / (fa + fb + 1)
        for target, weight in ((1.0, vote.score_a), (0.0, 1.0 - vote.score_a)):
            if weight > 0:
                rows.append(row)
                targets.append(target)
                weights.append(weight)
    return np.array(rows), np.array(targets), np.array(weights)


def styled_votes(
    voted: Sequence[tuple[RatedBattle, str, str]], key: Callable[[RatedBattle, str], str]
) -> list[StyledVote]:
    """The voted rounds as style-carrying votes (blind rounds whose answer named its model left out,
    as the plain ratings leave them out)."""
    found = []
    for battle, text_a, text_b in voted:
        if battle.mode == "blind" and battle.revealed:
            continue
        a, b = key(battle, "a"), key(battle, "b")
        if a != b:
            score = {Vote.A: 1.0, Vote.B: 0.0}.get(battle.vote, 0.5)
            found.append(StyledVote(a, b, score, Style.of(text_a), Style.of(text_b)))
    return found


def styled_table(
    votes: Sequence[StyledVote], *, rounds: int = 100, seed: int = 0
) -> tuple[Table, dict[str, float]]:
    """The leaderboard's table with the ratings (and their 95% bootstrap intervals) style-controlled;
    games, wins, Elo and win rates as the plain table has them. Also the style coefficients."""
    plain = table([Outcome(v.a, v.b, v.score_a) for v in votes], rounds=1, seed=seed)
    fitted = fit(votes)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {n: [] for n in fitted.ratings}
    for _ in range(rounds if votes else 0):
        picked = [votes[int(i)] for i in rng.integers(0, len(votes), len(votes))]
        for name, rating in fit(picked, iterations=20).ratings.items():
            samples[name].append(rating)
    rows = []
    for row in plain.ratings:
        values = samples.get(row.name) or [fitted.ratings[row.name]]
        low, high = float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))
        rows.append(replace(row, rating=fitted.ratings[row.name], low=low, high=high))
    rows.sort(key=lambda r: (-r.rating, r.name))
    order = [r.name for r in rows]
    index = [plain.names.index(n) for n in order]
    win_rate = tuple(tuple(plain.win_rate[i][j] for j in index) for i in index)
    games = tuple(tuple(plain.games[i][j] for j in index) for i in index)
    return Table(tuple(rows), tuple(order), win_rate, games), fitted.coefficients
