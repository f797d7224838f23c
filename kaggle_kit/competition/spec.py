"""Everything competition-specific lives in one spec object: a second competition is a new spec, not a fork."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CompetitionSpec:
    slug: str
    id_column: str
    text_columns: tuple[str, ...]  # JSON-list-of-turns cells, in template order
    label_columns: tuple[str, ...]  # one-hot winner columns == submission probability columns
    train_extra_columns: tuple[str, ...]  # present in train.csv only, not used as features
    swap_pairs: tuple[tuple[str, str], ...]  # text columns exchanged by A/B swapping
    label_swap: tuple[int, ...]  # class index -> class index after an A/B swap
    metric: str = "multi-class log loss"
    submission_file: str = "submission.csv"
    time_limit_s: int | None = None  # the scoring notebook's runtime limit
    hidden_test_rows: int | None = None  # rows of the hidden test the scoring rerun predicts (about)

    @property
    def train_columns(self) -> list[str]:
        return [self.id_column, *self.train_extra_columns, *self.text_columns, *self.label_columns]

    @property
    def test_columns(self) -> list[str]:
        return [self.id_column, *self.text_columns]

    @property
    def submission_columns(self) -> list[str]:
        return [self.id_column, *self.label_columns]

    @property
    def num_labels(self) -> int:
        return len(self.label_columns)


def rules_url(slug: str) -> str:
    """Where a competition's rules are accepted (a 403 from Kaggle usually means they were not)."""
    return f"https://www.kaggle.com/competitions/{slug}/rules"


LMSYS = CompetitionSpec(
    slug="lmsys-chatbot-arena",
    id_column="id",
    text_columns=("prompt", "response_a", "response_b"),
    label_columns=("winner_model_a", "winner_model_b", "winner_tie"),
    train_extra_columns=("model_a", "model_b"),
    swap_pairs=(("response_a", "response_b"), ("model_a", "model_b")),
    label_swap=(1, 0, 2),
    time_limit_s=9 * 3600,
    hidden_test_rows=25_000,
)

SPECS: dict[str, CompetitionSpec] = {LMSYS.slug: LMSYS}


def get_spec(slug: str) -> CompetitionSpec:
    from kaggle_kit.errors import UsageProblem

    try:
        return SPECS[slug]
    except KeyError:
        raise UsageProblem(f"unknown competition '{slug}'", hint=f"known: {', '.join(sorted(SPECS))}") from None
