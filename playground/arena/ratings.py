"""The leaderboard: Bradley–Terry ratings with bootstrap intervals, Elo beside them, win rates, counts.

A side is a model on an engine (its id, `model@engine`); the roll-up rates models, pooling their
engines (a battle of a model against itself on two engines says nothing about the model, and is left out
there). Votes: A or B is a win; a tie counts half a win to each side; "both bad" counts as a tie too (as
in FastChat's arena: it says the two answers were alike, here alike in being poor). Blind rounds whose
answer named its model (`revealed`) are left out.

Bradley–Terry: P(i beats j) = p_i / (p_i + p_j), fitted by maximum likelihood with Hunter's (2004)
minorization-maximization update p_i <- W_i / sum_j n_ij / (p_i + p_j), where W_i counts i's wins (ties
as halves) and n_ij the games of i and j. `prior` adds that many virtual wins and losses of every side
against a virtual side of strength 1, so a side that never won (or never lost) keeps a finite rating;
0 gives the plain maximum likelihood. Ratings are on the Elo scale: 1000 + 400 log10(p_i / g), g the
geometric mean of the strengths. Bootstrap: the votes are resampled with replacement (seeded) and
refitted; the interval is the 2.5th to 97.5th percentile. Elo: the online update with K = 4, in vote order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..history.records import RatedBattle, Vote

BASE, SCALE = 1000.0, 400.0
ELO_K = 4.0


@dataclass(frozen=True)
class Outcome:
    """One vote between two sides: score_a is 1 (A won), 0 (B won) or 0.5 (a tie)."""

    a: str
    b: str
    score_a: float


@dataclass(frozen=True)
class Rating:
    name: str
    rating: float  # Bradley–Terry, Elo scale
    low: float  # bootstrap 95% interval
    high: float
    elo: float  # online Elo
    games: int
    wins: float  # ties as halves


@dataclass(frozen=True)
class Table:
    """Ratings best first, the win-rate matrix (row's score against column, None: never met), counts."""

    ratings: tuple[Rating, ...]
    names: tuple[str, ...]
    win_rate: tuple[tuple[float | None, ...], ...]
    games: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Leaderboard:
    sides: Table
    models: Table
    votes: int  # votes counted
    excluded: int  # blind votes left out because an answer named its model
    counts: dict[str, int] = field(default_factory=dict)  # votes by kind: a, b, tie, both_bad
    style: dict[str, float] | None = None  # with style control: what each style feature was worth


def outcomes_of(battles: Sequence[RatedBattle], key: Callable[[RatedBattle, str], str]) -> list[Outcome]:
    found = []
    for battle in battles:
        score = {Vote.A: 1.0, Vote.B: 0.0}.get(battle.vote, 0.5)
        a, b = key(battle, "a"), key(battle, "b")
        if a != b:
            found.append(Outcome(a, b, score))
    return found


def bradley_terry(
    outcomes: Sequence[Outcome], *, prior: float = 1.0, iterations: int = 10_000, tol: float = 1e-10
) -> dict[str, float]:
    """Each side's rating (Elo scale) by maximum likelihood (minorization-maximization)."""
    names = sorted({o.a for o in outcomes} | {o.b for o in outcomes})
    if not names:
        return {}
    index = {n: i for i, n in enumerate(names)}
    k = len(names)
    a = np.array([index[o.a] for o in outcomes])
    b = np.array([index[o.b] for o in outcomes])
    score = np.array([o.score_a for o in outcomes])
    wins = np.full(k, float(prior))
    games = np.zeros((k, k))
    np.add.at(wins, a, score)  # in order, as a loop would (the bootstrap refits this hundreds of times)
    np.add.at(wins, b, 1.0 - score)
    np.add.at(games, (a, b), 1.0)
    np.add.at(games, (b, a), 1.0)
    p = np.ones(k)
    for _ in range(iterations):
        denominator = (games / (p[:, None] + p[None, :])).sum(axis=1) + 2.0 * prior / (p + 1.0)
        updated = np.where(denominator > 0, wins / np.where(denominator > 0, denominator, 1.0), p)
        updated = np.maximum(updated, 1e-300)
        updated /= math.exp(float(np.log(updated).mean()))
        if np.max(np.abs(np.log(updated) - np.log(p))) < tol:
            p = updated
            break
        p = updated
    return {n: BASE + SCALE * math.log10(float(p[index[n]])) for n in names}


def elo(outcomes: Sequence[Outcome], *, k: float = ELO_K) -> dict[str, float]:
    """Online Elo in the order given, every side starting at 1000."""
    ratings: dict[str, float] = {}
    for o in outcomes:
        ra, rb = ratings.setdefault(o.a, BASE), ratings.setdefault(o.b, BASE)
        expected_a = 1.0 / (1.0 + 10.0 ** ((rb - ra) / SCALE))
        ratings[o.a] = ra + k * (o.score_a - expected_a)
        ratings[o.b] = rb - k * (o.score_a - expected_a)
    return ratings


def bootstrap(
    outcomes: Sequence[Outcome], *, rounds: int = 200, seed: int = 0, prior: float = 1.0
) -> dict[str, tuple[float, float]]:
    """The 95% interval of each side's Bradley–Terry rating over `rounds` resamples of the votes."""
    if not outcomes:
        return {}
    rng = np.random.default_rng(seed)
    names = sorted({o.a for o in outcomes} | {o.b for o in outcomes})
    samples: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        picks = rng.integers(0, len(outcomes), len(outcomes))
        fitted = bradley_terry([outcomes[int(i)] for i in picks], prior=prior, iterations=2000, tol=1e-8)
        for name in names:
            if name in fitted:
                samples[name].append(fitted[name])
    return {
        n: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if v else (math.nan, math.nan)
        for n, v in samples.items()
    }


def table(outcomes: Sequence[Outcome], *, rounds: int = 200, seed: int = 0, prior: float = 1.0) -> Table:
    ratings = bradley_terry(outcomes, prior=prior)
    intervals = bootstrap(outcomes, rounds=rounds, seed=seed, prior=prior)
    online = elo(outcomes)
    names = tuple(sorted(ratings, key=lambda n: (-ratings[n], n)))
    index = {n: i for i, n in enumerate(names)}
    score = np.zeros((len(names), len(names)))
    games = np.zeros((len(names), len(names)), dtype=int)
    for o in outcomes:
        i, j = index[o.a], index[o.b]
        score[i, j] += o.score_a
        score[j, i] += 1.0 - o.score_a
        games[i, j] += 1
        games[j, i] += 1
    rows = tuple(
        Rating(
            n,
            ratings[n],
            intervals[n][0],
            intervals[n][1],
            online[n],
            int(games[index[n]].sum()),
            float(score[index[n]].sum()),
        )
        for n in names
    )
    win_rate = tuple(
        tuple(float(score[i, j] / games[i, j]) if games[i, j] else None for j in range(len(names)))
        for i in range(len(names))
    )
    return Table(rows, names, win_rate, tuple(tuple(int(g) for g in row) for row in games))


def side_key(battle: RatedBattle, side: str) -> str:
    """model@engine: the model ids already are (catalog key @ provider)."""
    model = battle.model_a if side == "a" else battle.model_b
    engine = battle.engine_a if side == "a" else battle.engine_b
    return model if "@" in model or not engine else f"{model}@{engine}"


def model_key(battle: RatedBattle, side: str) -> str:
    """The model without its engine (the catalog key)."""
    return side_key(battle, side).rsplit("@", 1)[0]


def leaderboard(battles: Sequence[RatedBattle], *, rounds: int = 200, seed: int = 0) -> Leaderboard:
    """Per side and per model, from voted rounds; blind rounds whose answer named a model left out."""
    counted = [b for b in battles if not (b.mode == "blind" and b.revealed)]
    counts = {str(v): sum(1 for b in counted if b.vote == v) for v in Vote}
    return Leaderboard(
        table(outcomes_of(counted, side_key), rounds=rounds, seed=seed),
        table(outcomes_of(counted, model_key), rounds=rounds, seed=seed),
        votes=len(counted),
        excluded=len(battles) - len(counted),
        counts=counts,
    )
