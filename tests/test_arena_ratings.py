"""The leaderboard's math: Bradley–Terry against a worked example, Elo, bootstrap, exclusions, roll-up."""

from __future__ import annotations

import math

import pytest

from playground.arena.ratings import (
    Outcome,
    bootstrap,
    bradley_terry,
    elo,
    leaderboard,
    outcomes_of,
    side_key,
)
from playground.history.records import RatedBattle, Vote


def rated(a: str, b: str, vote: str, *, mode: str = "named", revealed: str = "") -> RatedBattle:
    return RatedBattle(a, a.rsplit("@", 1)[1], b, b.rsplit("@", 1)[1], Vote(vote), mode, revealed, "t")


def worked_example() -> list[RatedBattle]:
    """Three sides X, Y, Z (as x@e, y@e, z@e):

    X vs Y: X wins 2, Y wins 1                      -> X scores 2 of 3
    Y vs Z: Y wins 2, Z wins 1                      -> Y scores 2 of 3
    X vs Z: X wins 3, one tie, one "both bad", Z 0  -> X scores 3 + 0.5 + 0.5 = 4 of 5 (ties count half)
    """
    votes = [("x@e", "y@e", "a")] * 2 + [("x@e", "y@e", "b")]
    votes += [("y@e", "z@e", "a")] * 2 + [("z@e", "y@e", "a")]  # Z beats Y once (Z on side A)
    votes += [("x@e", "z@e", "a")] * 3 + [("x@e", "z@e", "tie"), ("z@e", "x@e", "both_bad")]
    return [rated(a, b, v) for a, b, v in votes]


def test_bradley_terry_matches_the_worked_example() -> None:
    """By hand. Bradley–Terry: P(i beats j) = p_i / (p_i + p_j). Try p = (4, 2, 1) for (X, Y, Z):
    P(X>Y) = 4/6 = 2/3, P(Y>Z) = 2/3, P(X>Z) = 4/5: each equals the observed share of that pair, so every
    likelihood equation W_i = sum_j n_ij p_i / (p_i + p_j) holds:
      X: 2 + 4 = 3 * 4/6 + 5 * 4/5 = 2 + 4              (W_X = 6)
      Y: 1 + 2 = 3 * 2/6 + 3 * 2/3 = 1 + 2              (W_Y = 3)
      Z: 1 + 1 = 3 * 1/3 + 5 * 1/5 = 1 + 1              (W_Z = 2)
    and the maximum is unique (every pair met), so p = (4, 2, 1) up to scale. Geometric mean 2, so on the
    Elo scale: X = 1000 + 400 log10(4/2) = 1120.412, Y = 1000, Z = 1000 + 400 log10(1/2) = 879.588.
    """
    outcomes = outcomes_of(worked_example(), side_key)
    ratings = bradley_terry(outcomes, prior=0.0)
    assert ratings["x@e"] == pytest.approx(1120.412, abs=1e-3)
    assert ratings["y@e"] == pytest.approx(1000.0, abs=1e-3)
    assert ratings["z@e"] == pytest.approx(879.588, abs=1e-3)
    # with the default prior the order stays and the spread shrinks toward 1000
    shrunk = bradley_terry(outcomes)
    assert 1000 < shrunk["x@e"] < ratings["x@e"] and ratings["z@e"] < shrunk["z@e"] < 1000


def test_a_side_that_never_won_keeps_a_finite_rating() -> None:
    outcomes = [Outcome("a", "b", 1.0)] * 5
    ratings = bradley_terry(outcomes)
    assert all(math.isfinite(r) for r in ratings.values()) and ratings["a"] > ratings["b"]
    # two sides, prior 1: W_a = 6, W_b = 1, and symmetry gives p_a * p_b = 1 with p_a / p_b > 5
    assert ratings["a"] - ratings["b"] > 400 * math.log10(5)


def test_elo_one_game_from_equal_ratings_moves_each_side_by_half_k() -> None:
    """Expected score 0.5 at equal ratings; a win moves the winner up by K * (1 - 0.5) = 2 (K = 4)."""
    assert elo([Outcome("a", "b", 1.0)]) == {"a": 1002.0, "b": 998.0}
    assert elo([Outcome("a", "b", 0.5)]) == {"a": 1000.0, "b": 1000.0}


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    outcomes = outcomes_of(worked_example() * 4, side_key)
    first = bootstrap(outcomes, rounds=100, seed=7)
    assert first == bootstrap(outcomes, rounds=100, seed=7)
    ratings = bradley_terry(outcomes)
    for name, (low, high) in first.items():
        assert low <= ratings[name] <= high and low < high


def test_leaderboard_excludes_revealed_blind_votes_and_rolls_up_models() -> None:
    battles = [
        *worked_example(),
        rated("z@e", "x@e", "a", mode="blind", revealed="a"),  # Z named itself: not rated
        rated("x@e", "x@f", "a"),  # the same model on two engines: a side battle, not a model battle
    ]
    board = leaderboard(battles, rounds=50, seed=1)
    assert board.votes == len(battles) - 1 and board.excluded == 1
    assert board.counts == {"a": 9, "b": 1, "tie": 1, "both_bad": 1}
    assert [r.name for r in board.sides.ratings][:1] == ["x@e"]
    assert set(board.sides.names) == {"x@e", "y@e", "z@e", "x@f"}
    assert set(board.models.names) == {"x", "y", "z"}
    x_games = next(r for r in board.models.ratings if r.name == "x").games
    assert x_games == 8  # 3 against Y, 5 against Z; not the game against itself
    i, j = board.sides.names.index("x@e"), board.sides.names.index("z@e")
    assert board.sides.win_rate[i][j] == pytest.approx(4 / 5)
    assert board.sides.win_rate[j][i] == pytest.approx(1 / 5)
    assert board.sides.games[i][j] == 5


def test_style_control_takes_away_what_voters_gave_to_length_and_markdown() -> None:
    """Voters here always prefer the longer answer with Markdown, whichever model wrote it: the plain
    ratings reward the model that wrote it more often; with style controlled both are equal and the
    length and Markdown features carry the preference."""
    from playground.arena.style import Style, StyledVote, fit, styled_table

    rich, plain = Style.of("# Answer\n- one\n- two\n**bold** " + "word " * 150), Style.of("Paris.")
    votes = [StyledVote("often-rich", "often-plain", 1.0, rich, plain) for _ in range(15)]
    votes += [StyledVote("often-rich", "often-plain", 0.0, plain, rich) for _ in range(5)]
    styled, coefficients = styled_table(votes, rounds=20)
    unstyled = fit([StyledVote(v.a, v.b, v.score_a, plain, plain) for v in votes])
    gap_plain = unstyled.ratings["often-rich"] - unstyled.ratings["often-plain"]
    gap_styled = abs(styled.ratings[0].rating - styled.ratings[1].rating)
    assert gap_plain > 100 and gap_styled < gap_plain / 4, (gap_plain, gap_styled)
    assert coefficients["length"] > 0 and coefficients["headers"] > 0
    assert all(r.low <= r.rating <= r.high for r in styled.ratings) and styled.games[0][1] == 20
