"""Post-processing rules of the 4th-place LMSYS solution: an empty response loses, identical responses tie."""

from __future__ import annotations

import numpy as np

from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.data.reading import Pairs
from kaggle_kit.metrics import log_loss

# Fixed rows in label order (A wins, B wins, tie), from the 4th-place write-up.
EMPTY_B_WINS = (0.04, 0.88, 0.08)  # response A empty or null, B not: B wins
IDENTICAL = (0.06, 0.06, 0.88)
RULES = ("empty", "identical")


def _empty(turns: list[str]) -> bool:
    return all(not t.strip() for t in turns)


def _same(a: list[str], b: list[str]) -> bool:
    return [t.strip() for t in a] == [t.strip() for t in b]


def rule_rows(pairs: Pairs, spec: CompetitionSpec, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask of rows the rule fires on, the probability rows it sets there)."""
    a_col, b_col = spec.swap_pairs[0]
    a, b = pairs.texts[a_col], pairs.texts[b_col]
    rows = np.zeros((len(pairs), spec.num_labels))
    if rule == "identical":
        mask = np.array([_same(x, y) for x, y in zip(a, b)], dtype=bool)
        rows[:] = IDENTICAL
    elif rule == "empty":
        empty_a = np.array([_empty(x) for x in a], dtype=bool)
        empty_b = np.array([_empty(y) for y in b], dtype=bool)
        mask = empty_a ^ empty_b  # both empty is the identical rule's case
        rows[:] = EMPTY_B_WINS
        rows[empty_b] = np.asarray(EMPTY_B_WINS)[list(spec.label_swap)]
    else:
        raise ValueError(f"unknown rule {rule}")
    return mask, rows


def apply_rules(probs: np.ndarray, pairs: Pairs, spec: CompetitionSpec, rules=RULES) -> tuple[np.ndarray, dict]:
    """Probabilities with the rules' rows set; and how many rows each rule changed."""
    out = np.array(probs, dtype=np.float64, copy=True)
    fired = {}
    for rule in rules:
        mask, rows = rule_rows(pairs, spec, rule)
        out[mask] = rows[mask]
        fired[rule] = int(mask.sum())
    return out, fired


def evaluate_rules(probs: np.ndarray, targets: np.ndarray, pairs: Pairs, spec: CompetitionSpec) -> list[dict]:
    """Each rule alone on OOF: rows it fires on, log loss before and after; kept only if it lowers the loss."""
    base = log_loss(targets, probs)
    report = []
    for rule in RULES:
        changed, fired = apply_rules(probs, pairs, spec, [rule])
        after = log_loss(targets, changed)
        report.append({"rule": rule, "rows": fired[rule], "log_loss_before": base, "log_loss_after": after,
                       "kept": fired[rule] > 0 and after < base})
    return report
